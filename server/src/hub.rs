//! Who is online, and delivery to them: the room broadcast, direct
//! messages, join and leave notices.
//!
//! Each logged-in session registers an outbox (a bounded channel of
//! encoded messages) with the hub. A broadcast encodes the message once and
//! offers the same `Arc` to every outbox with `try_send`: delivery never
//! waits for a client. A full outbox means the client stopped reading; it is
//! told to leave ([`Kick::SlowConsumer`]) instead of growing the server's
//! memory or slowing the room.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use proto_core::message::{LeaveReason, ServerMessage, Username};
use proto_core::EncodedServerMessage;
use tokio::sync::mpsc;

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
}

impl Kick {
    const ALL: [Kick; 3] = [Kick::SlowConsumer, Kick::Replaced, Kick::Shutdown];

    fn code(self) -> u8 {
        match self {
            Kick::SlowConsumer => 1,
            Kick::Replaced => 2,
            Kick::Shutdown => 3,
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

struct Member {
    display: Username,
    session: SessionId,
    outbox: mpsc::Sender<Outgoing>,
    control: Arc<SessionControl>,
}

impl Member {
    /// Offers `msg`; a full outbox kicks the member.
    fn offer(&self, msg: &Outgoing) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.outbox.try_send(Arc::clone(msg)) {
            self.control.kick(Kick::SlowConsumer);
        }
    }
}

/// What a session registers when it logs in.
pub struct Registration {
    pub canonical: String,
    pub display: Username,
    pub session: SessionId,
    pub outbox: mpsc::Sender<Outgoing>,
    pub control: Arc<SessionControl>,
}

/// The set of logged-in sessions, ordered by canonical name so the online
/// list comes out sorted without sorting thousands of names per login.
#[derive(Default)]
pub struct Hub {
    members: Mutex<BTreeMap<String, Member>>,
    shutting_down: AtomicBool,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    fn members(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Member>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a logged-in session. If the user was online on another
    /// connection, that one is kicked ([`Kick::Replaced`]) and nobody is
    /// told anything (the user never left); otherwise everyone else gets
    /// `UserJoined`.
    pub fn join(&self, reg: Registration) {
        let mut members = self.members();
        let display = reg.display.clone();
        let member = Member {
            display: reg.display,
            session: reg.session,
            outbox: reg.outbox,
            control: reg.control,
        };
        let shutting_down = self.shutting_down.load(Ordering::Acquire);
        if shutting_down {
            // Logged in as the server stops: it gets the goodbye too, and
            // nobody is told it joined (as nobody is told who leaves).
            member.control.kick(Kick::Shutdown);
        }
        match members.insert(reg.canonical.clone(), member) {
            Some(old) => old.control.kick(Kick::Replaced),
            None if shutting_down => {}
            None => {
                let joined = ServerMessage::UserJoined { username: display };
                let msg = Arc::new(EncodedServerMessage::new(&joined));
                for (name, m) in members.iter() {
                    if *name != reg.canonical {
                        m.offer(&msg);
                    }
                }
            }
        }
    }

    /// Removes `session` if it is still the user's current one, and tells
    /// everyone else why it left (not during shutdown: everyone gets the
    /// server's goodbye instead).
    pub fn leave(&self, canonical: &str, session: SessionId, reason: LeaveReason) {
        let mut members = self.members();
        let Some(member) = members.get(canonical) else {
            return;
        };
        if member.session != session {
            return;
        }
        let Some(member) = members.remove(canonical) else {
            return;
        };
        if self.shutting_down.load(Ordering::Acquire) {
            return;
        }
        let msg = Arc::new(EncodedServerMessage::new(&ServerMessage::UserLeft {
            username: member.display,
            reason,
        }));
        for m in members.values() {
            m.offer(&msg);
        }
    }

    /// Sends `msg` to every member but `except` (canonical name); returns
    /// how many outboxes it was offered to.
    pub fn broadcast(&self, except: &str, msg: &ServerMessage) -> usize {
        let msg = Arc::new(EncodedServerMessage::new(msg));
        let members = self.members();
        let mut n = 0;
        for (name, m) in members.iter() {
            if name != except {
                m.offer(&msg);
                n += 1;
            }
        }
        n
    }

    /// Sends `msg` to one member; false if they are not online.
    pub fn send_to(&self, canonical: &str, msg: &ServerMessage) -> bool {
        let members = self.members();
        match members.get(canonical) {
            Some(m) => {
                m.offer(&Arc::new(EncodedServerMessage::new(msg)));
                true
            }
            None => false,
        }
    }

    /// Display names of everyone online, sorted case-insensitively.
    pub fn online(&self) -> Vec<Username> {
        self.members().values().map(|m| m.display.clone()).collect()
    }

    /// Logged-in sessions.
    pub fn len(&self) -> usize {
        self.members().len()
    }

    pub fn is_empty(&self) -> bool {
        self.members().is_empty()
    }

    /// From now on departures are not announced, and every logged-in
    /// session (now or joining later) is kicked with [`Kick::Shutdown`].
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        for member in self.members().values() {
            member.control.kick(Kick::Shutdown);
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

    fn join(hub: &Hub, name: &str, session: u64, cap: usize) -> Joined {
        let (tx, rx) = mpsc::channel(cap);
        let control = Arc::new(SessionControl::default());
        hub.join(Registration {
            canonical: name.to_lowercase(),
            display: Username::new(name).unwrap(),
            session: SessionId(session),
            outbox: tx,
            control: Arc::clone(&control),
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
        let hub = Hub::new();
        let mut a = join(&hub, "Alice", 1, 16);
        let mut b = join(&hub, "Bob", 2, 16);
        assert!(
            matches!(decode(&mut a.rx), Some(ServerMessage::UserJoined { username }) if username.as_str() == "Bob")
        );
        let msg = ServerMessage::RoomMessage {
            id: 1,
            timestamp_ms: 0,
            from: Username::new("Alice").unwrap(),
            text: text("hi"),
        };
        assert_eq!(hub.broadcast("alice", &msg), 1);
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

    #[tokio::test]
    async fn a_full_outbox_kicks_only_that_member() {
        let hub = Hub::new();
        let slow = join(&hub, "slow", 1, 2);
        let mut fast = join(&hub, "fast", 2, 64);
        for i in 0..5 {
            hub.broadcast("nobody", &ServerMessage::Ping { nonce: i });
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
        let hub = Hub::new();
        let mut other = join(&hub, "other", 9, 16);
        let first = join(&hub, "alice", 1, 16);
        assert!(decode(&mut other.rx).is_some()); // alice joined
        let _second = join(&hub, "Alice", 2, 16);
        assert_eq!(first.control.kicked().await, Kick::Replaced);
        // The old session leaving must not remove the new one nor announce.
        hub.leave("alice", SessionId(1), LeaveReason::Dropped);
        assert_eq!(hub.len(), 2);
        assert_eq!(decode(&mut other.rx), None);
        hub.leave("alice", SessionId(2), LeaveReason::Exit);
        assert!(matches!(
            decode(&mut other.rx),
            Some(ServerMessage::UserLeft {
                reason: LeaveReason::Exit,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn shutdown_kicks_every_member_and_anyone_who_logs_in_after_it() {
        let hub = Hub::new();
        let before = join(&hub, "Ann", 1, 16);
        hub.begin_shutdown();
        let after = join(&hub, "Bob", 2, 16);
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
        let hub = Hub::new();
        let mut a = join(&hub, "a", 1, 16);
        let _b = join(&hub, "b", 2, 16);
        let _ = decode(&mut a.rx);
        hub.begin_shutdown();
        hub.leave("b", SessionId(2), LeaveReason::ServerShutdown);
        assert_eq!(decode(&mut a.rx), None);
    }
}
