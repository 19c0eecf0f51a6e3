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

use crate::cause::{CloseCause, RetryCause};
use crate::connect::{establish, AttemptError, Established, Link};
use crate::events::{ClientEvent, ConnectionState};
use crate::input::{parse_input, Input};
use crate::options::{AuthRequest, ClientOptions};
use crate::session_policy::{Action, Event, PolicyConfig, SessionPolicy};

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
type Attempt = Pin<Box<dyn Future<Output = Result<Established, AttemptError>> + Send>>;

/// What woke the driver.
enum Wake {
    Command(Option<Command>),
    Attempt(Result<Established, AttemptError>),
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
                            self.session = Some(est.link);
                            let event = Event::LoggedIn {
                                username: est.username,
                                token: est.token,
                            };
                            self.policy.handle(event, now())
                        }
                        Err(e) => self.policy.handle(Event::AttemptFailed(e), now()),
                    }
                }
                Wake::Link(Ok(LinkEvent::Message(msg))) => {
                    self.policy.handle(Event::Received(msg), now())
                }
                Wake::Link(Ok(LinkEvent::Closed { .. })) => {
                    self.session = None;
                    self.policy
                        .handle(Event::ConnectionLost(RetryCause::Closed), now())
                }
                Wake::Link(Err(e)) => {
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
        self.attempt = Some(Box::pin(
            async move { establish(&options, &tx, resume).await },
        ));
    }
}
