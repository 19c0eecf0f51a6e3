//! The result of a run: one serialisable object (`--json`) and its
//! rendering as a human-readable table.

use std::fmt::Write;

use serde::Serialize;

use crate::fd_limit::FdLimit;
use crate::fleet::{JoinSummary, PhaseOutcome, ReconnectOutcome, Tally};
use crate::latency::Summary;
use crate::proc_stats::CpuUse;
use crate::storm::StormOutcome;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub target: TargetReport,
    pub fd_limit: Option<FdLimit>,
    pub warnings: Vec<String>,
    /// Getting the room's (or idle) clients in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinSummary>,
    /// `logins`: making sure the login workers' accounts exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts_prepared: Option<JoinSummary>,
    /// Per group of accounts: Login or Register first, and why.
    pub account_order: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleOutcome>,
    /// `room`, or the room running underneath a storm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<PhaseOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<RampOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm: Option<StormOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<ReconnectOutcome>,
    /// Why connections were lost mid-run, with counts.
    pub connection_drops: Tally,
    /// The whole run, setup included.
    pub cpu_run: CpuUse,
    /// Why the run stopped short, if it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// `securechat` or `irc`.
    pub protocol: &'static str,
    pub addr: String,
    pub tls: bool,
    /// The key fingerprint the handshakes verified.
    pub fingerprint: Option<String>,
    /// Whether it was checked against `--fingerprint` (else first use).
    pub fingerprint_pinned: bool,
    pub source_addresses: usize,
    pub threads: usize,
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleOutcome {
    pub clients: usize,
    pub held_secs: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_all_joined_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// (after − before) / clients still connected.
    pub rss_per_connection_kib: Option<f64>,
    pub drops: u64,
    pub cpu_hold: CpuUse,
}

#[derive(Debug, Clone, Serialize)]
pub struct RampOutcome {
    pub p99_threshold_ms: f64,
    pub max_loss: f64,
    pub max_lag_ms: f64,
    pub steps: Vec<PhaseOutcome>,
    /// The last step whose p99 and loss were within bounds.
    pub best_step: Option<u16>,
    pub best_rate_per_sender: Option<f64>,
    pub best_deliveries_per_sec: Option<f64>,
    pub stopped: String,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn cpu_line(c: &CpuUse) -> String {
    let part = |secs: Option<f64>, pct: Option<f64>| match (secs, pct) {
        (Some(s), Some(p)) => format!("{p:.0}% ({s:.1} s)"),
        _ => "-".to_owned(),
    };
    format!(
        "loadgen {}, server {} of one core over {:.1} s",
        part(c.loadgen_cpu_secs, c.loadgen_cpu_pct),
        part(c.server_cpu_secs, c.server_cpu_pct),
        c.wall_secs
    )
}

fn latency_line(s: &Summary) -> String {
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (n={})",
        s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms, s.count
    )
}

struct Table(String);

impl Table {
    fn section(&mut self, title: &str) {
        let _ = writeln!(self.0, "\n{title}");
    }
    fn row(&mut self, label: &str, value: impl AsRef<str>) {
        let _ = writeln!(self.0, "  {label:<22} {}", value.as_ref());
    }
    fn tally(&mut self, label: &str, t: &Tally) {
        for (msg, n) in t.iter() {
            self.row(label, format!("{n} × {msg}"));
        }
    }
}

impl Report {
    /// The human-readable form.
    pub fn to_table(&self) -> String {
        let mut t = Table(String::new());
        let tg = &self.target;
        let key = match (&tg.fingerprint, tg.protocol) {
            (_, "irc") => String::new(),
            (fp, _) => format!(
                ", key {} ({})",
                opt(fp.as_ref()),
                if tg.fingerprint_pinned {
                    "pinned"
                } else {
                    "first use"
                }
            ),
        };
        let _ = writeln!(
            t.0,
            "securechat-load {} — {} {} ({}){key}, {} source address(es), {} threads",
            self.mode,
            tg.protocol,
            tg.addr,
            if tg.tls { "TLS" } else { "plain TCP" },
            tg.source_addresses,
            tg.threads,
        );
        if let Some(fd) = &self.fd_limit {
            let _ = writeln!(
                t.0,
                "open files: soft {} / hard {}, need {} — {}",
                fd.soft,
                fd.hard,
                fd.needed,
                if fd.sufficient { "ok" } else { "TOO LOW" }
            );
        }
        for line in &self.account_order {
            let _ = writeln!(t.0, "accounts {line}");
        }
        for w in &self.warnings {
            let _ = writeln!(t.0, "WARNING: {w}");
        }
        if let Some(j) = &self.join {
            join_section(&mut t, "join", j);
        }
        if let Some(j) = &self.accounts_prepared {
            join_section(&mut t, "login accounts", j);
        }
        if let Some(i) = &self.idle {
            t.section("idle");
            t.row(
                "clients held",
                format!("{} for {:.1} s", i.clients, i.held_secs),
            );
            t.row(
                "server RSS KiB",
                format!(
                    "before {}  all joined {}  after {}",
                    opt(i.rss_before_kib),
                    opt(i.rss_all_joined_kib),
                    opt(i.rss_after_kib)
                ),
            );
            t.row(
                "RSS per connection",
                i.rss_per_connection_kib
                    .map_or("-".to_owned(), |v| format!("{v:.1} KiB")),
            );
            t.row("drops", i.drops.to_string());
            t.row("cpu (hold)", cpu_line(&i.cpu_hold));
        }
        if let Some(s) = &self.storm {
            t.section(s.kind);
            t.row(
                "completed",
                format!(
                    "{} ({} failed) with {} workers in {:.1} s",
                    s.completed, s.failed, s.concurrency, s.elapsed_secs
                ),
            );
            t.row("per second", format!("{:.1}", s.per_sec));
            t.row("handshake ms", latency_line(&s.handshake));
            if let Some(l) = &s.login {
                t.row("login ms", latency_line(l));
            }
            t.tally("errors", &s.errors);
            t.row("cpu", cpu_line(&s.cpu));
        }
        if let Some(r) = &self.reconnect {
            t.section("reconnect");
            let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} s"));
            t.row(
                "back",
                format!(
                    "{} of {} ({} with the resume token, {} of them through a resumed handshake), {} gone",
                    r.back, r.clients, r.resumed, r.resumed_handshakes, r.gone
                ),
            );
            t.row(
                "all back after",
                format!(
                    "{} (half {}, 90% {}, 99% {}; waited at most {:.0} s)",
                    secs(r.all_back_secs),
                    secs(r.half_back_secs),
                    secs(r.p90_back_secs),
                    secs(r.p99_back_secs),
                    r.within_secs
                ),
            );
            t.row("handshake ms", latency_line(&r.handshake));
            t.row("login ms", latency_line(&r.login));
            t.tally("errors", &r.errors);
            t.row("cpu", cpu_line(&r.cpu));
        }
        if let Some(p) = &self.room {
            phase_section(&mut t, "room", p);
        }
        if let Some(r) = &self.ramp {
            t.section(&format!(
                "ramp (stop at p99 > {} ms, loss > {} or send lag > {} ms)",
                r.p99_threshold_ms, r.max_loss, r.max_lag_ms
            ));
            let _ = writeln!(
                t.0,
                "  {:>4} {:>9} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
                "step",
                "rate/snd",
                "offered",
                "deliv/s",
                "p50 ms",
                "p99 ms",
                "p99.9",
                "max ms",
                "lost",
                "lg cpu",
                "sv cpu"
            );
            for s in &r.steps {
                let pct = |p: Option<f64>| p.map_or("-".to_owned(), |p| format!("{p:.0}%"));
                let _ = writeln!(
                    t.0,
                    "  {:>4} {:>9.2} {:>9.1} {:>11.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>7} {:>7}",
                    s.phase,
                    s.rate_per_sender,
                    s.offered_msgs_per_sec,
                    s.deliveries_per_sec,
                    s.latency.p50_ms,
                    s.latency.p99_ms,
                    s.latency.p999_ms,
                    s.latency.max_ms,
                    s.lost,
                    pct(s.cpu.loadgen_cpu_pct),
                    pct(s.cpu.server_cpu_pct),
                );
            }
            t.row(
                "best step",
                match (
                    r.best_step,
                    r.best_deliveries_per_sec,
                    r.best_rate_per_sender,
                ) {
                    (Some(step), Some(d), Some(rate)) => {
                        format!("{step}: {d:.1} deliveries/s at {rate:.2} msgs/s per sender")
                    }
                    _ => "none within bounds".to_owned(),
                },
            );
            t.row("stopped", &r.stopped);
        }
        if !self.connection_drops.is_empty() {
            t.section("connections lost");
            t.tally("reason", &self.connection_drops);
        }
        t.section("whole run");
        t.row("cpu", cpu_line(&self.cpu_run));
        if let Some(e) = &self.error {
            t.row("FAILED", e);
        }
        t.0
    }
}

fn join_section(t: &mut Table, title: &str, j: &JoinSummary) {
    t.section(title);
    t.row(
        "clients",
        format!(
            "{} joined, {} failed of {} ({} resumed)",
            j.joined, j.failed, j.requested, j.resumed
        ),
    );
    t.row(
        "registrations",
        match j.registrations_per_sec {
            Some(rate) => format!("{} at {rate:.1}/s", j.registered),
            None => j.registered.to_string(),
        },
    );
    t.row("joins per second", format!("{:.1}", j.joins_per_sec));
    t.row("handshake ms", latency_line(&j.handshake));
    t.row("login ms", latency_line(&j.login));
    t.tally("errors", &j.errors);
    t.row("cpu", cpu_line(&j.cpu));
}

fn phase_section(t: &mut Table, title: &str, p: &PhaseOutcome) {
    t.section(title);
    t.row(
        "workload",
        format!(
            "{} clients, {} senders × {} msgs/s × {} B = {:.1} msgs/s for {:.1} s",
            p.clients,
            p.senders,
            p.rate_per_sender,
            p.bytes,
            p.offered_msgs_per_sec,
            p.duration_secs
        ),
    );
    t.row(
        "sent",
        format!("{} ({} rate-limited by the server)", p.sent, p.rate_limited),
    );
    t.row(
        "deliveries",
        format!(
            "{} received of {} expected, {} lost ({:.3}%), {} reporting",
            p.received,
            p.expected,
            p.lost,
            p.loss_ratio * 100.0,
            p.reporting
        ),
    );
    t.row("deliveries/s", format!("{:.1}", p.deliveries_per_sec));
    t.row("latency ms", latency_line(&p.latency));
    if !p.slow.is_empty() {
        let seconds: Vec<String> = p
            .slow
            .iter()
            .map(|s| format!("{:+} s: {} (max {:.0})", s.second, s.deliveries, s.max_ms))
            .collect();
        t.row(
            "over 50 ms",
            format!(
                "by second sent, from {}: {}",
                p.slow_origin,
                seconds.join(", ")
            ),
        );
    }
    t.row("max send lag", format!("{:.2} ms", p.max_send_lag_ms));
    if p.stale + p.errors + p.drops > 0 {
        t.row(
            "anomalies",
            format!(
                "{} stale, {} errors, {} drops ({} rejoined)",
                p.stale, p.errors, p.drops, p.rejoins
            ),
        );
    }
    t.row("cpu", cpu_line(&p.cpu));
}
