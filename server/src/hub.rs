//! Who is online, and delivery to them: room messages to each room's online
//! members, direct messages, and presence (batched by [`crate::presence`],
//! told per room).
//!
//! Each logged-in session registers an outbox (a bounded channel of
//! encoded messages) with the hub. A broadcast encodes the message once and
//! offers the same `Arc` to every outbox with `try_send`: delivery never
//! waits for a client. A full outbox means the client stopped reading; it is
//! told to leave ([`Kick::SlowConsumer`]) instead of growing the server's
//! memory or slowing the room.

use std::collections::{BTreeMap, HashMap};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use proto_core::message::{LeaveReason, ServerMessage, Username};
use proto_core::EncodedServerMessage;
use tokio::sync::mpsc;

use crate::presence::PresenceBatcher;
use crate::rooms::RoomId;

/// One encoded message on its way to one or many outboxes.
pub type Outgoing = Arc<EncodedServerMessage>;

/// Why the hub ends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Its outbox filled up.
    SlowConsumer,
    /// The same user logged in on another connection.
    Replaced,
    /// The server is stopping.
    Shutdown,
    /// An administrator disabled the account.
    Disabled,
    /// An administrator ended the account's sessions.
    Ended,
}

impl Kick {
    const ALL: [Kick; 5] = [
        Kick::SlowConsumer,
        Kick::Replaced,
        Kick::Shutdown,
        Kick::Disabled,
        Kick::Ended,
    ];

    fn code(self) -> u8 {
        match self {
            Kick::SlowConsumer => 1,
            Kick::Replaced => 2,
            Kick::Shutdown => 3,
            Kick::Disabled => 4,
            Kick::Ended => 5,
        }
    }

    fn from_code(code: u8) -> Option<Kick> {
        Kick::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// How the hub tells a session task to end.
///
/// Polled on every wake-up of a logged-in session (each delivery), so a
/// poll is two atomic operations: an earlier `Notify` registered and
/// removed a waiter on every wake-up, about 9% of the server's CPU in the
/// latency room (BENCHMARKS.md, "Issue 11: the hot path").
#[derive(Debug, Default)]
pub struct SessionControl {
    /// 0 while running, then the first [`Kick`]'s code.
    kick: AtomicU8,
    waker: AtomicWaker,
}

impl SessionControl {
    /// Asks the session to end; the first reason wins.
    pub fn kick(&self, reason: Kick) {
        if self
            .kick
            .compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.waker.wake();
        }
    }

    /// The reason, once [`kick`](Self::kick) has been called.
    pub fn kicked_already(&self) -> Option<Kick> {
        Kick::from_code(self.kick.load(Ordering::Acquire))
    }

    /// Ready once kicked. Only the session's own task may poll it (one
    /// waker is kept).
    pub fn poll_kicked(&self, cx: &mut Context<'_>) -> Poll<Kick> {
        if let Some(kick) = self.kicked_already() {
            return Poll::Ready(kick);
        }
        self.waker.register(cx.waker());
        // A kick between the check and the registration woke nobody.
        match self.kicked_already() {
            Some(kick) => Poll::Ready(kick),
            None => Poll::Pending,
        }
    }

    /// Resolves once [`kick`](Self::kick) has been called; gives the reason.
    pub async fn kicked(&self) -> Kick {
        poll_fn(|cx| self.poll_kicked(cx)).await
    }
}

/// A session's identity at the hub: logins of the same user on other
/// connections get other ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub u64);

/// Where one session's deliveries go.
struct Mailbox {
    session: SessionId,
    /// The device it is (a user's devices each have their own id).
    device: u64,
    outbox: mpsc::Sender<Outgoing>,
    control: Arc<SessionControl>,
}

impl Mailbox {
    /// Offers `msg`; a full outbox kicks the session.
    fn offer(&self, msg: &Outgoing) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.outbox.try_send(Arc::clone(msg)) {
            self.control.kick(Kick::SlowConsumer);
        }
    }
}

/// A user online: one session per device.
struct Member {
    display: Username,
    sessions: Vec<Arc<Mailbox>>,
    /// The rooms its sessions receive (few: one entry per session each in
    /// `State::rooms`).
    rooms: Vec<RoomId>,
}

/// What a session registers when it logs in.
pub struct Registration {
    pub canonical: String,
    pub display: Username,
    pub session: SessionId,
    /// The device logging in: a second login of the same device replaces
    /// the first; other devices of the user stay.
    pub device: u64,
    pub outbox: mpsc::Sender<Outgoing>,
    pub control: Arc<SessionControl>,
    /// The rooms the user is in: their messages are delivered to it.
    pub rooms: Vec<RoomId>,
}

struct State {
    /// By canonical name, so the online list comes out sorted without
    /// sorting thousands of names per login.
    members: BTreeMap<String, Member>,
    /// Each room's online sessions: a room message is offered to these,
    /// without a lookup per recipient.
    rooms: HashMap<RoomId, Subscribers>,
    /// Who came online or went offline since the last presence batch.
    presence: PresenceBatcher,
}

/// One room's online sessions: a list to deliver from, and where each
/// session sits in it, so that a login or logout in a room of 20,000 costs
/// O(1), not a scan (a mass reconnect is 20,000 of each).
#[derive(Default)]
struct Subscribers {
    list: Vec<Arc<Mailbox>>,
    at: HashMap<SessionId, usize>,
}

impl Subscribers {
    fn insert(&mut self, mailbox: &Arc<Mailbox>) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.at.entry(mailbox.session) {
            e.insert(self.list.len());
            self.list.push(Arc::clone(mailbox));
        }
    }

    fn remove(&mut self, session: SessionId) {
        if let Some(i) = self.at.remove(&session) {
            self.list.swap_remove(i);
            if let Some(moved) = self.list.get(i) {
                self.at.insert(moved.session, i);
            }
        }
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl<'a> IntoIterator for &'a Subscribers {
    type Item = &'a Arc<Mailbox>;
    type IntoIter = std::slice::Iter<'a, Arc<Mailbox>>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl State {
    fn subscribe(&mut self, room: RoomId, mailbox: &Arc<Mailbox>) {
        self.rooms.entry(room).or_default().insert(mailbox);
    }

    fn unsubscribe(&mut self, room: RoomId, session: SessionId) {
        if let Some(subscribers) = self.rooms.get_mut(&room) {
            subscribers.remove(session);
            if subscribers.is_empty() {
                self.rooms.remove(&room);
            }
        }
    }
}

/// The set of logged-in sessions and the rooms they receive.
pub struct Hub {
    state: Mutex<State>,
    shutting_down: AtomicBool,
    /// Wakes the presence task when a change was recorded.
    presence_recorded: tokio::sync::Notify,
}

impl Default for Hub {
    fn default() -> Self {
        Self::with_presence_interval(crate::presence::DEFAULT_PRESENCE_INTERVAL)
    }
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A hub that sends presence batches at most once per `interval`.
    pub fn with_presence_interval(interval: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                members: BTreeMap::new(),
                rooms: HashMap::new(),
                presence: PresenceBatcher::new(interval),
            }),
            shutting_down: AtomicBool::new(false),
            presence_recorded: tokio::sync::Notify::new(),
        }
    }

    /// When the next presence batch is due, if a change waits.
    pub fn presence_deadline(&self) -> Option<Instant> {
        self.state().presence.poll_timeout()
    }

    /// Resolves when a presence change was recorded (since the last call).
    pub async fn presence_recorded(&self) {
        self.presence_recorded.notified().await;
    }

    /// Sends the presence batch if it is due at `now`: per room, one set
    /// of `Presence` messages (encoded once) to the room's online sessions,
    /// except to the rooms `quiet` names (too large to be told each change:
    /// their members ask who is online). `quiet` is asked without the
    /// hub's lock held. Returns how many deliveries were offered.
    pub fn flush_presence(&self, now: Instant, quiet: impl Fn(RoomId) -> bool) -> usize {
        let mut batch = self.state().presence.handle_timeout(now);
        if batch.is_empty() {
            return 0;
        }
        batch.retain(|&room, _| !quiet(room));
        let state = self.state();
        // Checked under the lock, as `begin_shutdown` kicks under it.
        if self.shutting_down.load(Ordering::Acquire) {
            return 0;
        }
        let mut offered = 0;
        for (room, change) in batch {
            let Some(subscribers) = state.rooms.get(&room) else {
                continue;
            };
            for msg in ServerMessage::presence_batches(change.online, change.offline) {
                let msg = Arc::new(EncodedServerMessage::new(&msg));
                for m in subscribers {
                    m.offer(&msg);
                }
                offered += subscribers.len();
            }
        }
        offered
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a logged-in session, subscribed to its rooms. A session of the
    /// same device that was still online is kicked ([`Kick::Replaced`])
    /// and nobody is told anything; a user's first session is recorded
    /// for the next presence batch to the user's rooms. Presence is per
    /// user, not device.
    pub fn join(&self, reg: Registration) {
        let mut guard = self.state();
        let state = &mut *guard;
        let mailbox = Arc::new(Mailbox {
            session: reg.session,
            device: reg.device,
            outbox: reg.outbox,
            control: reg.control,
        });
        let shutting_down = self.shutting_down.load(Ordering::Acquire);
        if shutting_down {
            // Logged in as the server stops: it gets the goodbye too, and
            // nobody is told it joined (as nobody is told who leaves).
            mailbox.control.kick(Kick::Shutdown);
        }
        let first = !state.members.contains_key(&reg.canonical);
        let member = state
            .members
            .entry(reg.canonical.clone())
            .or_insert_with(|| Member {
                display: reg.display.clone(),
                sessions: Vec::new(),
                rooms: reg.rooms.clone(),
            });
        let mut replaced = Vec::new();
        member.sessions.retain(|m| {
            if m.device == reg.device {
                m.control.kick(Kick::Replaced);
                replaced.push(m.session);
                false
            } else {
                true
            }
        });
        member.sessions.push(Arc::clone(&mailbox));
        let rooms = member.rooms.clone();
        for session in replaced {
            for &room in &rooms {
                state.unsubscribe(room, session);
            }
        }
        for &room in &rooms {
            state.subscribe(room, &mailbox);
        }
        if !first || shutting_down {
            return;
        }
        state
            .presence
            .record(Instant::now(), &reg.canonical, &reg.display, None, &rooms);
        drop(guard);
        self.presence_recorded.notify_one();
    }

    /// Removes `session` if it is still registered; when it was the
    /// user's last one, records why the user left for the next presence
    /// batch (not during shutdown: everyone gets the server's goodbye
    /// instead).
    pub fn leave(&self, canonical: &str, session: SessionId, reason: LeaveReason) {
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(member) = state.members.get_mut(canonical) else {
            return;
        };
        let before = member.sessions.len();
        member.sessions.retain(|m| m.session != session);
        if member.sessions.len() == before {
            return;
        }
        let rooms = member.rooms.clone();
        let last = member.sessions.is_empty();
        for room in rooms {
            state.unsubscribe(room, session);
        }
        if !last {
            return;
        }
        let Some(member) = state.members.remove(canonical) else {
            return;
        };
        if self.shutting_down.load(Ordering::Acquire) {
            return;
        }
        state.presence.record(
            Instant::now(),
            canonical,
            &member.display,
            Some(reason),
            &member.rooms,
        );
        drop(guard);
        self.presence_recorded.notify_one();
    }

    /// From now on `room`'s messages reach every session of the user.
    pub fn subscribe(&self, canonical: &str, room: RoomId) {
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(member) = state.members.get_mut(canonical) else {
            return;
        };
        if member.rooms.contains(&room) {
            return;
        }
        member.rooms.push(room);
        let sessions = member.sessions.clone();
        for mailbox in &sessions {
            state.subscribe(room, mailbox);
        }
    }

    /// From now on `room`'s messages no longer reach the user's sessions.
    pub fn unsubscribe(&self, canonical: &str, room: RoomId) {
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(member) = state.members.get_mut(canonical) else {
            return;
        };
        member.rooms.retain(|&r| r != room);
        let sessions: Vec<SessionId> = member.sessions.iter().map(|m| m.session).collect();
        for session in sessions {
            state.unsubscribe(room, session);
        }
    }

    /// Ends every session of `canonical` with `why`; false if none was online.
    pub fn kick_user(&self, canonical: &str, why: Kick) -> bool {
        match self.state().members.get(canonical) {
            Some(member) => {
                for m in &member.sessions {
                    m.control.kick(why);
                }
                true
            }
            None => false,
        }
    }

    /// Ends the session of one device of `canonical`; false if it was not
    /// online.
    pub fn kick_device(&self, canonical: &str, device: u64, why: Kick) -> bool {
        let state = self.state();
        let Some(member) = state.members.get(canonical) else {
            return false;
        };
        let mut found = false;
        for m in member.sessions.iter().filter(|m| m.device == device) {
            m.control.kick(why);
            found = true;
        }
        found
    }

    /// Whether each of `users` (canonical names) is online now, under one
    /// lock.
    pub fn online_among<'a>(&self, users: impl IntoIterator<Item = &'a str>) -> Vec<bool> {
        let state = self.state();
        users
            .into_iter()
            .map(|u| state.members.contains_key(u))
            .collect()
    }

    /// The devices of `canonical` online now.
    pub fn online_devices(&self, canonical: &str) -> Vec<u64> {
        self.state()
            .members
            .get(canonical)
            .map(|m| m.sessions.iter().map(|s| s.device).collect())
            .unwrap_or_default()
    }

    /// Sends `msg` to every session subscribed to `room`; returns how many.
    pub fn broadcast_room_all(&self, room: RoomId, msg: &ServerMessage) -> usize {
        let msg = Arc::new(EncodedServerMessage::new(msg));
        let state = self.state();
        let Some(subscribers) = state.rooms.get(&room) else {
            return 0;
        };
        for m in subscribers {
            m.offer(&msg);
        }
        subscribers.len()
    }

    /// Nobody receives `room` any more (it was deleted).
    pub fn drop_room(&self, room: RoomId) {
        let mut state = self.state();
        state.rooms.remove(&room);
        for member in state.members.values_mut() {
            member.rooms.retain(|&r| r != room);
        }
    }

    /// Sends `msg` to every session subscribed to `room` but `except`;
    /// returns how many outboxes it was offered to.
    pub fn broadcast_room(&self, room: RoomId, except: SessionId, msg: &ServerMessage) -> usize {
        let msg = Arc::new(EncodedServerMessage::new(msg));
        let state = self.state();
        let Some(subscribers) = state.rooms.get(&room) else {
            return 0;
        };
        let mut n = 0;
        for m in subscribers {
            if m.session != except {
                m.offer(&msg);
                n += 1;
            }
        }
        n
    }

    /// Sends `msg` to every session of one user; false if they are not online.
    pub fn send_to(&self, canonical: &str, msg: &ServerMessage) -> bool {
        let state = self.state();
        match state.members.get(canonical) {
            Some(m) => {
                m.offer_all(&Arc::new(EncodedServerMessage::new(msg)));
                true
            }
            None => false,
        }
    }

    /// Sends `msg` to the user's sessions but `except` (their other devices).
    pub fn send_to_others(&self, canonical: &str, except: SessionId, msg: &ServerMessage) {
        let state = self.state();
        let Some(member) = state.members.get(canonical) else {
            return;
        };
        let mut encoded = None;
        for m in member.sessions.iter().filter(|m| m.session != except) {
            let msg = encoded.get_or_insert_with(|| Arc::new(EncodedServerMessage::new(msg)));
            m.offer(msg);
        }
    }

    /// Display names of everyone online, sorted case-insensitively.
    pub fn online(&self) -> Vec<Username> {
        self.state()
            .members
            .values()
            .map(|m| m.display.clone())
            .collect()
    }

    /// Users logged in (on one device or more).
    pub fn len(&self) -> usize {
        self.state().members.len()
    }

    /// Logged-in sessions (devices).
    pub fn sessions(&self) -> usize {
        self.state()
            .members
            .values()
            .map(|m| m.sessions.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.state().members.is_empty()
    }

    /// From now on departures are not announced, and every logged-in
    /// session (now or joining later) is kicked with [`Kick::Shutdown`].
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        for member in self.state().members.values() {
            for m in &member.sessions {
                m.control.kick(Kick::Shutdown);
            }
        }
    }
}

impl Member {
    fn offer_all(&self, msg: &Outgoing) {
        for m in &self.sessions {
            m.offer(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Joined {
        rx: mpsc::Receiver<Outgoing>,
        control: Arc<SessionControl>,
    }

    /// A hub whose presence batches are due at once.
    fn hub() -> Hub {
        Hub::with_presence_interval(Duration::ZERO)
    }

    /// Sends the presence batch now, to every room.
    fn flush(hub: &Hub) -> usize {
        hub.flush_presence(Instant::now(), |_| false)
    }

    /// The next message if it is a `Presence`: who came online, who left.
    fn presence(rx: &mut mpsc::Receiver<Outgoing>) -> Option<(Vec<String>, Vec<String>)> {
        match decode(rx)? {
            ServerMessage::Presence { online, offline } => Some((
                online.iter().map(|u| u.as_str().to_owned()).collect(),
                offline.iter().map(|d| d.user.as_str().to_owned()).collect(),
            )),
            other => panic!("expected Presence, got {other:?}"),
        }
    }

    fn join(hub: &Hub, name: &str, session: u64, cap: usize) -> Joined {
        join_rooms(hub, name, session, cap, vec![1])
    }

    fn join_rooms(hub: &Hub, name: &str, session: u64, cap: usize, rooms: Vec<RoomId>) -> Joined {
        join_device(hub, name, session, session, cap, rooms)
    }

    /// A login of `name` from `device` as session `session`.
    fn join_device(
        hub: &Hub,
        name: &str,
        session: u64,
        device: u64,
        cap: usize,
        rooms: Vec<RoomId>,
    ) -> Joined {
        let (tx, rx) = mpsc::channel(cap);
        let control = Arc::new(SessionControl::default());
        hub.join(Registration {
            canonical: name.to_lowercase(),
            display: Username::new(name).unwrap(),
            session: SessionId(session),
            device,
            outbox: tx,
            control: Arc::clone(&control),
            rooms,
        });
        Joined { rx, control }
    }

    fn decode(rx: &mut mpsc::Receiver<Outgoing>) -> Option<ServerMessage> {
        rx.try_recv()
            .ok()
            .map(|m| ServerMessage::decode(m.as_bytes()).unwrap())
    }

    fn text(s: &str) -> proto_core::message::MessageText {
        proto_core::message::MessageText::new(s).unwrap()
    }

    #[test]
    fn broadcast_reaches_everyone_but_the_sender_and_joins_are_announced() {
        let hub = hub();
        let mut a = join(&hub, "Alice", 1, 16);
        flush(&hub);
        assert_eq!(presence(&mut a.rx), Some((vec!["Alice".into()], vec![])));
        let mut b = join(&hub, "Bob", 2, 16);
        assert_eq!(flush(&hub), 2, "the room's two sessions");
        assert_eq!(presence(&mut a.rx), Some((vec!["Bob".into()], vec![])));
        assert_eq!(presence(&mut b.rx), Some((vec!["Bob".into()], vec![])));
        let msg = ServerMessage::RoomMessage {
            id: 1,
            timestamp_ms: 0,
            room: proto_core::message::RoomName::general(),
            from: Username::new("Alice").unwrap(),
            text: text("hi"),
        };
        assert_eq!(hub.broadcast_room(1, SessionId(1), &msg), 1);
        assert_eq!(
            hub.broadcast_room(2, SessionId(1), &msg),
            0,
            "nobody in room 2"
        );
        assert_eq!(decode(&mut b.rx), Some(msg));
        assert_eq!(decode(&mut a.rx), None);
        let _carol = join(&hub, "carol", 3, 16);
        let names: Vec<String> = hub.online().iter().map(|u| u.as_str().to_owned()).collect();
        assert_eq!(
            names,
            ["Alice", "Bob", "carol"],
            "sorted case-insensitively"
        );
    }

    fn room_message(room: &str) -> ServerMessage {
        ServerMessage::RoomMessage {
            id: 1,
            timestamp_ms: 0,
            room: proto_core::message::RoomName::new(room).unwrap(),
            from: Username::new("x").unwrap(),
            text: text("hi"),
        }
    }

    fn drain_all(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<ServerMessage> {
        std::iter::from_fn(|| decode(rx)).collect()
    }

    #[test]
    fn a_room_message_reaches_the_rooms_online_members_and_follows_joins_and_leaves() {
        let hub = hub();
        let mut a = join_rooms(&hub, "a", 1, 16, vec![1, 2]);
        let mut b = join_rooms(&hub, "b", 2, 16, vec![1]);
        drain_all(&mut a.rx);
        assert_eq!(
            hub.broadcast_room(2, SessionId(9), &room_message("#two")),
            1
        );
        assert_eq!(drain_all(&mut a.rx), [room_message("#two")]);
        assert!(drain_all(&mut b.rx).is_empty(), "b is not in room 2");

        hub.subscribe("b", 2);
        hub.subscribe("b", 2);
        assert_eq!(
            hub.broadcast_room(2, SessionId(1), &room_message("#two")),
            1
        );
        assert_eq!(
            drain_all(&mut b.rx),
            [room_message("#two")],
            "once, not twice"
        );
        assert!(
            drain_all(&mut a.rx).is_empty(),
            "the sending session gets no copy"
        );

        hub.unsubscribe("b", 2);
        assert_eq!(
            hub.broadcast_room(2, SessionId(9), &room_message("#two")),
            1
        );
        assert!(drain_all(&mut b.rx).is_empty());
    }

    #[test]
    fn a_replacing_login_takes_over_the_room_subscriptions_and_a_leave_drops_them() {
        let hub = hub();
        let mut first = join_device(&hub, "a", 1, 7, 16, vec![1, 2]);
        let mut second = join_device(&hub, "a", 2, 7, 16, vec![1, 2]);
        assert_eq!(
            hub.broadcast_room(2, SessionId(9), &room_message("#two")),
            1
        );
        assert_eq!(drain_all(&mut second.rx), [room_message("#two")]);
        assert!(drain_all(&mut first.rx).is_empty());
        hub.leave("a", SessionId(2), LeaveReason::Exit);
        assert_eq!(
            hub.broadcast_room(1, SessionId(9), &room_message("#general")),
            0
        );
        assert_eq!(
            hub.broadcast_room(2, SessionId(9), &room_message("#two")),
            0
        );
    }

    #[tokio::test]
    async fn a_full_outbox_kicks_only_that_member() {
        let hub = hub();
        let slow = join(&hub, "slow", 1, 2);
        let mut fast = join(&hub, "fast", 2, 64);
        for i in 0..5 {
            hub.broadcast_room_all(1, &ServerMessage::Ping { nonce: i });
        }
        assert_eq!(slow.control.kicked().await, Kick::SlowConsumer);
        let mut got = 0;
        while decode(&mut fast.rx).is_some() {
            got += 1;
        }
        assert_eq!(got, 5);
    }

    #[tokio::test]
    async fn second_login_replaces_the_first_silently() {
        let hub = hub();
        let mut other = join(&hub, "other", 9, 16);
        let first = join_device(&hub, "alice", 1, 5, 16, vec![1]);
        flush(&hub);
        drain_all(&mut other.rx);
        let _second = join_device(&hub, "Alice", 2, 5, 16, vec![1]);
        assert_eq!(first.control.kicked().await, Kick::Replaced);
        // The old session leaving must not remove the new one nor announce.
        hub.leave("alice", SessionId(1), LeaveReason::Dropped);
        assert_eq!(hub.len(), 2);
        assert_eq!(flush(&hub), 0);
        assert_eq!(decode(&mut other.rx), None);
        hub.leave("alice", SessionId(2), LeaveReason::Exit);
        flush(&hub);
        assert!(matches!(
            drain_all(&mut other.rx)[..],
            [ServerMessage::Presence { ref offline, .. }]
                if offline[0].reason == LeaveReason::Exit && offline[0].user.as_str() == "alice"
        ));
    }

    #[test]
    fn a_users_devices_all_receive_and_presence_is_per_user() {
        let hub = hub();
        let mut other = join(&hub, "other", 9, 16);
        flush(&hub);
        drain_all(&mut other.rx);
        let mut laptop = join_device(&hub, "alice", 1, 100, 16, vec![1]);
        let mut phone = join_device(&hub, "alice", 2, 200, 16, vec![1]);
        flush(&hub);
        assert_eq!(
            presence(&mut other.rx),
            Some((vec!["alice".into()], vec![])),
            "one presence for two devices"
        );
        assert_eq!(presence(&mut other.rx), None);
        drain_all(&mut laptop.rx);
        drain_all(&mut phone.rx);
        assert_eq!(hub.len(), 2);
        assert_eq!(hub.sessions(), 3);
        // A room message from the laptop reaches the phone and the others.
        assert_eq!(
            hub.broadcast_room(1, SessionId(1), &room_message("#general")),
            2
        );
        assert_eq!(drain_all(&mut phone.rx), [room_message("#general")]);
        assert!(drain_all(&mut laptop.rx).is_empty());
        // A direct message to alice reaches both; her own reaches the other device.
        hub.send_to("alice", &ServerMessage::Ping { nonce: 1 });
        assert_eq!(drain_all(&mut laptop.rx).len(), 1);
        assert_eq!(drain_all(&mut phone.rx).len(), 1);
        hub.send_to_others("alice", SessionId(1), &ServerMessage::Ping { nonce: 2 });
        assert!(drain_all(&mut laptop.rx).is_empty());
        assert_eq!(drain_all(&mut phone.rx).len(), 1);
        // Joining a room subscribes every device.
        hub.subscribe("alice", 3);
        assert_eq!(
            hub.broadcast_room(3, SessionId(9), &room_message("#three")),
            2
        );
        assert_eq!(hub.online_devices("alice"), [100, 200]);
        // Leaving from one device says nothing; the last one says left.
        drain_all(&mut other.rx);
        hub.leave("alice", SessionId(2), LeaveReason::Exit);
        flush(&hub);
        assert!(drain_all(&mut other.rx).is_empty());
        hub.leave("alice", SessionId(1), LeaveReason::Exit);
        flush(&hub);
        assert_eq!(
            presence(&mut other.rx),
            Some((vec![], vec!["alice".into()]))
        );
    }

    #[tokio::test]
    async fn one_device_is_logged_out_and_the_others_stay() {
        let hub = hub();
        let laptop = join_device(&hub, "alice", 1, 100, 16, vec![1]);
        let phone = join_device(&hub, "alice", 2, 200, 16, vec![1]);
        assert!(hub.kick_device("alice", 200, Kick::Ended));
        assert_eq!(phone.control.kicked().await, Kick::Ended);
        assert_eq!(laptop.control.kicked_already(), None);
        assert!(!hub.kick_device("alice", 300, Kick::Ended));
    }

    #[tokio::test]
    async fn shutdown_kicks_every_member_and_anyone_who_logs_in_after_it() {
        let hub = hub();
        let before = join(&hub, "Ann", 1, 16);
        hub.begin_shutdown();
        let after = join(&hub, "Bob", 2, 16);
        flush(&hub);
        assert_eq!(before.control.kicked().await, Kick::Shutdown);
        assert_eq!(after.control.kicked().await, Kick::Shutdown);
        let mut before = before;
        assert!(
            before.rx.try_recv().is_err(),
            "a join during shutdown is not announced"
        );
    }

    #[test]
    fn the_first_kick_wins_and_is_seen_without_waiting() {
        let control = SessionControl::default();
        assert_eq!(control.kicked_already(), None);
        control.kick(Kick::SlowConsumer);
        control.kick(Kick::Shutdown);
        assert_eq!(control.kicked_already(), Some(Kick::SlowConsumer));
    }

    #[test]
    fn departures_during_shutdown_are_not_announced() {
        let hub = hub();
        let mut a = join(&hub, "a", 1, 16);
        let _b = join(&hub, "b", 2, 16);
        flush(&hub);
        let _ = decode(&mut a.rx);
        hub.begin_shutdown();
        hub.leave("b", SessionId(2), LeaveReason::ServerShutdown);
        flush(&hub);
        assert_eq!(decode(&mut a.rx), None);
    }
}

#[cfg(test)]
mod presence_tests {
    use super::*;

    /// `name` logs in as session (and device) `session`, in `rooms`.
    fn log_in(hub: &Hub, name: &str, session: u64, rooms: Vec<RoomId>) -> mpsc::Receiver<Outgoing> {
        let (tx, rx) = mpsc::channel(16);
        hub.join(Registration {
            canonical: name.into(),
            display: Username::new(name).unwrap(),
            session: SessionId(session),
            device: session,
            outbox: tx,
            control: Arc::new(SessionControl::default()),
            rooms,
        });
        rx
    }

    #[test]
    fn presence_goes_to_the_rooms_a_user_shares_and_nowhere_else() {
        let hub = Hub::with_presence_interval(Duration::ZERO);
        let mut rx_a = log_in(&hub, "a", 1, vec![1, 2]);
        let mut rx_b = log_in(&hub, "b", 2, vec![3]);
        // a is in rooms 1 and 2 (its own presence, once per room); b shares none.
        assert_eq!(hub.flush_presence(Instant::now(), |_| false), 3);
        assert_eq!(std::iter::from_fn(|| rx_a.try_recv().ok()).count(), 2);
        let b_got: Vec<ServerMessage> = std::iter::from_fn(|| rx_b.try_recv().ok())
            .map(|m| ServerMessage::decode(m.as_bytes()).unwrap())
            .collect();
        assert!(
            b_got.iter().all(|m| !matches!(m, ServerMessage::Presence { online, .. } if online.iter().any(|u| u.as_str() == "a"))),
            "b shares no room with a: {b_got:?}"
        );
    }

    /// A room too large to be told each change gets none; the same users'
    /// changes still reach a small room they share.
    #[test]
    fn a_quiet_room_is_not_told_and_a_small_shared_room_still_is() {
        let hub = Hub::with_presence_interval(Duration::ZERO);
        // 1 is the large room; a and b also share the small room 2.
        let mut rx = [
            log_in(&hub, "a", 1, vec![1, 2]),
            log_in(&hub, "b", 2, vec![1, 2]),
            log_in(&hub, "c", 3, vec![1]),
        ];
        let names = |rx: &mut mpsc::Receiver<Outgoing>| -> Vec<String> {
            std::iter::from_fn(|| rx.try_recv().ok())
                .flat_map(|m| match ServerMessage::decode(m.as_bytes()).unwrap() {
                    ServerMessage::Presence { online, .. } => online
                        .iter()
                        .map(|u| u.as_str().to_owned())
                        .collect::<Vec<_>>(),
                    other => panic!("expected Presence, got {other:?}"),
                })
                .collect()
        };
        // Room 2's two sessions, each told of a and b; room 1 nothing.
        assert_eq!(hub.flush_presence(Instant::now(), |room| room == 1), 2);
        assert_eq!(names(&mut rx[0]), ["a", "b"]);
        assert_eq!(names(&mut rx[1]), ["a", "b"]);
        assert!(names(&mut rx[2]).is_empty(), "c shares only the quiet room");
    }
}

#[cfg(test)]
mod subscribers_tests {
    use super::*;

    fn mailbox(session: u64) -> Arc<Mailbox> {
        let (outbox, _) = mpsc::channel(1);
        Arc::new(Mailbox {
            session: SessionId(session),
            device: session,
            outbox,
            control: Arc::new(SessionControl::default()),
        })
    }

    fn sessions(s: &Subscribers) -> Vec<u64> {
        let mut v: Vec<u64> = s.into_iter().map(|m| m.session.0).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn each_session_once_and_any_one_leaves_without_disturbing_the_rest() {
        let mut s = Subscribers::default();
        for i in 0..5 {
            s.insert(&mailbox(i));
        }
        s.insert(&mailbox(2));
        assert_eq!(sessions(&s), [0, 1, 2, 3, 4]);
        s.remove(SessionId(1));
        s.remove(SessionId(1));
        s.remove(SessionId(9));
        assert_eq!(sessions(&s), [0, 2, 3, 4]);
        s.remove(SessionId(4));
        s.remove(SessionId(0));
        assert_eq!(sessions(&s), [2, 3]);
        // The index still finds every remaining session.
        s.remove(SessionId(3));
        s.remove(SessionId(2));
        assert!(s.is_empty() && s.at.is_empty());
    }
}
