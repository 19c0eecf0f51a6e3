//! What a session decides, without I/O: the login phase (its rate limit,
//! the attempt in progress, the auth timeout), the chat phase (the message
//! bucket, refusals, stored-then-delivered), the silence clock
//! ([`proto_core::liveness`], the one the client runs too) and why the
//! session ends ([`End`]).
//!
//! Sans-IO like quinn's connection and `loadgen`'s `Member`: no tokio, no
//! channels, no clock. Every input takes `now`. The run loop (the driver in
//! [`super`]) follows this contract:
//! 1. feed what happened with [`SessionPolicy::handle`];
//! 2. drain [`SessionPolicy::poll_action`] until `None`, performing each
//!    action in order. [`Action::Authenticate`] and [`Action::Store`] are
//!    questions whose answer goes back through `handle`. The driver here
//!    awaits each answer before it reads the next client message, as the
//!    server always did; the policy relies on that only for the login
//!    phase (one attempt checked at a time). A `Store` carries its
//!    [`Posting`] out and its answer carries it back, so the policy keeps
//!    nothing per message in flight;
//! 3. sleep until [`SessionPolicy::poll_timeout`] (or the next input), then
//!    call [`SessionPolicy::handle_timeout`]; a wake-up that comes early
//!    does nothing, so the driver may re-arm its timer lazily. After an
//!    input, a timeout already due is handled at once too, so a client
//!    that keeps the socket busy cannot starve the timer.
//!
//! Messages the hub delivers to this session never pass through here: they
//! go from the outbox to the socket in the driver, and sending cannot
//! postpone the ping or the idle verdict (only hearing from the client
//! does).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use proto_core::liveness::{Liveness, LivenessAction, SilenceLimits};
use proto_core::message::{
    ClientMessage, DeviceName, ErrorCode, ErrorDetail, GoodbyeReason, LeaveReason, MessageText,
    Password, Reason, ResumeToken, RoomFilter, RoomName, ServerMessage, Username,
};
use proto_core::opaque::{
    CREDENTIAL_FINALIZATION_LEN, CREDENTIAL_REQUEST_LEN, REGISTRATION_REQUEST_LEN,
    REGISTRATION_UPLOAD_LEN,
};

use crate::accounts::{AuthAnswer, AuthError, LoggedIn, Pending, Unsupported};
use crate::config::ServerLimits;
use crate::history::{Destination, NewMessage, Stored};
use crate::hub::Kick;
use crate::rate_limit::TokenBucket;
use crate::rooms::{self, RoomError, RoomId, RoomRequest};

/// Refused messages in a row before a flooding client is cut off.
const MAX_VIOLATIONS_IN_A_ROW: u32 = 100;
/// Login-phase requests per second per connection (each may cost an
/// Argon2id run), sustained and in a burst.
const AUTH_ATTEMPTS_PER_SECOND: u32 = 1;
const AUTH_ATTEMPT_BURST: u32 = 5;

/// Who can receive a message: the registered display name of a canonical
/// account name (the accounts service in the server, a map in tests), and
/// the rooms a user may post to.
pub trait Directory {
    fn display_name(&self, canonical: &str) -> Option<Username>;
    /// The room `room` (its id and its name as created) if `canonical` is a
    /// member (the rooms service in the server, a map in tests).
    fn member_room(
        &self,
        canonical: &str,
        room: &RoomName,
    ) -> Result<(RoomId, RoomName), RoomError>;
}

impl<T: Directory + ?Sized> Directory for Arc<T> {
    fn display_name(&self, canonical: &str) -> Option<Username> {
        (**self).display_name(canonical)
    }
    fn member_room(
        &self,
        canonical: &str,
        room: &RoomName,
    ) -> Result<(RoomId, RoomName), RoomError> {
        (**self).member_room(canonical, room)
    }
}

/// How the connection under the session ended or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// close_notify from the client.
    Clean,
    /// The stream ended without close_notify, or broke.
    Dropped,
    /// The client ended the session with an alert: it found something
    /// wrong (e.g. a record tampered on the way to it), not its own fault.
    PeerAborted,
    /// The client's bytes broke the protocol.
    Violated,
}

/// What happened, as the driver tells the policy.
#[derive(Debug)]
pub enum Event {
    /// A message from the client.
    Client(ClientMessage),
    /// The connection is gone; nothing more will come from it.
    Disconnected(Disconnect),
    /// The answer to [`Action::Authenticate`].
    Authenticated(Result<AuthAnswer, AuthError>),
    /// The answer to [`Action::Store`]: written (or a resend recognised).
    Stored { stored: Stored, posting: Posting },
    /// The answer to [`Action::Store`]: not written.
    StoreFailed { posting: Posting },
    /// The hub ends this session.
    Kicked(Kick),
    /// A newcomer took this connection's place among the not-logged-in.
    Evicted,
    /// The server is stopping.
    Shutdown,
}

/// An authentication step for the accounts service. A finish carries the
/// `pending` its start left (None if there was none: out of order).
#[derive(Debug)]
pub enum AuthRequest {
    /// The version-1 `Register` (refused: it carried the password).
    PasswordRegister,
    RegisterStart {
        username: Username,
        request: Box<[u8; REGISTRATION_REQUEST_LEN]>,
    },
    RegisterFinish {
        pending: Option<Pending>,
        upload: Box<[u8; REGISTRATION_UPLOAD_LEN]>,
    },
    LoginStart {
        username: Username,
        request: Box<[u8; CREDENTIAL_REQUEST_LEN]>,
    },
    LoginFinish {
        pending: Option<Pending>,
        finalization: Box<[u8; CREDENTIAL_FINALIZATION_LEN]>,
    },
    /// The version-1 `Login` (served for legacy accounts: it migrates them).
    LegacyLogin {
        username: Username,
        password: Password,
    },
    Resume {
        token: ResumeToken,
    },
    /// Logged in as `canonical`.
    ChangePasswordStart {
        canonical: String,
        request: Box<[u8; CREDENTIAL_REQUEST_LEN]>,
        registration_request: Box<[u8; REGISTRATION_REQUEST_LEN]>,
    },
    ChangePasswordFinish {
        pending: Option<Pending>,
        finalization: Box<[u8; CREDENTIAL_FINALIZATION_LEN]>,
        upload: Box<[u8; REGISTRATION_UPLOAD_LEN]>,
    },
}

/// What the policy asks the driver to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Write this to the client.
    Send(ServerMessage),
    /// Write a `Ping` (the driver stamps its nonce with the wall clock).
    Ping,
    /// Write the online list (from the hub).
    SendOnlineUsers,
    /// Check credentials; answer with [`Event::Authenticated`].
    Authenticate(AuthRequest),
    /// Logged in: join the hub, then greet (`AuthOk`, who is online, the
    /// recent history). The chat phase has begun.
    LogIn(LoggedIn),
    /// Store a message; answer with [`Event::Stored`] or
    /// [`Event::StoreFailed`], handing `posting` back. Nobody receives the
    /// message before the answer.
    Store {
        destination: Destination,
        message: NewMessage,
        posting: Posting,
    },
    /// Deliver to the room's online members but this session.
    BroadcastRoom {
        room: RoomId,
        message: ServerMessage,
    },
    /// A room request of this session's user (create, join, leave, or a
    /// moderation action naming `target`, with `reason`): the driver
    /// performs it and tells whom the [`rooms::Outcome`] says.
    Room {
        request: RoomRequest,
        target: Option<Username>,
        reason: Reason,
    },
    /// A server administrator's request; the driver checks that the user
    /// is one.
    Admin(AdminRequest),
    /// Answer `ListRooms` (from the rooms service).
    ListRooms(RoomFilter),
    /// Deliver to one user's devices (canonical name), and to this user's
    /// other devices (a direct message the user sent).
    Deliver { to: String, message: ServerMessage },
    /// Answer `ListDevices`.
    ListDevices,
    /// Log out one of this user's devices (by the client's id for it).
    LogoutDevice(u64),
    /// The client renamed this session's device.
    RenameDevice(DeviceName),
    /// Answer `History` with `HistoryPage` chunks.
    History {
        conversation: proto_core::message::Conversation,
        before_id: u64,
        limit: u16,
    },
    /// Answer `Members` with a `MemberPage`.
    Members { room: RoomName, offset: u32 },
    /// Move this user's read marker (and tell their other devices).
    MarkRead {
        conversation: proto_core::message::Conversation,
        up_to_id: u64,
    },
    /// End the session; nothing follows.
    Close(End),
}

/// What a server administrator asks (the target by canonical and
/// registered name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    SetDisabled {
        target: String,
        display: Username,
        disabled: bool,
    },
    EndSessions {
        target: String,
        display: Username,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client said goodbye (`#exit`), or sent close_notify.
    Exit,
    /// The connection broke or closed without a goodbye.
    Dropped,
    /// The client broke the protocol or flooded refused messages.
    Violation,
    /// The client did not read fast enough.
    SlowConsumer,
    /// Another connection logged in as the same user.
    Replaced,
    /// Nothing heard for `idle_timeout`.
    Idle,
    /// The server is stopping.
    Shutdown,
    /// Not logged in within `auth_timeout`.
    AuthTimeout,
    /// Its place among the not-logged-in went to a newcomer.
    Evicted,
    /// An administrator disabled the account.
    Disabled,
    /// An administrator ended the account's sessions.
    Ended,
}

impl End {
    /// The last message the client gets, if any (before close_notify once
    /// logged in).
    #[must_use]
    pub fn last_word(self) -> Option<ServerMessage> {
        let reason = match self {
            End::Exit => GoodbyeReason::ClientRequest,
            End::Dropped => return None,
            End::Violation => GoodbyeReason::ProtocolViolation,
            End::SlowConsumer => GoodbyeReason::SlowConsumer,
            End::Replaced => GoodbyeReason::Replaced,
            End::Idle | End::AuthTimeout => GoodbyeReason::IdleTimeout,
            End::Shutdown => GoodbyeReason::ServerShutdown,
            End::Disabled => GoodbyeReason::AccountDisabled,
            End::Ended => GoodbyeReason::SessionEnded,
            End::Evicted => {
                return Some(error(
                    ErrorCode::ServerFull,
                    "server full: too many connections waiting to log in; try again",
                ))
            }
        };
        Some(ServerMessage::Goodbye { reason })
    }

    /// What the others are told when a logged-in session ends this way.
    #[must_use]
    pub fn leave_reason(self) -> LeaveReason {
        match self {
            End::Exit => LeaveReason::Exit,
            End::Dropped => LeaveReason::Dropped,
            End::Shutdown => LeaveReason::ServerShutdown,
            End::Violation
            | End::SlowConsumer
            | End::Replaced
            | End::Idle
            | End::AuthTimeout
            | End::Evicted
            | End::Disabled
            | End::Ended => LeaveReason::Disconnected,
        }
    }
}

/// What the client is told when an authentication step fails.
fn auth_error(e: AuthError) -> ServerMessage {
    match e {
        AuthError::Failed(reason) => ServerMessage::AuthFailed { reason },
        AuthError::Malformed => error(ErrorCode::InvalidMessage, "malformed OPAQUE message"),
        AuthError::OutOfOrder => error(
            ErrorCode::InvalidMessage,
            "no matching registration, login or password change in progress",
        ),
        AuthError::Unsupported(Unsupported::PasswordRegistration) => error(
            ErrorCode::Unsupported,
            "registration with the password is no longer accepted: update your client",
        ),
        AuthError::Unsupported(Unsupported::LegacyPasswordChange) => error(
            ErrorCode::Unsupported,
            "log in with your password once before changing it",
        ),
        AuthError::Internal => error(ErrorCode::Internal, "the server could not complete that"),
    }
}

fn error(code: ErrorCode, detail: &str) -> ServerMessage {
    ServerMessage::Error {
        code,
        detail: ErrorDetail::new(detail).unwrap_or_else(|_| ErrorDetail::empty()),
    }
}

/// The logged-in user, as messages name it.
#[derive(Debug)]
struct Me {
    username: Username,
    canonical: String,
    device: u64,
}

/// Which device a connection says it is (`SetDevice`); id 0 and no name
/// until it says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceClaim {
    pub id: u64,
    pub name: Option<DeviceName>,
}

/// A message waiting for the history's answer: what delivering and
/// acknowledging it needs. Opaque to the driver, which hands it back.
#[derive(Debug)]
pub struct Posting {
    client_id: Option<u64>,
    text: MessageText,
    /// The room of a room message (id and the name as created).
    room: Option<(RoomId, RoomName)>,
    /// Canonical and display name of a direct message's recipient.
    recipient: Option<(String, Username)>,
}

#[derive(Debug)]
enum Phase {
    LoggingIn {
        deadline: Instant,
        /// For the silence clock that starts at login.
        silence: SilenceLimits,
        /// An [`Action::Authenticate`] is out: the auth timeout waits for
        /// its answer (a throttled login may take 30 s), so a login in
        /// progress is never cut.
        checking: bool,
        /// An OPAQUE exchange waiting for the client's finish.
        pending: Option<Box<Pending>>,
    },
    Chatting {
        me: Me,
        liveness: Liveness,
        /// A password change waiting for the client's finish.
        pending: Option<Box<Pending>>,
    },
    Ended,
}

/// Where a chat message goes.
enum Target {
    Room(RoomName),
    Direct(Username),
}

/// A token taken, refused, or refused once too often.
enum Admission {
    Admitted,
    Refused,
    Flood,
}

/// The decisions of one session, from the end of its handshake to its
/// close. See the [module docs](self) for the run-loop contract.
#[derive(Debug)]
pub struct SessionPolicy<D> {
    directory: D,
    phase: Phase,
    /// What `SetDevice` said before the login.
    device: DeviceClaim,
    /// Login-phase requests, apart so logging in costs no chat budget.
    auth_bucket: TokenBucket,
    /// Chat messages (room, direct, who-is-online, room lists).
    chat_bucket: TokenBucket,
    /// Creating, joining and leaving rooms: each one notifies a room.
    room_bucket: TokenBucket,
    /// Refusals in a row, both buckets together.
    violations: u32,
    actions: VecDeque<Action>,
}

impl<D: Directory> SessionPolicy<D> {
    /// A session whose handshake finished at `now`.
    pub fn new(limits: &ServerLimits, directory: D, now: Instant) -> Self {
        Self {
            directory,
            device: DeviceClaim::default(),
            phase: Phase::LoggingIn {
                deadline: now + limits.auth_timeout,
                silence: SilenceLimits {
                    ping_after: limits.ping_interval,
                    dead_after: limits.idle_timeout,
                },
                checking: false,
                pending: None,
            },
            auth_bucket: TokenBucket::new(AUTH_ATTEMPTS_PER_SECOND, AUTH_ATTEMPT_BURST, now),
            chat_bucket: TokenBucket::new(limits.messages_per_second, limits.message_burst, now),
            room_bucket: TokenBucket::new(
                limits.room_requests_per_second,
                limits.room_request_burst,
                now,
            ),
            violations: 0,
            actions: VecDeque::new(),
        }
    }

    /// The device this connection said it is (for the login it completes).
    pub fn device(&self) -> &DeviceClaim {
        &self.device
    }

    /// True once [`Action::Close`] has been issued.
    #[must_use]
    pub fn has_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended)
    }

    /// The next thing to do, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > 0 {
            // An idle session holds no queue: thousands of them would keep
            // half a KiB each. The cost is one allocation per client
            // message, never one per delivery (those bypass the policy).
            self.actions = VecDeque::new();
        }
        action
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due; `None`
    /// while nothing is timed (an attempt is being checked, or the session
    /// has ended).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::LoggingIn {
                deadline,
                checking: false,
                ..
            } => Some(*deadline),
            Phase::LoggingIn { checking: true, .. } | Phase::Ended => None,
            Phase::Chatting { liveness, .. } => Some(liveness.poll_timeout()),
        }
    }

    /// Time passed: the auth timeout, the ping, the idle verdict.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::LoggingIn {
                deadline,
                checking: false,
                ..
            } if now >= *deadline => self.close(End::AuthTimeout),
            Phase::LoggingIn { .. } | Phase::Ended => {}
            Phase::Chatting { liveness, .. } => match liveness.handle_timeout(now) {
                LivenessAction::Wait => {}
                LivenessAction::Ping => self.actions.push_back(Action::Ping),
                LivenessAction::Dead => self.close(End::Idle),
            },
        }
    }

    /// Something happened.
    pub fn handle(&mut self, event: Event, now: Instant) {
        if self.has_ended() {
            return;
        }
        match event {
            Event::Client(msg) => {
                if let Phase::Chatting { liveness, .. } = &mut self.phase {
                    liveness.handle_heard(now);
                    self.chat_message(msg, now);
                } else {
                    self.login_message(msg, now);
                }
            }
            Event::Disconnected(how) => {
                let end = match (&self.phase, how) {
                    // Not logged in: nobody to tell, nothing to say.
                    (Phase::LoggingIn { .. }, _) => End::Dropped,
                    (_, Disconnect::Clean) => End::Exit,
                    (_, Disconnect::Dropped | Disconnect::PeerAborted) => End::Dropped,
                    (_, Disconnect::Violated) => End::Violation,
                };
                self.close(end);
            }
            Event::Authenticated(answer) => self.authenticated(answer, now),
            Event::Stored { stored, posting } => self.stored(Some(stored), posting),
            Event::StoreFailed { posting } => self.stored(None, posting),
            Event::Kicked(Kick::SlowConsumer) => self.close(End::SlowConsumer),
            Event::Kicked(Kick::Replaced) => self.close(End::Replaced),
            Event::Kicked(Kick::Shutdown) => self.close(End::Shutdown),
            Event::Kicked(Kick::Disabled) => self.close(End::Disabled),
            Event::Kicked(Kick::Ended) => self.close(End::Ended),
            Event::Evicted => {
                if matches!(self.phase, Phase::LoggingIn { .. }) {
                    self.close(End::Evicted);
                }
            }
            Event::Shutdown => self.close(End::Shutdown),
        }
    }

    fn close(&mut self, end: End) {
        self.phase = Phase::Ended;
        self.actions.push_back(Action::Close(end));
    }

    fn send(&mut self, msg: ServerMessage) {
        self.actions.push_back(Action::Send(msg));
    }

    /// Takes a token from the login or the chat bucket; refusals in a row
    /// beyond a bound mean a flood, which closes the session.
    fn admit(&mut self, login_phase: bool, now: Instant) -> Admission {
        let bucket = if login_phase {
            &mut self.auth_bucket
        } else {
            &mut self.chat_bucket
        };
        Self::admit_from(
            bucket,
            &mut self.violations,
            now,
            &mut self.phase,
            &mut self.actions,
        )
    }

    /// Takes a token from the room bucket (see [`admit`](Self::admit)).
    fn admit_room_request(&mut self, now: Instant) -> Admission {
        Self::admit_from(
            &mut self.room_bucket,
            &mut self.violations,
            now,
            &mut self.phase,
            &mut self.actions,
        )
    }

    fn admit_from(
        bucket: &mut TokenBucket,
        violations: &mut u32,
        now: Instant,
        phase: &mut Phase,
        actions: &mut VecDeque<Action>,
    ) -> Admission {
        if bucket.try_take(now) {
            *violations = 0;
            return Admission::Admitted;
        }
        *violations += 1;
        if *violations >= MAX_VIOLATIONS_IN_A_ROW {
            *phase = Phase::Ended;
            actions.push_back(Action::Close(End::Violation));
            return Admission::Flood;
        }
        Admission::Refused
    }

    /// The exchange the client's finish belongs to, taken: a finish is
    /// checked against it once, and any other request abandons it.
    fn take_pending(&mut self) -> Option<Pending> {
        match &mut self.phase {
            Phase::LoggingIn { pending, .. } | Phase::Chatting { pending, .. } => {
                pending.take().map(|p| *p)
            }
            Phase::Ended => None,
        }
    }

    fn login_message(&mut self, msg: ClientMessage, now: Instant) {
        // Pings and their answers may come between a start and its finish;
        // any other message ends an unfinished exchange (its start was
        // counted as a failed attempt already).
        match msg {
            ClientMessage::Ping { nonce } => return self.send(ServerMessage::Pong { nonce }),
            ClientMessage::Pong { .. } => return,
            _ => {}
        }
        let pending = self.take_pending();
        let request = match msg {
            ClientMessage::Register { .. } => AuthRequest::PasswordRegister,
            ClientMessage::Login { username, password } => {
                AuthRequest::LegacyLogin { username, password }
            }
            ClientMessage::RegisterStart { username, request } => {
                AuthRequest::RegisterStart { username, request }
            }
            ClientMessage::LoginStart { username, request } => {
                AuthRequest::LoginStart { username, request }
            }
            // Finishes cost no token: their start paid, and they are cheap.
            ClientMessage::RegisterFinish { upload } => {
                return self.authenticate(AuthRequest::RegisterFinish { pending, upload });
            }
            ClientMessage::LoginFinish { finalization } => {
                return self.authenticate(AuthRequest::LoginFinish {
                    pending,
                    finalization,
                });
            }
            // A token check is cheap: no Argon2id, no token.
            ClientMessage::Resume { token } => AuthRequest::Resume { token },
            ClientMessage::Ping { .. } | ClientMessage::Pong { .. } => return,
            ClientMessage::Goodbye => return self.close(End::Exit),
            // Said before the login: costs nothing, answers nothing.
            ClientMessage::SetDevice { id, name } => {
                self.device = DeviceClaim {
                    id,
                    name: Some(name),
                };
                return;
            }
            ClientMessage::ListDevices
            | ClientMessage::LogoutDevice { .. }
            | ClientMessage::History { .. }
            | ClientMessage::Members { .. }
            | ClientMessage::MarkRead { .. } => {
                if let Admission::Admitted = self.admit(true, now) {
                    self.send(error(ErrorCode::NotLoggedIn, "log in or register first"));
                }
                return;
            }
            ClientMessage::RoomMessage { .. }
            | ClientMessage::DirectMessage { .. }
            | ClientMessage::SendRoom { .. }
            | ClientMessage::SendDirect { .. }
            | ClientMessage::WhoIsOnline
            | ClientMessage::CreateRoom { .. }
            | ClientMessage::JoinRoom { .. }
            | ClientMessage::LeaveRoom { .. }
            | ClientMessage::ListRooms { .. }
            | ClientMessage::Invite { .. }
            | ClientMessage::Kick { .. }
            | ClientMessage::Ban { .. }
            | ClientMessage::Unban { .. }
            | ClientMessage::SetTopic { .. }
            | ClientMessage::SetInviteOnly { .. }
            | ClientMessage::SetRole { .. }
            | ClientMessage::Mute { .. }
            | ClientMessage::DeleteRoom { .. }
            | ClientMessage::SetAccountDisabled { .. }
            | ClientMessage::EndSessions { .. }
            | ClientMessage::ChangePasswordStart { .. }
            | ClientMessage::ChangePasswordFinish { .. } => {
                // Answered while tokens last, then ignored: a flood gets
                // no echo.
                if let Admission::Admitted = self.admit(true, now) {
                    self.send(error(ErrorCode::NotLoggedIn, "log in or register first"));
                }
                return;
            }
        };
        if !matches!(request, AuthRequest::Resume { .. }) {
            match self.admit(true, now) {
                Admission::Admitted => {}
                Admission::Refused => {
                    return self.send(error(
                        ErrorCode::RateLimited,
                        "too many attempts; slow down",
                    ))
                }
                Admission::Flood => return,
            }
        }
        self.authenticate(request);
    }

    fn authenticate(&mut self, request: AuthRequest) {
        if let Phase::LoggingIn { checking, .. } = &mut self.phase {
            *checking = true;
        }
        self.actions.push_back(Action::Authenticate(request));
    }

    fn authenticated(&mut self, answer: Result<AuthAnswer, AuthError>, now: Instant) {
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                if let Phase::LoggingIn { checking, .. } = &mut self.phase {
                    *checking = false;
                }
                return self.send(auth_error(e));
            }
        };
        match (&mut self.phase, answer) {
            (
                Phase::LoggingIn {
                    checking, silence, ..
                },
                AuthAnswer::LoggedIn(me),
            ) => {
                *checking = false;
                // Past the auth timeout too: the attempt was made in time.
                let silence = *silence;
                self.phase = Phase::Chatting {
                    me: Me {
                        username: me.username.clone(),
                        canonical: me.canonical.clone(),
                        device: me.device,
                    },
                    liveness: Liveness::new(silence, now),
                    pending: None,
                };
                self.actions.push_back(Action::LogIn(me));
            }
            (
                Phase::LoggingIn {
                    checking,
                    pending: slot,
                    ..
                },
                AuthAnswer::Continue { reply, pending },
            ) => {
                *checking = false;
                *slot = pending.map(Box::new);
                self.send(reply);
            }
            (Phase::Chatting { pending: slot, .. }, AuthAnswer::Continue { reply, pending }) => {
                *slot = pending.map(Box::new);
                self.send(reply);
            }
            (Phase::Chatting { .. }, AuthAnswer::PasswordChanged { reply }) => self.send(reply),
            // Not an answer this phase asked for.
            (Phase::LoggingIn { checking, .. }, _) => {
                *checking = false;
                self.send(auth_error(AuthError::Internal));
            }
            (Phase::Chatting { .. }, AuthAnswer::LoggedIn(_)) | (Phase::Ended, _) => {}
        }
    }

    fn chat_message(&mut self, msg: ClientMessage, now: Instant) {
        match msg {
            ClientMessage::RoomMessage { room, text } => {
                self.post(Target::Room(room), text, None, now);
            }
            ClientMessage::SendRoom {
                client_id,
                room,
                text,
            } => self.post(Target::Room(room), text, Some(client_id), now),
            ClientMessage::DirectMessage { to, text } => {
                self.post(Target::Direct(to), text, None, now);
            }
            ClientMessage::SendDirect {
                client_id,
                to,
                text,
            } => self.post(Target::Direct(to), text, Some(client_id), now),
            ClientMessage::CreateRoom {
                room,
                invite_only,
                topic,
            } => self.room_request(
                RoomRequest::Create {
                    room,
                    invite_only,
                    topic,
                },
                now,
            ),
            ClientMessage::JoinRoom { room } => {
                self.room_request(RoomRequest::Join { room }, now);
            }
            ClientMessage::LeaveRoom { room } => {
                self.room_request(RoomRequest::Leave { room }, now);
            }
            ClientMessage::SetTopic { room, topic } => {
                self.room_request(RoomRequest::SetTopic { room, topic }, now);
            }
            ClientMessage::SetInviteOnly { room, invite_only } => {
                self.room_request(RoomRequest::SetInviteOnly { room, invite_only }, now);
            }
            ClientMessage::DeleteRoom { room } => {
                self.room_request(RoomRequest::Delete { room }, now);
            }
            ClientMessage::Invite { room, user } => self.moderate(
                user,
                Reason::empty(),
                |target| RoomRequest::Invite { room, target },
                now,
            ),
            ClientMessage::Kick { room, user, reason } => {
                let audit = reason.clone();
                self.moderate(
                    user,
                    audit,
                    |target| RoomRequest::Kick { room, target },
                    now,
                );
            }
            ClientMessage::Ban {
                room,
                user,
                reason,
                minutes,
            } => {
                let duration = std::time::Duration::from_secs(u64::from(minutes) * 60);
                self.moderate(
                    user,
                    reason,
                    |target| RoomRequest::Ban {
                        room,
                        target,
                        duration,
                    },
                    now,
                );
            }
            ClientMessage::Unban { room, user } => self.moderate(
                user,
                Reason::empty(),
                |target| RoomRequest::Unban { room, target },
                now,
            ),
            ClientMessage::SetRole { room, user, role } => self.moderate(
                user,
                Reason::empty(),
                |target| RoomRequest::SetRole { room, target, role },
                now,
            ),
            ClientMessage::Mute { room, user, muted } => self.moderate(
                user,
                Reason::empty(),
                |target| RoomRequest::Mute {
                    room,
                    target,
                    muted,
                },
                now,
            ),
            ClientMessage::SetDevice { id, name } => {
                let Phase::Chatting { me, .. } = &self.phase else {
                    return;
                };
                if id == me.device {
                    self.actions.push_back(Action::RenameDevice(name));
                } else {
                    self.send(error(
                        ErrorCode::InvalidMessage,
                        "a connection's device cannot change after the login",
                    ));
                }
            }
            ClientMessage::History {
                conversation,
                before_id,
                limit,
            } => match self.admit(false, now) {
                Admission::Admitted => self.actions.push_back(Action::History {
                    conversation,
                    before_id,
                    limit,
                }),
                Admission::Refused => {
                    self.refuse(None, ErrorCode::RateLimited, "too many requests; slow down");
                }
                Admission::Flood => {}
            },
            ClientMessage::Members { room, offset } => match self.admit(false, now) {
                Admission::Admitted => self.actions.push_back(Action::Members { room, offset }),
                Admission::Refused => {
                    self.refuse(None, ErrorCode::RateLimited, "too many requests; slow down");
                }
                Admission::Flood => {}
            },
            ClientMessage::MarkRead {
                conversation,
                up_to_id,
            } => match self.admit(false, now) {
                Admission::Admitted => self.actions.push_back(Action::MarkRead {
                    conversation,
                    up_to_id,
                }),
                // A marker that could not move now moves with the next one.
                Admission::Refused | Admission::Flood => {}
            },
            ClientMessage::ListDevices => match self.admit(false, now) {
                Admission::Admitted => self.actions.push_back(Action::ListDevices),
                Admission::Refused => {
                    self.refuse(None, ErrorCode::RateLimited, "too many requests; slow down");
                }
                Admission::Flood => {}
            },
            ClientMessage::LogoutDevice { id } => match self.admit_room_request(now) {
                Admission::Admitted => self.actions.push_back(Action::LogoutDevice(id)),
                Admission::Refused => {
                    self.refuse(None, ErrorCode::RateLimited, "too many requests; slow down");
                }
                Admission::Flood => {}
            },
            ClientMessage::SetAccountDisabled { user, disabled } => {
                self.admin(
                    user,
                    move |target, display| AdminRequest::SetDisabled {
                        target,
                        display,
                        disabled,
                    },
                    now,
                );
            }
            ClientMessage::EndSessions { user } => {
                self.admin(
                    user,
                    |target, display| AdminRequest::EndSessions { target, display },
                    now,
                );
            }
            ClientMessage::ListRooms { filter } => match self.admit(false, now) {
                Admission::Admitted => self.actions.push_back(Action::ListRooms(filter)),
                Admission::Refused => {
                    self.refuse(None, ErrorCode::RateLimited, "too many requests; slow down");
                }
                Admission::Flood => {}
            },
            ClientMessage::WhoIsOnline => match self.admit(false, now) {
                Admission::Admitted => self.actions.push_back(Action::SendOnlineUsers),
                Admission::Refused => {
                    self.refuse(None, ErrorCode::RateLimited, "too many requests; slow down");
                }
                Admission::Flood => {}
            },
            ClientMessage::Ping { nonce } => self.send(ServerMessage::Pong { nonce }),
            ClientMessage::Pong { .. } => {}
            ClientMessage::Goodbye => self.close(End::Exit),
            ClientMessage::ChangePasswordStart {
                request,
                registration_request,
            } => {
                self.take_pending();
                match self.admit(true, now) {
                    Admission::Admitted => {}
                    Admission::Refused => {
                        return self.send(error(
                            ErrorCode::RateLimited,
                            "too many attempts; slow down",
                        ))
                    }
                    Admission::Flood => return,
                }
                let Phase::Chatting { me, .. } = &self.phase else {
                    return;
                };
                let canonical = me.canonical.clone();
                self.authenticate(AuthRequest::ChangePasswordStart {
                    canonical,
                    request,
                    registration_request,
                });
            }
            ClientMessage::ChangePasswordFinish {
                finalization,
                upload,
            } => {
                let pending = self.take_pending();
                self.authenticate(AuthRequest::ChangePasswordFinish {
                    pending,
                    finalization,
                    upload,
                });
            }
            ClientMessage::Register { .. }
            | ClientMessage::Login { .. }
            | ClientMessage::Resume { .. }
            | ClientMessage::RegisterStart { .. }
            | ClientMessage::RegisterFinish { .. }
            | ClientMessage::LoginStart { .. }
            | ClientMessage::LoginFinish { .. } => {
                self.send(error(ErrorCode::AlreadyLoggedIn, "already logged in"));
            }
        }
    }

    /// Creating, joining or leaving a room: rate limited apart from chat,
    /// so a client cannot make a storm of join and leave notices (R4).
    fn room_request(&mut self, request: RoomRequest, now: Instant) {
        match self.admit_room_request(now) {
            Admission::Admitted => self.actions.push_back(Action::Room {
                request,
                target: None,
                reason: Reason::empty(),
            }),
            Admission::Refused => self.refuse(
                None,
                ErrorCode::RateLimited,
                "too many room requests; slow down",
            ),
            Admission::Flood => {}
        }
    }

    /// A moderation request about `user`, who must have an account: it
    /// takes a room-request token like joins do.
    fn moderate(
        &mut self,
        user: Username,
        reason: Reason,
        request: impl FnOnce(String) -> RoomRequest,
        now: Instant,
    ) {
        match self.admit_room_request(now) {
            Admission::Admitted => {}
            Admission::Refused => {
                return self.refuse(
                    None,
                    ErrorCode::RateLimited,
                    "too many room requests; slow down",
                )
            }
            Admission::Flood => return,
        }
        let canonical = user.canonical();
        let Some(display) = self.directory.display_name(&canonical) else {
            return self.refuse(None, ErrorCode::UnknownRecipient, "no such user");
        };
        self.actions.push_back(Action::Room {
            request: request(canonical),
            target: Some(display),
            reason,
        });
    }

    /// An administrator's request about `user` (the driver checks the
    /// asker is one); it takes a room-request token.
    fn admin(
        &mut self,
        user: Username,
        request: impl FnOnce(String, Username) -> AdminRequest,
        now: Instant,
    ) {
        match self.admit_room_request(now) {
            Admission::Admitted => {}
            Admission::Refused => {
                return self.refuse(None, ErrorCode::RateLimited, "too many requests; slow down")
            }
            Admission::Flood => return,
        }
        let canonical = user.canonical();
        let Some(display) = self.directory.display_name(&canonical) else {
            return self.refuse(None, ErrorCode::UnknownRecipient, "no such user");
        };
        self.actions
            .push_back(Action::Admin(request(canonical, display)));
    }

    /// A room message or a direct message: stored, then delivered, then
    /// acknowledged with `Stored` when the client sent a `client_id`. A
    /// refusal is `SendFailed` (or `Error` for the messages without an id)
    /// and nobody receives the message.
    fn post(&mut self, to: Target, text: MessageText, client_id: Option<u64>, now: Instant) {
        match self.admit(false, now) {
            Admission::Admitted => {}
            Admission::Refused => {
                return self.refuse(
                    client_id,
                    ErrorCode::RateLimited,
                    "too many messages; this one was not delivered",
                )
            }
            Admission::Flood => return,
        }
        let Phase::Chatting { me, .. } = &self.phase else {
            return;
        };
        let (destination, recipient, room) = match to {
            Target::Room(room) => match self.directory.member_room(&me.canonical, &room) {
                // The room's name as created, whatever case the sender typed.
                Ok((id, name)) => (Destination::Room { id }, None, Some((id, name))),
                Err(e) => {
                    let detail = e.to_string();
                    return self.refuse(client_id, rooms::error_code(e), &detail);
                }
            },
            Target::Direct(to) => {
                let to_canonical = to.canonical();
                if to_canonical == me.canonical {
                    return self.refuse(
                        client_id,
                        ErrorCode::InvalidMessage,
                        "you cannot send a direct message to yourself",
                    );
                }
                let Some(to_display) = self.directory.display_name(&to_canonical) else {
                    return self.refuse(client_id, ErrorCode::UnknownRecipient, "no such user");
                };
                let destination = Destination::Direct {
                    a: me.canonical.clone(),
                    b: to_canonical.clone(),
                };
                (destination, Some((to_canonical, to_display)), None)
            }
        };
        let message = NewMessage {
            from: me.username.as_str().to_owned(),
            to: recipient.as_ref().map(|(_, d)| d.as_str().to_owned()),
            text: text.as_str().to_owned(),
            client_id,
        };
        self.actions.push_back(Action::Store {
            destination,
            message,
            posting: Posting {
                client_id,
                text,
                room,
                recipient,
            },
        });
    }

    /// The history's answer: deliver (unless a resend), then acknowledge.
    fn stored(&mut self, stored: Option<Stored>, posting: Posting) {
        let Phase::Chatting { me, .. } = &self.phase else {
            return;
        };
        let Posting {
            client_id,
            text,
            room,
            recipient,
        } = posting;
        let Some(stored) = stored else {
            return self.refuse(
                client_id,
                ErrorCode::Internal,
                "the server could not store this message; it was not delivered",
            );
        };
        if stored.is_new {
            let delivery = match (recipient, room) {
                (_, Some((room_id, room))) => Action::BroadcastRoom {
                    room: room_id,
                    message: ServerMessage::RoomMessage {
                        id: stored.id,
                        timestamp_ms: stored.timestamp_ms,
                        room,
                        from: me.username.clone(),
                        text,
                    },
                },
                (Some((to_canonical, to_display)), None) => Action::Deliver {
                    to: to_canonical,
                    message: ServerMessage::DirectMessage {
                        id: stored.id,
                        timestamp_ms: stored.timestamp_ms,
                        from: me.username.clone(),
                        to: to_display,
                        text,
                    },
                },
                (None, None) => return,
            };
            self.actions.push_back(delivery);
        }
        if let Some(client_id) = client_id {
            self.send(ServerMessage::Stored {
                client_id,
                id: stored.id,
                timestamp_ms: stored.timestamp_ms,
            });
        }
    }

    /// Tells the sender its message was not stored.
    fn refuse(&mut self, client_id: Option<u64>, code: ErrorCode, detail: &str) {
        let detail = ErrorDetail::new(detail).unwrap_or_else(|_| ErrorDetail::empty());
        self.send(match client_id {
            Some(client_id) => ServerMessage::SendFailed {
                client_id,
                code,
                detail,
            },
            None => ServerMessage::Error { code, detail },
        });
    }
}

#[cfg(test)]
mod tests {
    //! Virtual time: every `now` is `start` plus an offset; nothing sleeps.

    use std::collections::HashMap;
    use std::time::Duration;

    use proto_core::message::AuthFailure;

    use super::*;

    const AUTH_TIMEOUT: Duration = Duration::from_secs(20);
    const PING_INTERVAL: Duration = Duration::from_secs(30);
    const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
    const RATE: u32 = 5;

    fn limits() -> ServerLimits {
        ServerLimits {
            auth_timeout: AUTH_TIMEOUT,
            ping_interval: PING_INTERVAL,
            idle_timeout: IDLE_TIMEOUT,
            messages_per_second: RATE,
            message_burst: RATE,
            ..ServerLimits::default()
        }
    }

    /// The registered accounts, canonical name to display name.
    #[derive(Debug, Default)]
    struct Names(HashMap<String, Username>);

    impl Directory for Names {
        fn display_name(&self, canonical: &str) -> Option<Username> {
            self.0.get(canonical).cloned()
        }
        /// Everyone is in `#general` (id 1); `#public` (id 2) exists and
        /// nobody is in it; no other room exists.
        fn member_room(&self, _: &str, room: &RoomName) -> Result<(RoomId, RoomName), RoomError> {
            match room.canonical().as_str() {
                "#general" => Ok((1, general())),
                "#public" => Err(RoomError::NotAMember),
                _ => Err(RoomError::NoSuchRoom),
            }
        }
    }

    fn general() -> RoomName {
        RoomName::general()
    }

    fn name(s: &str) -> Username {
        Username::new(s).unwrap()
    }

    fn text(s: &str) -> MessageText {
        MessageText::new(s).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn logged_in(user: &str) -> LoggedIn {
        LoggedIn {
            username: name(user),
            canonical: name(user).canonical(),
            token: ResumeToken::from_bytes([7; 32]),
            device: 1,
        }
    }

    fn login(user: &str) -> Event {
        Event::Client(ClientMessage::Login {
            username: name(user),
            password: Password::new("correct horse".to_owned()).unwrap(),
        })
    }

    fn send_room(client_id: u64) -> Event {
        Event::Client(ClientMessage::SendRoom {
            client_id,
            room: general(),
            text: text("hello"),
        })
    }

    /// The history's answer to `store`: written as `id`.
    fn stored(store: Action, id: u64, is_new: bool) -> Event {
        let Action::Store { posting, .. } = store else {
            panic!("not a Store: {store:?}");
        };
        Event::Stored {
            stored: Stored {
                id,
                timestamp_ms: 1_000 + id,
                is_new,
            },
            posting,
        }
    }

    /// The history's answer to `store`: not written.
    fn store_failed(store: Action) -> Event {
        let Action::Store { posting, .. } = store else {
            panic!("not a Store: {store:?}");
        };
        Event::StoreFailed { posting }
    }

    /// The one action queued, which must be a Store.
    fn only_store(p: &mut Policy) -> Action {
        let mut actions = drain(p);
        assert!(matches!(actions[..], [Action::Store { .. }]), "{actions:?}");
        actions.remove(0)
    }

    type Policy = SessionPolicy<Names>;

    fn new_policy(start: Instant) -> Policy {
        let names = ["Alice", "Bob"]
            .into_iter()
            .map(|n| (name(n).canonical(), name(n)))
            .collect();
        SessionPolicy::new(&limits(), Names(names), start)
    }

    fn drain(p: &mut Policy) -> Vec<Action> {
        std::iter::from_fn(|| p.poll_action()).collect()
    }

    /// Alice, logged in at `start` (the login took no time).
    fn chatting(start: Instant) -> Policy {
        let mut p = new_policy(start);
        p.handle(login("Alice"), start);
        assert!(matches!(drain(&mut p)[..], [Action::Authenticate(_)]));
        p.handle(
            Event::Authenticated(Ok(AuthAnswer::LoggedIn(logged_in("Alice")))),
            start,
        );
        assert!(matches!(drain(&mut p)[..], [Action::LogIn(_)]));
        p
    }

    /// Runs the timer as a driver does while the client says nothing,
    /// until `until`: returns each timed action and when it came.
    fn silence(p: &mut Policy, start: Instant, until: Duration) -> Vec<(Duration, Action)> {
        let mut out = Vec::new();
        while let Some(at) = p.poll_timeout() {
            if at > start + until {
                break;
            }
            p.handle_timeout(at);
            out.extend(drain(p).into_iter().map(|a| (at - start, a)));
        }
        out
    }

    fn is_error(a: &Action, want: ErrorCode) -> bool {
        matches!(a, Action::Send(ServerMessage::Error { code, .. }) if *code == want)
    }

    fn is_send_failed(a: &Action, id: u64, want: ErrorCode) -> bool {
        matches!(
            a,
            Action::Send(ServerMessage::SendFailed { client_id, code, .. })
                if *client_id == id && *code == want
        )
    }

    fn is_goodbye(end: End, want: GoodbyeReason) -> bool {
        matches!(end.last_word(), Some(ServerMessage::Goodbye { reason }) if reason == want)
    }

    // ---- login phase ----

    #[test]
    fn a_connection_that_never_logs_in_is_closed_at_the_auth_timeout() {
        let start = Instant::now();
        let mut p = new_policy(start);
        assert_eq!(p.poll_timeout(), Some(start + AUTH_TIMEOUT));
        p.handle_timeout(start + AUTH_TIMEOUT - ms(1));
        assert!(drain(&mut p).is_empty(), "closed early");
        p.handle_timeout(start + AUTH_TIMEOUT);
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Close(End::AuthTimeout)]
        ));
        assert!(is_goodbye(End::AuthTimeout, GoodbyeReason::IdleTimeout));
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn login_phase_traffic_does_not_postpone_the_auth_timeout() {
        let start = Instant::now();
        let mut p = new_policy(start);
        for s in [5, 10, 19] {
            p.handle(
                Event::Client(ClientMessage::Ping { nonce: s }),
                start + secs(s),
            );
            assert!(matches!(
                drain(&mut p)[..],
                [Action::Send(ServerMessage::Pong { nonce })] if nonce == s
            ));
        }
        p.handle(Event::Client(ClientMessage::WhoIsOnline), start + secs(19));
        assert!(is_error(&drain(&mut p)[0], ErrorCode::NotLoggedIn));
        assert_eq!(p.poll_timeout(), Some(start + AUTH_TIMEOUT));
    }

    #[test]
    fn a_login_still_being_checked_at_the_auth_timeout_is_not_cut() {
        let start = Instant::now();
        let mut p = new_policy(start);
        p.handle(login("Alice"), start + secs(19));
        assert!(matches!(drain(&mut p)[..], [Action::Authenticate(_)]));
        assert_eq!(
            p.poll_timeout(),
            None,
            "no timer while the attempt is checked"
        );
        p.handle_timeout(start + secs(25));
        assert!(drain(&mut p).is_empty());
        // The login throttle held the answer for 30 s.
        p.handle(
            Event::Authenticated(Ok(AuthAnswer::LoggedIn(logged_in("Alice")))),
            start + secs(49),
        );
        assert!(matches!(drain(&mut p)[..], [Action::LogIn(_)]));
        // The silence clock starts at login, not at the handshake.
        assert_eq!(p.poll_timeout(), Some(start + secs(49) + PING_INTERVAL));
    }

    #[test]
    fn a_failed_attempt_answered_after_the_auth_timeout_closes_at_once() {
        let start = Instant::now();
        let mut p = new_policy(start);
        p.handle(login("Alice"), start + secs(10));
        drain(&mut p);
        let late = start + secs(40);
        p.handle(
            Event::Authenticated(Err(AuthError::Failed(AuthFailure::LoginFailed))),
            late,
        );
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Send(ServerMessage::AuthFailed {
                reason: AuthFailure::LoginFailed
            })]
        ));
        assert_eq!(p.poll_timeout(), Some(start + AUTH_TIMEOUT));
        p.handle_timeout(late);
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Close(End::AuthTimeout)]
        ));
    }

    #[test]
    fn login_requests_are_limited_to_a_burst_of_5_then_1_per_second() {
        let start = Instant::now();
        let mut p = new_policy(start);
        let mut checked = 0;
        for _ in 0..5 {
            p.handle(login("Alice"), start);
            if let [Action::Authenticate(AuthRequest::LegacyLogin { .. })] = drain(&mut p)[..] {
                checked += 1;
            }
            p.handle(
                Event::Authenticated(Err(AuthError::Failed(AuthFailure::LoginFailed))),
                start,
            );
            drain(&mut p);
        }
        assert_eq!(checked, 5);
        // The 6th within the first second: refused, nothing checked.
        p.handle(login("Alice"), start + ms(500));
        let refused = drain(&mut p);
        assert!(
            matches!(&refused[..], [a] if is_error(a, ErrorCode::RateLimited)),
            "{refused:?}"
        );
        // A second after the burst, one token is back.
        p.handle(login("Alice"), start + secs(1));
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Authenticate(AuthRequest::LegacyLogin { .. })]
        ));
    }

    #[test]
    fn registering_takes_a_login_token_and_resuming_takes_none() {
        let start = Instant::now();
        let mut p = new_policy(start);
        for _ in 0..5 {
            p.handle(
                Event::Client(ClientMessage::RegisterStart {
                    username: name("Carol"),
                    request: Box::new([0; 32]),
                }),
                start,
            );
            assert!(matches!(
                drain(&mut p)[..],
                [Action::Authenticate(AuthRequest::RegisterStart { .. })]
            ));
            p.handle(
                Event::Authenticated(Err(AuthError::Failed(AuthFailure::NameTaken))),
                start,
            );
            drain(&mut p);
        }
        p.handle(login("Alice"), start);
        assert!(is_error(&drain(&mut p)[0], ErrorCode::RateLimited));
        p.handle(
            Event::Client(ClientMessage::Resume {
                token: ResumeToken::from_bytes([1; 32]),
            }),
            start,
        );
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Authenticate(AuthRequest::Resume { .. })]
        ));
    }

    #[test]
    fn chat_before_login_is_refused_while_tokens_last_then_ignored() {
        let start = Instant::now();
        let mut p = new_policy(start);
        let mut answered = 0;
        for _ in 0..8 {
            p.handle(
                Event::Client(ClientMessage::RoomMessage {
                    room: general(),
                    text: text("hi"),
                }),
                start,
            );
            for a in drain(&mut p) {
                assert!(is_error(&a, ErrorCode::NotLoggedIn), "{a:?}");
                answered += 1;
            }
        }
        assert_eq!(answered, 5);
    }

    #[test]
    fn an_internal_failure_while_logging_in_is_an_error_and_the_client_may_retry() {
        let start = Instant::now();
        let mut p = new_policy(start);
        p.handle(login("Alice"), start);
        drain(&mut p);
        p.handle(Event::Authenticated(Err(AuthError::Internal)), start);
        assert!(is_error(&drain(&mut p)[0], ErrorCode::Internal));
        p.handle(login("Alice"), start + secs(1));
        assert!(matches!(drain(&mut p)[..], [Action::Authenticate(_)]));
    }

    #[test]
    fn a_hundred_refusals_in_a_row_close_with_protocol_violation() {
        let start = Instant::now();
        let mut p = new_policy(start);
        for _ in 0..5 {
            p.handle(Event::Client(ClientMessage::WhoIsOnline), start);
        }
        assert_eq!(drain(&mut p).len(), 5);
        for i in 1..MAX_VIOLATIONS_IN_A_ROW {
            p.handle(login("Alice"), start);
            let refused = drain(&mut p);
            assert!(
                matches!(&refused[..], [a] if is_error(a, ErrorCode::RateLimited)),
                "refusal {i}: {refused:?}"
            );
        }
        p.handle(login("Alice"), start);
        assert!(matches!(drain(&mut p)[..], [Action::Close(End::Violation)]));
        assert!(is_goodbye(End::Violation, GoodbyeReason::ProtocolViolation));
        assert!(p.has_ended());
    }

    #[test]
    fn an_admitted_request_restarts_the_refusal_count() {
        let start = Instant::now();
        let mut p = chatting(start);
        for _ in 0..RATE {
            p.handle(Event::Client(ClientMessage::WhoIsOnline), start);
        }
        drain(&mut p);
        for _ in 1..MAX_VIOLATIONS_IN_A_ROW {
            p.handle(Event::Client(ClientMessage::WhoIsOnline), start);
        }
        drain(&mut p);
        // One token back, taken: the count starts over.
        let later = start + ms(1000 / u64::from(RATE));
        p.handle(Event::Client(ClientMessage::WhoIsOnline), later);
        assert!(matches!(drain(&mut p)[..], [Action::SendOnlineUsers]));
        for _ in 1..MAX_VIOLATIONS_IN_A_ROW {
            p.handle(Event::Client(ClientMessage::WhoIsOnline), later);
        }
        assert!(!drain(&mut p).iter().any(|a| matches!(a, Action::Close(_))));
        p.handle(Event::Client(ClientMessage::WhoIsOnline), later);
        assert!(matches!(drain(&mut p)[..], [Action::Close(End::Violation)]));
    }

    #[test]
    fn eviction_tells_the_client_the_server_is_full_and_is_ignored_after_login() {
        let start = Instant::now();
        let mut p = new_policy(start);
        p.handle(Event::Evicted, start);
        assert!(matches!(drain(&mut p)[..], [Action::Close(End::Evicted)]));
        assert!(matches!(
            End::Evicted.last_word(),
            Some(ServerMessage::Error {
                code: ErrorCode::ServerFull,
                ..
            })
        ));
        let mut p = chatting(start);
        p.handle(Event::Evicted, start);
        assert!(drain(&mut p).is_empty());
    }

    #[test]
    fn leaving_before_login_says_nothing_unless_the_client_said_goodbye() {
        let start = Instant::now();
        for how in [
            Disconnect::Clean,
            Disconnect::Dropped,
            Disconnect::PeerAborted,
            Disconnect::Violated,
        ] {
            let mut p = new_policy(start);
            p.handle(Event::Disconnected(how), start);
            assert!(
                matches!(drain(&mut p)[..], [Action::Close(End::Dropped)]),
                "{how:?}"
            );
        }
        assert_eq!(End::Dropped.last_word(), None);
        let mut p = new_policy(start);
        p.handle(Event::Client(ClientMessage::Goodbye), start);
        assert!(matches!(drain(&mut p)[..], [Action::Close(End::Exit)]));
    }

    // ---- chat phase ----

    #[test]
    fn a_burst_of_10_at_5_per_second_stores_exactly_5_and_refuses_the_rest() {
        let start = Instant::now();
        let mut p = chatting(start);
        let (mut stores, mut refused) = (0, Vec::new());
        for id in 1..=10 {
            p.handle(send_room(id), start);
            for a in drain(&mut p) {
                match a {
                    store @ Action::Store { .. } => {
                        stores += 1;
                        p.handle(stored(store, id, true), start);
                        assert!(matches!(
                            drain(&mut p)[..],
                            [
                                Action::BroadcastRoom {
                                    room: 1,
                                    message: ServerMessage::RoomMessage { .. }
                                },
                                Action::Send(ServerMessage::Stored { client_id, .. })
                            ] if client_id == id
                        ));
                    }
                    a if is_send_failed(&a, id, ErrorCode::RateLimited) => refused.push(id),
                    other => panic!("message {id}: {other:?}"),
                }
            }
        }
        assert_eq!(stores, RATE);
        assert_eq!(refused, [6, 7, 8, 9, 10]);
        // 1/RATE s later, exactly one more.
        let later = start + ms(1000 / u64::from(RATE));
        p.handle(send_room(11), later);
        let store = only_store(&mut p);
        p.handle(stored(store, 11, true), later);
        drain(&mut p);
        p.handle(send_room(12), later);
        assert!(is_send_failed(
            &drain(&mut p)[0],
            12,
            ErrorCode::RateLimited
        ));
    }

    #[test]
    fn a_message_without_client_id_over_the_rate_gets_an_error() {
        let start = Instant::now();
        let mut p = chatting(start);
        for _ in 0..RATE {
            p.handle(
                Event::Client(ClientMessage::RoomMessage {
                    room: general(),
                    text: text("hi"),
                }),
                start,
            );
            let store = only_store(&mut p);
            p.handle(stored(store, 1, true), start);
            // Stored, delivered, and no acknowledgement: it had no id.
            assert!(matches!(drain(&mut p)[..], [Action::BroadcastRoom { .. }]));
        }
        p.handle(
            Event::Client(ClientMessage::RoomMessage {
                room: general(),
                text: text("hi"),
            }),
            start,
        );
        assert!(is_error(&drain(&mut p)[0], ErrorCode::RateLimited));
        p.handle(Event::Client(ClientMessage::WhoIsOnline), start);
        assert!(
            is_error(&drain(&mut p)[0], ErrorCode::RateLimited),
            "who-is-online shares the chat bucket"
        );
    }

    #[test]
    fn a_message_to_a_room_the_sender_is_not_in_is_refused_and_not_stored() {
        let start = Instant::now();
        let mut p = chatting(start);
        for (room, code) in [
            ("#public", ErrorCode::NotAMember),
            ("#nowhere", ErrorCode::NoSuchRoom),
        ] {
            p.handle(
                Event::Client(ClientMessage::SendRoom {
                    client_id: 5,
                    room: RoomName::new(room).unwrap(),
                    text: text("hi"),
                }),
                start,
            );
            let actions = drain(&mut p);
            assert!(
                matches!(actions[..], [ref a] if is_send_failed(a, 5, code)),
                "{room}: {actions:?}"
            );
        }
    }

    #[test]
    fn a_device_named_before_login_is_kept_and_cannot_change_after() {
        let start = Instant::now();
        let mut p = new_policy(start);
        assert_eq!(p.device(), &DeviceClaim::default());
        let phone = DeviceName::new("phone").unwrap();
        p.handle(
            Event::Client(ClientMessage::SetDevice {
                id: 42,
                name: phone.clone(),
            }),
            start,
        );
        assert!(drain(&mut p).is_empty(), "no answer, no token");
        assert_eq!(p.device().id, 42);
        let mut p = chatting(start);
        // `chatting` logged in as device 1: renaming it is allowed ...
        p.handle(
            Event::Client(ClientMessage::SetDevice {
                id: 1,
                name: phone.clone(),
            }),
            start,
        );
        assert!(matches!(drain(&mut p)[..], [Action::RenameDevice(_)]));
        // ... becoming another device is not.
        p.handle(
            Event::Client(ClientMessage::SetDevice { id: 2, name: phone }),
            start,
        );
        assert!(is_error(&drain(&mut p)[0], ErrorCode::InvalidMessage));
        // Devices are for the logged in.
        let mut p = new_policy(start);
        p.handle(Event::Client(ClientMessage::ListDevices), start);
        assert!(is_error(&drain(&mut p)[0], ErrorCode::NotLoggedIn));
    }

    #[test]
    fn room_requests_have_their_own_rate_and_cost_no_chat_tokens() {
        let start = Instant::now();
        let mut p = chatting(start);
        let join = || {
            Event::Client(ClientMessage::JoinRoom {
                room: RoomName::new("#public").unwrap(),
            })
        };
        for _ in 0..10 {
            p.handle(join(), start);
            assert!(matches!(
                drain(&mut p)[..],
                [Action::Room {
                    request: RoomRequest::Join { .. },
                    ..
                }]
            ));
        }
        p.handle(join(), start);
        assert!(is_error(&drain(&mut p)[0], ErrorCode::RateLimited));
        // One per second after the burst of 10.
        p.handle(join(), start + secs(1));
        assert!(matches!(drain(&mut p)[..], [Action::Room { .. }]));
        // The chat bucket is untouched.
        p.handle(send_room(1), start + secs(1));
        assert!(matches!(drain(&mut p)[..], [Action::Store { .. }]));
        // Listing rooms is a chat-rate request.
        p.handle(
            Event::Client(ClientMessage::ListRooms {
                filter: RoomFilter::default(),
            }),
            start + secs(1),
        );
        assert!(matches!(drain(&mut p)[..], [Action::ListRooms(_)]));
    }

    #[test]
    fn the_login_phase_costs_no_chat_tokens() {
        let start = Instant::now();
        let mut p = new_policy(start);
        for _ in 0..4 {
            p.handle(login("Alice"), start);
            drain(&mut p);
            p.handle(
                Event::Authenticated(Err(AuthError::Failed(AuthFailure::LoginFailed))),
                start,
            );
            drain(&mut p);
        }
        p.handle(login("Alice"), start);
        drain(&mut p);
        p.handle(
            Event::Authenticated(Ok(AuthAnswer::LoggedIn(logged_in("Alice")))),
            start,
        );
        drain(&mut p);
        for id in 1..=u64::from(RATE) {
            p.handle(send_room(id), start);
            let store = only_store(&mut p);
            p.handle(stored(store, id, true), start);
            drain(&mut p);
        }
    }

    #[test]
    fn a_direct_message_is_stored_then_delivered_to_the_recipient_only() {
        let start = Instant::now();
        let mut p = chatting(start);
        p.handle(
            Event::Client(ClientMessage::SendDirect {
                client_id: 9,
                to: name("bob"),
                text: text("psst"),
            }),
            start,
        );
        let store = only_store(&mut p);
        let Action::Store {
            destination: Destination::Direct { a, b },
            message,
            ..
        } = &store
        else {
            panic!("{store:?}");
        };
        assert_eq!((a.as_str(), b.as_str()), ("alice", "bob"));
        assert_eq!(
            (message.from.as_str(), message.to.as_deref()),
            ("Alice", Some("Bob"))
        );
        assert_eq!(message.client_id, Some(9));
        p.handle(stored(store, 4, true), start);
        let actions = drain(&mut p);
        assert!(
            matches!(
                &actions[..],
                [
                    Action::Deliver {
                        to,
                        message: ServerMessage::DirectMessage { id: 4, .. }
                    },
                    Action::Send(ServerMessage::Stored { client_id: 9, id: 4, .. })
                ] if to == "bob"
            ),
            "{actions:?}"
        );
    }

    #[test]
    fn a_direct_message_to_oneself_or_to_nobody_is_refused_without_storing() {
        let start = Instant::now();
        let mut p = chatting(start);
        for (id, to, code) in [
            (1, "ALICE", ErrorCode::InvalidMessage),
            (2, "Mallory", ErrorCode::UnknownRecipient),
        ] {
            p.handle(
                Event::Client(ClientMessage::SendDirect {
                    client_id: id,
                    to: name(to),
                    text: text("hi"),
                }),
                start,
            );
            let actions = drain(&mut p);
            assert!(
                matches!(&actions[..], [a] if is_send_failed(a, id, code)),
                "{actions:?}"
            );
        }
    }

    #[test]
    fn a_message_that_cannot_be_stored_reaches_nobody_and_the_sender_is_told() {
        let start = Instant::now();
        let mut p = chatting(start);
        p.handle(send_room(3), start);
        let store = only_store(&mut p);
        p.handle(store_failed(store), start);
        let actions = drain(&mut p);
        assert!(
            matches!(&actions[..], [a] if is_send_failed(a, 3, ErrorCode::Internal)),
            "{actions:?}"
        );
    }

    #[test]
    fn a_resend_is_acknowledged_but_not_delivered_again() {
        let start = Instant::now();
        let mut p = chatting(start);
        p.handle(send_room(3), start);
        let store = only_store(&mut p);
        p.handle(stored(store, 17, false), start);
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Send(ServerMessage::Stored {
                client_id: 3,
                id: 17,
                ..
            })]
        ));
    }

    #[test]
    fn login_requests_after_login_are_answered_already_logged_in() {
        let start = Instant::now();
        let mut p = chatting(start);
        p.handle(login("Bob"), start);
        assert!(is_error(&drain(&mut p)[0], ErrorCode::AlreadyLoggedIn));
    }

    // ---- liveness ----

    #[test]
    fn a_silent_client_is_pinged_then_ended_as_idle() {
        let start = Instant::now();
        let mut p = chatting(start);
        let timed = silence(&mut p, start, secs(600));
        assert!(
            matches!(
                &timed[..],
                [(ping_at, Action::Ping), (dead_at, Action::Close(End::Idle))]
                    if *ping_at == PING_INTERVAL && *dead_at == IDLE_TIMEOUT
            ),
            "{timed:?}"
        );
        assert!(is_goodbye(End::Idle, GoodbyeReason::IdleTimeout));
        assert_eq!(End::Idle.leave_reason(), LeaveReason::Disconnected);
    }

    #[test]
    fn the_servers_own_sending_postpones_neither_the_ping_nor_the_idle_end() {
        let start = Instant::now();
        let mut p = chatting(start);
        // The client's last word, at start: a message whose storing is slow.
        p.handle(send_room(1), start);
        let store = only_store(&mut p);
        // The history answers 25 s later and the ack goes out: that is us
        // sending, not the client speaking.
        p.handle(stored(store, 1, true), start + secs(25));
        assert!(!drain(&mut p).is_empty());
        // Nor does our own Ping.
        assert_eq!(p.poll_timeout(), Some(start + PING_INTERVAL));
        p.handle_timeout(start + PING_INTERVAL);
        assert!(matches!(drain(&mut p)[..], [Action::Ping]));
        assert_eq!(p.poll_timeout(), Some(start + IDLE_TIMEOUT));
        p.handle_timeout(start + IDLE_TIMEOUT);
        assert!(matches!(drain(&mut p)[..], [Action::Close(End::Idle)]));
    }

    #[test]
    fn a_pong_or_any_client_message_restarts_the_silence_clock() {
        let start = Instant::now();
        let mut p = chatting(start);
        p.handle_timeout(start + PING_INTERVAL);
        assert!(matches!(drain(&mut p)[..], [Action::Ping]));
        let pong = start + secs(50);
        p.handle(Event::Client(ClientMessage::Pong { nonce: 1 }), pong);
        assert!(drain(&mut p).is_empty());
        assert_eq!(p.poll_timeout(), Some(pong + PING_INTERVAL));
        // Then a room message (not a Pong) is enough too.
        let spoke = pong + secs(10);
        p.handle(send_room(1), spoke);
        drain(&mut p);
        // Pinged again 30 s after it spoke, ended 120 s after: not at the
        // first silence's 120 s.
        let timed = silence(&mut p, start, secs(600));
        assert!(
            matches!(
                &timed[..],
                [(ping_at, Action::Ping), (dead_at, Action::Close(End::Idle))]
                    if start + *ping_at == spoke + PING_INTERVAL
                        && start + *dead_at == spoke + IDLE_TIMEOUT
            ),
            "{timed:?}"
        );
    }

    #[test]
    fn a_ping_from_the_client_is_answered_with_its_nonce() {
        let start = Instant::now();
        let mut p = chatting(start);
        p.handle(Event::Client(ClientMessage::Ping { nonce: 42 }), start);
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Send(ServerMessage::Pong { nonce: 42 })]
        ));
    }

    #[test]
    fn a_session_with_nothing_to_do_holds_no_action_queue() {
        let start = Instant::now();
        let mut p = chatting(start);
        p.handle(Event::Client(ClientMessage::Ping { nonce: 1 }), start);
        assert!(p.actions.capacity() > 0);
        drain(&mut p);
        assert_eq!(p.actions.capacity(), 0);
    }

    // ---- ends ----

    #[test]
    fn shutdown_closes_in_either_phase_and_nothing_follows() {
        let start = Instant::now();
        for mut p in [new_policy(start), chatting(start)] {
            p.handle(Event::Shutdown, start);
            assert!(matches!(drain(&mut p)[..], [Action::Close(End::Shutdown)]));
            assert_eq!(p.poll_timeout(), None);
            p.handle(send_room(1), start);
            p.handle_timeout(start + secs(600));
            assert!(drain(&mut p).is_empty());
        }
        assert!(is_goodbye(End::Shutdown, GoodbyeReason::ServerShutdown));
        assert_eq!(End::Shutdown.leave_reason(), LeaveReason::ServerShutdown);
    }

    #[test]
    fn a_kick_ends_the_session_with_its_reason() {
        let start = Instant::now();
        for (kick, end, reason) in [
            (
                Kick::SlowConsumer,
                End::SlowConsumer,
                GoodbyeReason::SlowConsumer,
            ),
            (Kick::Replaced, End::Replaced, GoodbyeReason::Replaced),
            (
                Kick::Disabled,
                End::Disabled,
                GoodbyeReason::AccountDisabled,
            ),
            (Kick::Ended, End::Ended, GoodbyeReason::SessionEnded),
        ] {
            let mut p = chatting(start);
            p.handle(Event::Kicked(kick), start);
            let actions = drain(&mut p);
            assert!(
                matches!(actions[..], [Action::Close(e)] if e == end),
                "{actions:?}"
            );
            assert!(is_goodbye(end, reason));
            assert_eq!(end.leave_reason(), LeaveReason::Disconnected);
        }
        // The hub's shutdown kick ends a logged-in session as a shutdown.
        let mut p = chatting(start);
        p.handle(Event::Kicked(Kick::Shutdown), start);
        let actions = drain(&mut p);
        assert!(
            matches!(actions[..], [Action::Close(End::Shutdown)]),
            "{actions:?}"
        );
    }

    #[test]
    fn how_a_logged_in_connection_ends_decides_what_the_others_are_told() {
        let start = Instant::now();
        for (how, end, leave) in [
            (Disconnect::Clean, End::Exit, LeaveReason::Exit),
            (Disconnect::Dropped, End::Dropped, LeaveReason::Dropped),
            (Disconnect::PeerAborted, End::Dropped, LeaveReason::Dropped),
            (
                Disconnect::Violated,
                End::Violation,
                LeaveReason::Disconnected,
            ),
        ] {
            let mut p = chatting(start);
            p.handle(Event::Disconnected(how), start);
            let actions = drain(&mut p);
            assert!(
                matches!(actions[..], [Action::Close(e)] if e == end),
                "{how:?}: {actions:?}"
            );
            assert_eq!(end.leave_reason(), leave);
        }
        let mut p = chatting(start);
        p.handle(Event::Client(ClientMessage::Goodbye), start);
        assert!(matches!(drain(&mut p)[..], [Action::Close(End::Exit)]));
        assert!(is_goodbye(End::Exit, GoodbyeReason::ClientRequest));
    }

    fn login_start() -> Event {
        Event::Client(ClientMessage::LoginStart {
            username: name("Alice"),
            request: Box::new([1; 96]),
        })
    }

    fn login_finish() -> Event {
        Event::Client(ClientMessage::LoginFinish {
            finalization: Box::new([2; 64]),
        })
    }

    fn answered_with_pending(p: &mut Policy, now: Instant) {
        p.handle(
            Event::Authenticated(Ok(AuthAnswer::Continue {
                reply: ServerMessage::LegacyLoginRequired,
                pending: Some(Pending::registration_for_tests(name("Alice"))),
            })),
            now,
        );
        assert!(matches!(
            drain(p)[..],
            [Action::Send(ServerMessage::LegacyLoginRequired)]
        ));
    }

    #[test]
    fn pings_between_an_opaque_start_and_its_finish_keep_the_exchange() {
        let start = Instant::now();
        let mut p = new_policy(start);
        p.handle(login_start(), start);
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Authenticate(AuthRequest::LoginStart { .. })]
        ));
        answered_with_pending(&mut p, start);
        p.handle(Event::Client(ClientMessage::Ping { nonce: 3 }), start);
        p.handle(Event::Client(ClientMessage::Pong { nonce: 4 }), start);
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Send(ServerMessage::Pong { nonce: 3 })]
        ));
        p.handle(login_finish(), start);
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Authenticate(AuthRequest::LoginFinish {
                pending: Some(_),
                ..
            })]
        ));
    }

    #[test]
    fn another_request_abandons_an_unfinished_exchange_and_finishes_cost_no_token() {
        let start = Instant::now();
        let mut p = new_policy(start);
        p.handle(login_start(), start);
        drain(&mut p);
        answered_with_pending(&mut p, start);
        // A second start: the first exchange is over (already counted).
        p.handle(login_start(), start);
        drain(&mut p);
        p.handle(Event::Authenticated(Err(AuthError::Malformed)), start);
        assert!(is_error(&drain(&mut p)[0], ErrorCode::InvalidMessage));
        // Its finish finds nothing pending, and ten finishes in a row are
        // not rate limited (their starts paid).
        for _ in 0..10 {
            p.handle(login_finish(), start);
            assert!(matches!(
                drain(&mut p)[..],
                [Action::Authenticate(AuthRequest::LoginFinish {
                    pending: None,
                    ..
                })]
            ));
            p.handle(Event::Authenticated(Err(AuthError::OutOfOrder)), start);
            assert!(is_error(&drain(&mut p)[0], ErrorCode::InvalidMessage));
        }
    }

    #[test]
    fn a_password_change_is_for_the_logged_in_user_only_and_takes_a_login_token() {
        let start = Instant::now();
        let change = || {
            Event::Client(ClientMessage::ChangePasswordStart {
                request: Box::new([1; 96]),
                registration_request: Box::new([1; 32]),
            })
        };
        // Not logged in: refused like chat.
        let mut stranger = new_policy(start);
        stranger.handle(change(), start);
        assert!(is_error(&drain(&mut stranger)[0], ErrorCode::NotLoggedIn));
        // Logged in: for Alice (from the session, never from the message),
        // from the login's bucket of five (the login took one), then rate
        // limited.
        let mut p = chatting(start);
        for _ in 0..4 {
            p.handle(change(), start);
            let actions = drain(&mut p);
            assert!(
                matches!(
                    &actions[..],
                    [Action::Authenticate(AuthRequest::ChangePasswordStart { canonical, .. })]
                        if canonical == "alice"
                ),
                "{actions:?}"
            );
            p.handle(
                Event::Authenticated(Err(AuthError::Failed(AuthFailure::LoginFailed))),
                start,
            );
            drain(&mut p);
        }
        p.handle(change(), start);
        assert!(is_error(&drain(&mut p)[0], ErrorCode::RateLimited));
        // The answer that ends a change in the chat phase is sent as is.
        p.handle(
            Event::Authenticated(Ok(AuthAnswer::PasswordChanged {
                reply: ServerMessage::PasswordChanged {
                    resume_token: ResumeToken::from_bytes([5; 32]),
                    token_lifetime_secs: 60,
                },
            })),
            start,
        );
        assert!(matches!(
            drain(&mut p)[..],
            [Action::Send(ServerMessage::PasswordChanged { .. })]
        ));
    }
}
