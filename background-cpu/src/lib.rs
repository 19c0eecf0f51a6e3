//! CPU-heavy work that must not delay chat: handshake key agreement
//! (ffdhe3072, ML-KEM, signatures) and password hashing (Argon2id).
//!
//! Its users: the server (Argon2id, and the handshake's expensive step,
//! which `net` runs through the `net::Offload` the server builds from
//! [`spawn`]) and the load generator (its clients' handshakes, so the
//! tool's own cryptography does not move the chat latency it measures).
//! Interactive clients keep `net`'s default, the blocking pool at normal
//! priority: their one handshake is what the user is waiting for, and at
//! `SCHED_IDLE` a busy desktop could starve it. A crate of its own because
//! those two users share nothing else, and `net` stays free of thread
//! policy (and of the `unsafe`-wrapping system crates it needs).
//!
//! Such work runs on tokio's blocking threads, and each blocking thread
//! moves itself to Linux's `SCHED_IDLE` policy the first time it runs some.
//! A thread woken to move chat messages then preempts the hashing at once.
//! A nice value of +10 alone was tried first and barely helped (a login
//! storm still moved chat p99 2.8x, against 3.0x at normal priority and
//! ~2x with `SCHED_IDLE`; BENCHMARKS.md figure 4): as far as we can tell
//! the scheduler (EEVDF) lets the running thread finish its slice before a
//! woken one runs. The work still gets a small share of a saturated CPU
//! (its weight is 3 against 1,024 for a normal thread), so when chat keeps
//! every core busy logins slow down a lot but do not stop; on a machine
//! with idle time they run at full speed.
//!
//! Where `SCHED_IDLE` is refused, the thread's nice value is raised by
//! `NICE_STEP` instead. On systems other than Linux the work runs at
//! normal priority. Both are per thread and one way (returning needs
//! privileges a server should not have), so a lowered thread stays lowered
//! for the other blocking work it may run later, which is background work
//! too.
#![forbid(unsafe_code)]

use tokio::task::JoinHandle;

/// Runs `work` on the blocking pool at background priority.
pub fn spawn<T, F>(work: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        lower_this_thread();
        work()
    })
}

/// Puts the calling thread in the background (as [`spawn`] does its
/// workers), once per thread: for a thread of the caller's own that only
/// ever does background work. Best effort: where the system refuses both
/// ways, the thread runs as before.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    linux::lower_this_thread();
}

#[cfg(target_os = "linux")]
mod linux {
    use std::cell::Cell;

    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::ThreadPriority;

    /// The fallback: how much lower than the process's own priority.
    const NICE_STEP: i32 = 10;
    /// The lowest priority there is (the highest nice value).
    const NICE_MAX: i32 = 19;

    thread_local! {
        static LOWERED: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn lower_this_thread() {
        if LOWERED.get() {
            return;
        }
        LOWERED.set(true);
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle).is_ok() {
            return;
        }
        // PRIO_PROCESS with pid 0 addresses the calling thread on Linux.
        if let Ok(current) = rustix::process::getpriority_process(None) {
            let lowered = current.saturating_add(NICE_STEP).min(NICE_MAX);
            if let Err(e) = rustix::process::setpriority_process(None, lowered) {
                tracing::debug!(error = %e, "could not lower a blocking thread's priority");
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use thread_priority::unix::{
        thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
    };

    fn idle() -> bool {
        thread_schedule_policy().unwrap()
            == ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
    }

    #[test]
    fn only_the_calling_thread_goes_to_the_background() {
        assert!(!idle());
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            lower_this_thread();
            idle()
        })
        .join()
        .unwrap();
        assert!(lowered, "SCHED_IDLE is open to every user on Linux");
        assert!(!idle(), "the caller's other threads keep their policy");
    }

    #[tokio::test]
    async fn background_work_runs_lowered_and_returns_its_result() {
        assert!(spawn(idle).await.unwrap());
        assert!(!idle());
    }
}
