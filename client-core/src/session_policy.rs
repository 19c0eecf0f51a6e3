//! The client's session policy, sans-IO: everything the client decides,
//! with no sockets, no tokio and no clock (every input takes `now`).
//!
//! It owns the liveness clock (Ping after 45 s of silence, dead at 90 s:
//! [`proto_core::liveness`], the same policy the server runs), the quit
//! grace (leave once the outbox is acknowledged, or after 5 s), the
//! reconnect backoff timer, the outbox and its resends, the dedupe of seen
//! message ids, and the mapping of server messages to [`ClientEvent`]s.
//! The tokio driver (`runner.rs`) only moves bytes, channels and time.
//!
//! ## Run-loop contract (as quinn's `Connection`)
//! 1. Call [`SessionPolicy::start`] once and carry out its actions.
//! 2. Feed every input to [`SessionPolicy::handle`] and carry out the
//!    [`Action`]s it returns, in order.
//! 3. Wake up at [`SessionPolicy::poll_timeout`] and call
//!    [`SessionPolicy::handle_timeout`]; recompute the timeout after every
//!    call (an early wake-up does nothing).
//! 4. Stop after [`Action::Finish`]; later inputs are ignored.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use proto_core::liveness::{Liveness, LivenessAction, SilenceLimits};
use proto_core::message::{
    ClientMessage, Conversation, ErrorCode, GoodbyeReason, MemberInfos, MessageText, ResumeToken,
    RoomFilter, RoomName, ServerMessage, Topic, Username,
};
use rand_core::RngCore;

use crate::backoff::Backoff;
use crate::cause::{CloseCause, RetryCause, ServerRefusal};
use crate::connect::AttemptError;
use crate::events::{
    ChatLine, ClientEvent, ConnectionState, ConversationRef, Delivery, DeviceView, MemberView,
    NoticeKind, RoomListing, RoomView, MAX_MEMBERS_SHOWN,
};
use crate::input::{AdminCommand, Input, Moderation, HELP_TEXT};
use crate::outbox::{Outbox, Target};

/// How long leaving waits for the acknowledgement of messages in flight.
pub const QUIT_GRACE: Duration = Duration::from_secs(5);
/// The client's silence limits: ping a quiet server after 45 s, give it
/// up after 90 s.
pub const SILENCE_LIMITS: SilenceLimits = SilenceLimits {
    ping_after: Duration::from_secs(45),
    dead_after: Duration::from_secs(90),
};
/// Message ids remembered to drop duplicates (history/live overlap at login).
const SEEN_IDS: usize = 2048;

/// What the policy is told.
#[derive(Debug)]
pub enum Event {
    /// What the user typed, parsed ([`Input::Quit`] leaves).
    Input(Input),
    /// The user leaves (or the UI went away).
    Quit,
    /// The attempt asked for by [`Action::Connect`] logged in.
    LoggedIn {
        username: String,
        token: ResumeToken,
    },
    /// The attempt asked for by [`Action::Connect`] failed.
    AttemptFailed(AttemptError),
    /// The password changed: this is the session's token now (the old one
    /// was revoked with every other).
    TokenReplaced(ResumeToken),
    /// A message from the server.
    Received(ServerMessage),
    /// The connection closed or failed (reading or writing).
    ConnectionLost(RetryCause),
}

/// What the driver must do, in order.
#[derive(Debug)]
pub enum Action {
    /// Tell the UI.
    Emit(ClientEvent),
    /// Connect and log in: resume with `resume` if given (then the
    /// password), and register only if `register` (before the first login).
    Connect {
        resume: Option<ResumeToken>,
        register: bool,
    },
    /// Send on the logged-in session.
    Send(ClientMessage),
    /// Say Goodbye and close the session.
    CloseSession,
    /// Drop the session without a word (it is dead).
    DropSession,
    /// The client ended: report `Offline` and `Closed` and stop.
    Finish(CloseCause),
}

#[derive(Debug)]
enum State {
    /// An attempt is under way.
    Connecting,
    Online {
        liveness: Liveness,
        /// Set when the user left while messages were in flight: leave once
        /// they are acknowledged, or at this instant.
        leaving: Option<Instant>,
    },
    /// Reconnecting at `until`.
    Waiting {
        until: Instant,
    },
    Finished,
}

/// The settings a policy runs with.
#[derive(Debug, Clone, Copy)]
pub struct PolicyConfig {
    pub limits: SilenceLimits,
    /// Reconnect after a drop (off for one-shot scripts).
    pub reconnect: bool,
    pub quit_grace: Duration,
}

impl PolicyConfig {
    /// The client's limits, reconnecting or not.
    pub fn new(reconnect: bool) -> Self {
        Self {
            limits: SILENCE_LIMITS,
            reconnect,
            quit_grace: QUIT_GRACE,
        }
    }
}

/// One client's session policy (see the module docs).
pub struct SessionPolicy {
    config: PolicyConfig,
    state: State,
    backoff: Backoff,
    /// Randomness for backoff jitter (injected: tests fix it).
    rng: Box<dyn RngCore + Send>,
    /// Wall-clock milliseconds at `epoch` (for own lines and Ping nonces).
    epoch: Instant,
    epoch_ms: u64,
    logged_in_once: bool,
    token: Option<ResumeToken>,
    /// Messages typed here that the server has not acknowledged.
    outbox: Outbox,
    me: String,
    online_pages: Vec<String>,
    room_list_pages: Vec<RoomListing>,
    /// A `/join` waiting for its answer: if the room does not exist, it
    /// is created.
    pending_join: Option<RoomName>,
    /// Per room (canonical name): the oldest and newest message ids this
    /// client has, for `/history` and read markers.
    room_span: std::collections::HashMap<String, (u64, u64)>,
    /// Per direct-message partner (canonical name): the same, for
    /// `/history`.
    direct_span: std::collections::HashMap<String, (u64, u64)>,
    /// The chunks of a `HistoryPage` answer so far.
    page_lines: Vec<ChatLine>,
    /// A `/names` answer so far: the room (canonical) and its members.
    member_pages: Option<(String, Vec<MemberView>)>,
    /// Whether each user (canonical) was last told online or offline in
    /// this session: presence comes once per shared room.
    presence: std::collections::HashMap<String, bool>,
    seen: VecDeque<u64>,
    seen_set: HashSet<u64>,
}

impl std::fmt::Debug for SessionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPolicy")
            .field("state", &self.state)
            .field("me", &self.me)
            .field("pending", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

impl SessionPolicy {
    /// A policy at `now`, when the wall clock reads `unix_ms`.
    pub fn new(
        config: PolicyConfig,
        now: Instant,
        unix_ms: u64,
        mut rng: Box<dyn RngCore + Send>,
    ) -> Self {
        // Random, so that ids from an earlier run (whose messages the
        // server still remembers) differ.
        let first_client_id = rng.next_u64();
        Self {
            config,
            state: State::Connecting,
            backoff: Backoff::default(),
            rng,
            epoch: now,
            epoch_ms: unix_ms,
            logged_in_once: false,
            token: None,
            outbox: Outbox::new(first_client_id),
            me: String::new(),
            online_pages: Vec::new(),
            room_list_pages: Vec::new(),
            pending_join: None,
            room_span: std::collections::HashMap::new(),
            direct_span: std::collections::HashMap::new(),
            page_lines: Vec::new(),
            member_pages: None,
            presence: std::collections::HashMap::new(),
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
        }
    }

    // ---- getters

    /// Messages typed here and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.outbox.len()
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Online { liveness, leaving } => Some(match leaving {
                Some(at) => (*at).min(liveness.poll_timeout()),
                None => liveness.poll_timeout(),
            }),
            State::Waiting { until } => Some(*until),
            State::Connecting | State::Finished => None,
        }
    }

    // ---- inputs

    /// The first attempt.
    #[must_use]
    pub fn start(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.connect(&mut out);
        out
    }

    #[must_use]
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Input(Input::Quit) | Event::Quit => self.quit(now, &mut out),
            Event::Input(input) => self.input(input, now, &mut out),
            Event::LoggedIn { username, token } => self.logged_in(username, token, now, &mut out),
            Event::AttemptFailed(error) => self.attempt_failed(error, now, &mut out),
            Event::TokenReplaced(token) => self.token = Some(token),
            Event::Received(msg) => {
                if let State::Online { liveness, .. } = &mut self.state {
                    liveness.handle_heard(now);
                    self.on_message(msg, now, &mut out);
                }
            }
            Event::ConnectionLost(cause) => {
                if matches!(self.state, State::Online { .. }) {
                    self.lost(cause.into(), now, &mut out);
                }
            }
        }
        out
    }

    /// Time passed: quit grace, Ping, dead server, reconnect.
    #[must_use]
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match &mut self.state {
            State::Online {
                leaving: Some(at), ..
            } if now >= *at => {
                // Report what the server never confirmed, then go.
                for pending in self.outbox.unacknowledged() {
                    out.push(Action::Emit(ClientEvent::Delivery {
                        client_id: pending.client_id,
                        delivery: Delivery::Unconfirmed,
                    }));
                }
                out.push(Action::CloseSession);
                self.finish(CloseCause::Left, &mut out);
            }
            State::Online { liveness, .. } => match liveness.handle_timeout(now) {
                LivenessAction::Wait => {}
                LivenessAction::Ping => out.push(Action::Send(ClientMessage::Ping {
                    nonce: self.unix_ms(now),
                })),
                LivenessAction::Dead => {
                    out.push(Action::DropSession);
                    self.lost(RetryCause::ServerSilent.into(), now, &mut out);
                }
            },
            State::Waiting { until } if now >= *until => self.connect(&mut out),
            State::Waiting { .. } | State::Connecting | State::Finished => {}
        }
        out
    }

    // ---- transitions

    fn connect(&mut self, out: &mut Vec<Action>) {
        self.state = State::Connecting;
        out.push(emit_state(ConnectionState::Connecting));
        out.push(Action::Connect {
            resume: self.token.take(),
            // Later logins use the password, never register again.
            register: !self.logged_in_once,
        });
    }

    fn logged_in(
        &mut self,
        username: String,
        token: ResumeToken,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if !matches!(self.state, State::Connecting) {
            return;
        }
        self.backoff.reset();
        self.logged_in_once = true;
        self.token = Some(token);
        self.me = username.clone();
        self.presence.clear();
        out.push(emit_state(ConnectionState::Connected));
        out.push(Action::Emit(ClientEvent::LoggedIn { username }));
        // Whatever the server has not acknowledged, oldest first, with the
        // same client ids: it stores and delivers each only once.
        out.extend(self.outbox.unacknowledged().map(|p| Action::Send(p.wire())));
        self.state = State::Online {
            liveness: Liveness::new(self.config.limits, now),
            leaving: None,
        };
    }

    fn attempt_failed(&mut self, error: AttemptError, now: Instant, out: &mut Vec<Action>) {
        if !matches!(self.state, State::Connecting) {
            return;
        }
        match error {
            AttemptError::Fatal(cause) => self.finish(cause.into(), out),
            // Before the first login the user is at the login form: tell
            // them now instead of retrying forever.
            AttemptError::Retry(cause) if !self.logged_in_once || !self.config.reconnect => {
                self.finish(cause.into(), out)
            }
            AttemptError::Retry(cause) => self.lost(cause.into(), now, out),
        }
    }

    /// The session or an attempt failed: reconnect later, or end.
    fn lost(&mut self, cause: CloseCause, now: Instant, out: &mut Vec<Action>) {
        if !self.config.reconnect {
            return self.finish(cause, out);
        }
        out.push(Action::Emit(ClientEvent::ConnectionLost {
            cause,
            unconfirmed: self.outbox.len(),
        }));
        let delay = self.backoff.next_delay(&mut *self.rng);
        out.push(emit_state(ConnectionState::Reconnecting {
            in_secs: delay.as_secs().max(1),
            attempt: self.backoff.attempt(),
        }));
        self.state = State::Waiting { until: now + delay };
    }

    fn quit(&mut self, now: Instant, out: &mut Vec<Action>) {
        match &mut self.state {
            State::Online { leaving: None, .. } if self.outbox.is_empty() => {
                out.push(Action::CloseSession);
                self.finish(CloseCause::Left, out);
            }
            State::Online { leaving, .. } => {
                leaving.get_or_insert(now + self.config.quit_grace);
            }
            State::Connecting | State::Waiting { .. } => self.finish(CloseCause::Left, out),
            State::Finished => {}
        }
    }

    fn finish(&mut self, cause: CloseCause, out: &mut Vec<Action>) {
        self.state = State::Finished;
        out.push(Action::Finish(cause));
    }

    /// Leaves once the last message in flight is acknowledged.
    fn leave_if_settled(&mut self, out: &mut Vec<Action>) {
        if let State::Online {
            leaving: Some(_), ..
        } = self.state
        {
            if self.outbox.is_empty() {
                out.push(Action::CloseSession);
                self.finish(CloseCause::Left, out);
            }
        }
    }

    // ---- input

    fn input(&mut self, input: Input, now: Instant, out: &mut Vec<Action>) {
        match &self.state {
            // Leaving: nothing new goes out.
            State::Online {
                leaving: Some(_), ..
            }
            | State::Finished => {}
            State::Online { leaving: None, .. } => match input {
                input @ (Input::Room { .. } | Input::Direct { .. }) => {
                    if let Some(wire) = self.take_message(input, now, out) {
                        out.push(Action::Send(wire));
                    }
                }
                Input::Who => out.push(Action::Send(ClientMessage::WhoIsOnline)),
                Input::Join(name) => {
                    if let Some(room) = room_name(&name, out) {
                        self.pending_join = Some(room.clone());
                        out.push(Action::Send(ClientMessage::JoinRoom { room }));
                    }
                }
                Input::Part(name) => {
                    if let Some(room) = room_name(&name, out) {
                        out.push(Action::Send(ClientMessage::LeaveRoom { room }));
                    }
                }
                Input::Names(name) => {
                    if let Some(room) = room_name(&name, out) {
                        self.member_pages = Some((room.canonical(), Vec::new()));
                        out.push(Action::Send(ClientMessage::Members { room, offset: 0 }));
                    }
                }
                Input::List(filter) => match RoomFilter::new(&filter) {
                    Ok(filter) => out.push(Action::Send(ClientMessage::ListRooms { filter })),
                    Err(e) => notice(out, NoticeKind::Error, format!("not sent: filter {e}")),
                },
                Input::Moderate { room, action } => {
                    if let Some(wire) = moderation_message(&room, action, out) {
                        out.push(Action::Send(wire));
                    }
                }
                Input::Admin(command) => {
                    if let Some(wire) = admin_message(command, out) {
                        out.push(Action::Send(wire));
                    }
                }
                Input::Devices => out.push(Action::Send(ClientMessage::ListDevices)),
                Input::History {
                    conversation,
                    count,
                } => {
                    let (conversation, span) = match conversation {
                        ConversationRef::Room(room) => {
                            let Some(room) = room_name(&room, out) else {
                                return;
                            };
                            let span = self.room_span.get(&room.canonical());
                            (Conversation::Room { room }, span)
                        }
                        ConversationRef::Direct(partner) => {
                            let Some(peer) = user_name(&partner, out) else {
                                return;
                            };
                            let span = self.direct_span.get(&peer.canonical());
                            (Conversation::Direct { peer }, span)
                        }
                    };
                    out.push(Action::Send(ClientMessage::History {
                        conversation,
                        before_id: span.map_or(0, |&(oldest, _)| oldest),
                        limit: count,
                    }));
                }
                Input::MarkRead {
                    conversation,
                    up_to_id,
                } => {
                    // Dropped quietly when malformed or nothing is known:
                    // a marker is a hint, the next one says it again.
                    let (conversation, span) = match conversation {
                        ConversationRef::Room(room) => {
                            let Ok(room) = RoomName::parse_normalizing(&room) else {
                                return;
                            };
                            let span = self.room_span.get(&room.canonical()).copied();
                            (Conversation::Room { room }, span)
                        }
                        ConversationRef::Direct(partner) => {
                            let Ok(peer) = Username::parse_normalizing(&partner) else {
                                return;
                            };
                            let span = self.direct_span.get(&peer.canonical()).copied();
                            (Conversation::Direct { peer }, span)
                        }
                    };
                    if let Some(up_to_id) = up_to_id.or(span.map(|(_, newest)| newest)) {
                        out.push(Action::Send(ClientMessage::MarkRead {
                            conversation,
                            up_to_id,
                        }));
                    }
                }
                Input::LogoutDevice(id) => {
                    out.push(Action::Send(ClientMessage::LogoutDevice { id }));
                }
                other => local_input(other, out),
            },
            // Offline: local commands answer, messages wait in the outbox
            // (shown as pending) for the reconnect.
            State::Connecting | State::Waiting { .. } => match input {
                input @ (Input::Room { .. } | Input::Direct { .. }) => {
                    if self.take_message(input, now, out).is_some() {
                        notice(
                            out,
                            NoticeKind::Info,
                            "not connected: message queued, it will be sent after reconnecting",
                        );
                    }
                }
                Input::Who
                | Input::Join(_)
                | Input::Part(_)
                | Input::Names(_)
                | Input::List(_)
                | Input::Moderate { .. }
                | Input::Admin(_)
                | Input::Devices
                | Input::LogoutDevice(_)
                | Input::History { .. } => {
                    notice(out, NoticeKind::Error, "not connected");
                }
                // Read while offline: the next one after reconnecting says it.
                Input::MarkRead { .. } => {}
                other => local_input(other, out),
            },
        }
    }

    /// Validates a typed message, puts it in the outbox and shows it as
    /// pending; returns what to send, or `None` (and says why) if refused.
    fn take_message(
        &mut self,
        input: Input,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Option<ClientMessage> {
        let (to, text) = match input {
            Input::Room { room, text } => (Target::Room(room_name(&room, out)?), text),
            Input::Direct { to, text } => match Username::parse_normalizing(&to) {
                Ok(to) => (Target::Direct(to), text),
                Err(e) => {
                    notice(
                        out,
                        NoticeKind::Error,
                        format!("not sent: invalid name: {e}"),
                    );
                    return None;
                }
            },
            _ => return None,
        };
        let wire_text = match MessageText::new(&text) {
            Ok(t) => t,
            Err(e) => {
                notice(out, NoticeKind::Error, format!("not sent: {e}"));
                return None;
            }
        };
        let pending = match self.outbox.push(to, wire_text) {
            Ok(p) => p,
            Err(full) => {
                notice(out, NoticeKind::Error, format!("not sent: {full}"));
                return None;
            }
        };
        let (client_id, wire) = (pending.client_id, pending.wire());
        let (room, to) = match &pending.to {
            Target::Room(room) => (Some(room.as_str().to_owned()), None),
            Target::Direct(to) => (None, Some(to.as_str().to_owned())),
        };
        let line = ChatLine {
            id: 0,
            timestamp_ms: self.unix_ms(now),
            from: self.me.clone(),
            text,
            history: false,
            own: true,
            client_id: Some(client_id),
            room,
            to,
        };
        out.push(Action::Emit(if line.room.is_some() {
            ClientEvent::Room(line)
        } else {
            ClientEvent::Direct(line)
        }));
        Some(wire)
    }

    // ---- server messages

    /// Widens a room's known span of ids by `id`.
    fn note_room_id(&mut self, room: &RoomName, id: u64) {
        widen(
            self.room_span.entry(room.canonical()).or_insert((id, id)),
            id,
        );
    }

    /// Widens a direct conversation's known span of ids by `id`.
    fn note_direct_id(&mut self, partner: &Username, id: u64) {
        let span = self.direct_span.entry(partner.canonical());
        widen(span.or_insert((id, id)), id);
    }

    /// One page of a `/names` answer: kept, and the next asked for until
    /// the room's count (or [`MAX_MEMBERS_SHOWN`]) is reached; pages
    /// nobody asked for, or out of order, are dropped.
    fn member_page(
        &mut self,
        room: RoomName,
        offset: u32,
        total: u32,
        members: MemberInfos,
        out: &mut Vec<Action>,
    ) {
        let Some((asked, so_far)) = &mut self.member_pages else {
            return;
        };
        if *asked != room.canonical() || usize::try_from(offset).ok() != Some(so_far.len()) {
            return;
        }
        let got = members.len();
        so_far.extend(members.into_vec().into_iter().map(|m| MemberView {
            name: m.user.as_str().to_owned(),
            role: m.role,
            online: m.online,
        }));
        let wanted = usize::try_from(total).unwrap_or(usize::MAX);
        if got > 0 && so_far.len() < wanted.min(MAX_MEMBERS_SHOWN) {
            let offset = u32::try_from(so_far.len()).unwrap_or(u32::MAX);
            out.push(Action::Send(ClientMessage::Members { room, offset }));
            return;
        }
        if let Some((_, members)) = self.member_pages.take() {
            out.push(Action::Emit(ClientEvent::Members {
                room: room.as_str().to_owned(),
                members,
                total,
            }));
        }
    }

    /// A stored message as a line (replayed or paged).
    fn history_line(&mut self, e: proto_core::message::HistoryEntry) -> ChatLine {
        let from = e.from.as_str().to_owned();
        let own = from == self.me;
        let (room, to) = match &e.conversation {
            Conversation::Room { room } => {
                self.note_room_id(room, e.id);
                (Some(room.as_str().to_owned()), None)
            }
            Conversation::Direct { peer } => {
                self.note_direct_id(peer, e.id);
                let to = if own {
                    peer.as_str().to_owned()
                } else {
                    self.me.clone()
                };
                (None, Some(to))
            }
        };
        ChatLine {
            id: e.id,
            timestamp_ms: e.timestamp_ms,
            from,
            room,
            to,
            text: e.text.as_str().to_owned(),
            history: true,
            own,
            client_id: None,
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

    fn on_message(&mut self, msg: ServerMessage, now: Instant, out: &mut Vec<Action>) {
        let emit = |out: &mut Vec<Action>, event| out.push(Action::Emit(event));
        match msg {
            ServerMessage::RoomMessage {
                id,
                timestamp_ms,
                room,
                from,
                text,
            } => {
                self.note_room_id(&room, id);
                if self.first_time(id) {
                    let own = from.as_str() == self.me;
                    emit(
                        out,
                        ClientEvent::Room(ChatLine {
                            id,
                            timestamp_ms,
                            from: from.as_str().to_owned(),
                            room: Some(room.as_str().to_owned()),
                            to: None,
                            text: text.as_str().to_owned(),
                            history: false,
                            own,
                            client_id: None,
                        }),
                    );
                }
            }
            ServerMessage::DirectMessage {
                id,
                timestamp_ms,
                from,
                to,
                text,
            } => {
                let partner = if from.as_str() == self.me { &to } else { &from };
                self.note_direct_id(partner, id);
                if self.first_time(id) {
                    emit(
                        out,
                        ClientEvent::Direct(ChatLine {
                            id,
                            timestamp_ms,
                            own: from.as_str() == self.me,
                            from: from.as_str().to_owned(),
                            room: None,
                            to: Some(to.as_str().to_owned()),
                            text: text.as_str().to_owned(),
                            history: false,
                            client_id: None,
                        }),
                    );
                }
            }
            ServerMessage::Presence { online, offline } => {
                // A name comes once per room shared: told once per change.
                for user in online.into_vec() {
                    if user.as_str() != self.me
                        && self.presence.insert(user.canonical(), true) != Some(true)
                    {
                        emit(
                            out,
                            ClientEvent::Joined {
                                username: user.as_str().to_owned(),
                            },
                        );
                    }
                }
                for d in offline.into_vec() {
                    if self.presence.insert(d.user.canonical(), false) != Some(false) {
                        emit(
                            out,
                            ClientEvent::Left {
                                username: d.user.as_str().to_owned(),
                                reason: d.reason,
                            },
                        );
                    }
                }
            }
            ServerMessage::OnlineUsers { more, users } => {
                for user in users.into_vec() {
                    self.presence.insert(user.canonical(), true);
                    self.online_pages.push(user.as_str().to_owned());
                }
                if !more {
                    let users = std::mem::take(&mut self.online_pages);
                    emit(out, ClientEvent::Online { users });
                }
            }
            ServerMessage::HistoryBatch { more, entries } => {
                for e in entries.into_vec() {
                    if !self.first_time(e.id) {
                        continue;
                    }
                    let line = self.history_line(e);
                    emit(
                        out,
                        if line.room.is_some() {
                            ClientEvent::Room(line)
                        } else {
                            ClientEvent::Direct(line)
                        },
                    );
                }
                if !more {
                    emit(out, ClientEvent::HistoryDone);
                }
            }
            ServerMessage::RoomJoined { info } => {
                if self
                    .pending_join
                    .as_ref()
                    .is_some_and(|r| r.same_room(&info.room))
                {
                    self.pending_join = None;
                }
                emit(
                    out,
                    ClientEvent::RoomJoined(RoomView {
                        name: info.room.as_str().to_owned(),
                        topic: info.topic.as_str().to_owned(),
                        invite_only: info.invite_only,
                        role: info.role,
                        members: info.members,
                    }),
                );
            }
            ServerMessage::RoomLeft { room, reason } => emit(
                out,
                ClientEvent::RoomLeft {
                    room: room.as_str().to_owned(),
                    reason,
                },
            ),
            ServerMessage::RoomList { more, rooms } => {
                self.room_list_pages
                    .extend(rooms.into_vec().into_iter().map(|r| RoomListing {
                        name: r.room.as_str().to_owned(),
                        topic: r.topic.as_str().to_owned(),
                        members: r.members,
                    }));
                if !more {
                    let rooms = std::mem::take(&mut self.room_list_pages);
                    emit(out, ClientEvent::RoomList { rooms });
                }
            }
            ServerMessage::MemberPage {
                room,
                offset,
                total,
                members,
            } => self.member_page(room, offset, total, members, out),
            ServerMessage::MemberJoined { room, user } => emit(
                out,
                ClientEvent::MemberJoined {
                    room: room.as_str().to_owned(),
                    user: user.as_str().to_owned(),
                },
            ),
            ServerMessage::MemberLeft { room, user, reason } => emit(
                out,
                ClientEvent::MemberLeft {
                    room: room.as_str().to_owned(),
                    user: user.as_str().to_owned(),
                    reason,
                },
            ),
            ServerMessage::RoomChanged {
                room,
                actor,
                change,
            } => emit(
                out,
                ClientEvent::RoomChanged {
                    room: room.as_str().to_owned(),
                    actor: actor.as_str().to_owned(),
                    change,
                },
            ),
            ServerMessage::Invited { room, by, topic } => emit(
                out,
                ClientEvent::Invited {
                    room: room.as_str().to_owned(),
                    by: by.as_str().to_owned(),
                    topic: topic.as_str().to_owned(),
                },
            ),
            ServerMessage::Done => notice(out, NoticeKind::Info, "done"),
            ServerMessage::HistoryPage {
                conversation,
                more,
                complete,
                entries,
            } => {
                let lines: Vec<ChatLine> = entries
                    .into_vec()
                    .into_iter()
                    .map(|e| self.history_line(e))
                    .collect();
                self.page_lines.extend(lines);
                if !more {
                    let lines = std::mem::take(&mut self.page_lines);
                    emit(
                        out,
                        ClientEvent::HistoryPage {
                            conversation: conversation_ref(&conversation),
                            lines,
                            complete,
                        },
                    );
                }
            }
            ServerMessage::ReadMarker {
                conversation,
                up_to_id,
                unread,
            } => emit(
                out,
                ClientEvent::ReadMarker {
                    conversation: conversation_ref(&conversation),
                    up_to_id,
                    unread,
                },
            ),
            ServerMessage::DeviceList { devices } => emit(
                out,
                ClientEvent::Devices {
                    devices: devices
                        .into_vec()
                        .into_iter()
                        .map(|d| DeviceView {
                            id: d.id,
                            name: d.name.as_str().to_owned(),
                            last_seen_ms: d.last_seen_ms,
                            address: d.address,
                            online: d.online,
                            current: d.current,
                        })
                        .collect(),
                },
            ),
            // `/join` of a room nobody made yet makes it.
            ServerMessage::Error {
                code: ErrorCode::NoSuchRoom,
                ..
            } if self.pending_join.is_some() => {
                if let Some(room) = self.pending_join.take() {
                    out.push(Action::Send(ClientMessage::CreateRoom {
                        room,
                        invite_only: false,
                        topic: Topic::empty(),
                    }));
                }
            }
            ServerMessage::Ping { nonce } => out.push(Action::Send(ClientMessage::Pong { nonce })),
            // Hearing it was the point (the liveness clock moved above).
            ServerMessage::Pong { .. } => {}
            ServerMessage::Stored {
                client_id,
                id,
                timestamp_ms,
            } => {
                if let Some(pending) = self.outbox.settle(client_id) {
                    match &pending.to {
                        Target::Room(room) => self.note_room_id(room, id),
                        Target::Direct(partner) => self.note_direct_id(partner, id),
                    }
                    let already_shown = !self.first_time(id);
                    emit(
                        out,
                        ClientEvent::Delivery {
                            client_id,
                            delivery: Delivery::Stored {
                                id,
                                timestamp_ms,
                                already_shown,
                            },
                        },
                    );
                    self.leave_if_settled(out);
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
                    notice(
                        out,
                        NoticeKind::Error,
                        format!("not delivered ({refusal}): {}", pending.text.as_str()),
                    );
                    emit(
                        out,
                        ClientEvent::Delivery {
                            client_id,
                            delivery: Delivery::Failed(refusal),
                        },
                    );
                    self.leave_if_settled(out);
                }
            }
            ServerMessage::Goodbye { reason } => match reason {
                GoodbyeReason::ClientRequest => self.finish(CloseCause::Left, out),
                // Another login took the session over: reconnecting would
                // take it back.
                // So did an administrator: the same.
                GoodbyeReason::Replaced
                | GoodbyeReason::AccountDisabled
                | GoodbyeReason::SessionEnded => {
                    self.finish(CloseCause::ClosedByServer(reason), out)
                }
                GoodbyeReason::ServerShutdown
                | GoodbyeReason::IdleTimeout
                | GoodbyeReason::SlowConsumer
                | GoodbyeReason::ProtocolViolation => {
                    out.push(Action::DropSession);
                    self.lost(CloseCause::ClosedByServer(reason), now, out);
                }
            },
            ServerMessage::Error { code, detail } => {
                let refusal = ServerRefusal {
                    code,
                    detail: detail.as_str().to_owned(),
                };
                notice(out, NoticeKind::Error, refusal.to_string());
            }
            // Only answers to a login, which happened before the chat,
            // or to a password change, which the driver handles.
            ServerMessage::AuthOk { .. }
            | ServerMessage::AuthFailed { .. }
            | ServerMessage::RegisterResponse { .. }
            | ServerMessage::LoginResponse { .. }
            | ServerMessage::LegacyLoginRequired
            | ServerMessage::ChangePasswordResponse { .. }
            | ServerMessage::PasswordChanged { .. } => {}
        }
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_millis();
        self.epoch_ms
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
}

fn emit_state(state: ConnectionState) -> Action {
    Action::Emit(ClientEvent::State(state))
}

fn notice(out: &mut Vec<Action>, kind: NoticeKind, text: impl Into<String>) {
    out.push(Action::Emit(ClientEvent::Notice {
        text: text.into(),
        kind,
    }));
}

/// The message for a moderator's command; `None` after saying why not.
fn moderation_message(
    room: &str,
    action: Moderation,
    out: &mut Vec<Action>,
) -> Option<ClientMessage> {
    let room = room_name(room, out)?;
    Some(match action {
        Moderation::Invite(user) => ClientMessage::Invite {
            room,
            user: user_name(&user, out)?,
        },
        Moderation::Kick { user, reason } => ClientMessage::Kick {
            room,
            user: user_name(&user, out)?,
            reason: reason_text(&reason, out)?,
        },
        Moderation::Ban {
            user,
            minutes,
            reason,
        } => ClientMessage::Ban {
            room,
            user: user_name(&user, out)?,
            reason: reason_text(&reason, out)?,
            minutes,
        },
        Moderation::Unban(user) => ClientMessage::Unban {
            room,
            user: user_name(&user, out)?,
        },
        Moderation::Topic(text) => match Topic::new(&text) {
            Ok(topic) => ClientMessage::SetTopic { room, topic },
            Err(e) => {
                notice(out, NoticeKind::Error, format!("not sent: topic {e}"));
                return None;
            }
        },
        Moderation::InviteOnly(invite_only) => ClientMessage::SetInviteOnly { room, invite_only },
        Moderation::Moderator { user, moderator } => ClientMessage::SetRole {
            room,
            user: user_name(&user, out)?,
            role: if moderator {
                proto_core::message::RoomRole::Moderator
            } else {
                proto_core::message::RoomRole::Member
            },
        },
        Moderation::Mute { user, muted } => ClientMessage::Mute {
            room,
            user: user_name(&user, out)?,
            muted,
        },
        Moderation::Delete => ClientMessage::DeleteRoom { room },
    })
}

/// The message for an administrator's command.
fn admin_message(command: AdminCommand, out: &mut Vec<Action>) -> Option<ClientMessage> {
    Some(match command {
        AdminCommand::Disable { user, disabled } => ClientMessage::SetAccountDisabled {
            user: user_name(&user, out)?,
            disabled,
        },
        AdminCommand::EndSessions(user) => ClientMessage::EndSessions {
            user: user_name(&user, out)?,
        },
    })
}

/// `span` (oldest, newest) grown to take in `id`.
fn widen(span: &mut (u64, u64), id: u64) {
    span.0 = span.0.min(id);
    span.1 = span.1.max(id);
}

fn user_name(typed: &str, out: &mut Vec<Action>) -> Option<Username> {
    match Username::parse_normalizing(typed) {
        Ok(user) => Some(user),
        Err(e) => {
            notice(
                out,
                NoticeKind::Error,
                format!("not sent: invalid name {typed:?}: {e}"),
            );
            None
        }
    }
}

fn reason_text(typed: &str, out: &mut Vec<Action>) -> Option<proto_core::message::Reason> {
    match proto_core::message::Reason::new(typed) {
        Ok(reason) => Some(reason),
        Err(e) => {
            notice(out, NoticeKind::Error, format!("not sent: reason {e}"));
            None
        }
    }
}

fn conversation_ref(conversation: &Conversation) -> ConversationRef {
    match conversation {
        Conversation::Room { room } => ConversationRef::Room(room.as_str().to_owned()),
        Conversation::Direct { peer } => ConversationRef::Direct(peer.as_str().to_owned()),
    }
}

/// A room name as typed (`#` optional); `None` after saying why not.
fn room_name(typed: &str, out: &mut Vec<Action>) -> Option<RoomName> {
    match RoomName::parse_normalizing(typed) {
        Ok(room) => Some(room),
        Err(e) => {
            notice(
                out,
                NoticeKind::Error,
                format!("not sent: invalid room name {typed:?}: {e}"),
            );
            None
        }
    }
}

/// Inputs answered without the server.
fn local_input(input: Input, out: &mut Vec<Action>) {
    match input {
        Input::Help => notice(out, NoticeKind::Info, HELP_TEXT),
        Input::Unknown(cmd) => notice(
            out,
            NoticeKind::Error,
            format!("unknown command {cmd}; /help lists the commands (nothing was sent)"),
        ),
        Input::Usage(text) => notice(out, NoticeKind::Error, text),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
