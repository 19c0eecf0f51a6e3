//! A chat client as a test drives it: connects over TCP or TLS with the
//! server's fingerprint pinned, authenticates, chats, and waits for what a
//! user would see, failing the test with a clear message when it does not
//! come within [`RECV_TIMEOUT`].

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use net::tls::TlsConnector;
use net::{ClientHandshake, ClientLink, ClientStream, LinkEvent, NetError};
use proto_core::login::{
    login_step, ChangeStep, ExchangeStep, LoginReply, LoginStep, PasswordChange, PasswordExchange,
};
use proto_core::message::{
    AuthFailure, ClientMessage, ErrorCode, GoodbyeReason, HistoryEntry, LeaveReason, ResumeToken,
    RoomFilter, RoomInfo, RoomLeaveReason, RoomName, RoomRole, RoomSummary, ServerMessage, Topic,
    Username,
};
use proto_core::opaque::{Argon2id, ExportKey, Stretch};
use proto_core::{ClientConfig, Fingerprint, ServerTrust};
use rand_core::OsRng;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout_at, Instant};

use crate::test_certificate::TLS_SERVER_NAME;
use crate::values::{password, room, text, username};

/// How long any expected message, close or handshake may take before the
/// test fails. A failure bound only: nothing waits for it to pass.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a session that must end (cut off, closed, drained) may stay
/// open; longer than [`RECV_TIMEOUT`] for a big backlog.
pub const END_BOUND: Duration = Duration::from_secs(30);

/// Where and how to reach a server.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The fingerprint clients pin (`ServerTrust::Fingerprint`).
    pub fingerprint: Fingerprint,
    /// `Some(CA file)` for TLS: the server's self-signed certificate.
    pub tls_ca: Option<PathBuf>,
    /// A fixed SO_RCVBUF for the client's socket (no autotuning), for a
    /// client whose kernel should not absorb a large backlog.
    pub recv_buffer: Option<u32>,
    /// The source address to connect from (any of 127.0.0.0/8 works on
    /// loopback), for tests of per-address limits.
    pub source: Option<std::net::IpAddr>,
}

/// What a successful `Register`, `Login` or `Resume` returned: `AuthOk`,
/// then a `RoomJoined` per room, then every
/// `HistoryBatch` page.
#[derive(Debug)]
pub struct LoginInfo {
    pub username: Username,
    pub token: ResumeToken,
    pub token_lifetime_secs: u32,
    /// The user's rooms, in the order the greeting gave them.
    pub rooms: Vec<RoomInfo>,
    /// Open invitations the greeting listed: (room, who invited).
    pub invitations: Vec<(String, String)>,
    /// The greeting's read markers: (conversation, up to, unread).
    pub read_markers: Vec<(proto_core::message::Conversation, u64, u32)>,
    pub history: Vec<HistoryEntry>,
    pub history_batches: usize,
}

impl LoginInfo {
    /// The names of the user's rooms, in greeting order.
    pub fn room_names(&self) -> Vec<String> {
        self.rooms
            .iter()
            .map(|r| r.room.as_str().to_owned())
            .collect()
    }
}

/// What a greeting holds after `AuthOk`.
struct Greeting {
    rooms: Vec<RoomInfo>,
    invitations: Vec<(String, String)>,
    read_markers: Vec<(proto_core::message::Conversation, u64, u32)>,
    history: Vec<HistoryEntry>,
    batches: usize,
}

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    Closed { clean: bool },
    Error(NetError),
}

/// One connected client.
pub struct TestClient {
    label: String,
    session: ClientLink<ClientStream>,
    next_nonce: u64,
    /// Presence the server sent and no `expect_user_*` took yet: (name,
    /// `None` online or the reason it left), oldest first. Presence comes
    /// in batches whose timing is the server's, so [`recv`](Self::recv)
    /// sets it aside instead of returning it.
    presence: std::collections::VecDeque<(String, Option<LeaveReason>)>,
    /// `Presence` messages received so far.
    presence_messages: usize,
    /// New accounts `#general` announced (`MemberJoined` at their
    /// registration), set aside like presence: they come whenever someone
    /// registers.
    general_joins: std::collections::VecDeque<String>,
}

/// Opens the transport: TCP, then TLS if the endpoint has a CA.
pub async fn open_stream(endpoint: &Endpoint) -> io::Result<ClientStream> {
    let tcp = if endpoint.recv_buffer.is_none() && endpoint.source.is_none() {
        TcpStream::connect(endpoint.addr).await?
    } else {
        let socket = match endpoint.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(size) = endpoint.recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        if let Some(ip) = endpoint.source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(endpoint.addr).await?
    };
    tcp.set_nodelay(true)?;
    let Some(ca) = &endpoint.tls_ca else {
        return Ok(ClientStream::from(tcp));
    };
    let config = net::tls::client_config(Some(ca)).map_err(io::Error::other)?;
    let name = net::tls::server_name(TLS_SERVER_NAME).map_err(io::Error::other)?;
    let tls = TlsConnector::from(config).connect(name, tcp).await?;
    Ok(ClientStream::from(tls))
}

impl TestClient {
    /// Connects and completes the handshake with the fingerprint pinned;
    /// `Err` for whatever went wrong (refused, key changed, EOF...).
    pub async fn try_connect(endpoint: &Endpoint, label: &str) -> Result<Self, NetError> {
        Self::try_connect_with(endpoint, label, None).await
    }

    /// [`Self::try_connect`], through a resumed handshake keyed by `resume`
    /// if given (the server answers `unknown_psk` if it does not hold it).
    pub async fn try_connect_with(
        endpoint: &Endpoint,
        label: &str,
        resume: Option<&ResumeToken>,
    ) -> Result<Self, NetError> {
        let deadline = Instant::now() + RECV_TIMEOUT;
        let stream = match timeout_at(deadline, open_stream(endpoint)).await {
            Ok(stream) => stream?,
            Err(_) => return Err(NetError::HandshakeTimeout),
        };
        let config = ClientConfig {
            resume: resume.map(proto_core::ResumptionPsk::from_token),
            ..ClientConfig::new(ServerTrust::Fingerprint(endpoint.fingerprint))
        };
        match net::connect(stream, config, RECV_TIMEOUT).await? {
            ClientHandshake::Connected(session) => Ok(Self {
                label: label.to_owned(),
                session,
                next_nonce: 0,
                presence: std::collections::VecDeque::new(),
                presence_messages: 0,
                general_joins: std::collections::VecDeque::new(),
            }),
            ClientHandshake::NeedsTrust(_) => {
                panic!("{label}: a pinned fingerprint asked for trust")
            }
        }
    }

    /// [`Self::try_connect`], failing the test on error.
    pub async fn connect(endpoint: &Endpoint, label: &str) -> Self {
        match Self::try_connect(endpoint, label).await {
            Ok(client) => client,
            Err(e) => panic!("{label}: cannot connect to {}: {e}", endpoint.addr),
        }
    }

    /// The name used in failure messages (the username once logged in).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The session, for what the helpers do not cover.
    pub fn session(&mut self) -> &mut ClientLink<ClientStream> {
        &mut self.session
    }

    // ----- sending -----

    /// Sends one message; fails the test if it cannot be written.
    pub async fn send(&mut self, msg: &ClientMessage) {
        if let Err(e) = self.session.send(msg).await {
            panic!("{}: cannot send {:?}: {e}", self.label, msg.tag());
        }
    }

    /// Sends without failing the test (for sessions that may be gone).
    pub async fn try_send(&mut self, msg: &ClientMessage) -> Result<(), NetError> {
        self.session.send(msg).await
    }

    /// Says which device this connection is (before logging in).
    pub async fn set_device(&mut self, id: u64, name: &str) {
        self.send(&ClientMessage::SetDevice {
            id,
            name: proto_core::message::DeviceName::new(name).expect("test device name"),
        })
        .await;
    }

    /// Says `words` in `#general`.
    pub async fn say(&mut self, words: &str) {
        self.say_in("#general", words).await;
    }

    /// Says `words` in `in_room` (without an acknowledgement).
    pub async fn say_in(&mut self, in_room: &str, words: &str) {
        self.send(&ClientMessage::RoomMessage {
            room: room(in_room),
            text: text(words),
        })
        .await;
    }

    // ----- rooms -----

    /// Sends `CreateRoom` and returns the answer (`RoomJoined`, or the
    /// `Error` code).
    pub async fn create_room(
        &mut self,
        name: &str,
        invite_only: bool,
        topic: &str,
    ) -> Result<RoomInfo, ErrorCode> {
        self.send(&ClientMessage::CreateRoom {
            room: room(name),
            invite_only,
            topic: Topic::new(topic).expect("test topic"),
        })
        .await;
        self.room_answer().await
    }

    /// Sends `JoinRoom` and returns the answer.
    pub async fn join_room(&mut self, name: &str) -> Result<RoomInfo, ErrorCode> {
        self.send(&ClientMessage::JoinRoom { room: room(name) })
            .await;
        self.room_answer().await
    }

    /// Sends `LeaveRoom` and returns the answer (`RoomLeft`'s room, or the
    /// `Error` code).
    pub async fn leave_room(&mut self, name: &str) -> Result<RoomName, ErrorCode> {
        self.send(&ClientMessage::LeaveRoom { room: room(name) })
            .await;
        match self.recv().await {
            ServerMessage::RoomLeft {
                room,
                reason: RoomLeaveReason::Left,
            } => Ok(room),
            ServerMessage::Error { code, .. } => Err(code),
            other => panic!("{}: expected RoomLeft or Error, got {other:?}", self.label),
        }
    }

    /// Sends `ListRooms` and gathers the pages.
    pub async fn list_rooms(&mut self, filter: &str) -> Vec<RoomSummary> {
        self.send(&ClientMessage::ListRooms {
            filter: RoomFilter::new(filter).expect("test filter"),
        })
        .await;
        let mut all = Vec::new();
        loop {
            match self.recv().await {
                ServerMessage::RoomList { more, rooms } => {
                    all.extend(rooms.into_vec());
                    if !more {
                        return all;
                    }
                }
                other => panic!("{}: expected a RoomList page, got {other:?}", self.label),
            }
        }
    }

    /// Sends `Members` for `in_room` from `offset` and returns the page
    /// (`total` and the members as (name, role, online)), or the `Error`
    /// code.
    pub async fn members(
        &mut self,
        in_room: &str,
        offset: u32,
    ) -> Result<(u32, Vec<(String, RoomRole, bool)>), ErrorCode> {
        self.send(&ClientMessage::Members {
            room: room(in_room),
            offset,
        })
        .await;
        match self.recv().await {
            ServerMessage::MemberPage {
                room: r,
                offset: o,
                total,
                members,
            } => {
                assert_eq!((r.canonical(), o), (room(in_room).canonical(), offset));
                let members = members
                    .into_vec()
                    .into_iter()
                    .map(|m| (m.user.as_str().to_owned(), m.role, m.online))
                    .collect();
                Ok((total, members))
            }
            ServerMessage::Error { code, .. } => Err(code),
            other => panic!(
                "{}: expected a MemberPage or Error, got {other:?}",
                self.label
            ),
        }
    }

    /// Sends a moderation or administration request and returns the
    /// refusal's code, if it was refused: `Ok` after the `RoomChanged`
    /// (which the actor gets too), `RoomLeft` (deleting a room one is in)
    /// or `Done` that says it happened.
    pub async fn moderate(&mut self, msg: ClientMessage) -> Result<ServerMessage, ErrorCode> {
        self.send(&msg).await;
        match self.recv().await {
            ServerMessage::Error { code, .. } => Err(code),
            ok @ (ServerMessage::RoomChanged { .. }
            | ServerMessage::RoomLeft { .. }
            | ServerMessage::Done) => Ok(ok),
            other => panic!(
                "{}: expected the answer to a moderation request, got {other:?}",
                self.label
            ),
        }
    }

    /// The next message: `actor` changed `in_room` by `change`.
    pub async fn expect_room_changed(
        &mut self,
        in_room: &str,
        actor: &str,
    ) -> proto_core::message::RoomChange {
        match self.recv().await {
            ServerMessage::RoomChanged {
                room: r,
                actor: a,
                change,
            } if r.as_str() == in_room && a.as_str() == actor => change,
            other => panic!(
                "{}: expected RoomChanged in {in_room} by {actor}, got {other:?}",
                self.label
            ),
        }
    }

    /// The next message: this user is no longer in `in_room`, for `reason`.
    pub async fn expect_room_left(&mut self, in_room: &str, reason: RoomLeaveReason) {
        match self.recv().await {
            ServerMessage::RoomLeft {
                room: r,
                reason: why,
            } if r.as_str() == in_room && why == reason => {}
            other => panic!(
                "{}: expected RoomLeft {in_room} {reason:?}, got {other:?}",
                self.label
            ),
        }
    }

    /// Sends `History` and gathers the chunks: the entries and `complete`,
    /// or the refusal's code.
    pub async fn history_page(
        &mut self,
        conversation: proto_core::message::Conversation,
        before_id: u64,
        limit: u16,
    ) -> Result<(Vec<HistoryEntry>, bool), ErrorCode> {
        self.send(&ClientMessage::History {
            conversation,
            before_id,
            limit,
        })
        .await;
        let mut all = Vec::new();
        loop {
            match self.recv().await {
                ServerMessage::HistoryPage {
                    more,
                    complete,
                    entries,
                    ..
                } => {
                    all.extend(entries.into_vec());
                    if !more {
                        return Ok((all, complete));
                    }
                }
                ServerMessage::Error { code, .. } => return Err(code),
                other => panic!("{}: expected a HistoryPage, got {other:?}", self.label),
            }
        }
    }

    async fn room_answer(&mut self) -> Result<RoomInfo, ErrorCode> {
        match self.recv().await {
            ServerMessage::RoomJoined { info } => Ok(info),
            ServerMessage::Error { code, .. } => Err(code),
            other => panic!(
                "{}: expected RoomJoined or Error, got {other:?}",
                self.label
            ),
        }
    }

    /// The next message: `user` joined `in_room`.
    pub async fn expect_member_joined(&mut self, in_room: &str, user: &str) {
        if room(in_room).canonical() == RoomName::general().canonical() {
            loop {
                if let Some(at) = self.general_joins.iter().position(|u| u == user) {
                    self.general_joins.remove(at);
                    return;
                }
                if let Some(other) = self.recv_or_presence().await {
                    panic!(
                        "{}: expected MemberJoined {user} in #general, got {other:?}",
                        self.label
                    );
                }
            }
        }
        match self.recv().await {
            ServerMessage::MemberJoined { room: r, user: u }
                if r.as_str() == in_room && u.as_str() == user => {}
            other => panic!(
                "{}: expected MemberJoined {user} in {in_room}, got {other:?}",
                self.label
            ),
        }
    }

    /// The next message: `user` left `in_room`.
    pub async fn expect_member_left(&mut self, in_room: &str, user: &str) {
        match self.recv().await {
            ServerMessage::MemberLeft {
                room: r, user: u, ..
            } if r.as_str() == in_room && u.as_str() == user => {}
            other => panic!(
                "{}: expected MemberLeft {user} in {in_room}, got {other:?}",
                self.label
            ),
        }
    }

    /// The next message is a message in `in_room` from `from` saying
    /// `words`; returns its id.
    pub async fn expect_room_message_in(&mut self, in_room: &str, from: &str, words: &str) -> u64 {
        match self.recv().await {
            ServerMessage::RoomMessage {
                id,
                room: r,
                from: f,
                text: t,
                ..
            } if r.as_str() == in_room && f.as_str() == from && t.as_str() == words => id,
            other => panic!(
                "{}: expected RoomMessage in {in_room} from {from} {:?}, got {other:?}",
                self.label,
                short(words)
            ),
        }
    }

    /// Sends a direct message.
    pub async fn dm(&mut self, to: &str, words: &str) {
        self.send(&ClientMessage::DirectMessage {
            to: username(to),
            text: text(words),
        })
        .await;
    }

    /// Writes raw bytes straight onto the TCP stream under the session
    /// (plain TCP only): an attacker who finished a valid handshake.
    pub async fn inject_raw(&mut self, bytes: &[u8]) {
        let ClientStream::Plain(_) = self.session.get_ref() else {
            panic!("{}: raw injection needs a plain TCP session", self.label);
        };
        let tcp = self.session.get_ref().tcp();
        let mut written = 0;
        while written < bytes.len() {
            tcp.writable().await.expect("socket writable");
            match tcp.try_write(&bytes[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // The server may already have closed: that is its answer.
                Err(_) => return,
            }
        }
    }

    // ----- receiving -----

    /// The next event as it comes, Pings included and not answered; `None`
    /// if nothing came before `deadline`.
    pub async fn next_event_until(
        &mut self,
        deadline: Instant,
    ) -> Option<Result<LinkEvent<ServerMessage>, NetError>> {
        timeout_at(deadline, self.session.next_event()).await.ok()
    }

    async fn answer_ping(&mut self, nonce: u64) {
        // A session the server is closing may refuse; the close shows next.
        let _ = self.session.send(&ClientMessage::Pong { nonce }).await;
    }

    /// The next message other than Ping (Pings are answered), within
    /// [`RECV_TIMEOUT`]; fails the test on timeout, close or error.
    pub async fn recv(&mut self) -> ServerMessage {
        loop {
            if let Some(msg) = self.recv_or_presence().await {
                return msg;
            }
        }
    }

    /// The next message, or `None` after setting a `Presence` aside.
    async fn recv_or_presence(&mut self) -> Option<ServerMessage> {
        let deadline = Instant::now() + RECV_TIMEOUT;
        loop {
            match self.next_event_until(deadline).await {
                Some(Ok(LinkEvent::Message(ServerMessage::Ping { nonce }))) => {
                    self.answer_ping(nonce).await
                }
                Some(Ok(LinkEvent::Message(ServerMessage::Presence { online, offline }))) => {
                    self.presence_messages += 1;
                    self.presence
                        .extend(online.iter().map(|u| (u.as_str().to_owned(), None)));
                    self.presence.extend(
                        offline
                            .iter()
                            .map(|d| (d.user.as_str().to_owned(), Some(d.reason))),
                    );
                    return None;
                }
                Some(Ok(LinkEvent::Message(ServerMessage::MemberJoined { room, user })))
                    if room.canonical() == RoomName::general().canonical() =>
                {
                    self.general_joins.push_back(user.as_str().to_owned());
                    return None;
                }
                Some(Ok(LinkEvent::Message(msg))) => return Some(msg),
                Some(Ok(LinkEvent::Closed { clean })) => panic!(
                    "{}: the session closed (clean: {clean}) while a message was expected",
                    self.label
                ),
                Some(Err(e)) => panic!(
                    "{}: the session failed while a message was expected: {e}",
                    self.label
                ),
                None => panic!("{}: no message within {RECV_TIMEOUT:?}", self.label),
            }
        }
    }

    /// Waits for `n` Pings from the server and answers each; fails the
    /// test on any other message, on a close, or after [`RECV_TIMEOUT`].
    pub async fn answer_pings(&mut self, n: usize) {
        let deadline = Instant::now() + RECV_TIMEOUT;
        for seen in 0..n {
            match self.next_event_until(deadline).await {
                Some(Ok(LinkEvent::Message(ServerMessage::Ping { nonce }))) => {
                    self.answer_ping(nonce).await
                }
                Some(Ok(LinkEvent::Message(msg))) => {
                    panic!("{}: expected Ping {}, got {msg:?}", self.label, seen + 1)
                }
                Some(Ok(LinkEvent::Closed { clean })) => panic!(
                    "{}: closed (clean: {clean}) after answering {seen} Pings",
                    self.label
                ),
                Some(Err(e)) => panic!("{}: failed after answering {seen} Pings: {e}", self.label),
                None => panic!(
                    "{}: only {seen} of {n} Pings within {RECV_TIMEOUT:?}",
                    self.label
                ),
            }
        }
    }

    /// Proves the server has answered everything sent so far and sent this
    /// client nothing else meanwhile: a Ping whose Pong must be the very
    /// next message.
    pub async fn sync(&mut self) {
        self.next_nonce += 1;
        let nonce = 0x5EC0_0000_0000_0000 | self.next_nonce;
        self.send(&ClientMessage::Ping { nonce }).await;
        let got = self.recv().await;
        assert_eq!(
            got,
            ServerMessage::Pong { nonce },
            "{}: expected nothing but the Pong to our Ping",
            self.label
        );
    }

    /// Reads until the session ends, returning every message (Pings
    /// included, unanswered) and how it ended. Fails the test if the
    /// session is still open after [`END_BOUND`].
    pub async fn read_until_end(&mut self) -> (Vec<ServerMessage>, SessionEnd) {
        let mut seen = Vec::new();
        let deadline = Instant::now() + END_BOUND;
        loop {
            match self.next_event_until(deadline).await {
                Some(Ok(LinkEvent::Message(msg))) => seen.push(msg),
                Some(Ok(LinkEvent::Closed { clean })) => {
                    return (seen, SessionEnd::Closed { clean })
                }
                Some(Err(e)) => return (seen, SessionEnd::Error(e)),
                None => panic!(
                    "{}: the session was expected to end but is still open after {END_BOUND:?} \
                     and {} message(s); last: {:?}",
                    self.label,
                    seen.len(),
                    seen.last()
                ),
            }
        }
    }

    /// The session ends with no further message but Pings (and presence).
    pub async fn expect_closed(&mut self) -> SessionEnd {
        let (seen, end) = self.read_until_end().await;
        let unexpected: Vec<_> = seen
            .iter()
            .filter(|m| {
                !matches!(
                    m,
                    ServerMessage::Ping { .. } | ServerMessage::Presence { .. }
                )
            })
            .collect();
        assert!(
            unexpected.is_empty(),
            "{}: expected the session to end, got {unexpected:?} first",
            self.label
        );
        end
    }

    /// The next message is `Goodbye{reason}`, then the session ends.
    pub async fn expect_goodbye(&mut self, reason: GoodbyeReason) {
        let got = self.recv().await;
        assert_eq!(
            got,
            ServerMessage::Goodbye { reason },
            "{}: expected Goodbye {reason:?}",
            self.label
        );
        self.expect_closed().await;
    }

    /// The server cuts this client off: the session ends, with at most a
    /// `Goodbye{reason}` (best effort), Pings and presence before the end.
    pub async fn expect_cut_off(&mut self, reason: GoodbyeReason) -> SessionEnd {
        let (seen, end) = self.read_until_end().await;
        for msg in &seen {
            match msg {
                ServerMessage::Ping { .. } | ServerMessage::Presence { .. } => {}
                ServerMessage::Goodbye { reason: r } if *r == reason => {}
                other => panic!(
                    "{}: expected to be cut off with at most Goodbye {reason:?}, got {other:?}",
                    self.label
                ),
            }
        }
        end
    }

    /// The next message is a room message from `from` saying `words`;
    /// returns its id and timestamp.
    pub async fn expect_room_message(&mut self, from: &str, words: &str) -> (u64, u64) {
        match self.recv().await {
            ServerMessage::RoomMessage {
                id,
                timestamp_ms,
                from: f,
                text: t,
                ..
            } if f.as_str() == from && t.as_str() == words => (id, timestamp_ms),
            other => panic!(
                "{}: expected RoomMessage from {from} {:?}, got {other:?}",
                self.label,
                short(words)
            ),
        }
    }

    /// The next message is a direct message from `from` to `to`.
    pub async fn expect_direct_message(&mut self, from: &str, to: &str, words: &str) -> u64 {
        match self.recv().await {
            ServerMessage::DirectMessage {
                id,
                from: f,
                to: t,
                text: x,
                ..
            } if f.as_str() == from && t.as_str() == to && x.as_str() == words => id,
            other => panic!(
                "{}: expected DirectMessage {from} -> {to} {:?}, got {other:?}",
                self.label,
                short(words)
            ),
        }
    }

    /// Presence says `name` came online (now or in a batch set aside
    /// earlier); any other message meanwhile fails the test.
    pub async fn expect_user_joined(&mut self, name: &str) {
        self.expect_presence(name, None).await;
    }

    /// Presence says `name` went offline for `reason`.
    pub async fn expect_user_left(&mut self, name: &str, reason: LeaveReason) {
        self.expect_presence(name, Some(reason)).await;
    }

    async fn expect_presence(&mut self, name: &str, state: Option<LeaveReason>) {
        loop {
            if let Some(at) = self
                .presence
                .iter()
                .position(|(n, s)| n == name && *s == state)
            {
                self.presence.remove(at);
                return;
            }
            if let Some(other) = self.recv_or_presence().await {
                panic!(
                    "{}: expected presence {name} {state:?}, got {other:?}",
                    self.label
                );
            }
        }
    }

    /// The new accounts `#general` announced that no
    /// `expect_member_joined` took, oldest first.
    pub fn announced_in_general(&self) -> Vec<String> {
        self.general_joins.iter().cloned().collect()
    }

    /// How many `Presence` messages came so far.
    pub fn presence_messages(&self) -> usize {
        self.presence_messages
    }

    /// What presence said of `name` that no `expect_user_*` took.
    pub fn presence_of(&self, name: &str) -> Vec<Option<LeaveReason>> {
        self.presence
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, s)| *s)
            .collect()
    }

    pub async fn expect_error(&mut self, code: ErrorCode) {
        match self.recv().await {
            ServerMessage::Error { code: c, .. } if c == code => {}
            other => panic!("{}: expected Error {code:?}, got {other:?}", self.label),
        }
    }

    /// Asks `WhoIsOnline` and gathers the pages.
    pub async fn who_is_online(&mut self) -> BTreeSet<String> {
        self.send(&ClientMessage::WhoIsOnline).await;
        self.read_online_pages()
            .await
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect()
    }

    async fn read_online_pages(&mut self) -> Vec<Username> {
        let mut all = Vec::new();
        loop {
            match self.recv().await {
                ServerMessage::OnlineUsers { more, users } => {
                    all.extend(users.into_vec());
                    if !more {
                        return all;
                    }
                }
                other => panic!(
                    "{}: expected an OnlineUsers page, got {other:?}",
                    self.label
                ),
            }
        }
    }

    // ----- authentication -----

    /// Sends `msg` and reads the answer (proto-core's [`login_step`], as
    /// every client does; `recv` answers the Pings); on `AuthOk`, also the
    /// online pages and history batches that must follow it.
    pub async fn authenticate(&mut self, msg: &ClientMessage) -> Result<LoginInfo, AuthFailure> {
        self.send(msg).await;
        match login_step(self.recv().await) {
            LoginStep::Reply(reply) => self.login_reply(reply).await,
            other => panic!(
                "{}: expected AuthOk or AuthFailed, got {other:?}",
                self.label
            ),
        }
    }

    /// The greeting's `RoomJoined` messages, then its history pages.
    async fn read_rooms_and_history(&mut self) -> Greeting {
        let mut rooms = Vec::new();
        let mut invitations = Vec::new();
        let mut read_markers = Vec::new();
        let mut all = Vec::new();
        let mut batches = 0;
        loop {
            match self.recv().await {
                ServerMessage::RoomJoined { info } if batches == 0 => rooms.push(info),
                ServerMessage::Invited { room, by, .. } if batches == 0 => {
                    invitations.push((room.as_str().to_owned(), by.as_str().to_owned()));
                }
                ServerMessage::ReadMarker {
                    conversation,
                    up_to_id,
                    unread,
                } if batches == 0 => read_markers.push((conversation, up_to_id, unread)),
                ServerMessage::HistoryBatch { more, entries } => {
                    batches += 1;
                    all.extend(entries.into_vec());
                    if !more {
                        return Greeting {
                            rooms,
                            invitations,
                            read_markers,
                            history: all,
                            batches,
                        };
                    }
                }
                other => panic!(
                    "{}: expected RoomJoined or a HistoryBatch page after the online users, got {other:?}",
                    self.label
                ),
            }
        }
    }

    /// Runs an OPAQUE exchange as every client does (proto-core's
    /// [`PasswordExchange`], with the real Argon2id costs, so that accounts
    /// made here log in from the CLI and the GUI and back); on `AuthOk`,
    /// also reads the online pages and history batches that follow it.
    async fn password_exchange(
        &mut self,
        mut exchange: PasswordExchange,
        first: ClientMessage,
    ) -> Result<(LoginInfo, Option<ExportKey>), AuthFailure> {
        self.send(&first).await;
        loop {
            let msg = self.recv().await;
            match exchange.handle(&mut OsRng, msg) {
                ExchangeStep::Send(next) => self.send(&next).await,
                ExchangeStep::Done(reply, export_key) => {
                    return self.login_reply(reply).await.map(|info| (info, export_key))
                }
                ExchangeStep::Refused | ExchangeStep::LegacyRefused => {
                    return Err(AuthFailure::LoginFailed)
                }
                ExchangeStep::Unexpected(other) => panic!(
                    "{}: unexpected answer to a password exchange: {other:?}",
                    self.label
                ),
            }
        }
    }

    async fn login_reply(&mut self, reply: LoginReply) -> Result<LoginInfo, AuthFailure> {
        match reply {
            LoginReply::Accepted {
                username,
                resume_token,
                token_lifetime_secs,
            } => {
                self.label = username.as_str().to_owned();
                let Greeting {
                    rooms,
                    invitations,
                    read_markers,
                    history,
                    batches: history_batches,
                } = self.read_rooms_and_history().await;
                Ok(LoginInfo {
                    username,
                    token: resume_token,
                    token_lifetime_secs,
                    rooms,
                    invitations,
                    read_markers,
                    history,
                    history_batches,
                })
            }
            LoginReply::Refused(reason) => Err(reason),
            other => panic!(
                "{}: expected AuthOk or AuthFailed, got {other:?}",
                self.label
            ),
        }
    }

    fn stretch() -> Argon2id {
        Stretch::RECOMMENDED
            .argon2id()
            .expect("the recommended costs are valid")
    }

    pub async fn try_register(
        &mut self,
        name: &str,
        secret: &str,
    ) -> Result<LoginInfo, AuthFailure> {
        let binding = self.session.channel_binding().clone();
        let (exchange, first) = PasswordExchange::register(
            &mut OsRng,
            username(name),
            password(secret),
            Self::stretch(),
            binding,
        )?;
        self.password_exchange(exchange, first)
            .await
            .map(|(info, _)| info)
    }

    /// An OPAQUE login; the export key comes with the answer.
    pub async fn try_login_with_key(
        &mut self,
        name: &str,
        secret: &str,
    ) -> Result<(LoginInfo, Option<ExportKey>), AuthFailure> {
        let binding = self.session.channel_binding().clone();
        let (exchange, first) = PasswordExchange::login(
            &mut OsRng,
            username(name),
            password(secret),
            Self::stretch(),
            binding,
        )?;
        self.password_exchange(exchange, first).await
    }

    pub async fn try_login(&mut self, name: &str, secret: &str) -> Result<LoginInfo, AuthFailure> {
        self.try_login_with_key(name, secret)
            .await
            .map(|(info, _)| info)
    }

    /// The version-1 login, with the password in the message (what a
    /// client of the release before OPAQUE sends).
    pub async fn try_legacy_login(
        &mut self,
        name: &str,
        secret: &str,
    ) -> Result<LoginInfo, AuthFailure> {
        self.authenticate(&ClientMessage::Login {
            username: username(name),
            password: password(secret),
        })
        .await
    }

    /// Changes the password while logged in as `name`: the new token, or
    /// the refusal (`None` when the client itself found `old` wrong).
    pub async fn try_change_password(
        &mut self,
        name: &str,
        old: &str,
        new: &str,
    ) -> Result<ResumeToken, Option<LoginReply>> {
        let binding = self.session.channel_binding().clone();
        let (mut change, first) = PasswordChange::start(
            &mut OsRng,
            &username(name),
            password(old),
            password(new),
            Self::stretch(),
            binding,
        )
        .map_err(|reason| Some(LoginReply::Refused(reason)))?;
        self.send(&first).await;
        loop {
            let msg = self.recv().await;
            match change.handle(&mut OsRng, msg) {
                ChangeStep::Send(next) => self.send(&next).await,
                ChangeStep::Changed { resume_token, .. } => return Ok(resume_token),
                ChangeStep::WrongPassword => return Err(None),
                ChangeStep::Failed(reply) => return Err(Some(reply)),
                ChangeStep::NotMine(other) => panic!(
                    "{}: unexpected message during a password change: {other:?}",
                    self.label
                ),
            }
        }
    }

    pub async fn try_resume(&mut self, token: &ResumeToken) -> Result<LoginInfo, AuthFailure> {
        self.authenticate(&ClientMessage::Resume {
            token: token.clone(),
        })
        .await
    }

    /// Registers and fails the test if the server refuses.
    pub async fn register(&mut self, name: &str, secret: &str) -> LoginInfo {
        self.try_register(name, secret)
            .await
            .unwrap_or_else(|reason| panic!("{}: register {name} refused: {reason:?}", self.label))
    }

    /// Logs in and fails the test if the server refuses.
    pub async fn login(&mut self, name: &str, secret: &str) -> LoginInfo {
        self.try_login(name, secret)
            .await
            .unwrap_or_else(|reason| panic!("{}: login {name} refused: {reason:?}", self.label))
    }

    /// Resumes and fails the test if the server refuses.
    pub async fn resume(&mut self, token: &ResumeToken) -> LoginInfo {
        self.try_resume(token)
            .await
            .unwrap_or_else(|reason| panic!("{}: resume refused: {reason:?}", self.label))
    }

    // ----- leaving -----

    /// `#exit`: Goodbye, answered by Goodbye{ClientRequest} and a close.
    pub async fn goodbye(mut self) {
        self.send(&ClientMessage::Goodbye).await;
        self.expect_goodbye(GoodbyeReason::ClientRequest).await;
        let _ = self.session.close(None).await;
    }

    /// Drops the connection without a goodbye, as a crash or a pulled
    /// cable would (TCP FIN, no close_notify).
    pub fn drop_connection(self) {
        drop(self);
    }
}

/// Raw TCP access for attacks before any handshake.
pub async fn raw_tcp(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("raw TCP connect")
}

/// Writes `bytes` (ignoring a server that already hung up), then reads
/// until the server closes; fails the test if it has not closed within
/// [`RECV_TIMEOUT`]. Returns the bytes the server sent.
pub async fn send_raw_and_expect_close(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let _ = stream.write_all(bytes).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        match timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept a connection open for {RECV_TIMEOUT:?} after it sent garbage ({} bytes back)",
                got.len()
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn short(s: &str) -> String {
    if s.len() > 40 {
        let head: String = s.chars().take(40).collect();
        format!("{head}... ({} bytes)", s.len())
    } else {
        s.to_owned()
    }
}
