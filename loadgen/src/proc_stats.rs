//! What /proc says about CPU time and memory, for "who was the bottleneck".

use std::io;
use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of the utime/stime fields. Linux reports them in
/// USER_HZ, which is 100 on every architecture it exports to user space.
const USER_HZ: f64 = 100.0;

/// utime + stime (ticks) from the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain
/// spaces or parentheses, so fields are counted after the *last* `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ')': state(3) ppid(4) ... utime(14) stime(15).
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS in KiB from the text of `/proc/<pid>/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_ascii_whitespace();
    let value = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

fn malformed(path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected format of {path}"),
    )
}

/// CPU seconds (user + system, all threads) used so far by `pid`, or by this
/// process for `None`.
pub fn cpu_seconds(pid: Option<u32>) -> io::Result<f64> {
    let path = proc_path(pid, "stat");
    let text = std::fs::read_to_string(&path)?;
    let ticks = parse_stat_cpu_ticks(&text).ok_or_else(|| malformed(&path))?;
    Ok(ticks as f64 / USER_HZ)
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let path = proc_path(Some(pid), "status");
    let text = std::fs::read_to_string(&path)?;
    parse_status_rss_kib(&text).ok_or_else(|| malformed(&path))
}

/// CPU counters of this process and the server at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    own: Option<f64>,
    server: Option<f64>,
}

impl CpuSample {
    pub fn take(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            own: cpu_seconds(None).ok(),
            server: server_pid.and_then(|pid| cpu_seconds(Some(pid)).ok()),
        }
    }

    /// Use between `self` and a later sample.
    pub fn until(&self, later: &CpuSample) -> CpuUse {
        let wall = later.at.saturating_duration_since(self.at).as_secs_f64();
        let diff = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        let pct = |secs: Option<f64>| secs.filter(|_| wall > 0.0).map(|s| 100.0 * s / wall);
        let own = diff(self.own, later.own);
        let server = diff(self.server, later.server);
        CpuUse {
            wall_secs: wall,
            loadgen_cpu_secs: own,
            loadgen_cpu_pct: pct(own),
            server_cpu_secs: server,
            server_cpu_pct: pct(server),
        }
    }
}

/// CPU used over a window; percentages are of one core (200% = both cores
/// of a 2-core machine).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuUse {
    pub wall_secs: f64,
    pub loadgen_cpu_secs: Option<f64>,
    pub loadgen_cpu_pct: Option<f64>,
    pub server_cpu_secs: Option<f64>,
    pub server_cpu_pct: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_is_utime_plus_stime() {
        let stat = "4242 (securechat-se) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn stat_command_names_with_spaces_and_parens_are_skipped() {
        let stat = "7 (a) b (c) d) R 1 7 7 0 -1 0 0 0 0 0 11 22 0 0 20 0 1 0 5 6 7";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(33));
    }

    #[test]
    fn truncated_stat_is_rejected() {
        assert_eq!(parse_stat_cpu_ticks("7 (x) R 1 2 3"), None);
        assert_eq!(parse_stat_cpu_ticks("no parens at all"), None);
    }

    #[test]
    fn status_rss_is_read_in_kib() {
        let status = "Name:\tsecurechat-se\nVmPeak:\t  999 kB\nVmRSS:\t   52344 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss_kib(status), Some(52_344));
        assert_eq!(
            parse_status_rss_kib("Name:\tx\n"),
            None,
            "kernel threads have none"
        );
    }

    #[test]
    fn own_process_counters_are_readable() {
        assert!(cpu_seconds(None).unwrap() >= 0.0);
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
    }

    #[test]
    fn cpu_use_is_the_difference_over_the_wall_time() {
        let t0 = Instant::now();
        let a = CpuSample {
            at: t0,
            own: Some(1.0),
            server: Some(10.0),
        };
        let b = CpuSample {
            at: t0 + std::time::Duration::from_secs(2),
            own: Some(2.0),
            server: Some(13.0),
        };
        let u = a.until(&b);
        assert_eq!(u.wall_secs, 2.0);
        assert_eq!(u.loadgen_cpu_secs, Some(1.0));
        assert_eq!(u.loadgen_cpu_pct, Some(50.0));
        assert_eq!(u.server_cpu_secs, Some(3.0));
        assert_eq!(u.server_cpu_pct, Some(150.0));
        let no_server = CpuSample { server: None, ..b };
        assert_eq!(a.until(&no_server).server_cpu_pct, None);
    }
}
