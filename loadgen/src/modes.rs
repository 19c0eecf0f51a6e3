//! The workloads behind each subcommand, assembled from the fleet, the
//! storms and a transport: SecureChat's, or IRC's for `idle`, `room` and
//! `ramp` against an IRC daemon.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::accounts;
use crate::cli::{
    AccountOrder, Cli, IdleArgs, LoginArgs, Mode, Protocol, RampArgs, ReconnectArgs, RoomArgs,
    RoomShape, StormArgs,
};
use crate::fd_limit;
use crate::fleet::{Fleet, FleetOptions, JoinSummary, PhaseOutcome, Tally};
use crate::proc_stats::{rss_kib, CpuSample, CpuUse};
use crate::report::{IdleOutcome, RampOutcome, Report, TargetReport};
use crate::storm;
use crate::transport::irc::{Irc, IrcOptions};
use crate::transport::securechat::{SecureChat, Target, TargetOptions, TlsOptions};

/// The transport a run speaks.
enum Client {
    SecureChat {
        chat: Arc<SecureChat>,
        target: Arc<Target>,
    },
    Irc(Arc<Irc>),
}

/// How long the goodbyes at the end may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

struct Run<'a> {
    cli: &'a Cli,
    client: Client,
    epoch: Instant,
    report: Report,
}

/// Runs the workload `cli` asks for and returns what it measured; a run
/// that could not complete still reports what it saw, with `error` set.
/// `Err` only for a target that cannot even be set up (TLS files, names).
pub async fn run(cli: &Cli, threads: usize) -> Result<Report, String> {
    let mut warnings = Vec::new();
    let fd_limit = match fd_limit::raise(cli.max_connections() as u64) {
        Ok(limit) => {
            if !limit.sufficient {
                warnings.push(format!(
                    "open-file limit {} (hard {}) is below the {} this run needs: \
                     raise the hard limit (ulimit -Hn) or use fewer clients",
                    limit.soft, limit.hard, limit.needed
                ));
            }
            Some(limit)
        }
        Err(e) => {
            warnings.push(format!("could not raise the open-file limit: {e}"));
            None
        }
    };
    let t = &cli.target;
    let tls = t.tls.then(|| TlsOptions {
        ca: t.ca.clone(),
        server_name: t.server_name.clone(),
    });
    let client = match t.protocol {
        Protocol::Securechat => {
            let target = Arc::new(
                Target::new(&TargetOptions {
                    addr: t.addr,
                    fingerprint: t.fingerprint,
                    tls,
                    sources: t.sources,
                    handshake_timeout: t.handshake_timeout,
                })
                .map_err(|e| e.to_string())?,
            );
            let chat = Arc::new(
                SecureChat::new(
                    target.clone(),
                    cli.run.seed.clone(),
                    cli.run.register_concurrency,
                    cli.run.accounts == AccountOrder::RegisterFirst,
                    cli.run.login_timeout,
                )
                .spread_over(cli.rooms()),
            );
            if t.fingerprint.is_none() {
                warnings.push("no --fingerprint: the first server key seen was trusted".to_owned());
            }
            Client::SecureChat { chat, target }
        }
        Protocol::Irc => {
            if t.irc_quickack {
                warnings.push(
                    "--irc-quickack: every read is ACKed at once, unlike real IRC clients \
                     (a diagnostic of the daemon's Nagle delays)"
                        .to_owned(),
                );
            }
            Client::Irc(Arc::new(
                Irc::new(&IrcOptions {
                    addr: t.addr,
                    tls,
                    sources: t.sources,
                    handshake_timeout: t.handshake_timeout,
                    login_timeout: cli.run.login_timeout,
                    channel: t.channel.clone(),
                    quickack: t.irc_quickack,
                })
                .map_err(|e| e.to_string())?,
            ))
        }
    };
    let source_addresses = match &client {
        Client::SecureChat { target, .. } => target.source_count(),
        Client::Irc(irc) => irc.source_count(),
    };
    let cpu0 = CpuSample::take(t.server_pid);
    let mut run = Run {
        cli,
        client,
        epoch: Instant::now(),
        report: Report {
            mode: cli.mode.name(),
            target: TargetReport {
                protocol: t.protocol.name(),
                addr: t.addr.to_string(),
                tls: t.tls,
                fingerprint: None,
                fingerprint_pinned: t.fingerprint.is_some(),
                source_addresses,
                threads,
                server_pid: t.server_pid,
            },
            fd_limit,
            warnings,
            join: None,
            accounts_prepared: None,
            account_order: Vec::new(),
            idle: None,
            room: None,
            ramp: None,
            storm: None,
            reconnect: None,
            connection_drops: Tally::default(),
            cpu_run: CpuUse::default(),
            error: None,
        },
    };
    let result = match &cli.mode {
        Mode::Idle(a) => run.idle(a).await,
        Mode::Room(a) => run.room(a).await,
        Mode::Ramp(a) => run.ramp(a).await,
        Mode::Handshakes(a) => run.handshakes(a).await,
        Mode::Logins(a) => run.logins(a).await,
        Mode::Reconnect(a) => run.reconnect(a).await,
    };
    let mut report = run.report;
    if let Client::SecureChat { target, .. } = &run.client {
        report.target.fingerprint = target.seen_fingerprint().map(|f| f.to_string());
    }
    report.cpu_run = cpu0.until(&CpuSample::take(t.server_pid));
    report.error = result.err();
    Ok(report)
}

impl Run<'_> {
    fn progress(&self) -> bool {
        !self.cli.run.quiet
    }

    fn server_pid(&self) -> Option<u32> {
        self.cli.target.server_pid
    }

    /// The SecureChat transport, for the workloads only it can run.
    fn secure_chat(&self) -> Result<Arc<SecureChat>, String> {
        match &self.client {
            Client::SecureChat { chat, .. } => Ok(chat.clone()),
            Client::Irc(_) => Err(format!(
                "{} needs --protocol securechat",
                self.cli.mode.name()
            )),
        }
    }

    fn note(&self, line: impl AsRef<str>) {
        if self.progress() {
            eprintln!("securechat-load: {}", line.as_ref());
        }
    }

    /// Joins `clients` members (the first `senders` of them sending), with
    /// accounts from `account_base`; fails if fewer than `min` got in
    /// (leaving the summary in the report). `prep` marks the login storm's
    /// account preparation.
    async fn fleet(
        &mut self,
        clients: usize,
        senders: usize,
        account_base: usize,
        min: usize,
        prep: bool,
    ) -> Result<(Fleet, JoinSummary), String> {
        self.note(format!("joining {clients} clients"));
        let opts = FleetOptions {
            clients,
            senders,
            account_base,
            join_concurrency: self.cli.run.join_concurrency,
            epoch: self.epoch,
            server_pid: self.server_pid(),
            progress: self.progress(),
            rooms: self.cli.rooms(),
        };
        let (fleet, summary) = match &self.client {
            Client::SecureChat { chat, .. } => {
                let chat = chat.clone();
                self.choose_account_order(&chat, account_base, clients)
                    .await;
                Fleet::join(chat, &opts).await
            }
            Client::Irc(irc) => Fleet::join(irc.clone(), &opts).await,
        };
        self.note(format!(
            "{} joined, {} failed in {:.1} s",
            summary.joined, summary.failed, summary.cpu.wall_secs
        ));
        if summary.failed > 0 {
            self.report.warnings.push(format!(
                "{} of {clients} clients could not join (see join errors)",
                summary.failed
            ));
        }
        if summary.joined < min {
            let first = summary
                .errors
                .iter()
                .next()
                .map(|(e, _)| e.clone())
                .unwrap_or_default();
            if prep {
                self.report.accounts_prepared = Some(summary);
            } else {
                self.report.join = Some(summary);
            }
            fleet.stop(STOP_TIMEOUT).await;
            return Err(format!(
                "too few clients joined (need {min}); first error: {first}"
            ));
        }
        Ok((fleet, summary))
    }

    /// Login-first or register-first for accounts `base .. base + clients`.
    async fn choose_account_order(&mut self, chat: &SecureChat, base: usize, clients: usize) {
        let range = format!(
            "{}..={}",
            accounts::username(base),
            accounts::username(base + clients.saturating_sub(1))
        );
        let (register_first, why) = match self.cli.run.accounts {
            AccountOrder::LoginFirst => (false, "as asked".to_owned()),
            AccountOrder::RegisterFirst => (true, "as asked".to_owned()),
            AccountOrder::Auto => {
                let last = base + clients.saturating_sub(1);
                let name = accounts::username(last);
                match chat.account_exists(last).await {
                    Ok(true) => (false, format!("{name} exists")),
                    Ok(false) => (true, format!("{name} is not registered yet")),
                    Err(e) => (false, format!("probing {name} failed: {e}")),
                }
            }
        };
        chat.set_register_first(register_first);
        let line = format!(
            "{range}: {} ({why})",
            if register_first {
                "register first"
            } else {
                "log in first"
            }
        );
        self.note(&line);
        self.report.account_order.push(line);
    }

    fn check_phase(&mut self, p: &PhaseOutcome) {
        if p.rate_limited > 0 {
            self.report.warnings.push(format!(
                "the server rate-limited {} messages: raise its messages_per_second / message_burst",
                p.rate_limited
            ));
        }
        let period_ms = 1000.0 / p.rate_per_sender;
        if p.max_send_lag_ms > period_ms.max(50.0) {
            self.report.warnings.push(format!(
                "phase {}: senders fell up to {:.0} ms behind schedule — the load generator \
                 or its sockets could not keep up (compare the CPU figures)",
                p.phase, p.max_send_lag_ms
            ));
        }
        if p.reporting < p.clients {
            self.report.warnings.push(format!(
                "phase {}: only {} of {} clients reported",
                p.phase, p.reporting, p.clients
            ));
        }
    }

    async fn finish(&mut self, fleet: Fleet) {
        self.report.connection_drops.merge(&fleet.drop_reasons);
        fleet.stop(STOP_TIMEOUT).await;
    }

    async fn idle(&mut self, a: &IdleArgs) -> Result<(), String> {
        let pid = self.server_pid();
        let rss = || pid.and_then(|p| rss_kib(p).ok());
        let before = rss();
        let (mut fleet, join) = self.fleet(a.clients, 0, 0, 1, false).await?;
        self.report.join = Some(join);
        let all_joined = rss();
        self.note(format!("holding for {:.0} s", a.duration.as_secs_f64()));
        let cpu0 = CpuSample::take(pid);
        let drops0 = fleet.drops;
        fleet.hold(a.duration).await;
        let after = rss();
        let cpu_hold = cpu0.until(&CpuSample::take(pid));
        let held = fleet.alive();
        self.report.idle = Some(IdleOutcome {
            clients: held,
            held_secs: a.duration.as_secs_f64(),
            rss_before_kib: before,
            rss_all_joined_kib: all_joined,
            rss_after_kib: after,
            rss_per_connection_kib: match (before, after) {
                (Some(b), Some(a)) if held > 0 => Some((a as f64 - b as f64) / held as f64),
                _ => None,
            },
            drops: fleet.drops - drops0,
            cpu_hold,
        });
        if pid.is_none() {
            self.report
                .warnings
                .push("no --server-pid: server memory and CPU not measured".to_owned());
        }
        self.finish(fleet).await;
        Ok(())
    }

    async fn room(&mut self, a: &RoomArgs) -> Result<(), String> {
        let s = &a.shape;
        let (mut fleet, join) = self.fleet(s.clients, s.senders, 0, 2, false).await?;
        self.report.join = Some(join);
        self.note(format!(
            "sending {} msgs/s from each of {} senders for {:.0} s",
            a.rate,
            s.senders,
            a.duration.as_secs_f64()
        ));
        let outcome = fleet.run_phase(a.rate, s.bytes, a.duration, s.drain).await;
        self.check_phase(&outcome);
        self.report.room = Some(outcome);
        self.finish(fleet).await;
        Ok(())
    }

    async fn ramp(&mut self, a: &RampArgs) -> Result<(), String> {
        let s = &a.shape;
        let (mut fleet, join) = self.fleet(s.clients, s.senders, 0, 2, false).await?;
        self.report.join = Some(join);
        let mut steps: Vec<PhaseOutcome> = Vec::new();
        let mut best: Option<usize> = None;
        let mut rate = a.start_rate;
        let mut stopped = format!("reached --max-steps {}", a.max_steps);
        for _ in 0..a.max_steps {
            let p = fleet.run_phase(rate, s.bytes, a.step_secs, s.drain).await;
            self.note(format!(
                "step {}: {:.2} msgs/s per sender, {:.0} deliveries/s, p99 {:.2} ms, lost {}",
                p.phase, rate, p.deliveries_per_sec, p.latency.p99_ms, p.lost
            ));
            self.check_phase(&p);
            let over = if p.received == 0 {
                Some("nothing was delivered".to_owned())
            } else if p.latency.p99_ms > a.p99_ms {
                Some(format!(
                    "step {}: p99 {:.2} ms > {} ms",
                    p.phase, p.latency.p99_ms, a.p99_ms
                ))
            } else if p.max_send_lag_ms > a.max_lag_ms {
                Some(format!(
                    "step {}: senders fell {:.0} ms behind schedule (> {} ms): \
                     the offered load was not sent",
                    p.phase, p.max_send_lag_ms, a.max_lag_ms
                ))
            } else if p.loss_ratio > a.max_loss {
                Some(format!(
                    "step {}: lost {:.3}% > {:.3}%",
                    p.phase,
                    p.loss_ratio * 100.0,
                    a.max_loss * 100.0
                ))
            } else {
                None
            };
            steps.push(p);
            if let Some(why) = over {
                stopped = why;
                break;
            }
            best = Some(steps.len() - 1);
            let next = rate * a.step_factor;
            if a.max_rate.is_some_and(|max| next > max) {
                stopped = "reached --max-rate".to_owned();
                break;
            }
            rate = next;
        }
        let best_step = best.map(|i| &steps[i]);
        self.report.ramp = Some(RampOutcome {
            p99_threshold_ms: a.p99_ms,
            max_loss: a.max_loss,
            max_lag_ms: a.max_lag_ms,
            best_step: best_step.map(|p| p.phase),
            best_rate_per_sender: best_step.map(|p| p.rate_per_sender),
            best_deliveries_per_sec: best_step.map(|p| p.deliveries_per_sec),
            steps,
            stopped,
        });
        self.finish(fleet).await;
        Ok(())
    }

    /// Joins the background room of a storm, if one is asked for.
    async fn background(
        &mut self,
        shape: Option<RoomShape>,
    ) -> Result<Option<(Fleet, RoomShape)>, String> {
        let Some(shape) = shape else {
            return Ok(None);
        };
        let (fleet, join) = self
            .fleet(shape.clients, shape.senders, 0, 2, false)
            .await?;
        self.report.join = Some(join);
        Ok(Some((fleet, shape)))
    }

    /// Runs `storm` while the background room (if any) chats.
    async fn storm_with_room<F>(
        &mut self,
        args: &StormArgs,
        room: Option<(Fleet, RoomShape)>,
        storm: F,
    ) where
        F: std::future::Future<Output = storm::StormOutcome>,
    {
        self.note(format!(
            "storm: {} workers for {:.0} s",
            args.concurrency,
            args.duration.as_secs_f64()
        ));
        match room {
            None => self.report.storm = Some(storm.await),
            Some((mut fleet, shape)) => {
                let phase =
                    fleet.run_phase(args.room.room_rate, shape.bytes, args.duration, shape.drain);
                let (outcome, phase) = tokio::join!(storm, phase);
                self.check_phase(&phase);
                self.report.storm = Some(outcome);
                self.report.room = Some(phase);
                self.finish(fleet).await;
            }
        }
    }

    async fn handshakes(&mut self, a: &StormArgs) -> Result<(), String> {
        let chat = self.secure_chat()?;
        let room = self.background(a.room.shape()).await?;
        let target = chat.target().clone();
        let c = a.concurrency;
        // Rotate through the source addresses: closed connections linger
        // in TIME_WAIT on their port.
        let storm = storm::run(
            "handshakes",
            c,
            a.duration,
            self.server_pid(),
            move |worker, iteration| {
                let target = target.clone();
                let slot = worker + (iteration as usize).wrapping_mul(c);
                async move { target.handshake_cycle(slot).await.map(|d| (d, None)) }
            },
        );
        self.storm_with_room(a, room, storm).await;
        Ok(())
    }

    async fn logins(&mut self, a: &LoginArgs) -> Result<(), String> {
        let s = &a.storm;
        let chat = self.secure_chat()?;
        let room = self.background(s.room.shape()).await?;
        let base = a.login_base.unwrap_or(s.room.room_clients);
        // Register the workers' accounts first, so the storm measures logins.
        self.note(format!("preparing {} login accounts", s.concurrency));
        let (prep, prepared) = self
            .fleet(s.concurrency, 0, base, s.concurrency, true)
            .await?;
        self.report.accounts_prepared = Some(prepared);
        prep.stop(STOP_TIMEOUT).await;

        let storm = storm::run(
            "logins",
            s.concurrency,
            s.duration,
            self.server_pid(),
            move |worker, _| {
                let chat = chat.clone();
                async move {
                    chat.login_cycle(base + worker)
                        .await
                        .map(|(h, l)| (h, Some(l)))
                }
            },
        );
        self.storm_with_room(s, room, storm).await;
        Ok(())
    }

    async fn reconnect(&mut self, a: &ReconnectArgs) -> Result<(), String> {
        let chat = self.secure_chat()?;
        // The background room chats in a room of its own.
        let room = match a.room.shape() {
            None => None,
            Some(shape) => {
                let name = proto_core::message::RoomName::new(&a.room_name)
                    .map_err(|e| format!("--room-name: {e}"))?;
                let cli = self.cli;
                let in_room = Arc::new(
                    SecureChat::new(
                        chat.target().clone(),
                        cli.run.seed.clone(),
                        cli.run.register_concurrency,
                        cli.run.accounts == AccountOrder::RegisterFirst,
                        cli.run.login_timeout,
                    )
                    .in_room(name),
                );
                self.choose_account_order(&in_room, 0, shape.clients).await;
                let opts = FleetOptions {
                    clients: shape.clients,
                    senders: shape.senders,
                    account_base: 0,
                    join_concurrency: cli.run.join_concurrency,
                    epoch: self.epoch,
                    server_pid: self.server_pid(),
                    progress: self.progress(),
                    rooms: 0,
                };
                self.note(format!(
                    "joining {} clients in {} (on a runtime of their own)",
                    shape.clients, a.room_name
                ));
                let (room, join) =
                    RoomOnItsOwnRuntime::start(in_room, opts, a.room.room_rate, shape)?;
                let join = join.await.map_err(|_| "the background room ended early")?;
                if join.joined < 2 {
                    room.abandon().await;
                    return Err("too few background room clients joined".into());
                }
                self.report.accounts_prepared = Some(join);
                if !room.raised() {
                    self.report.warnings.push(
                        "the background room's thread could not get a higher priority (nice -10 \
                         needs root or CAP_SYS_NICE): its latency includes waiting for a core"
                            .to_owned(),
                    );
                }
                Some(room)
            }
        };
        let base = a.room.room_clients;
        let (mut fleet, join) = self.fleet(a.clients, 0, base, 1, false).await?;
        self.report.join = Some(join);
        // Let the joins' presence settle before cutting everyone off.
        fleet.hold(Duration::from_secs(3)).await;
        self.note(format!(
            "{} clients drop and reconnect at once",
            fleet.alive()
        ));
        let outcome = match room {
            None => fleet.reconnect_all(a.within).await,
            Some(room) => {
                // The room chats from at least 2 s before the cut until the
                // deadline. The cut falls on a whole second of the run's
                // clock, the unit slow deliveries are counted in, so "+0 s"
                // is exactly the first second after it.
                let cut_secs = (self.epoch.elapsed() + Duration::from_secs(2)).as_secs() + 1;
                let cut_at = self.epoch + Duration::from_secs(cut_secs);
                let phase = room.run(cut_at.saturating_duration_since(Instant::now()) + a.within);
                let cut = async {
                    tokio::time::sleep_until(cut_at.into()).await;
                    fleet.reconnect_all(a.within).await
                };
                let (phase, outcome) = tokio::join!(phase, cut);
                let (mut phase, drops) = phase?;
                let cut_secs = i64::try_from(cut_secs).unwrap_or(i64::MAX);
                for s in &mut phase.slow {
                    s.second -= cut_secs;
                }
                phase.slow_origin = "the cut (all dropping)";
                self.check_phase(&phase);
                self.report.room = Some(phase);
                self.report.connection_drops.merge(&drops);
                outcome
            }
        };
        self.note(format!(
            "{} of {} back; all back after {}",
            outcome.back,
            outcome.clients,
            outcome
                .all_back_secs
                .map_or("(not all)".to_owned(), |s| format!("{s:.1} s"))
        ));
        let short = outcome.back < outcome.clients;
        self.report.reconnect = Some(outcome);
        self.finish(fleet).await;
        if short {
            return Err(format!(
                "not every client was back within {:.0} s",
                a.within.as_secs_f64()
            ));
        }
        Ok(())
    }
}

/// The background room of `reconnect`, on a tokio runtime of its own (one
/// worker thread at nice -10). Its clients stand for people already
/// connected, from machines of their own: the reconnecting fleet's backlog
/// of tasks in this process must not delay them, or the chat latency
/// measured is the load generator's queue rather than the server's (on one
/// shared runtime, the room's senders fell up to 854 ms behind their
/// schedule while 19,000 clients came back; on a runtime of its own at
/// normal priority, still 295 ms, its thread waiting for a core). The
/// higher priority lets that thread take a core when it wakes, as a client
/// on its own machine would have one. Where the system refuses it (not
/// root, no CAP_SYS_NICE), the room runs at normal priority and the report
/// says so.
struct RoomOnItsOwnRuntime {
    runtime: tokio::runtime::Runtime,
    /// Every thread of the room's runtime got the higher priority.
    raised: Arc<std::sync::atomic::AtomicBool>,
    go: tokio::sync::oneshot::Sender<Duration>,
    done: tokio::task::JoinHandle<Option<(PhaseOutcome, Tally)>>,
}

type RoomJoined = tokio::sync::oneshot::Receiver<JoinSummary>;

impl RoomOnItsOwnRuntime {
    /// Starts the room's runtime and joins its clients there; the summary
    /// comes on the receiver once all have joined or failed.
    fn start(
        transport: Arc<SecureChat>,
        opts: FleetOptions,
        rate: f64,
        shape: crate::cli::RoomShape,
    ) -> Result<(Self, RoomJoined), String> {
        // Its clients' handshakes and logins (Argon2id, 19 MiB each) run
        // on its blocking pool: two at a time, as on the main runtime, or a
        // hundred threads each keep their own 19 MiB.
        let raised = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let on_start = Arc::clone(&raised);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("background-room")
            .on_thread_start(move || {
                if !raise_this_thread() {
                    on_start.store(false, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the background room's runtime: {e}"))?;
        let (joined_tx, joined) = tokio::sync::oneshot::channel();
        let (go, go_rx) = tokio::sync::oneshot::channel::<Duration>();
        let done = runtime.spawn(async move {
            let (mut fleet, join) = Fleet::join(transport, &opts).await;
            let enough = join.joined >= 2;
            let _ = joined_tx.send(join);
            let length = match go_rx.await {
                Ok(length) if enough => length,
                _ => {
                    fleet.stop(STOP_TIMEOUT).await;
                    return None;
                }
            };
            let phase = fleet
                .run_phase(rate, shape.bytes, length, shape.drain)
                .await;
            let drops = fleet.drop_reasons.clone();
            fleet.stop(STOP_TIMEOUT).await;
            Some((phase, drops))
        });
        Ok((
            Self {
                runtime,
                raised,
                go,
                done,
            },
            joined,
        ))
    }

    /// Whether the room's threads run at the higher priority.
    fn raised(&self) -> bool {
        self.raised.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Chats for `length`, then stops the room's clients.
    async fn run(self, length: Duration) -> Result<(PhaseOutcome, Tally), String> {
        let _ = self.go.send(length);
        let result = self.done.await.ok().flatten();
        self.runtime.shutdown_background();
        result.ok_or_else(|| "the background room ended early".to_owned())
    }

    /// Stops the room's clients without a phase.
    async fn abandon(self) {
        drop(self.go);
        let _ = self.done.await;
        self.runtime.shutdown_background();
    }
}

/// Nice -10 for the calling thread (on Linux, PRIO_PROCESS with no pid
/// addresses the calling thread); false where the system refuses it.
fn raise_this_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        rustix::process::setpriority_process(None, -10).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}
