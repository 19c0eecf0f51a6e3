//! The client task: a thin tokio driver around the sans-IO
//! [`SessionPolicy`]. It runs the connection attempts the policy asks
//! for, moves messages between the session, the UI and the policy, and
//! wakes the policy at its `poll_timeout`; it decides nothing itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use net::LinkEvent;
use tokio::sync::mpsc;
use tokio::time::Instant;

use proto_core::login::{ChangeStep, LoginReply, PasswordChange};
use proto_core::message::{Password, ServerMessage, Username};
use proto_core::opaque::{Argon2id, ExportKey};
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::cause::{auth_failure_text, CloseCause, PasswordChangeError, RetryCause, ServerRefusal};
use crate::connect::{establish, AttemptError, Established, Link};
use crate::events::{ClientEvent, ConnectionState};
use crate::input::{parse_input, Input};
use crate::options::{AuthRequest, ClientOptions};
use crate::session_policy::{Action, Event, PolicyConfig, SessionPolicy};

/// What the UI asks of the client task.
enum Command {
    Input(Input),
    ChangePassword {
        old: Zeroizing<String>,
        new: Zeroizing<String>,
    },
    Quit,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Input(input) => f.debug_tuple("Input").field(input).finish(),
            Command::ChangePassword { .. } => f.write_str("ChangePassword(<redacted>)"),
            Command::Quit => f.write_str("Quit"),
        }
    }
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

    /// What the user typed while `room` was shown: a command or a message
    /// for that room.
    pub fn submit(&self, line: &str, room: &str) {
        match parse_input(line, room) {
            Input::Quit => self.quit(),
            input => {
                let _ = self.tx.send(Command::Input(input));
            }
        }
    }

    pub fn send_room(&self, room: &str, text: &str) {
        let _ = self.tx.send(Command::Input(Input::Room {
            room: room.to_owned(),
            text: text.to_owned(),
        }));
    }

    /// The user has seen `room` up to its newest message: moves the read
    /// marker every device of the user shares.
    pub fn mark_read(&self, room: &str) {
        let _ = self.tx.send(Command::Input(Input::MarkRead {
            conversation: crate::ConversationRef::Room(room.to_owned()),
            up_to_id: None,
        }));
    }

    /// The user has seen `conversation` (a room or a direct one) up to the
    /// message `up_to_id`: moves the read marker every device of the user
    /// shares. The server keeps the furthest one; while offline it is
    /// dropped (the next one after reconnecting says it).
    pub fn mark_read_up_to(&self, conversation: crate::ConversationRef, up_to_id: u64) {
        let _ = self.tx.send(Command::Input(Input::MarkRead {
            conversation,
            up_to_id: Some(up_to_id),
        }));
    }

    /// Joins `room`, creating it if it does not exist.
    pub fn join(&self, room: &str) {
        let _ = self.tx.send(Command::Input(Input::Join(room.to_owned())));
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

    /// Changes the account's password (the current one is required);
    /// answered by `PasswordChanged` or `PasswordChangeFailed`. Other
    /// devices' sessions are not ended, but their resume tokens are
    /// revoked: they log in again with the new password.
    pub fn change_password(&self, old: Zeroizing<String>, new: Zeroizing<String>) {
        let _ = self.tx.send(Command::ChangePassword { old, new });
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
    let cause = Arc::new(OnceLock::new());
    let handle = ClientHandle {
        tx,
        cause: cause.clone(),
    };
    runtime.spawn(async move {
        let end = Driver::new(options, commands, events.clone()).run().await;
        let _ = cause.set(end.clone());
        let _ = events.send(ClientEvent::State(ConnectionState::Offline));
        let _ = events.send(ClientEvent::Closed { cause: end });
    });
    (handle, rx)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A connection attempt in flight.
type Attempt = Pin<Box<dyn Future<Output = Result<Box<Established>, AttemptError>> + Send>>;

/// What woke the driver.
enum Wake {
    Command(Option<Command>),
    Attempt(Result<Box<Established>, AttemptError>),
    AttemptEvent(ClientEvent),
    Link(Result<LinkEvent<proto_core::message::ServerMessage>, net::NetError>),
    Timeout,
}

struct Driver {
    options: ClientOptions,
    commands: mpsc::UnboundedReceiver<Command>,
    /// The UI dropped its handle: stop reading commands.
    commands_closed: bool,
    events: mpsc::UnboundedSender<ClientEvent>,
    policy: SessionPolicy,
    attempt: Option<Attempt>,
    /// Events of the attempt in flight (trust question, key changed...).
    attempt_events: Option<mpsc::UnboundedReceiver<ClientEvent>>,
    session: Option<Link>,
    /// Who is logged in on `session`.
    username: Option<String>,
    /// OPAQUE's export key, kept in memory for as long as the client runs
    /// (from the last password login or change; a resume keeps it). Later
    /// work derives a key-backup key from it; nothing stores it.
    export_key: Option<ExportKey>,
    /// A password change waiting for the server.
    change: Option<PasswordChange>,
}

impl Driver {
    fn new(
        options: ClientOptions,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<ClientEvent>,
    ) -> Self {
        let policy = SessionPolicy::new(
            PolicyConfig::new(options.reconnect),
            Instant::now().into_std(),
            now_ms(),
            Box::new(rand_core::OsRng),
        );
        Self {
            options,
            commands,
            commands_closed: false,
            events,
            policy,
            attempt: None,
            attempt_events: None,
            session: None,
            username: None,
            export_key: None,
            change: None,
        }
    }

    /// Returns why the client ended, for the final `Closed` event.
    async fn run(mut self) -> CloseCause {
        let mut actions = self.policy.start();
        loop {
            if let Some(end) = self.execute(actions).await {
                return end;
            }
            let now = || Instant::now().into_std();
            actions = match self.wake().await {
                Wake::Command(None) => {
                    self.commands_closed = true;
                    self.policy.handle(Event::Quit, now())
                }
                Wake::Command(Some(Command::Quit)) => self.policy.handle(Event::Quit, now()),
                Wake::Command(Some(Command::Input(input))) => {
                    self.policy.handle(Event::Input(input), now())
                }
                Wake::Command(Some(Command::ChangePassword { old, new })) => {
                    self.start_password_change(old, new).await
                }
                Wake::AttemptEvent(event) => {
                    let _ = self.events.send(event);
                    Vec::new()
                }
                Wake::Attempt(result) => {
                    self.attempt = None;
                    // Whatever the attempt said comes before its outcome.
                    if let Some(mut rx) = self.attempt_events.take() {
                        while let Ok(event) = rx.try_recv() {
                            let _ = self.events.send(event);
                        }
                    }
                    match result {
                        Ok(est) => {
                            let est = *est;
                            self.session = Some(est.link);
                            self.username = Some(est.username.clone());
                            if est.export_key.is_some() {
                                self.export_key = est.export_key;
                            }
                            let event = Event::LoggedIn {
                                username: est.username,
                                token: est.token,
                            };
                            self.policy.handle(event, now())
                        }
                        Err(e) => self.policy.handle(Event::AttemptFailed(e), now()),
                    }
                }
                Wake::Link(Ok(LinkEvent::Message(msg))) => match self.password_change(msg).await {
                    Some(msg) => self.policy.handle(Event::Received(msg), now()),
                    None => Vec::new(),
                },
                Wake::Link(Ok(LinkEvent::Closed { .. })) => {
                    self.interrupt_password_change();
                    self.session = None;
                    self.policy
                        .handle(Event::ConnectionLost(RetryCause::Closed), now())
                }
                Wake::Link(Err(e)) => {
                    self.interrupt_password_change();
                    self.session = None;
                    let cause = RetryCause::Lost(Arc::new(e));
                    self.policy.handle(Event::ConnectionLost(cause), now())
                }
                Wake::Timeout => self.policy.handle_timeout(now()),
            };
        }
    }

    /// Waits for the next input: a command, the attempt, the session or
    /// the policy's timer.
    async fn wake(&mut self) -> Wake {
        let deadline = self.policy.poll_timeout().map(Instant::from_std);
        let Self {
            commands,
            commands_closed,
            attempt,
            attempt_events,
            session,
            ..
        } = self;
        let attempt = async {
            match attempt {
                Some(attempt) => attempt.await,
                None => std::future::pending().await,
            }
        };
        let attempt_event = async {
            match attempt_events {
                Some(rx) => match rx.recv().await {
                    Some(event) => event,
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        let session = async {
            match session {
                Some(session) => session.next_event().await,
                None => std::future::pending().await,
            }
        };
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = commands.recv(), if !*commands_closed => Wake::Command(cmd),
            event = attempt_event => Wake::AttemptEvent(event),
            result = attempt => Wake::Attempt(result),
            event = session => Wake::Link(event),
            () = timer => Wake::Timeout,
        }
    }

    /// Carries out the policy's actions; `Some` when the client ended.
    async fn execute(&mut self, actions: Vec<Action>) -> Option<CloseCause> {
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Emit(event) => {
                    let _ = self.events.send(event);
                }
                Action::Connect { resume, register } => self.connect(resume, register),
                Action::Send(msg) => {
                    let Some(session) = &mut self.session else {
                        continue;
                    };
                    if let Err(e) = session.send(&msg).await {
                        self.session = None;
                        let cause = RetryCause::Lost(Arc::new(e));
                        let now = Instant::now().into_std();
                        // What the policy says now replaces the rest.
                        queue = self.policy.handle(Event::ConnectionLost(cause), now).into();
                    }
                }
                Action::CloseSession => {
                    if let Some(session) = self.session.take() {
                        let _ = session
                            .close(Some(&proto_core::message::ClientMessage::Goodbye))
                            .await;
                    }
                }
                Action::DropSession => self.session = None,
                Action::Finish(cause) => return Some(cause),
            }
        }
        None
    }

    fn connect(&mut self, resume: Option<proto_core::message::ResumeToken>, register: bool) {
        let mut options = self.options.clone();
        if !register {
            if let AuthRequest::Register { username, password } = &options.auth {
                options.auth = AuthRequest::Login {
                    username: username.clone(),
                    password: password.clone(),
                };
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.attempt_events = Some(rx);
        self.attempt = Some(Box::pin(async move {
            establish(&options, &tx, resume).await.map(Box::new)
        }));
    }

    fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event);
    }

    fn password_change_failed(&self, reason: PasswordChangeError) {
        self.emit(ClientEvent::PasswordChangeFailed { reason });
    }

    /// Starts a password change on the logged-in session.
    async fn start_password_change(
        &mut self,
        old: Zeroizing<String>,
        new: Zeroizing<String>,
    ) -> Vec<Action> {
        if self.change.is_some() {
            self.password_change_failed(PasswordChangeError::InProgress);
            return Vec::new();
        }
        let (Some(session), Some(username)) = (&mut self.session, &self.username) else {
            self.password_change_failed(PasswordChangeError::NotConnected);
            return Vec::new();
        };
        let passwords = Password::new(old.to_string())
            .and_then(|old| Ok((old, Password::new(new.to_string())?)));
        let (old, new) = match passwords {
            Ok(pair) => pair,
            Err(e) => {
                self.password_change_failed(PasswordChangeError::Invalid(e));
                return Vec::new();
            }
        };
        let (Ok(username), Ok(ksf)) = (Username::new(username), self.options.stretch.argon2id())
        else {
            self.password_change_failed(PasswordChangeError::NotConnected);
            return Vec::new();
        };
        let binding = session.channel_binding().clone();
        match PasswordChange::start(&mut OsRng, &username, old, new, ksf, binding) {
            Ok((change, first)) => {
                if let Err(e) = session.send(&first).await {
                    self.session = None;
                    self.password_change_failed(PasswordChangeError::Interrupted);
                    let cause = RetryCause::Lost(Arc::new(e));
                    return self
                        .policy
                        .handle(Event::ConnectionLost(cause), Instant::now().into_std());
                }
                self.change = Some(change);
            }
            Err(_) => self.password_change_failed(PasswordChangeError::TooShort),
        }
        Vec::new()
    }

    /// Offers `msg` to the password change in progress; gives it back if it
    /// is not the change's.
    async fn password_change(&mut self, msg: ServerMessage) -> Option<ServerMessage> {
        let Some(mut change) = self.change.take() else {
            return Some(msg);
        };
        let step = if PasswordChange::<Argon2id>::is_expensive(&msg) {
            // Two Argon2id runs: off the event loop.
            match tokio::task::spawn_blocking(move || {
                let step = change.handle(&mut OsRng, msg);
                (change, step)
            })
            .await
            {
                Ok((back, step)) => {
                    change = back;
                    step
                }
                Err(_) => {
                    self.password_change_failed(PasswordChangeError::Interrupted);
                    return None;
                }
            }
        } else {
            change.handle(&mut OsRng, msg)
        };
        match step {
            ChangeStep::Send(next) => {
                if let Some(session) = &mut self.session {
                    if session.send(&next).await.is_ok() {
                        self.change = Some(change);
                        return None;
                    }
                }
                self.password_change_failed(PasswordChangeError::Interrupted);
                None
            }
            ChangeStep::Changed {
                resume_token,
                export_key,
                ..
            } => {
                self.export_key = Some(export_key);
                // Reconnects log in with the new password from now on.
                let password = Zeroizing::new(change.new_password().expose().to_owned());
                let username = self.options.auth.username().to_owned();
                self.options.auth = AuthRequest::Login { username, password };
                let now = Instant::now().into_std();
                let _ = self.policy.handle(Event::TokenReplaced(resume_token), now);
                self.emit(ClientEvent::PasswordChanged);
                None
            }
            ChangeStep::WrongPassword => {
                self.password_change_failed(PasswordChangeError::WrongPassword);
                None
            }
            ChangeStep::Failed(reply) => {
                let text = match reply {
                    LoginReply::Refused(reason) => auth_failure_text(reason).to_owned(),
                    LoginReply::Error { code, detail } => ServerRefusal {
                        code,
                        detail: detail.as_str().to_owned(),
                    }
                    .to_string(),
                    LoginReply::Accepted { .. } | LoginReply::Goodbye(_) => String::new(),
                };
                self.password_change_failed(PasswordChangeError::Refused(text));
                None
            }
            ChangeStep::NotMine(msg) => {
                self.change = Some(change);
                Some(msg)
            }
        }
    }

    fn interrupt_password_change(&mut self) {
        if self.change.take().is_some() {
            self.password_change_failed(PasswordChangeError::Interrupted);
        }
    }
}
