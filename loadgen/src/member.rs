//! One load client: a task that owns one connection, sends on schedule when
//! it is a sender, and measures every stamped room message it receives.
//!
//! The task talks to the coordinator ([`crate::fleet`]) only through a
//! `watch` channel of [`Command`]s (in) and an unbounded channel of
//! [`Report`]s (out), a few times per phase. Receiving a message touches
//! nothing shared: counters and the histogram belong to the task.
//!
//! A phase runs as: `Run(phase)` → senders send until `phase.end` and
//! report `Sent` → the coordinator adds up what was sent and broadcasts
//! `Drain { room_sent }` → each member keeps receiving until it has every
//! message it should get (all sent minus its own) or the drain deadline,
//! then reports its `PhaseResult`.
//!
//! [`Member`] is that state machine without I/O; [`run`] wires it to a
//! connection.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::latency::Recorder;
use crate::stamp::{nanos_since, Stamp};
use crate::transport::{ChatConnection, ChatEvent, JoinInfo, Transport};

/// What the coordinator wants the fleet to do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Stay connected, answer keep-alives, send nothing.
    Hold,
    Run(Phase),
    Drain(Drain),
    /// Drop the connection without a goodbye (as a network cut does) and
    /// log in again at once with the resume token; the number tells one
    /// such command from the next.
    Reconnect(u16),
    /// Say goodbye and end the task.
    Stop,
}

/// One step of sending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    /// 1-based, increasing; carried in every stamp.
    pub id: u16,
    /// Messages per second per sender.
    pub rate: f64,
    /// Size of each message text.
    pub bytes: usize,
    pub start: Instant,
    pub end: Instant,
}

/// Most rooms one run spreads its clients over (`--rooms`).
pub const MAX_LOAD_ROOMS: usize = 1000;

/// Sending of phase `phase` is over; `room_sent[r]` messages went out in
/// load room `r` (one entry when all are in one room).
#[derive(Debug, Clone, PartialEq)]
pub struct Drain {
    pub phase: u16,
    pub room_sent: Arc<[u64]>,
    pub deadline: Instant,
}

impl Drain {
    /// Everyone in one room, `total_sent` sent in it.
    pub fn one_room(phase: u16, total_sent: u64, deadline: Instant) -> Self {
        Self {
            phase,
            room_sent: Arc::from([total_sent]),
            deadline,
        }
    }
}

/// What a member tells the coordinator.
#[derive(Debug)]
pub enum Report {
    Joined {
        slot: usize,
        info: JoinInfo,
    },
    JoinFailed {
        slot: usize,
        error: String,
    },
    /// A sender finished sending `phase`.
    Sent {
        slot: usize,
        phase: u16,
        sent: u64,
        max_lag: Duration,
    },
    Result(PhaseResult),
    /// The connection was lost; the member is trying to get back in.
    Dropped {
        slot: usize,
        reason: String,
    },
    Rejoined {
        slot: usize,
        info: JoinInfo,
    },
    /// Lost and could not rejoin: the member has ended.
    Gone {
        slot: usize,
        error: String,
    },
}

/// One member's view of one phase.
#[derive(Debug)]
pub struct PhaseResult {
    pub slot: usize,
    pub phase: u16,
    pub sent: u64,
    /// Stamped messages of this phase received before reporting.
    pub received: u64,
    /// What the member waited for: everything sent minus its own.
    pub expected: u64,
    pub rate_limited: u64,
    pub errors: u64,
    /// Messages of an earlier phase that arrived after it was reported.
    pub stale: u64,
    pub latency: Option<Box<Histogram<u32>>>,
    pub slow: crate::latency::SlowSeconds,
}

/// A member's place in the fleet.
#[derive(Debug, Clone, Copy)]
pub struct MemberSpec {
    /// Position in the fleet (0-based); the account index is derived from it.
    pub slot: usize,
    /// The account this member logs in as.
    pub account: usize,
    /// `Some((rank, senders))` for the senders; ranks spread their send
    /// times evenly over one period.
    pub sender: Option<(usize, usize)>,
    /// The shared clock origin of all stamps.
    pub epoch: Instant,
    /// The load room it is in (0 when all are in one room).
    pub room: usize,
}

#[derive(Debug)]
struct Counters {
    phase: u16,
    sent: u64,
    received: u64,
    rate_limited: u64,
    errors: u64,
    latency: Recorder,
    slow: crate::latency::SlowSeconds,
    reported: bool,
}

impl Counters {
    fn new(phase: u16) -> Self {
        Self {
            phase,
            sent: 0,
            received: 0,
            rate_limited: 0,
            errors: 0,
            latency: Recorder::default(),
            slow: crate::latency::SlowSeconds::default(),
            reported: false,
        }
    }
}

#[derive(Debug)]
struct Sending {
    phase: Phase,
    period: Duration,
    next: Instant,
    max_lag: Duration,
}

/// The state machine of one member, without I/O.
#[derive(Debug)]
pub struct Member {
    spec: MemberSpec,
    counters: Counters,
    sending: Option<Sending>,
    /// (messages to wait for, deadline)
    draining: Option<(u64, Instant)>,
    stale: u64,
}

impl Member {
    pub fn new(spec: MemberSpec) -> Self {
        Self {
            spec,
            counters: Counters::new(0),
            sending: None,
            draining: None,
            stale: 0,
        }
    }

    /// Starts counting for `phase` unless already doing so.
    fn enter_phase(&mut self, phase: u16) {
        if phase > self.counters.phase {
            self.counters = Counters::new(phase);
        }
    }

    /// Acts on a new command (not `Stop`, which the task handles).
    pub fn on_command(&mut self, cmd: Command, out: &mut Vec<Report>) {
        match cmd {
            Command::Hold | Command::Stop | Command::Reconnect(_) => {}
            Command::Run(phase) => {
                self.enter_phase(phase.id);
                if let Some((rank, senders)) = self.spec.sender {
                    let period = Duration::from_secs_f64(1.0 / phase.rate);
                    let offset = period.mul_f64(rank as f64 / senders.max(1) as f64);
                    self.sending = Some(Sending {
                        phase,
                        period,
                        next: phase.start + offset,
                        max_lag: Duration::ZERO,
                    });
                }
            }
            Command::Drain(drain) => {
                if self
                    .sending
                    .as_ref()
                    .is_some_and(|s| s.phase.id == drain.phase)
                {
                    self.finish_sending(out);
                }
                self.enter_phase(drain.phase);
                if self.counters.phase == drain.phase && !self.counters.reported {
                    let in_room = drain.room_sent.get(self.spec.room).copied().unwrap_or(0);
                    let expected = in_room.saturating_sub(self.counters.sent);
                    self.draining = Some((expected, drain.deadline));
                    self.check_drained(out);
                }
            }
        }
    }

    /// When the task should next call [`Self::on_wake`].
    pub fn next_wakeup(&self) -> Option<Instant> {
        let send = self.sending.as_ref().map(|s| s.next.min(s.phase.end));
        let drain = self.draining.map(|(_, deadline)| deadline);
        match (send, drain) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Timer work at `now`: returns the stamp of a message to send now, if
    /// one is due (one per call, so receiving interleaves with a backlog).
    /// `now` must be read just before sending: it is the send time stamped.
    pub fn on_wake(&mut self, now: Instant, out: &mut Vec<Report>) -> Option<(Stamp, usize)> {
        if let Some((_, deadline)) = self.draining {
            if now >= deadline {
                self.finish_phase(out);
            }
        }
        let s = self.sending.as_mut()?;
        if s.next >= s.phase.end {
            self.finish_sending(out);
            return None;
        }
        if s.next > now {
            return None;
        }
        // Stamped with the actual send time: the runtime's timer fires up to
        // a millisecond late, which is not the server's doing. Falling
        // further behind (a busy generator, or a server not reading) shows
        // up as send lag, reported separately.
        let stamp = Stamp::at(self.spec.epoch, now, s.phase.id);
        s.max_lag = s.max_lag.max(now - s.next);
        s.next += s.period;
        let bytes = s.phase.bytes;
        if self.counters.phase == s.phase.id {
            self.counters.sent += 1;
        }
        Some((stamp, bytes))
    }

    /// A stamped room message arrived at `received_ns` (since the epoch).
    pub fn on_stamp(&mut self, stamp: Stamp, received_ns: u64, out: &mut Vec<Report>) {
        self.enter_phase(stamp.phase);
        if stamp.phase != self.counters.phase || self.counters.reported {
            self.stale += 1;
            return;
        }
        self.counters.received += 1;
        let latency = stamp.latency(received_ns);
        self.counters.latency.record(latency);
        self.counters.slow.record(stamp.sent_ns, latency);
        if self.draining.is_some() {
            self.check_drained(out);
        }
    }

    pub fn on_rate_limited(&mut self) {
        self.counters.rate_limited += 1;
    }

    pub fn on_error(&mut self) {
        self.counters.errors += 1;
    }

    fn finish_sending(&mut self, out: &mut Vec<Report>) {
        if let Some(s) = self.sending.take() {
            let sent = if self.counters.phase == s.phase.id {
                self.counters.sent
            } else {
                0
            };
            out.push(Report::Sent {
                slot: self.spec.slot,
                phase: s.phase.id,
                sent,
                max_lag: s.max_lag,
            });
        }
    }

    fn check_drained(&mut self, out: &mut Vec<Report>) {
        if let Some((expected, _)) = self.draining {
            if self.counters.received >= expected {
                self.finish_phase(out);
            }
        }
    }

    fn finish_phase(&mut self, out: &mut Vec<Report>) {
        let Some((expected, _)) = self.draining.take() else {
            return;
        };
        let c = &mut self.counters;
        c.reported = true;
        out.push(Report::Result(PhaseResult {
            slot: self.spec.slot,
            phase: c.phase,
            sent: c.sent,
            received: c.received,
            expected,
            rate_limited: c.rate_limited,
            errors: c.errors,
            stale: std::mem::take(&mut self.stale),
            latency: c.latency.take(),
            slow: std::mem::take(&mut c.slow),
        }));
    }
}

/// How often and how patiently a dropped member tries to get back in.
const REJOIN_ATTEMPTS: u32 = 3;
const REJOIN_BACKOFF: Duration = Duration::from_millis(500);

async fn next_command(mut rx: watch::Receiver<Command>) -> (watch::Receiver<Command>, Command) {
    let cmd = match rx.changed().await {
        Ok(()) => rx.borrow_and_update().clone(),
        Err(_) => Command::Stop,
    };
    (rx, cmd)
}

fn flush(reports: &mpsc::UnboundedSender<Report>, out: &mut Vec<Report>) {
    for r in out.drain(..) {
        // The coordinator only goes away at the very end.
        let _ = reports.send(r);
    }
}

/// Joins under `join_permits`, retrying a lost connection a few times.
async fn join_with_permit<T: Transport>(
    transport: &T,
    account: usize,
    memory: &mut T::Memory,
    join_permits: &Semaphore,
) -> Result<(T::Conn, JoinInfo), String> {
    let _permit = join_permits
        .acquire()
        .await
        .map_err(|_| "shutting down".to_owned())?;
    transport
        .join(account, memory)
        .await
        .map_err(|e| e.to_string())
}

/// The member task: join, then follow commands until `Stop`.
pub async fn run<T: Transport>(
    transport: Arc<T>,
    spec: MemberSpec,
    join_permits: Arc<Semaphore>,
    commands: watch::Receiver<Command>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let slot = spec.slot;
    let mut memory = T::Memory::default();
    let mut conn =
        match join_with_permit(&*transport, spec.account, &mut memory, &join_permits).await {
            Ok((conn, info)) => {
                let _ = reports.send(Report::Joined { slot, info });
                conn
            }
            Err(error) => {
                let _ = reports.send(Report::JoinFailed { slot, error });
                return;
            }
        };

    let mut member = Member::new(spec);
    let mut out = Vec::new();
    let mut text = String::new();
    // A command issued before this member joined is acted on at once.
    let current = commands.borrow().clone();
    if current == Command::Stop {
        conn.close().await;
        return;
    }
    member.on_command(current, &mut out);
    flush(&reports, &mut out);

    // Long-lived futures, re-armed only when needed: re-creating a timer or
    // a watch waiter per received message would touch shared runtime state
    // on the receive path.
    let far = || Instant::now() + Duration::from_secs(86_400);
    let mut timer = Box::pin(tokio::time::sleep_until(far().into()));
    let mut armed: Option<Instant> = None;
    let mut command = Box::pin(next_command(commands));

    loop {
        let mut forced = false;
        let want = member.next_wakeup();
        if want != armed {
            timer.as_mut().reset(want.unwrap_or_else(far).into());
            armed = want;
        }
        let lost: Option<String> = tokio::select! {
            event = conn.next_event() => match event {
                Ok(ChatEvent::Room(Some(stamp))) => {
                    let now_ns = nanos_since(spec.epoch, Instant::now());
                    member.on_stamp(stamp, now_ns, &mut out);
                    None
                }
                Ok(ChatEvent::Room(None)) => None,
                Ok(ChatEvent::RateLimited) => {
                    member.on_rate_limited();
                    None
                }
                Ok(ChatEvent::Error(_)) => {
                    member.on_error();
                    None
                }
                Ok(ChatEvent::Closed(reason)) => Some(reason),
                Err(e) => Some(e.to_string()),
            },
            (rx, cmd) = &mut command => {
                command = Box::pin(next_command(rx));
                if cmd == Command::Stop {
                    flush(&reports, &mut out);
                    conn.close().await;
                    return;
                }
                if let Command::Reconnect(_) = cmd {
                    forced = true;
                    Some("asked to reconnect".to_owned())
                } else {
                    member.on_command(cmd, &mut out);
                    None
                }
            },
            () = &mut timer, if armed.is_some() => {
                // The timer has fired: re-arm on the next turn whatever happens.
                armed = None;
                match member.on_wake(Instant::now(), &mut out) {
                    Some((stamp, bytes)) => {
                        stamp.write_text(&mut text, bytes);
                        conn.send_room(&text).await.err().map(|e| e.to_string())
                    }
                    None => None,
                }
            },
        };
        flush(&reports, &mut out);

        if let Some(reason) = lost {
            if !forced {
                let _ = reports.send(Report::Dropped { slot, reason });
            }
            // Closed without a goodbye: the server sees the connection drop.
            drop(conn);
            match rejoin(&*transport, spec.account, &mut memory, &join_permits).await {
                Ok((new_conn, info)) => {
                    conn = new_conn;
                    let _ = reports.send(Report::Rejoined { slot, info });
                }
                Err(error) => {
                    let _ = reports.send(Report::Gone { slot, error });
                    return;
                }
            }
        }
    }
}

async fn rejoin<T: Transport>(
    transport: &T,
    account: usize,
    memory: &mut T::Memory,
    join_permits: &Semaphore,
) -> Result<(T::Conn, JoinInfo), String> {
    let mut last = String::new();
    for attempt in 0..REJOIN_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(REJOIN_BACKOFF * 2u32.pow(attempt - 1)).await;
        }
        match join_with_permit(transport, account, memory, join_permits).await {
            Ok(joined) => return Ok(joined),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Spawns `run` for every spec; `Send`-checked here once rather than at
/// every call site.
pub fn spawn_all<T: Transport>(
    tasks: &mut tokio::task::JoinSet<()>,
    transport: &Arc<T>,
    specs: impl IntoIterator<Item = MemberSpec>,
    join_permits: &Arc<Semaphore>,
    commands: &watch::Sender<Command>,
    reports: &mpsc::UnboundedSender<Report>,
) {
    for spec in specs {
        let fut = run(
            transport.clone(),
            spec,
            join_permits.clone(),
            commands.subscribe(),
            reports.clone(),
        );
        assert_send(&fut);
        tasks.spawn(fut);
    }
}

fn assert_send<F: Future + Send>(_: &F) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(slot: usize, sender: Option<(usize, usize)>, epoch: Instant) -> MemberSpec {
        MemberSpec {
            slot,
            account: slot,
            sender,
            epoch,
            room: 0,
        }
    }

    fn phase(id: u16, rate: f64, start: Instant, secs: u64) -> Phase {
        Phase {
            id,
            rate,
            bytes: 32,
            start,
            end: start + Duration::from_secs(secs),
        }
    }

    /// Drives a sender through a whole phase with a virtual clock.
    fn send_all(m: &mut Member, out: &mut Vec<Report>) -> Vec<Stamp> {
        let mut stamps = Vec::new();
        while let Some(at) = m.next_wakeup() {
            if let Some((stamp, bytes)) = m.on_wake(at, out) {
                assert_eq!(bytes, 32);
                stamps.push(stamp);
            }
            if out.iter().any(|r| matches!(r, Report::Sent { .. })) {
                break;
            }
        }
        stamps
    }

    #[test]
    fn sender_sends_rate_times_duration_on_schedule_then_reports() {
        let epoch = Instant::now();
        let start = epoch + Duration::from_secs(1);
        let mut m = Member::new(spec(0, Some((0, 1)), epoch));
        let mut out = Vec::new();
        m.on_command(Command::Run(phase(1, 10.0, start, 2)), &mut out);
        let stamps = send_all(&mut m, &mut out);
        assert_eq!(stamps.len(), 20);
        assert_eq!(stamps[0].sent_ns, 1_000_000_000);
        assert_eq!(stamps[1].sent_ns, 1_100_000_000);
        assert!(stamps.iter().all(|s| s.phase == 1));
        match out.as_slice() {
            [Report::Sent {
                sent, phase, slot, ..
            }] => {
                assert_eq!((*sent, *phase, *slot), (20, 1, 0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.next_wakeup(), None, "nothing left to do");
    }

    #[test]
    fn sender_ranks_are_staggered_over_one_period() {
        let epoch = Instant::now();
        let mut m = Member::new(spec(1, Some((1, 4)), epoch));
        let mut out = Vec::new();
        m.on_command(Command::Run(phase(1, 4.0, epoch, 1)), &mut out);
        // Period 250 ms, rank 1 of 4: first send 62.5 ms in.
        assert_eq!(m.next_wakeup(), Some(epoch + Duration::from_micros(62_500)));
    }

    #[test]
    fn late_sender_catches_up_and_records_the_lag() {
        let epoch = Instant::now();
        let mut m = Member::new(spec(0, Some((0, 1)), epoch));
        let mut out = Vec::new();
        m.on_command(Command::Run(phase(1, 10.0, epoch, 1)), &mut out);
        let late = epoch + Duration::from_millis(350);
        let mut stamps = Vec::new();
        while let Some((s, _)) = m.on_wake(late, &mut out) {
            stamps.push(s.sent_ns / 1_000_000);
        }
        // Due at 0, 100, 200, 300 ms: all sent now, stamped now.
        assert_eq!(stamps, vec![350; 4]);
        send_all(&mut m, &mut out);
        match out.last() {
            Some(Report::Sent { sent, max_lag, .. }) => {
                assert_eq!(*sent, 10);
                assert_eq!(*max_lag, Duration::from_millis(350));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn receiver_reports_once_it_has_everything_it_expects() {
        let epoch = Instant::now();
        let mut m = Member::new(spec(3, None, epoch));
        let mut out = Vec::new();
        m.on_command(Command::Run(phase(1, 1.0, epoch, 1)), &mut out);
        assert_eq!(m.next_wakeup(), None, "receivers have no schedule");
        for i in 0..2 {
            let stamp = Stamp {
                phase: 1,
                sent_ns: i * 1000,
            };
            m.on_stamp(stamp, i * 1000 + 500_000, &mut out);
        }
        assert!(out.is_empty());
        let deadline = epoch + Duration::from_secs(5);
        m.on_command(Command::Drain(Drain::one_room(1, 3, deadline)), &mut out);
        assert!(out.is_empty(), "one message still missing");
        assert_eq!(m.next_wakeup(), Some(deadline));
        m.on_stamp(
            Stamp {
                phase: 1,
                sent_ns: 9,
            },
            10,
            &mut out,
        );
        match out.as_slice() {
            [Report::Result(r)] => {
                assert_eq!((r.received, r.expected, r.sent), (3, 3, 0));
                assert_eq!(r.latency.as_ref().unwrap().len(), 3);
            }
            other => panic!("{other:?}"),
        }
        // A duplicate or straggler of the reported phase is stale.
        out.clear();
        m.on_stamp(
            Stamp {
                phase: 1,
                sent_ns: 9,
            },
            10,
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(m.stale, 1);
    }

    #[test]
    fn sender_does_not_expect_its_own_messages() {
        let epoch = Instant::now();
        let mut m = Member::new(spec(0, Some((0, 2)), epoch));
        let mut out = Vec::new();
        m.on_command(Command::Run(phase(1, 2.0, epoch, 1)), &mut out);
        let own = send_all(&mut m, &mut out);
        assert_eq!(own.len(), 2);
        out.clear();
        // The other sender sent 2 as well: 4 in all, 2 expected here.
        m.on_command(
            Command::Drain(Drain::one_room(1, 4, epoch + Duration::from_secs(9))),
            &mut out,
        );
        for _ in 0..2 {
            m.on_stamp(
                Stamp {
                    phase: 1,
                    sent_ns: 0,
                },
                1,
                &mut out,
            );
        }
        match out.as_slice() {
            [Report::Result(r)] => assert_eq!((r.sent, r.received, r.expected), (2, 2, 2)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn drain_deadline_reports_what_arrived() {
        let epoch = Instant::now();
        let mut m = Member::new(spec(5, None, epoch));
        let mut out = Vec::new();
        let deadline = epoch + Duration::from_secs(1);
        m.on_command(Command::Drain(Drain::one_room(2, 10, deadline)), &mut out);
        m.on_stamp(
            Stamp {
                phase: 2,
                sent_ns: 0,
            },
            1,
            &mut out,
        );
        assert!(m.on_wake(deadline, &mut out).is_none());
        match out.as_slice() {
            [Report::Result(r)] => {
                assert_eq!((r.phase, r.received, r.expected), (2, 1, 10));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.next_wakeup(), None);
    }

    #[test]
    fn messages_of_a_newer_phase_start_fresh_counters() {
        let epoch = Instant::now();
        let mut m = Member::new(spec(1, None, epoch));
        let mut out = Vec::new();
        m.on_stamp(
            Stamp {
                phase: 1,
                sent_ns: 0,
            },
            1,
            &mut out,
        );
        // Phase 2's first message arrives before this member saw Run(2).
        m.on_stamp(
            Stamp {
                phase: 2,
                sent_ns: 0,
            },
            1,
            &mut out,
        );
        // And a straggler of phase 1 after that.
        m.on_stamp(
            Stamp {
                phase: 1,
                sent_ns: 0,
            },
            1,
            &mut out,
        );
        m.on_command(Command::Drain(Drain::one_room(2, 1, epoch)), &mut out);
        match out.as_slice() {
            [Report::Result(r)] => {
                assert_eq!((r.phase, r.received, r.stale), (2, 1, 1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rate_limited_replies_count_against_the_current_phase() {
        let epoch = Instant::now();
        let mut m = Member::new(spec(0, None, epoch));
        let mut out = Vec::new();
        m.on_command(Command::Run(phase(4, 1.0, epoch, 1)), &mut out);
        m.on_rate_limited();
        m.on_error();
        m.on_command(Command::Drain(Drain::one_room(4, 0, epoch)), &mut out);
        match out.as_slice() {
            [Report::Result(r)] => assert_eq!((r.rate_limited, r.errors), (1, 1)),
            other => panic!("{other:?}"),
        }
    }
}
