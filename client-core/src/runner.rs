//! The client task: connect, log in, relay chat both ways, reconnect with
//! backoff after a drop, and end on quit or on anything fatal.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto_core::liveness::{Liveness, LivenessAction, SilenceLimits};
use proto_core::message::{
    ClientMessage, Conversation, GoodbyeReason, MessageText, ResumeToken, ServerMessage, Username,
};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::backoff::Backoff;
use crate::cause::{CloseCause, RetryCause, ServerRefusal};
use crate::connect::{establish, AttemptError, Established, Session};
use crate::events::{ChatLine, ClientEvent, ConnectionState, Delivery, NoticeKind};
use crate::input::{parse_input, Input, HELP_TEXT};
use crate::options::{AuthRequest, ClientOptions};
use crate::outbox::Outbox;
use net::SessionEvent;

/// How long leaving waits for the acknowledgement of messages in flight.
const QUIT_GRACE: Duration = Duration::from_secs(5);
/// Silence from the server before we ping it ...
const PING_AFTER: Duration = Duration::from_secs(45);
/// ... and before we call the connection dead.
const DEAD_AFTER: Duration = Duration::from_secs(90);
/// Message ids remembered to drop duplicates (history/live overlap at login).
const SEEN_IDS: usize = 2048;

/// What the UI asks of the client task.
#[derive(Debug)]
enum Command {
    Input(Input),
    Quit,
}

/// The UI's side of a running client. Cheap to clone; every call returns
/// at once and results arrive as [`ClientEvent`]s.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    tx: mpsc::UnboundedSender<Command>,
    cause: Arc<OnceLock<CloseCause>>,
}

impl ClientHandle {
    /// Why the client ended, as a type (`Closed` carries the text). Set
    /// before [`ClientEvent::Closed`] is sent, so `Some` once it arrived.
    pub fn close_cause(&self) -> Option<CloseCause> {
        self.cause.get().cloned()
    }

    /// What the user typed: a command or a room message.
    pub fn submit(&self, line: &str) {
        match parse_input(line) {
            Input::Quit => self.quit(),
            input => {
                let _ = self.tx.send(Command::Input(input));
            }
        }
    }

    pub fn send_room(&self, text: &str) {
        let _ = self.tx.send(Command::Input(Input::Room(text.to_owned())));
    }

    pub fn send_direct(&self, to: &str, text: &str) {
        let _ = self.tx.send(Command::Input(Input::Direct {
            to: to.to_owned(),
            text: text.to_owned(),
        }));
    }

    pub fn who(&self) {
        let _ = self.tx.send(Command::Input(Input::Who));
    }

    /// Leaves cleanly (goodbye to the server), then `Closed`.
    pub fn quit(&self) {
        let _ = self.tx.send(Command::Quit);
    }
}

/// Starts a client on `runtime`; returns the handle and the event stream.
pub fn spawn(
    options: ClientOptions,
    runtime: &tokio::runtime::Handle,
) -> (ClientHandle, mpsc::UnboundedReceiver<ClientEvent>) {
    spawn_with(options, runtime, SILENCE_LIMITS)
}

/// [`spawn`] with other silence limits (tests).
fn spawn_with(
    options: ClientOptions,
    runtime: &tokio::runtime::Handle,
    limits: SilenceLimits,
) -> (ClientHandle, mpsc::UnboundedReceiver<ClientEvent>) {
    let (tx, commands) = mpsc::unbounded_channel();
    let (events, rx) = mpsc::unbounded_channel();
    let cause = Arc::new(OnceLock::new());
    let handle = ClientHandle {
        tx,
        cause: cause.clone(),
    };
    runtime.spawn(async move {
        let end = Client::new(options, limits, commands, events.clone())
            .run()
            .await;
        let _ = cause.set(end.clone());
        let _ = events.send(ClientEvent::State(ConnectionState::Offline));
        let _ = events.send(ClientEvent::Closed { cause: end });
    });
    (handle, rx)
}

/// The client's silence limits: ping a quiet server after 45 s, give it
/// up after 90 s.
const SILENCE_LIMITS: SilenceLimits = SilenceLimits {
    ping_after: PING_AFTER,
    dead_after: DEAD_AFTER,
};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn lost_with(error: net::NetError) -> CloseCause {
    RetryCause::Lost(Arc::new(error)).into()
}

/// How a logged-in session ended.
enum SessionEnd {
    Quit,
    /// Worth reconnecting.
    Lost(CloseCause),
    Fatal(CloseCause),
}

struct Client {
    options: ClientOptions,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<ClientEvent>,
    token: Option<ResumeToken>,
    /// Messages typed here that the server has not acknowledged.
    outbox: Outbox,
    me: String,
    online_pages: Vec<String>,
    seen: VecDeque<u64>,
    seen_set: HashSet<u64>,
    limits: SilenceLimits,
}

impl Client {
    fn new(
        options: ClientOptions,
        limits: SilenceLimits,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<ClientEvent>,
    ) -> Self {
        Self {
            options,
            commands,
            events,
            token: None,
            outbox: Outbox::new(rand_core::RngCore::next_u64(&mut rand_core::OsRng)),
            me: String::new(),
            online_pages: Vec::new(),
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
            limits,
        }
    }

    fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event);
    }

    fn notice(&self, kind: NoticeKind, text: impl Into<String>) {
        self.emit(ClientEvent::Notice {
            text: text.into(),
            kind,
        });
    }

    /// Returns why the client ended, for the final `Closed` event.
    async fn run(mut self) -> CloseCause {
        let mut backoff = Backoff::default();
        let mut logged_in_once = false;
        loop {
            self.emit(ClientEvent::State(ConnectionState::Connecting));
            match self.attempt().await {
                Ok(est) => {
                    backoff.reset();
                    logged_in_once = true;
                    // Later logins use the password, never register again.
                    if let AuthRequest::Register { username, password } = &self.options.auth {
                        self.options.auth = AuthRequest::Login {
                            username: username.clone(),
                            password: password.clone(),
                        };
                    }
                    self.token = Some(est.token);
                    self.me = est.username.clone();
                    self.emit(ClientEvent::State(ConnectionState::Connected));
                    self.emit(ClientEvent::LoggedIn {
                        username: est.username,
                    });
                    match self.chat(est.session).await {
                        SessionEnd::Quit => return CloseCause::Left,
                        SessionEnd::Fatal(end) => return end,
                        SessionEnd::Lost(end) => {
                            if !self.options.reconnect {
                                return end;
                            }
                            self.notice(NoticeKind::Error, end.to_string());
                            self.note_unacknowledged();
                        }
                    }
                }
                Err(AttemptError::Fatal(cause)) => return cause.into(),
                Err(AttemptError::Retry(reason)) => {
                    // Before the first login the user is at the login form:
                    // tell them now instead of retrying forever.
                    if !logged_in_once || !self.options.reconnect {
                        return reason.into();
                    }
                    self.notice(NoticeKind::Error, reason.to_string());
                }
            }
            let delay = backoff.next_delay();
            self.emit(ClientEvent::State(ConnectionState::Reconnecting {
                in_secs: delay.as_secs().max(1),
                attempt: backoff.attempt(),
            }));
            let until = Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    cmd = self.commands.recv() => match cmd {
                        None | Some(Command::Quit) => return CloseCause::Left,
                        Some(Command::Input(input)) => self.offline_input(input),
                    },
                }
            }
        }
    }

    /// One [`establish`], its events passed on to the UI as they come.
    async fn attempt(&mut self) -> Result<Established, AttemptError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let result = {
            let attempt = establish(&self.options, &tx, self.token.take());
            tokio::pin!(attempt);
            loop {
                tokio::select! {
                    result = &mut attempt => break result,
                    Some(event) = rx.recv() => self.emit(event),
                }
            }
        };
        while let Ok(event) = rx.try_recv() {
            self.emit(event);
        }
        result
    }

    /// Input while offline: local commands answer, messages wait in the
    /// outbox (shown as pending) for the reconnect.
    fn offline_input(&mut self, input: Input) {
        match input {
            Input::Room(_) | Input::Direct { .. } => {
                if self.take_message(input).is_some() {
                    self.notice(
                        NoticeKind::Info,
                        "not connected: message queued, it will be sent after reconnecting",
                    );
                }
            }
            Input::Who => self.notice(NoticeKind::Error, "not connected"),
            other => self.local_input(other),
        }
    }

    /// Validates a typed message, puts it in the outbox and shows it as
    /// pending; returns what to send, or `None` (and says why) if refused.
    fn take_message(&mut self, input: Input) -> Option<ClientMessage> {
        let (to, text) = match input {
            Input::Room(text) => (None, text),
            Input::Direct { to, text } => (Some(to), text),
            _ => return None,
        };
        let to = match to.map(|t| Username::parse_normalizing(&t)).transpose() {
            Ok(to) => to,
            Err(e) => {
                self.notice(NoticeKind::Error, format!("not sent: invalid name: {e}"));
                return None;
            }
        };
        let wire_text = match MessageText::new(&text) {
            Ok(t) => t,
            Err(e) => {
                self.notice(NoticeKind::Error, format!("not sent: {e}"));
                return None;
            }
        };
        let pending = match self.outbox.push(to, wire_text) {
            Ok(p) => p,
            Err(full) => {
                self.notice(NoticeKind::Error, format!("not sent: {full}"));
                return None;
            }
        };
        let (client_id, to, wire) = (
            pending.client_id,
            pending.to.as_ref().map(|t| t.as_str().to_owned()),
            pending.wire(),
        );
        let line = ChatLine {
            id: 0,
            timestamp_ms: now_ms(),
            from: self.me.clone(),
            text,
            history: false,
            own: true,
            client_id: Some(client_id),
            to: to.clone(),
        };
        self.emit(match to {
            None => ClientEvent::Room(line),
            Some(_) => ClientEvent::Direct(line),
        });
        Some(wire)
    }

    /// Tells the user about messages still waiting for the server.
    fn note_unacknowledged(&self) {
        let n = self.outbox.len();
        if n > 0 {
            self.notice(
                NoticeKind::Info,
                format!(
                    "{n} message(s) not yet confirmed by the server;                      they will be sent again after reconnecting (never twice)"
                ),
            );
        }
    }

    /// Inputs answered without the server.
    fn local_input(&self, input: Input) {
        match input {
            Input::Help => self.notice(NoticeKind::Info, HELP_TEXT),
            Input::Unknown(cmd) => self.notice(
                NoticeKind::Error,
                format!("unknown command {cmd}; /help lists the commands (nothing was sent)"),
            ),
            Input::Usage(text) => self.notice(NoticeKind::Error, text),
            _ => {}
        }
    }

    fn first_time(&mut self, id: u64) -> bool {
        if !self.seen_set.insert(id) {
            return false;
        }
        self.seen.push_back(id);
        if self.seen.len() > SEEN_IDS {
            if let Some(old) = self.seen.pop_front() {
                self.seen_set.remove(&old);
            }
        }
        true
    }

    async fn chat(&mut self, mut session: Session) -> SessionEnd {
        // Whatever the server has not acknowledged, oldest first, with the
        // same client ids: it stores and delivers each only once.
        let resend: Vec<ClientMessage> = self.outbox.unacknowledged().map(|p| p.wire()).collect();
        for msg in resend {
            if let Err(e) = session.send(&msg).await {
                return SessionEnd::Lost(lost_with(e));
            }
        }
        let mut liveness = Liveness::new(self.limits, Instant::now().into_std());
        // Set when the user left while messages were in flight: leave once
        // they are acknowledged, or at this instant.
        let mut leaving: Option<Instant> = None;
        loop {
            if leaving.is_some() && self.outbox.is_empty() {
                let _ = session.close(Some(&ClientMessage::Goodbye)).await;
                return SessionEnd::Quit;
            }
            // Only hearing from the server moves this deadline; input
            // passing through the loop does not.
            let deadline = match leaving {
                Some(at) => at.min(Instant::from_std(liveness.poll_timeout())),
                None => Instant::from_std(liveness.poll_timeout()),
            };
            tokio::select! {
                cmd = self.commands.recv(), if leaving.is_none() => match cmd {
                    None | Some(Command::Quit) => {
                        leaving = Some(Instant::now() + QUIT_GRACE);
                    }
                    Some(Command::Input(input)) => {
                        if let Err(end) = self.send_input(&mut session, input).await {
                            return end;
                        }
                    }
                },
                event = session.next_event() => {
                    liveness.handle_heard(Instant::now().into_std());
                    match event {
                        Ok(SessionEvent::Message(msg)) => {
                            if let Some(end) = self.on_message(&mut session, msg).await {
                                return end;
                            }
                        }
                        Ok(SessionEvent::Closed { .. }) => {
                            return SessionEnd::Lost(RetryCause::Closed.into())
                        }
                        Err(e) => return SessionEnd::Lost(lost_with(e)),
                    }
                }
                _ = sleep_until(deadline), if leaving.is_some_and(|at| Instant::now() >= at) => {
                    self.note_unacknowledged();
                    let _ = session.close(Some(&ClientMessage::Goodbye)).await;
                    return SessionEnd::Quit;
                }
                _ = sleep_until(deadline) => match liveness.handle_timeout(Instant::now().into_std()) {
                    LivenessAction::Wait => {}
                    LivenessAction::Ping => {
                        let ping = ClientMessage::Ping { nonce: now_ms() };
                        if session.send(&ping).await.is_err() {
                            return SessionEnd::Lost(RetryCause::Closed.into());
                        }
                    }
                    LivenessAction::Dead => {
                        return SessionEnd::Lost(RetryCause::ServerSilent.into())
                    }
                },
            }
        }
    }

    async fn send_input(&mut self, session: &mut Session, input: Input) -> Result<(), SessionEnd> {
        let msg = match input {
            input @ (Input::Room(_) | Input::Direct { .. }) => match self.take_message(input) {
                Some(msg) => msg,
                None => return Ok(()),
            },
            Input::Who => ClientMessage::WhoIsOnline,
            Input::Quit => return Err(SessionEnd::Quit),
            other => {
                self.local_input(other);
                return Ok(());
            }
        };
        session
            .send(&msg)
            .await
            .map_err(|e| SessionEnd::Lost(lost_with(e)))
    }

    async fn on_message(
        &mut self,
        session: &mut Session,
        msg: ServerMessage,
    ) -> Option<SessionEnd> {
        match msg {
            ServerMessage::RoomMessage {
                id,
                timestamp_ms,
                from,
                text,
            } => {
                if self.first_time(id) {
                    let own = from.as_str() == self.me;
                    self.emit(ClientEvent::Room(ChatLine {
                        id,
                        timestamp_ms,
                        from: from.as_str().to_owned(),
                        to: None,
                        text: text.as_str().to_owned(),
                        history: false,
                        own,
                        client_id: None,
                    }));
                }
            }
            ServerMessage::DirectMessage {
                id,
                timestamp_ms,
                from,
                to,
                text,
            } => {
                if self.first_time(id) {
                    self.emit(ClientEvent::Direct(ChatLine {
                        id,
                        timestamp_ms,
                        own: from.as_str() == self.me,
                        from: from.as_str().to_owned(),
                        to: Some(to.as_str().to_owned()),
                        text: text.as_str().to_owned(),
                        history: false,
                        client_id: None,
                    }));
                }
            }
            ServerMessage::UserJoined { username } => self.emit(ClientEvent::Joined {
                username: username.as_str().to_owned(),
            }),
            ServerMessage::UserLeft { username, reason } => self.emit(ClientEvent::Left {
                username: username.as_str().to_owned(),
                reason,
            }),
            ServerMessage::OnlineUsers { more, users } => {
                self.online_pages
                    .extend(users.into_vec().into_iter().map(|u| u.as_str().to_owned()));
                if !more {
                    let users = std::mem::take(&mut self.online_pages);
                    self.emit(ClientEvent::Online { users });
                }
            }
            ServerMessage::HistoryBatch { more, entries } => {
                for e in entries.into_vec() {
                    if !self.first_time(e.id) {
                        continue;
                    }
                    let from = e.from.as_str().to_owned();
                    let own = from == self.me;
                    let line = |to| ChatLine {
                        id: e.id,
                        timestamp_ms: e.timestamp_ms,
                        from: from.clone(),
                        to,
                        text: e.text.as_str().to_owned(),
                        history: true,
                        own,
                        client_id: None,
                    };
                    match &e.conversation {
                        Conversation::Room => self.emit(ClientEvent::Room(line(None))),
                        Conversation::Direct { peer } => {
                            let to = if own {
                                peer.as_str().to_owned()
                            } else {
                                self.me.clone()
                            };
                            self.emit(ClientEvent::Direct(line(Some(to))));
                        }
                    }
                }
                if !more {
                    self.emit(ClientEvent::HistoryDone);
                }
            }
            ServerMessage::Ping { nonce } => {
                if session.send(&ClientMessage::Pong { nonce }).await.is_err() {
                    return Some(SessionEnd::Lost(RetryCause::Closed.into()));
                }
            }
            ServerMessage::Pong { .. } => {}
            ServerMessage::Stored {
                client_id,
                id,
                timestamp_ms,
            } => {
                if self.outbox.settle(client_id).is_some() {
                    let already_shown = !self.first_time(id);
                    self.emit(ClientEvent::Delivery {
                        client_id,
                        delivery: Delivery::Stored {
                            id,
                            timestamp_ms,
                            already_shown,
                        },
                    });
                }
            }
            ServerMessage::SendFailed {
                client_id,
                code,
                detail,
            } => {
                if let Some(pending) = self.outbox.settle(client_id) {
                    let refusal = ServerRefusal {
                        code,
                        detail: detail.as_str().to_owned(),
                    };
                    self.notice(
                        NoticeKind::Error,
                        format!("not delivered ({refusal}): {}", pending.text.as_str()),
                    );
                    self.emit(ClientEvent::Delivery {
                        client_id,
                        delivery: Delivery::Failed(refusal),
                    });
                }
            }
            ServerMessage::Goodbye { reason } => {
                let by_server = CloseCause::ClosedByServer(reason);
                return Some(match reason {
                    GoodbyeReason::ClientRequest => SessionEnd::Quit,
                    GoodbyeReason::Replaced => SessionEnd::Fatal(by_server),
                    GoodbyeReason::ServerShutdown
                    | GoodbyeReason::IdleTimeout
                    | GoodbyeReason::SlowConsumer
                    | GoodbyeReason::ProtocolViolation => SessionEnd::Lost(by_server),
                });
            }
            ServerMessage::Error { code, detail } => {
                let refusal = ServerRefusal {
                    code,
                    detail: detail.as_str().to_owned(),
                };
                self.notice(NoticeKind::Error, refusal.to_string());
            }
            // Only answers to a login, which happened before the chat.
            ServerMessage::AuthOk { .. } | ServerMessage::AuthFailed { .. } => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use net::HandshakeOptions;
    use proto_core::message::HistoryEntries;
    use proto_core::{Fingerprint, ServerConfig, ServerIdentity};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;
    use zeroize::Zeroizing;

    use super::*;

    use crate::address::ServerAddress;
    use crate::known_servers::KnownServers;

    /// A server that completes the handshake and the login, then never
    /// sends another byte while still reading whatever the client sends:
    /// a dead server-to-client path.
    struct SilentServer {
        addr: SocketAddr,
        fingerprint: Fingerprint,
        /// When it sent its last message.
        silent_since: oneshot::Receiver<Instant>,
        /// One `()` per Ping received.
        pings: mpsc::UnboundedReceiver<()>,
    }

    async fn server_silent_after_login() -> SilentServer {
        let identity = Arc::new(ServerIdentity::from_seed(&[9u8; 32]));
        let fingerprint = identity.public_key().fingerprint();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (went_silent, silent_since) = oneshot::channel();
        let (pinged, pings) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let opts = HandshakeOptions::new(Duration::from_secs(10), 1);
            let mut session = net::accept(tcp, ServerConfig::new(identity), &opts)
                .await
                .unwrap();
            let mut went_silent = Some(went_silent);
            while let Ok(SessionEvent::Message(msg)) = session.next_event().await {
                match msg {
                    ClientMessage::Login { username, .. } => {
                        let welcome = [
                            ServerMessage::AuthOk {
                                username,
                                resume_token: ResumeToken::from_bytes([1; 32]),
                                token_lifetime_secs: 3600,
                            },
                            ServerMessage::HistoryBatch {
                                more: false,
                                entries: HistoryEntries::empty(),
                            },
                        ];
                        for m in &welcome {
                            session.send(m).await.unwrap();
                        }
                        if let Some(tx) = went_silent.take() {
                            let _ = tx.send(Instant::now());
                        }
                    }
                    ClientMessage::Ping { .. } => {
                        let _ = pinged.send(());
                    }
                    _ => {}
                }
            }
        });
        SilentServer {
            addr,
            fingerprint,
            silent_since,
            pings,
        }
    }

    /// The run loop, not only [`Liveness`]: input must not postpone the
    /// verdict. Real time with short limits (tokio's paused clock needs
    /// the `test-util` feature, which this crate's tests do not have).
    #[tokio::test]
    async fn a_silent_server_is_declared_dead_while_the_user_keeps_typing() {
        let limits = SilenceLimits {
            ping_after: Duration::from_millis(100),
            dead_after: Duration::from_secs(1),
        };
        // A failure bound only; the verdict is due after `dead_after`.
        const BOUND: Duration = Duration::from_secs(10);
        let mut server = server_silent_after_login().await;
        let dir = tempfile::tempdir().unwrap();
        let address = ServerAddress {
            host: server.addr.ip().to_string(),
            port: server.addr.port(),
        };
        let auth = AuthRequest::Login {
            username: "Ann".into(),
            password: Zeroizing::new("a long enough password".into()),
        };
        let mut options = ClientOptions::new(address, auth);
        options.known_servers = KnownServers::at(dir.path().join("known_servers"));
        options.fingerprint = Some(server.fingerprint);
        options.reconnect = false;
        let (handle, mut events) = spawn_with(options, &tokio::runtime::Handle::current(), limits);
        let logged_in = async {
            loop {
                match events.recv().await.expect("the client ended early") {
                    ClientEvent::HistoryDone => break,
                    ClientEvent::Closed { cause } => panic!("closed before logging in: {cause}"),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(BOUND, logged_in)
            .await
            .expect("no login");
        let silent_since = server.silent_since.await.unwrap();

        // Far more often than any limit, as a user typing away would.
        let mut typing = tokio::time::interval(limits.ping_after / 4);
        let reason = loop {
            tokio::select! {
                _ = typing.tick() => handle.submit("anyone there?"),
                event = events.recv() => match event {
                    Some(ClientEvent::Closed { cause }) => break cause,
                    Some(_) => {}
                    None => panic!("the client ended without Closed"),
                },
            }
            assert!(
                silent_since.elapsed() < BOUND,
                "the client still trusted a server silent for {:?}",
                silent_since.elapsed()
            );
        };
        assert!(
            matches!(
                reason,
                CloseCause::ConnectionFailed(RetryCause::ServerSilent)
            ),
            "{reason:?}"
        );
        assert!(silent_since.elapsed() >= limits.dead_after);
        tokio::time::timeout(BOUND, server.pings.recv())
            .await
            .expect("the client gave up without pinging")
            .unwrap();
    }
}
