//! The real SecureChat client stack: TCP (spread over loopback source
//! addresses), optional TLS, the `net` handshake with a pinned fingerprint,
//! and Login / Register / Resume with the derived load accounts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use net::{ClientHandshake, ClientLink, ClientStream, LinkEvent};
use proto_core::login::{login_step, ExchangeStep, LoginReply, LoginStep, PasswordExchange};
use proto_core::message::{
    AuthFailure, ClientMessage, ErrorCode, MessageText, ResumeToken, RoomName, ServerMessage,
};
use proto_core::{ClientConfig, Fingerprint, ResumptionPsk, ServerKey, ServerTrust};
use tokio::sync::Semaphore;

use crate::accounts::Account;
use crate::stamp::Stamp;
use crate::transport::dialer::Dialer;
pub use crate::transport::dialer::TlsOptions;
use crate::transport::memo_stretch::MemoStretch;
use crate::transport::{ChatConnection, ChatEvent, JoinInfo, Transport, TransportError};

type Link = ClientLink<ClientStream>;

/// Where and how to reach the server.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    pub addr: SocketAddr,
    /// The server key's fingerprint; `None` trusts the first key seen (and
    /// then insists on it for every later connection).
    pub fingerprint: Option<Fingerprint>,
    pub tls: Option<TlsOptions>,
    /// Number of loopback source addresses (127.0.0.1 ..= 127.0.0.N) to
    /// spread connections over; ignored for a non-loopback target.
    pub sources: u8,
    /// TCP connect + TLS + protocol handshake, per attempt.
    pub handshake_timeout: Duration,
}

/// A connectable server: everything needed to open and secure a session.
pub struct Target {
    dialer: Dialer,
    trust: ServerTrust,
    handshake_timeout: Duration,
    seen_key: OnceLock<ServerKey>,
    /// Handshake cryptography at background priority, as the server runs
    /// its own: the tool's CPU must not move the latency it measures.
    offload: net::Offload,
}

impl Target {
    pub fn new(opts: &TargetOptions) -> Result<Self, TransportError> {
        Ok(Self {
            dialer: Dialer::new(opts.addr, opts.tls.as_ref(), opts.sources)?,
            trust: opts
                .fingerprint
                .map_or(ServerTrust::FirstUse, ServerTrust::Fingerprint),
            handshake_timeout: opts.handshake_timeout,
            seen_key: OnceLock::new(),
            offload: net::Offload::new(background_cpu::spawn),
        })
    }

    /// The fingerprint of the server key the handshakes verified, once one
    /// has completed.
    pub fn seen_fingerprint(&self) -> Option<Fingerprint> {
        self.seen_key.get().map(|k| k.fingerprint())
    }

    /// How many source addresses connections are spread over (0: the
    /// system picks).
    pub fn source_count(&self) -> usize {
        self.dialer.source_count()
    }

    /// TCP connect (from client `index`'s source address), TLS if
    /// configured, and the protocol handshake, under the handshake timeout.
    pub async fn handshake(&self, index: usize) -> Result<Link, TransportError> {
        self.handshake_with(index, None).await
    }

    /// [`handshake`](Self::handshake), resumed with the key of `token` if
    /// given (no ffdhe3072 on either side). A server that does not hold it
    /// fails with `unknown_psk` ([`TransportError::is_unknown_psk`]).
    pub async fn handshake_with(
        &self,
        index: usize,
        token: Option<&ResumeToken>,
    ) -> Result<Link, TransportError> {
        tokio::time::timeout(self.handshake_timeout, self.handshake_inner(index, token))
            .await
            .map_err(|_| TransportError::Timeout("handshake"))?
    }

    async fn handshake_inner(
        &self,
        index: usize,
        token: Option<&ResumeToken>,
    ) -> Result<Link, TransportError> {
        let stream = self.dialer.connect(index).await?;
        let config = ClientConfig {
            resume: token.map(ResumptionPsk::from_token),
            ..ClientConfig::new(self.trust)
        };
        let session =
            match net::connect_with_offload(stream, config, self.handshake_timeout, &self.offload)
                .await
                .map_err(TransportError::Handshake)?
            {
                ClientHandshake::Connected(session) => session,
                ClientHandshake::NeedsTrust(pending) => {
                    let first = *self.seen_key.get_or_init(|| pending.server_key());
                    if first != pending.server_key() {
                        let seen = pending.fingerprint().to_string();
                        pending.reject().await;
                        return Err(TransportError::KeyMismatch {
                            seen,
                            expected: first.fingerprint().to_string(),
                        });
                    }
                    pending.accept().await.map_err(TransportError::Handshake)?
                }
            };
        let _ = self.seen_key.set(session.server_key());
        Ok(session)
    }

    /// One handshake, then a clean close: the `handshakes` workload.
    pub async fn handshake_cycle(&self, index: usize) -> Result<Duration, TransportError> {
        let start = Instant::now();
        let session = self.handshake(index).await?;
        let took = start.elapsed();
        let _ = session.close(None).await;
        Ok(took)
    }
}

/// What a client remembers between its connections.
#[derive(Default)]
pub struct Memory {
    token: Option<ResumeToken>,
}

/// Joining the room as load accounts.
pub struct SecureChat {
    target: Arc<Target>,
    seed: String,
    register_permits: Semaphore,
    register_first: AtomicBool,
    login_timeout: Duration,
    /// The accounts' Argon2id, stretched once per account (see
    /// `memo_stretch`).
    stretch: MemoStretch,
    /// The room every client of this transport joins and writes to.
    room: RoomName,
    /// More than 1: client `i` is in `#load{i % spread}` instead.
    spread: usize,
}

impl SecureChat {
    /// `register_concurrency` bounds simultaneous registrations (each runs
    /// Argon2id here once and rewrites the server's account file);
    /// `register_first` registers before logging in, for a first run against
    /// an empty server (fewer throttled login failures).
    pub fn new(
        target: Arc<Target>,
        seed: String,
        register_concurrency: usize,
        register_first: bool,
        login_timeout: Duration,
    ) -> Self {
        Self {
            target,
            seed,
            register_permits: Semaphore::new(register_concurrency.max(1)),
            register_first: AtomicBool::new(register_first),
            login_timeout,
            stretch: MemoStretch::default(),
            room: RoomName::general(),
            spread: 0,
        }
    }

    /// Client `i` joins `#load{i % rooms}` (creating it if nobody has) and
    /// writes there: `rooms` rooms of equal size.
    pub fn spread_over(mut self, rooms: usize) -> Self {
        self.spread = rooms;
        self
    }

    /// The room client `index` joins and writes to.
    fn room_for(&self, index: usize) -> RoomName {
        if self.spread > 1 {
            let i = crate::fleet::room_of(index, self.spread);
            RoomName::new(&format!("#load{i}")).expect("a valid room name")
        } else {
            self.room.clone()
        }
    }

    /// Clients of this transport join `room` (creating it if nobody has)
    /// after logging in, and write there instead of `#general`.
    pub fn in_room(mut self, room: RoomName) -> Self {
        self.room = room;
        self
    }

    /// An OPAQUE login (`register == false`) or registration as `account`,
    /// as every client runs it (proto-core's `PasswordExchange`), with the
    /// memoised stretching.
    async fn password(
        &self,
        session: &mut Link,
        account: &Account,
        register: bool,
    ) -> Result<AuthReply, TransportError> {
        let binding = session.channel_binding().clone();
        let (username, password, ksf) = (
            account.username.clone(),
            account.password.clone(),
            self.stretch.clone(),
        );
        let rng = &mut rand_core::OsRng;
        let started = if register {
            PasswordExchange::register(rng, username, password, ksf, binding)
        } else {
            PasswordExchange::login(rng, username, password, ksf, binding)
        };
        let (mut exchange, first) = match started {
            Ok(started) => started,
            Err(reason) => return Ok(AuthReply::Failed(reason)),
        };
        session.send(&first).await.map_err(TransportError::Link)?;
        loop {
            let msg = next_message(session).await?;
            let step = if PasswordExchange::<MemoStretch>::is_expensive(&msg) {
                // The first stretching of an account costs ~20 ms: off the
                // event loop, as every client does it.
                let (back, step) = background_cpu::spawn(move || {
                    let step = exchange.handle(&mut rand_core::OsRng, msg);
                    (exchange, step)
                })
                .await
                .map_err(|_| TransportError::Auth("stretching failed".into()))?;
                exchange = back;
                step
            } else {
                exchange.handle(&mut rand_core::OsRng, msg)
            };
            match step {
                ExchangeStep::Send(next) => {
                    session.send(&next).await.map_err(TransportError::Link)?
                }
                ExchangeStep::Done(reply, _) => return auth_reply(reply),
                ExchangeStep::Refused => return Ok(AuthReply::Failed(AuthFailure::LoginFailed)),
                // The load generator never refuses the version-1 login.
                ExchangeStep::LegacyRefused => {
                    return Err(TransportError::Auth("version-1 login refused".into()))
                }
                // Nothing else may come first; a stray message is not the answer.
                ExchangeStep::Unexpected(_) => {}
            }
        }
    }

    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// Makes later joins register (`true`) or log in (`false`) first.
    pub fn set_register_first(&self, register_first: bool) {
        self.register_first.store(register_first, Ordering::Relaxed);
    }

    /// Logs account `index` in once (then says goodbye): `Ok(true)` if it
    /// exists with our password, `Ok(false)` on LoginFailed.
    pub async fn account_exists(&self, index: usize) -> Result<bool, TransportError> {
        let mut session = self.target.handshake(index).await?;
        let account = Account::new(&self.seed, index);
        let reply = tokio::time::timeout(
            self.login_timeout,
            self.password(&mut session, &account, false),
        )
        .await
        .map_err(|_| TransportError::Timeout("login"))??;
        let _ = session.close(Some(&ClientMessage::Goodbye)).await;
        match reply {
            AuthReply::Ok(_) => Ok(true),
            AuthReply::Failed(AuthFailure::LoginFailed) => Ok(false),
            AuthReply::Failed(other) => {
                Err(TransportError::Auth(format!("login refused: {other:?}")))
            }
        }
    }

    /// Logs `session` in as `account`: resume token if we hold one, else
    /// password; registers when the account does not exist.
    async fn authenticate(
        &self,
        session: &mut Link,
        account: &Account,
        memory: &mut Memory,
        info: &mut JoinInfo,
    ) -> Result<(), TransportError> {
        if let Some(token) = memory.token.take() {
            match request(session, &ClientMessage::Resume { token }).await? {
                AuthReply::Ok(token) => {
                    memory.token = Some(token);
                    info.resumed = true;
                    return Ok(());
                }
                // Revoked or expired: the password still works.
                AuthReply::Failed(_) => {}
            }
        }
        let register_first = self.register_first.load(Ordering::Relaxed);
        if !register_first {
            match self.password(session, account, false).await? {
                AuthReply::Ok(token) => {
                    memory.token = Some(token);
                    return Ok(());
                }
                AuthReply::Failed(AuthFailure::LoginFailed) => {}
                AuthReply::Failed(other) => {
                    return Err(TransportError::Auth(format!("login refused: {other:?}")))
                }
            }
        }
        let reply = {
            let _permit = self
                .register_permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let start = Instant::now();
            let reply = self.password(session, account, true).await?;
            if matches!(reply, AuthReply::Ok(_)) {
                info.registered = Some((start, Instant::now()));
            }
            reply
        };
        match reply {
            AuthReply::Ok(token) => {
                memory.token = Some(token);
                Ok(())
            }
            AuthReply::Failed(AuthFailure::NameTaken) if register_first => {
                match self.password(session, account, false).await? {
                    AuthReply::Ok(token) => {
                        memory.token = Some(token);
                        Ok(())
                    }
                    AuthReply::Failed(_) => Err(wrong_password(account)),
                }
            }
            AuthReply::Failed(AuthFailure::NameTaken) => Err(wrong_password(account)),
            AuthReply::Failed(other) => Err(TransportError::Auth(format!(
                "registration refused: {other:?}"
            ))),
        }
    }

    /// Handshake, password login (OPAQUE), the login burst, Goodbye: the
    /// `logins` workload. Returns (handshake time, LoginStart → AuthOk time).
    pub async fn login_cycle(&self, index: usize) -> Result<(Duration, Duration), TransportError> {
        let start = Instant::now();
        let mut session = self.target.handshake(index).await?;
        let handshake = start.elapsed();
        let account = Account::new(&self.seed, index);
        let login = tokio::time::timeout(self.login_timeout, async {
            let sent = Instant::now();
            let reply = self.password(&mut session, &account, false).await?;
            let took = sent.elapsed();
            match reply {
                AuthReply::Ok(_) => {}
                AuthReply::Failed(reason) => {
                    return Err(TransportError::Auth(format!("login refused: {reason:?}")))
                }
            }
            read_login_burst(&mut session).await?;
            Ok(took)
        })
        .await
        .map_err(|_| TransportError::Timeout("login"))??;
        let _ = session.close(Some(&ClientMessage::Goodbye)).await;
        Ok((handshake, login))
    }
}

fn wrong_password(account: &Account) -> TransportError {
    TransportError::Auth(format!(
        "{} exists with another password (registered under a different --seed?)",
        account.username
    ))
}

impl Transport for SecureChat {
    type Conn = Conn;
    type Memory = Memory;

    async fn join(
        &self,
        index: usize,
        memory: &mut Memory,
    ) -> Result<(Conn, JoinInfo), TransportError> {
        let start = Instant::now();
        let resumed = match &memory.token {
            Some(token) => match self.target.handshake_with(index, Some(token)).await {
                Ok(session) => Some(session),
                // The server no longer holds the token: a full handshake,
                // then the password.
                Err(e) if e.is_unknown_psk() => {
                    memory.token = None;
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let resumed_handshake = resumed.is_some();
        let mut session = match resumed {
            Some(session) => session,
            None => self.target.handshake(index).await?,
        };
        let logged_in_from = Instant::now();
        let mut info = JoinInfo {
            handshake: logged_in_from - start,
            login: Duration::ZERO,
            registered: None,
            resumed: false,
            resumed_handshake,
        };
        let account = Account::new(&self.seed, index);
        let room = self.room_for(index);
        tokio::time::timeout(self.login_timeout, async {
            self.authenticate(&mut session, &account, memory, &mut info)
                .await?;
            let rooms = read_login_burst(&mut session).await?;
            let general = room.canonical() == RoomName::general().canonical();
            if !general && !rooms.iter().any(|r| r.canonical() == room.canonical()) {
                join_room(&mut session, &room).await?;
            }
            Ok::<(), TransportError>(())
        })
        .await
        .map_err(|_| TransportError::Timeout("login"))??;
        info.login = logged_in_from.elapsed();
        Ok((
            Conn {
                link: session,
                room,
            },
            info,
        ))
    }
}

enum AuthReply {
    Ok(ResumeToken),
    Failed(AuthFailure),
}

/// Sends an authentication request and waits for its answer (read with
/// proto-core's [`login_step`], as every client does).
async fn request(session: &mut Link, msg: &ClientMessage) -> Result<AuthReply, TransportError> {
    session.send(msg).await.map_err(TransportError::Link)?;
    loop {
        let event = session.next_event().await.map_err(TransportError::Link)?;
        let msg = match event {
            LinkEvent::Message(msg) => msg,
            LinkEvent::Closed { clean } => {
                return Err(TransportError::Closed(closed_reason(clean)))
            }
        };
        match login_step(msg) {
            LoginStep::Reply(reply) => return auth_reply(reply),
            LoginStep::Respond(pong) => session.send(&pong).await.map_err(TransportError::Link)?,
            // Nothing else may come first; a stray message is not the answer.
            LoginStep::Unexpected(_) => {}
        }
    }
}

fn auth_reply(reply: LoginReply) -> Result<AuthReply, TransportError> {
    match reply {
        LoginReply::Accepted { resume_token, .. } => Ok(AuthReply::Ok(resume_token)),
        LoginReply::Refused(reason) => Ok(AuthReply::Failed(reason)),
        LoginReply::Error { code, detail } => Err(TransportError::Auth(format!(
            "server error {code:?}: {}",
            detail.as_str()
        ))),
        LoginReply::Goodbye(reason) => Err(TransportError::Closed(format!("goodbye {reason:?}"))),
    }
}

/// Reads the user list and history pages that follow a login, up to the
/// last history batch.
/// Reads the greeting to its end; returns the rooms the account is in.
async fn read_login_burst(session: &mut Link) -> Result<Vec<RoomName>, TransportError> {
    let mut rooms = Vec::new();
    loop {
        match next_message(session).await? {
            ServerMessage::RoomJoined { info } => rooms.push(info.room),
            ServerMessage::HistoryBatch { more: false, .. } => return Ok(rooms),
            _ => {}
        }
    }
}

/// Joins `room`, creating it (public) if it does not exist yet.
async fn join_room(session: &mut Link, room: &RoomName) -> Result<(), TransportError> {
    let join = ClientMessage::JoinRoom { room: room.clone() };
    session.send(&join).await.map_err(TransportError::Link)?;
    let mut created = false;
    loop {
        match next_message(session).await? {
            ServerMessage::RoomJoined { info } if info.room.canonical() == room.canonical() => {
                return Ok(())
            }
            ServerMessage::Error {
                code: ErrorCode::NoSuchRoom,
                ..
            } if !created => {
                created = true;
                let create = ClientMessage::CreateRoom {
                    room: room.clone(),
                    invite_only: false,
                    topic: proto_core::message::Topic::empty(),
                };
                session.send(&create).await.map_err(TransportError::Link)?;
            }
            // Someone else created it first: join it.
            ServerMessage::Error {
                code: ErrorCode::RoomExists,
                ..
            } => session.send(&join).await.map_err(TransportError::Link)?,
            ServerMessage::Error { code, detail } => {
                return Err(TransportError::Protocol(format!(
                    "joining {}: {code:?} {}",
                    room.as_str(),
                    detail.as_str()
                )))
            }
            _ => {}
        }
    }
}

/// The next server message during login, answering pings and turning
/// Goodbye / end of stream into errors.
async fn next_message(session: &mut Link) -> Result<ServerMessage, TransportError> {
    loop {
        match session.next_event().await.map_err(TransportError::Link)? {
            LinkEvent::Message(ServerMessage::Ping { nonce }) => session
                .send(&ClientMessage::Pong { nonce })
                .await
                .map_err(TransportError::Link)?,
            LinkEvent::Message(ServerMessage::Goodbye { reason }) => {
                return Err(TransportError::Closed(format!("goodbye {reason:?}")))
            }
            LinkEvent::Message(msg) => return Ok(msg),
            LinkEvent::Closed { clean } => {
                return Err(TransportError::Closed(closed_reason(clean)))
            }
        }
    }
}

fn closed_reason(clean: bool) -> String {
    if clean {
        "closed by the server".to_owned()
    } else {
        "connection dropped (no close_notify)".to_owned()
    }
}

/// A logged-in SecureChat session in a room.
pub struct Conn {
    link: Link,
    /// Where `send_room` writes (every account is in `#general`).
    room: RoomName,
}

impl ChatConnection for Conn {
    async fn send_room(&mut self, text: &str) -> Result<(), TransportError> {
        let text = MessageText::new(text).map_err(|e| TransportError::Auth(e.to_string()))?;
        self.link
            .send(&ClientMessage::RoomMessage {
                room: self.room.clone(),
                text,
            })
            .await
            .map_err(TransportError::Link)
    }

    async fn next_event(&mut self) -> Result<ChatEvent, TransportError> {
        // A pong whose flush lost a select! race is still queued: send it.
        if self.link.pending_bytes() > 0 {
            self.link.flush().await.map_err(TransportError::Link)?;
        }
        loop {
            let event = self.link.next_event().await.map_err(TransportError::Link)?;
            let msg = match event {
                LinkEvent::Message(msg) => msg,
                LinkEvent::Closed { clean } => return Ok(ChatEvent::Closed(closed_reason(clean))),
            };
            match msg {
                ServerMessage::RoomMessage { text, .. } => {
                    return Ok(ChatEvent::Room(Stamp::parse(text.as_str())))
                }
                ServerMessage::Ping { nonce } => {
                    // Queue first, so a cancelled flush loses nothing.
                    self.link
                        .queue(&ClientMessage::Pong { nonce })
                        .map_err(TransportError::Link)?;
                    self.link.flush().await.map_err(TransportError::Link)?;
                }
                ServerMessage::Error {
                    code: ErrorCode::RateLimited,
                    ..
                } => return Ok(ChatEvent::RateLimited),
                ServerMessage::Error { code, detail } => {
                    return Ok(ChatEvent::Error(format!("{code:?}: {}", detail.as_str())))
                }
                ServerMessage::Goodbye { reason } => {
                    return Ok(ChatEvent::Closed(format!("goodbye {reason:?}")))
                }
                _ => {}
            }
        }
    }

    async fn close(self) {
        let _ = self.link.close(Some(&ClientMessage::Goodbye)).await;
    }
}
