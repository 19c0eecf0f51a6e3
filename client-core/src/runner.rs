//! The client task: connect, log in, relay chat both ways, reconnect with
//! backoff after a drop, and end on quit or on anything fatal.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto_core::message::{
    ClientMessage, Conversation, ErrorCode, GoodbyeReason, MessageText, ResumeToken, ServerMessage,
    Username,
};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

use crate::backoff::Backoff;
use crate::connect::{establish, AttemptError, Session};
use crate::events::{ChatLine, ClientEvent, ConnectionState, NoticeKind};
use crate::input::{parse_input, Input, HELP_TEXT};
use crate::options::{AuthRequest, ClientOptions};
use net::SessionEvent;

/// Messages typed while offline, kept for the reconnect.
pub const MAX_QUEUED: usize = 100;
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
}

impl ClientHandle {
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
    let (tx, commands) = mpsc::unbounded_channel();
    let (events, rx) = mpsc::unbounded_channel();
    runtime.spawn(async move {
        let reason = Client::new(options, commands, events.clone()).run().await;
        let _ = events.send(ClientEvent::State(ConnectionState::Offline));
        let _ = events.send(ClientEvent::Closed { reason });
    });
    (ClientHandle { tx }, rx)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How a logged-in session ended.
enum SessionEnd {
    Quit,
    Lost(String),
    Fatal(String),
}

struct Client {
    options: ClientOptions,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<ClientEvent>,
    token: Option<ResumeToken>,
    queued: VecDeque<Input>,
    me: String,
    online_pages: Vec<String>,
    seen: VecDeque<u64>,
    seen_set: HashSet<u64>,
}

impl Client {
    fn new(
        options: ClientOptions,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<ClientEvent>,
    ) -> Self {
        Self {
            options,
            commands,
            events,
            token: None,
            queued: VecDeque::new(),
            me: String::new(),
            online_pages: Vec::new(),
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
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

    /// Returns the reason for the final `Closed` event.
    async fn run(mut self) -> String {
        let mut backoff = Backoff::default();
        let mut logged_in_once = false;
        loop {
            self.emit(ClientEvent::State(ConnectionState::Connecting));
            let attempt = establish(&self.options, &self.events, self.token.take()).await;
            match attempt {
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
                        SessionEnd::Quit => return "you left".into(),
                        SessionEnd::Fatal(reason) => return reason,
                        SessionEnd::Lost(reason) => {
                            if !self.options.reconnect {
                                return reason;
                            }
                            self.notice(NoticeKind::Error, reason);
                        }
                    }
                }
                Err(AttemptError::Fatal(reason)) => return reason,
                Err(AttemptError::Retry(reason)) => {
                    // Before the first login the user is at the login form:
                    // tell them now instead of retrying forever.
                    if !logged_in_once || !self.options.reconnect {
                        return reason;
                    }
                    self.notice(NoticeKind::Error, reason);
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
                        None | Some(Command::Quit) => return "you left".into(),
                        Some(Command::Input(input)) => self.offline_input(input),
                    },
                }
            }
        }
    }

    /// Input while offline: local commands answer, messages queue.
    fn offline_input(&mut self, input: Input) {
        match input {
            Input::Room(_) | Input::Direct { .. } => {
                if self.queued.len() >= MAX_QUEUED {
                    self.notice(NoticeKind::Error, "not sent: offline queue full");
                } else {
                    self.queued.push_back(input);
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
        while let Some(input) = self.queued.pop_front() {
            if let Err(end) = self.send_input(&mut session, input).await {
                return end;
            }
        }
        let mut last_heard = Instant::now();
        let mut pinged = false;
        loop {
            let check = sleep(Duration::from_secs(5));
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Quit) => {
                        let _ = session.close(Some(&ClientMessage::Goodbye)).await;
                        return SessionEnd::Quit;
                    }
                    Some(Command::Input(input)) => {
                        if let Err(end) = self.send_input(&mut session, input).await {
                            return end;
                        }
                    }
                },
                event = session.next_event() => {
                    last_heard = Instant::now();
                    pinged = false;
                    match event {
                        Ok(SessionEvent::Message(msg)) => {
                            if let Some(end) = self.on_message(&mut session, msg).await {
                                return end;
                            }
                        }
                        Ok(SessionEvent::Closed { .. }) => {
                            return SessionEnd::Lost("connection to the server lost".into())
                        }
                        Err(e) => return SessionEnd::Lost(format!("connection to the server lost: {e}")),
                    }
                }
                _ = check => {
                    let silent = last_heard.elapsed();
                    if silent >= DEAD_AFTER {
                        return SessionEnd::Lost("the server stopped answering".into());
                    }
                    if silent >= PING_AFTER && !pinged {
                        pinged = true;
                        if session.send(&ClientMessage::Ping { nonce: now_ms() }).await.is_err() {
                            return SessionEnd::Lost("connection to the server lost".into());
                        }
                    }
                }
            }
        }
    }

    async fn send_input(&mut self, session: &mut Session, input: Input) -> Result<(), SessionEnd> {
        let msg = match input {
            Input::Room(text) => match MessageText::new(&text) {
                Ok(t) => {
                    self.emit(ClientEvent::Room(ChatLine {
                        id: 0,
                        timestamp_ms: now_ms(),
                        from: self.me.clone(),
                        to: None,
                        text: text.clone(),
                        history: false,
                        own: true,
                    }));
                    ClientMessage::RoomMessage { text: t }
                }
                Err(e) => {
                    self.notice(NoticeKind::Error, format!("not sent: {e}"));
                    return Ok(());
                }
            },
            Input::Direct { to, text } => {
                let (to_name, t) = match (Username::parse_normalizing(&to), MessageText::new(&text))
                {
                    (Ok(n), Ok(t)) => (n, t),
                    (Err(e), _) => {
                        self.notice(NoticeKind::Error, format!("not sent: invalid name: {e}"));
                        return Ok(());
                    }
                    (_, Err(e)) => {
                        self.notice(NoticeKind::Error, format!("not sent: {e}"));
                        return Ok(());
                    }
                };
                self.emit(ClientEvent::Direct(ChatLine {
                    id: 0,
                    timestamp_ms: now_ms(),
                    from: self.me.clone(),
                    to: Some(to_name.as_str().to_owned()),
                    text,
                    history: false,
                    own: true,
                }));
                ClientMessage::DirectMessage {
                    to: to_name,
                    text: t,
                }
            }
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
            .map_err(|e| SessionEnd::Lost(format!("connection to the server lost: {e}")))
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
                    return Some(SessionEnd::Lost("connection to the server lost".into()));
                }
            }
            ServerMessage::Pong { .. } => {}
            ServerMessage::Goodbye { reason } => {
                return Some(match reason {
                    GoodbyeReason::ClientRequest => SessionEnd::Quit,
                    GoodbyeReason::Replaced => SessionEnd::Fatal(
                        "you logged in from somewhere else; this session was closed".into(),
                    ),
                    GoodbyeReason::ServerShutdown => {
                        SessionEnd::Lost("the server is shutting down".into())
                    }
                    GoodbyeReason::IdleTimeout => SessionEnd::Lost("disconnected: idle".into()),
                    GoodbyeReason::SlowConsumer => SessionEnd::Lost(
                        "disconnected: messages arrived faster than we read them".into(),
                    ),
                    GoodbyeReason::ProtocolViolation => {
                        SessionEnd::Lost("disconnected: protocol error".into())
                    }
                });
            }
            ServerMessage::Error { code, detail } => {
                let what = match code {
                    ErrorCode::UnknownRecipient => "no such user",
                    ErrorCode::RateLimited => "slow down: message not delivered",
                    ErrorCode::MessageTooLarge => "message too large",
                    _ => "server error",
                };
                let text = if detail.as_str().is_empty() {
                    what.to_owned()
                } else {
                    format!("{what}: {}", detail.as_str())
                };
                self.notice(NoticeKind::Error, text);
            }
            // Only answers to a login, which happened before the chat.
            ServerMessage::AuthOk { .. } | ServerMessage::AuthFailed { .. } => {}
        }
        None
    }
}
