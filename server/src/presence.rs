//! When presence changes are told, and which: a user's coming online and
//! going offline (on the last device), coalesced per user and sent in
//! batches, at most one per interval, to the rooms the user is in.
//!
//! Sans-IO: the hub records changes with the time and asks when the next
//! batch is due; a task sleeps until then and takes it. A quiet server
//! tells a change at once (the first change after an interval flushes
//! immediately); under a storm of logins every session gets one batch per
//! interval instead of one notice per login, and someone who logs in and
//! out within one interval is not told at all.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proto_core::message::{Departure, LeaveReason, Username};

use crate::rooms::RoomId;

/// The default interval between presence batches.
pub const DEFAULT_PRESENCE_INTERVAL: Duration = Duration::from_secs(1);

/// The default size above which a room is not told presence changes: a
/// batch costs one write per online member, so a room of 19,000 during a
/// reconnect storm would take 19,000 writes a second from everyone's chat.
pub const DEFAULT_PRESENCE_ROOM_MAX_MEMBERS: usize = 1_000;

/// One user's change since the last batch.
#[derive(Debug, Clone)]
struct Pending {
    display: Username,
    /// Online before the first change of this batch.
    was_online: bool,
    /// `None`: online now; otherwise offline, for this reason.
    now: Option<LeaveReason>,
    /// The rooms to tell (the user's rooms at the latest change).
    rooms: Vec<RoomId>,
}

/// What one room's online members are told in a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomPresence {
    pub online: Vec<Username>,
    pub offline: Vec<Departure>,
}

/// Presence changes waiting for their batch.
#[derive(Debug)]
pub struct PresenceBatcher {
    interval: Duration,
    /// By canonical name; `order` keeps the order of first change.
    pending: HashMap<String, Pending>,
    order: Vec<String>,
    /// When the oldest waiting change was recorded.
    since: Option<Instant>,
    last_flush: Option<Instant>,
}

impl PresenceBatcher {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            pending: HashMap::new(),
            order: Vec::new(),
            since: None,
            last_flush: None,
        }
    }

    /// At `at`, `canonical` came online (`now` is `None`) or went offline,
    /// and is in `rooms`.
    pub fn record(
        &mut self,
        at: Instant,
        canonical: &str,
        display: &Username,
        now: Option<LeaveReason>,
        rooms: &[RoomId],
    ) {
        self.since.get_or_insert(at);
        match self.pending.get_mut(canonical) {
            Some(p) => {
                p.now = now;
                p.display = display.clone();
                p.rooms = rooms.to_vec();
            }
            None => {
                self.order.push(canonical.to_owned());
                self.pending.insert(
                    canonical.to_owned(),
                    Pending {
                        display: display.clone(),
                        was_online: now.is_some(),
                        now,
                        rooms: rooms.to_vec(),
                    },
                );
            }
        }
    }

    /// When the next batch is due, if anything waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let since = self.since?;
        Some(match self.last_flush {
            Some(last) => since.max(last + self.interval),
            None => since,
        })
    }

    /// Whether a batch is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.poll_timeout().is_some_and(|at| now >= at)
    }

    /// Takes the batch if it is due at `now`: per room, who came online
    /// and who went offline (users whose state is back where it was are
    /// left out). Empty if nothing is due.
    pub fn handle_timeout(&mut self, now: Instant) -> HashMap<RoomId, RoomPresence> {
        let mut out: HashMap<RoomId, RoomPresence> = HashMap::new();
        if !self.due(now) {
            return out;
        }
        self.last_flush = Some(now);
        self.since = None;
        for canonical in std::mem::take(&mut self.order) {
            let Some(p) = self.pending.remove(&canonical) else {
                continue;
            };
            if p.was_online == p.now.is_none() {
                continue;
            }
            for room in p.rooms {
                let entry = out.entry(room).or_default();
                match p.now {
                    None => entry.online.push(p.display.clone()),
                    Some(reason) => entry.offline.push(Departure {
                        user: p.display.clone(),
                        reason,
                    }),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> Username {
        Username::new(s).unwrap()
    }

    fn online(b: &mut PresenceBatcher, at: Instant, name: &str, rooms: &[RoomId]) {
        b.record(at, &name.to_lowercase(), &user(name), None, rooms);
    }

    fn offline(b: &mut PresenceBatcher, at: Instant, name: &str, rooms: &[RoomId]) {
        b.record(
            at,
            &name.to_lowercase(),
            &user(name),
            Some(LeaveReason::Exit),
            rooms,
        );
    }

    fn names(p: &RoomPresence) -> (Vec<&str>, Vec<&str>) {
        (
            p.online.iter().map(|u| u.as_str()).collect(),
            p.offline.iter().map(|d| d.user.as_str()).collect(),
        )
    }

    #[test]
    fn a_quiet_server_tells_at_once_then_batches_for_an_interval() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut b = PresenceBatcher::new(second);
        assert_eq!(b.poll_timeout(), None);
        online(&mut b, t0, "Alice", &[1]);
        assert!(b.due(t0), "the first change goes out at once");
        let batch = b.handle_timeout(t0);
        assert_eq!(names(&batch[&1]), (vec!["Alice"], vec![]));

        // Within the interval: held until it ends.
        online(&mut b, t0 + second / 4, "Bob", &[1, 2]);
        online(&mut b, t0 + second / 4, "Carol", &[2]);
        assert_eq!(b.poll_timeout(), Some(t0 + second));
        assert!(b.handle_timeout(t0 + second / 2).is_empty());
        let batch = b.handle_timeout(t0 + second);
        assert_eq!(names(&batch[&1]), (vec!["Bob"], vec![]));
        assert_eq!(names(&batch[&2]), (vec!["Bob", "Carol"], vec![]));
        assert_eq!(b.poll_timeout(), None);

        // After a quiet interval: at once again.
        offline(&mut b, t0 + 3 * second, "Bob", &[1, 2]);
        assert!(b.due(t0 + 3 * second));
        let batch = b.handle_timeout(t0 + 3 * second);
        assert_eq!(names(&batch[&2]), (vec![], vec!["Bob"]));
    }

    #[test]
    fn in_and_out_within_a_batch_tells_nobody_and_the_last_state_wins() {
        let t0 = Instant::now();
        let mut b = PresenceBatcher::new(Duration::from_secs(1));
        online(&mut b, t0, "Warm", &[1]);
        let _ = b.handle_timeout(t0);
        // A flood of logins and logouts from one user within the interval.
        for _ in 0..1_000 {
            online(&mut b, t0, "Flap", &[1]);
            offline(&mut b, t0, "Flap", &[1]);
        }
        // Someone online who dropped and came back.
        offline(&mut b, t0, "Warm", &[1]);
        online(&mut b, t0, "Warm", &[1]);
        // Someone who came and stayed, then left for good.
        online(&mut b, t0, "Stays", &[1]);
        offline(&mut b, t0, "Gone", &[1]);
        let batch = b.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(names(&batch[&1]), (vec!["Stays"], vec!["Gone"]));
        assert_eq!(b.poll_timeout(), None, "nothing left behind");
    }
}
