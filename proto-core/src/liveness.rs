//! Whether the peer is still there, judged only by hearing from it: the
//! one Ping/idle policy both sides run (the client with its 45 s / 90 s,
//! the server with its configured `ping_interval` / `idle_timeout`).
//!
//! Sans-IO like quinn's timers: every input takes `now`, and only
//! [`Liveness::handle_heard`] moves the deadline, so traffic we *send*
//! (a user typing away, a busy room) cannot postpone the ping or the
//! verdict.

use std::time::{Duration, Instant};

/// How long the peer may be silent before we ping it, and before we call
/// the connection dead. `dead_after` counts from the last thing heard,
/// not from the ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceLimits {
    pub ping_after: Duration,
    pub dead_after: Duration,
}

/// What [`Liveness::handle_timeout`] asks of the run loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LivenessAction {
    /// Nothing yet: wait for the next [`Liveness::poll_timeout`].
    Wait,
    /// Ping the peer, which then owes us an answer.
    Ping,
    /// The peer stopped answering: give the connection up.
    Dead,
}

/// The silence clock of one connection.
#[derive(Debug, Clone)]
pub struct Liveness {
    limits: SilenceLimits,
    last_heard: Instant,
    pinged: bool,
}

impl Liveness {
    /// A connection that was last heard from at `now`.
    #[must_use]
    pub fn new(limits: SilenceLimits, now: Instant) -> Self {
        Self {
            limits,
            last_heard: now,
            pinged: false,
        }
    }

    /// Anything arrived from the peer.
    pub fn handle_heard(&mut self, now: Instant) {
        if now > self.last_heard {
            self.last_heard = now;
        }
        self.pinged = false;
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        let after = if self.pinged {
            self.limits.dead_after
        } else {
            self.limits.ping_after
        };
        self.last_heard + after
    }

    /// Time passed: ping once when `ping_after` of silence is reached, and
    /// declare the peer dead at `dead_after`. Early or repeated calls
    /// return [`LivenessAction::Wait`].
    #[must_use]
    pub fn handle_timeout(&mut self, now: Instant) -> LivenessAction {
        let silent = now.saturating_duration_since(self.last_heard);
        if silent >= self.limits.dead_after {
            LivenessAction::Dead
        } else if silent >= self.limits.ping_after && !self.pinged {
            self.pinged = true;
            LivenessAction::Ping
        } else {
            LivenessAction::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SilenceLimits = SilenceLimits {
        ping_after: Duration::from_secs(45),
        dead_after: Duration::from_secs(90),
    };

    /// Drives `liveness` as a run loop does while the peer says nothing
    /// and we send every `sending`: a wake-up at each send and at each
    /// `poll_timeout`. Returns what it asked for, when.
    fn silent_peer(
        liveness: &mut Liveness,
        start: Instant,
        sending: Duration,
    ) -> Vec<(Duration, LivenessAction)> {
        let mut actions = Vec::new();
        let mut next_send = start + sending;
        while next_send - start < Duration::from_secs(600) {
            let deadline = liveness.poll_timeout();
            if deadline <= next_send {
                match liveness.handle_timeout(deadline) {
                    LivenessAction::Wait => {}
                    LivenessAction::Dead => {
                        actions.push((deadline - start, LivenessAction::Dead));
                        break;
                    }
                    action => actions.push((deadline - start, action)),
                }
            } else {
                next_send += sending; // our own traffic: nothing to do
            }
        }
        actions
    }

    #[test]
    fn sending_postpones_neither_the_ping_nor_the_verdict() {
        let start = Instant::now();
        for sending in [1, 2, 5, 44].map(Duration::from_secs) {
            let mut liveness = Liveness::new(LIMITS, start);
            assert_eq!(
                silent_peer(&mut liveness, start, sending),
                [
                    (LIMITS.ping_after, LivenessAction::Ping),
                    (LIMITS.dead_after, LivenessAction::Dead)
                ],
                "sending every {sending:?}"
            );
        }
    }

    #[test]
    fn hearing_from_the_peer_restarts_the_clock() {
        let start = Instant::now();
        let mut liveness = Liveness::new(LIMITS, start);
        assert_eq!(liveness.poll_timeout(), start + LIMITS.ping_after);
        assert_eq!(
            liveness.handle_timeout(start + LIMITS.ping_after),
            LivenessAction::Ping
        );
        assert_eq!(liveness.poll_timeout(), start + LIMITS.dead_after);
        // The Pong (or anything else) arrives.
        let heard = start + Duration::from_secs(50);
        liveness.handle_heard(heard);
        assert_eq!(liveness.poll_timeout(), heard + LIMITS.ping_after);
        assert_eq!(
            liveness.handle_timeout(start + LIMITS.dead_after),
            LivenessAction::Wait
        );
        assert_eq!(
            liveness.handle_timeout(heard + LIMITS.ping_after),
            LivenessAction::Ping
        );
        assert_eq!(
            liveness.handle_timeout(heard + LIMITS.dead_after),
            LivenessAction::Dead
        );
    }

    #[test]
    fn an_early_or_repeated_wake_up_changes_nothing() {
        let start = Instant::now();
        let mut liveness = Liveness::new(LIMITS, start);
        assert_eq!(
            liveness.handle_timeout(start + Duration::from_secs(10)),
            LivenessAction::Wait
        );
        assert_eq!(liveness.poll_timeout(), start + LIMITS.ping_after);
        assert_eq!(
            liveness.handle_timeout(start + Duration::from_secs(46)),
            LivenessAction::Ping
        );
        assert_eq!(
            liveness.handle_timeout(start + Duration::from_secs(47)),
            LivenessAction::Wait
        );
        assert_eq!(liveness.poll_timeout(), start + LIMITS.dead_after);
    }

    #[test]
    fn a_stale_heard_time_does_not_move_the_clock_back() {
        let start = Instant::now();
        let mut liveness = Liveness::new(LIMITS, start + Duration::from_secs(10));
        liveness.handle_heard(start);
        assert_eq!(
            liveness.poll_timeout(),
            start + Duration::from_secs(10) + LIMITS.ping_after
        );
    }
}
