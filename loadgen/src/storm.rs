//! Connection storms: C workers each repeating an operation (a handshake,
//! or a full password login) back to back for a fixed time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::fleet::Tally;
use crate::latency::{Merged, Summary};
use crate::proc_stats::{CpuSample, CpuUse};
use crate::transport::TransportError;

/// Pause after a failed attempt, so a refusing server is not spun on.
const FAILURE_BACKOFF: Duration = Duration::from_millis(20);

/// What one operation took: the handshake, and the login if there was one.
pub type OpTiming = (Duration, Option<Duration>);

#[derive(Debug, Clone, Serialize)]
pub struct StormOutcome {
    pub kind: &'static str,
    pub concurrency: usize,
    /// From the start until the last worker finished its last operation.
    pub elapsed_secs: f64,
    pub completed: u64,
    pub failed: u64,
    pub per_sec: f64,
    pub handshake: Summary,
    /// LoginStart → AuthOk (both OPAQUE round trips), for the `logins` storm.
    pub login: Option<Summary>,
    pub errors: Tally,
    pub cpu: CpuUse,
}

#[derive(Default)]
struct WorkerStats {
    completed: u64,
    failed: u64,
    handshake: Merged,
    login: Merged,
    errors: Tally,
}

/// Runs `op(worker, iteration)` on `concurrency` workers until `duration`
/// has passed (operations under way then are finished and counted).
pub async fn run<F, Fut>(
    kind: &'static str,
    concurrency: usize,
    duration: Duration,
    server_pid: Option<u32>,
    op: F,
) -> StormOutcome
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<OpTiming, TransportError>> + Send + 'static,
{
    let op = Arc::new(op);
    let cpu0 = CpuSample::take(server_pid);
    let start = Instant::now();
    let end = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut stats = WorkerStats::default();
                let mut iteration = 0u64;
                while Instant::now() < end {
                    match op(worker, iteration).await {
                        Ok((handshake, login)) => {
                            stats.completed += 1;
                            stats.handshake.record(handshake);
                            if let Some(login) = login {
                                stats.login.record(login);
                            }
                        }
                        Err(e) => {
                            stats.failed += 1;
                            stats.errors.add(&e.to_string());
                            tokio::time::sleep(FAILURE_BACKOFF).await;
                        }
                    }
                    iteration += 1;
                }
                stats
            })
        })
        .collect();

    let mut total = WorkerStats::default();
    for w in workers {
        // A panicking worker is a bug; its counts are simply missing.
        if let Ok(stats) = w.await {
            total.completed += stats.completed;
            total.failed += stats.failed;
            total.handshake.add(&stats.handshake);
            total.login.add(&stats.login);
            total.errors.merge(&stats.errors);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    StormOutcome {
        kind,
        concurrency,
        elapsed_secs: elapsed,
        completed: total.completed,
        failed: total.failed,
        per_sec: if elapsed > 0.0 {
            total.completed as f64 / elapsed
        } else {
            0.0
        },
        handshake: total.handshake.summary(),
        login: (total.login.count() > 0).then(|| total.login.summary()),
        errors: total.errors,
        cpu: cpu0.until(&CpuSample::take(server_pid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_repeat_until_the_time_is_up_and_counts_merge() {
        let out = run(
            "test",
            3,
            Duration::from_millis(100),
            None,
            |worker, iteration| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if worker == 0 && iteration == 0 {
                    Err(TransportError::Timeout("test"))
                } else {
                    Ok((Duration::from_millis(1), Some(Duration::from_millis(2))))
                }
            },
        )
        .await;
        assert_eq!(out.failed, 1);
        assert!(out.completed >= 15, "{out:?}");
        assert_eq!(out.handshake.count, out.completed);
        assert_eq!(out.login.unwrap().count, out.completed);
        assert_eq!(out.errors.total(), 1);
        assert!(out.elapsed_secs >= 0.1);
    }
}
