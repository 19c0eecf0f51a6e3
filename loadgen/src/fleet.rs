//! The coordinator of many [`member`](crate::member) tasks: joins them,
//! runs phases, collects and merges what they report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::latency::{Merged, Summary};
use crate::member::{self, Command, Drain, MemberSpec, Phase, Report, MAX_LOAD_ROOMS};
use crate::proc_stats::{CpuSample, CpuUse};
use crate::transport::Transport;

/// Distinct error messages kept per tally; the rest are counted as "other".
const MAX_DISTINCT_ERRORS: usize = 32;
const MAX_ERROR_CHARS: usize = 160;

/// Error messages with how often each occurred.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Tally(BTreeMap<String, u64>);

impl Tally {
    pub fn add(&mut self, error: &str) {
        let mut key: String = error.chars().take(MAX_ERROR_CHARS).collect();
        if !self.0.contains_key(&key) && self.0.len() >= MAX_DISTINCT_ERRORS {
            key = "(other errors)".to_owned();
        }
        *self.0.entry(key).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &u64)> {
        self.0.iter()
    }
}

/// How to build a fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub clients: usize,
    /// The first `senders` members send during phases.
    pub senders: usize,
    /// Member `k` logs in as account `account_base + k`.
    pub account_base: usize,
    pub join_concurrency: usize,
    pub epoch: Instant,
    pub server_pid: Option<u32>,
    /// Progress lines on stderr.
    pub progress: bool,
    /// Load rooms the members are spread over (account % rooms); 0 or 1:
    /// all in one room.
    pub rooms: usize,
}

/// How getting everyone in went.
#[derive(Debug, Clone, Serialize)]
pub struct JoinSummary {
    pub requested: usize,
    pub joined: usize,
    pub failed: usize,
    pub resumed: usize,
    pub registered: usize,
    /// Registrations completed per second, over the span from the first
    /// Register sent to the last AuthOk for one.
    pub registrations_per_sec: Option<f64>,
    pub joins_per_sec: f64,
    pub handshake: Summary,
    pub login: Summary,
    pub errors: Tally,
    pub cpu: CpuUse,
}

/// What one phase measured, over every member that reported.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseOutcome {
    pub phase: u16,
    pub clients: usize,
    pub senders: usize,
    /// Messages per second per sender, as scheduled.
    pub rate_per_sender: f64,
    pub offered_msgs_per_sec: f64,
    pub bytes: usize,
    pub duration_secs: f64,
    /// Members whose result arrived (the rest dropped or timed out).
    pub reporting: usize,
    pub sent: u64,
    pub rate_limited: u64,
    /// Deliveries due: every accepted message to every other reporting member.
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub deliveries_per_sec: f64,
    pub latency: Summary,
    /// Worst delay between a message's scheduled and actual send: large
    /// values mean the load generator (or the socket) fell behind.
    pub max_send_lag_ms: f64,
    /// Deliveries over 50 ms by the second their message was sent, counted
    /// from `slow_origin` (the run's start unless a mode moves it).
    pub slow: Vec<crate::latency::SlowSecond>,
    pub slow_origin: &'static str,
    pub stale: u64,
    pub errors: u64,
    pub drops: u64,
    pub rejoins: u64,
    pub cpu: CpuUse,
}

/// How a mass reconnect went: every member dropped its connection at once
/// and logged in again with its resume token.
#[derive(Debug, Clone, Serialize)]
pub struct ReconnectOutcome {
    pub clients: usize,
    pub back: usize,
    /// Back with the resume token (the rest had to log in with the password).
    pub resumed: usize,
    /// Back through a resumed handshake (keyed by the token, no ffdhe3072).
    pub resumed_handshakes: usize,
    pub gone: usize,
    /// From the command to the last member back in its rooms (greeting
    /// read), if everyone came back.
    pub all_back_secs: Option<f64>,
    /// ... to the moment half, 90 % and 99 % were back.
    pub half_back_secs: Option<f64>,
    pub p90_back_secs: Option<f64>,
    pub p99_back_secs: Option<f64>,
    pub within_secs: f64,
    pub handshake: Summary,
    pub login: Summary,
    pub errors: Tally,
    pub cpu: CpuUse,
}

/// Time allowed past a phase's end for senders to report.
const SENT_GRACE: Duration = Duration::from_secs(30);
/// Time allowed past the drain deadline for results to arrive.
const RESULT_GRACE: Duration = Duration::from_secs(10);
/// Lead time before a phase starts, so every member has seen the command.
const PHASE_LEAD: Duration = Duration::from_millis(200);

pub struct Fleet {
    commands: watch::Sender<Command>,
    reports: mpsc::UnboundedReceiver<Report>,
    tasks: JoinSet<()>,
    /// Members still in the game (joined and not gone).
    alive: Vec<bool>,
    /// Each member's load room, by slot.
    room_of_slot: Vec<usize>,
    senders: usize,
    next_phase: u16,
    server_pid: Option<u32>,
    progress: bool,
    pub drops: u64,
    pub rejoins: u64,
    pub drop_reasons: Tally,
}

impl Fleet {
    /// Spawns one task per client and waits until each has joined or failed.
    pub async fn join<T: Transport>(
        transport: Arc<T>,
        opts: &FleetOptions,
    ) -> (Fleet, JoinSummary) {
        let (commands, _) = watch::channel(Command::Hold);
        let (report_tx, reports) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(opts.join_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let cpu0 = CpuSample::take(opts.server_pid);
        let started = Instant::now();
        let specs = (0..opts.clients).map(|slot| MemberSpec {
            slot,
            account: opts.account_base + slot,
            sender: (slot < opts.senders).then_some((slot, opts.senders)),
            epoch: opts.epoch,
            room: room_of(opts.account_base + slot, opts.rooms),
        });
        member::spawn_all(
            &mut tasks, &transport, specs, &permits, &commands, &report_tx,
        );
        drop(report_tx);

        let mut fleet = Fleet {
            commands,
            reports,
            tasks,
            alive: vec![false; opts.clients],
            room_of_slot: (0..opts.clients)
                .map(|slot| room_of(opts.account_base + slot, opts.rooms))
                .collect(),
            senders: opts.senders,
            next_phase: 1,
            server_pid: opts.server_pid,
            progress: opts.progress,
            drops: 0,
            rejoins: 0,
            drop_reasons: Tally::default(),
        };

        let mut joined = 0;
        let mut failed = 0;
        let mut resumed = 0;
        let mut registrations: Vec<(Instant, Instant)> = Vec::new();
        let mut handshake = Merged::default();
        let mut login = Merged::default();
        let mut errors = Tally::default();
        let mut last_progress = Instant::now();
        let mut ticks = tokio::time::interval(Duration::from_secs(2));
        while joined + failed < opts.clients {
            let report = tokio::select! {
                r = fleet.reports.recv() => r,
                _ = ticks.tick() => {
                    let to_go = opts.clients - joined - failed;
                    fleet.progress_line(
                        || format!("joining: {joined} in, {failed} failed, {to_go} to go"),
                        &mut last_progress,
                    );
                    continue;
                }
            };
            let Some(report) = report else { break };
            match report {
                Report::Joined { slot, info } => {
                    joined += 1;
                    fleet.alive[slot] = true;
                    resumed += usize::from(info.resumed);
                    handshake.record(info.handshake);
                    login.record(info.login);
                    if let Some(span) = info.registered {
                        registrations.push(span);
                    }
                }
                Report::JoinFailed { error, .. } => {
                    failed += 1;
                    errors.add(&error);
                }
                other => fleet.absorb(other),
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let summary = JoinSummary {
            requested: opts.clients,
            joined,
            failed,
            resumed,
            registered: registrations.len(),
            registrations_per_sec: registration_rate(&registrations),
            joins_per_sec: if wall > 0.0 {
                joined as f64 / wall
            } else {
                0.0
            },
            handshake: handshake.summary(),
            login: login.summary(),
            errors,
            cpu: cpu0.until(&CpuSample::take(opts.server_pid)),
        };
        (fleet, summary)
    }

    fn progress_line(&self, line: impl FnOnce() -> String, last: &mut Instant) {
        if self.progress && last.elapsed() >= Duration::from_secs(2) {
            eprintln!("securechat-load: {}", line());
            *last = Instant::now();
        }
    }

    pub fn alive(&self) -> usize {
        self.alive.iter().filter(|a| **a).count()
    }

    /// Bookkeeping for reports that need no answer.
    fn absorb(&mut self, report: Report) {
        match report {
            Report::Dropped { reason, .. } => {
                self.drops += 1;
                self.drop_reasons.add(&reason);
            }
            Report::Rejoined { .. } => self.rejoins += 1,
            Report::Gone { slot, error } => {
                self.alive[slot] = false;
                self.drop_reasons.add(&format!("could not rejoin: {error}"));
            }
            // Late or unexpected: nothing waits for these any more.
            Report::Joined { .. }
            | Report::JoinFailed { .. }
            | Report::Sent { .. }
            | Report::Result(_) => {}
        }
    }

    /// Keeps everyone connected for `duration`, noting drops.
    pub async fn hold(&mut self, duration: Duration) {
        self.commands.send_replace(Command::Hold);
        let until = tokio::time::Instant::now() + duration;
        loop {
            tokio::select! {
                r = self.reports.recv() => match r {
                    Some(r) => self.absorb(r),
                    None => { tokio::time::sleep_until(until).await; return; }
                },
                () = tokio::time::sleep_until(until) => return,
            }
        }
    }

    /// Runs one phase: the senders send `rate` msgs/s each of `bytes` bytes
    /// for `duration`, then everyone drains for at most `drain`.
    pub async fn run_phase(
        &mut self,
        rate: f64,
        bytes: usize,
        duration: Duration,
        drain: Duration,
    ) -> PhaseOutcome {
        let id = self.next_phase;
        self.next_phase += 1;
        let drops0 = (self.drops, self.rejoins);
        let cpu0 = CpuSample::take(self.server_pid);
        let start = Instant::now() + PHASE_LEAD;
        let end = start + duration;
        self.commands.send_replace(Command::Run(Phase {
            id,
            rate,
            bytes,
            start,
            end,
        }));

        // 1. Wait for every live sender's count.
        let mut sent_by: Vec<Option<u64>> = vec![None; self.senders];
        let mut max_lag = Duration::ZERO;
        let sent_deadline = tokio::time::Instant::from_std(end + SENT_GRACE);
        while (0..self.senders).any(|s| self.alive[s] && sent_by[s].is_none()) {
            let report = tokio::select! {
                r = self.reports.recv() => r,
                () = tokio::time::sleep_until(sent_deadline) => None,
            };
            match report {
                Some(Report::Sent {
                    slot,
                    phase,
                    sent,
                    max_lag: lag,
                }) if phase == id => {
                    sent_by[slot] = Some(sent);
                    max_lag = max_lag.max(lag);
                }
                Some(other) => self.absorb(other),
                None => break,
            }
        }
        let total_sent: u64 = sent_by.iter().flatten().sum();
        let rooms = self.room_of_slot.iter().max().map_or(1, |r| r + 1);
        let mut room_sent = vec![0u64; rooms];
        for (slot, sent) in sent_by.iter().enumerate() {
            room_sent[self.room_of_slot[slot]] += sent.unwrap_or(0);
        }

        // 2. Drain: everyone waits for what it is owed, up to the deadline.
        let deadline = Instant::now() + drain;
        self.commands.send_replace(Command::Drain(Drain {
            phase: id,
            room_sent: Arc::from(room_sent.as_slice()),
            deadline,
        }));
        let mut results = Vec::new();
        let mut reported = vec![false; self.alive.len()];
        let result_deadline = tokio::time::Instant::from_std(deadline + RESULT_GRACE);
        let mut last_progress = Instant::now();
        while (0..self.alive.len()).any(|s| self.alive[s] && !reported[s]) {
            let report = tokio::select! {
                r = self.reports.recv() => r,
                () = tokio::time::sleep_until(result_deadline) => None,
            };
            match report {
                Some(Report::Result(r)) if r.phase == id => {
                    reported[r.slot] = true;
                    results.push(r);
                }
                Some(other) => self.absorb(other),
                None => break,
            }
            self.progress_line(
                || format!("phase {id}: {} results in", results.len()),
                &mut last_progress,
            );
        }
        self.commands.send_replace(Command::Hold);
        let cpu = cpu0.until(&CpuSample::take(self.server_pid));

        // 3. Merge.
        let mut latency = Merged::default();
        let mut slow = crate::latency::SlowSeconds::default();
        let (mut received, mut rate_limited, mut stale, mut errors) = (0u64, 0u64, 0u64, 0u64);
        for r in &results {
            received += r.received;
            rate_limited += r.rate_limited;
            stale += r.stale;
            errors += r.errors;
            if let Some(h) = &r.latency {
                latency.add_task(h);
            }
            slow.merge(&r.slow);
        }
        // Every accepted message is due at every reporting member of its
        // room but its sender.
        let mut room_accepted = room_sent;
        for r in &results {
            let room = &mut room_accepted[self.room_of_slot[r.slot]];
            *room = room.saturating_sub(r.rate_limited);
        }
        let expected: u64 = results
            .iter()
            .map(|r| {
                room_accepted[self.room_of_slot[r.slot]]
                    .saturating_sub(r.sent.saturating_sub(r.rate_limited))
            })
            .sum();
        let lost = expected.saturating_sub(received);
        let secs = duration.as_secs_f64();
        PhaseOutcome {
            phase: id,
            clients: self.alive.len(),
            senders: self.senders,
            rate_per_sender: rate,
            offered_msgs_per_sec: rate * self.senders as f64,
            bytes,
            duration_secs: secs,
            reporting: results.len(),
            sent: total_sent,
            rate_limited,
            expected,
            received,
            lost,
            loss_ratio: if expected > 0 {
                lost as f64 / expected as f64
            } else {
                0.0
            },
            deliveries_per_sec: received as f64 / secs,
            latency: latency.summary(),
            max_send_lag_ms: max_lag.as_secs_f64() * 1000.0,
            slow: slow.seconds(),
            slow_origin: "the run's start",
            stale,
            errors,
            drops: self.drops - drops0.0,
            rejoins: self.rejoins - drops0.1,
            cpu,
        }
    }

    /// Every member drops its connection at once and logs in again with
    /// its resume token; waits at most `within` for them to be back.
    pub async fn reconnect_all(&mut self, within: Duration) -> ReconnectOutcome {
        let id = self.next_phase;
        self.next_phase += 1;
        let clients = self.alive();
        let cpu0 = CpuSample::take(self.server_pid);
        let started = Instant::now();
        // Left as the current command: a member acts on it once.
        self.commands.send_replace(Command::Reconnect(id));
        let deadline = tokio::time::Instant::now() + within;
        let mut back_at: Vec<f64> = Vec::with_capacity(clients);
        let (mut resumed, mut resumed_handshakes, mut gone) = (0, 0, 0);
        let mut handshake = Merged::default();
        let mut login = Merged::default();
        let mut errors = Tally::default();
        let mut last_progress = Instant::now();
        let mut ticks = tokio::time::interval(Duration::from_secs(2));
        while back_at.len() + gone < clients {
            tokio::select! {
                r = self.reports.recv() => match r {
                    Some(Report::Rejoined { info, .. }) => {
                        back_at.push(started.elapsed().as_secs_f64());
                        resumed += usize::from(info.resumed);
                        resumed_handshakes += usize::from(info.resumed_handshake);
                        handshake.record(info.handshake);
                        login.record(info.login);
                    }
                    Some(Report::Gone { slot, error }) => {
                        gone += 1;
                        self.alive[slot] = false;
                        errors.add(&error);
                    }
                    Some(other) => self.absorb(other),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
                _ = ticks.tick() => {
                    let n = back_at.len();
                    self.progress_line(
                        || format!("reconnecting: {n} of {clients} back, {gone} gone"),
                        &mut last_progress,
                    );
                }
            }
        }
        let at = |fraction: f64| -> Option<f64> {
            let needed = ((clients as f64) * fraction).ceil() as usize;
            (needed > 0 && back_at.len() >= needed).then(|| back_at[needed - 1])
        };
        ReconnectOutcome {
            clients,
            back: back_at.len(),
            resumed,
            resumed_handshakes,
            gone,
            all_back_secs: at(1.0),
            half_back_secs: at(0.5),
            p90_back_secs: at(0.9),
            p99_back_secs: at(0.99),
            within_secs: within.as_secs_f64(),
            handshake: handshake.summary(),
            login: login.summary(),
            errors,
            cpu: cpu0.until(&CpuSample::take(self.server_pid)),
        }
    }

    /// Says goodbye on every connection and waits (bounded) for the tasks.
    pub async fn stop(mut self, timeout: Duration) {
        self.commands.send_replace(Command::Stop);
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, all_done).await.is_err() {
            self.tasks.abort_all();
        }
    }
}

/// The load room of `account` when spread over `rooms`.
pub fn room_of(account: usize, rooms: usize) -> usize {
    if rooms <= 1 {
        0
    } else {
        account % rooms.min(MAX_LOAD_ROOMS)
    }
}

/// Registrations per second over the span they took.
fn registration_rate(spans: &[(Instant, Instant)]) -> Option<f64> {
    let first = spans.iter().map(|s| s.0).min()?;
    let last = spans.iter().map(|s| s.1).max()?;
    let secs = last.duration_since(first).as_secs_f64();
    (secs > 0.0).then(|| spans.len() as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_and_caps_distinct_messages() {
        let mut t = Tally::default();
        t.add("connect: refused");
        t.add("connect: refused");
        for i in 0..100 {
            t.add(&format!("error {i}"));
        }
        assert_eq!(t.total(), 102);
        assert_eq!(t.iter().count(), MAX_DISTINCT_ERRORS + 1);
        assert_eq!(t.0["connect: refused"], 2);
        let mut u = Tally::default();
        u.add("connect: refused");
        u.merge(&t);
        assert_eq!(u.0["connect: refused"], 3);
    }

    #[test]
    fn registration_rate_spans_first_start_to_last_end() {
        let t0 = Instant::now();
        let s = |a: u64, b: u64| (t0 + Duration::from_millis(a), t0 + Duration::from_millis(b));
        let spans = [s(0, 20), s(10, 30), s(500, 1000)];
        assert_eq!(registration_rate(&spans), Some(3.0));
        assert_eq!(registration_rate(&[]), None);
    }
}
