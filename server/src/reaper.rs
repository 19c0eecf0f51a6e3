//! Closing and freeing the connections of clients that have gone, off the
//! runtime that moves chat.
//!
//! When thousands of clients drop at once (a network blip, a restarted load
//! balancer), each dropped session still costs the server a close(2), an
//! epoll deregistration and the freeing of its protocol state and buffers.
//! On the runtime's threads that work lands all at once, ahead of the chat
//! messages of the sessions still connected: 19,000 clients dropping in
//! the same second stalled room messages for up to half a second
//! (BENCHMARKS.md, "The drop second"). A [`Reaper`] hands that work to one
//! thread of its own at background priority (`background_cpu`), which runs
//! when a core has nothing more urgent to do.
//!
//! What is handed over keeps the connection's slots (the `max_connections`
//! permit, the per-address count) until it is dropped, so connections
//! waiting here still count against the limits: the server refuses
//! newcomers rather than run out of file descriptors if the reaper falls
//! behind. That is also why its queue needs no bound of its own.

use std::sync::mpsc;

/// The thread's name, as `top -H` and `perf` show it.
const THREAD_NAME: &str = "securechat-reap";

/// Drops what it is given on a background thread. Clones share the thread,
/// which ends once every clone is gone and the queue is empty.
#[derive(Debug)]
pub struct Reaper<T> {
    /// `None` if the thread could not be started: items are dropped in
    /// place, as they were before the reaper existed.
    queue: Option<mpsc::Sender<T>>,
}

impl<T> Clone for Reaper<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Send + 'static> Reaper<T> {
    /// Starts the thread.
    #[must_use]
    pub fn start() -> Self {
        let (queue, items) = mpsc::channel::<T>();
        let started = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                background_cpu::lower_this_thread();
                for item in items {
                    drop(item);
                }
            });
        match started {
            Ok(_) => Self { queue: Some(queue) },
            Err(e) => {
                tracing::warn!(error = %e, "no reaper thread: closing dropped connections in place");
                Self { queue: None }
            }
        }
    }

    /// Drops `item` on the reaper's thread (in place if that thread is gone).
    pub fn reap(&self, item: T) {
        if let Some(queue) = &self.queue {
            // A send fails only if the thread has ended; the item comes back.
            if let Err(mpsc::SendError(item)) = queue.send(item) {
                drop(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Reports the name of the thread that drops it.
    struct Tell(mpsc::Sender<Option<String>>);

    impl Drop for Tell {
        fn drop(&mut self) {
            let _ = self
                .0
                .send(std::thread::current().name().map(str::to_owned));
        }
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn what_is_reaped_is_dropped_on_the_reapers_thread_not_the_callers() {
        let reaper = Reaper::start();
        let (told, dropped_on) = mpsc::channel();
        for _ in 0..100 {
            reaper.reap(Tell(told.clone()));
        }
        for _ in 0..100 {
            let on = dropped_on
                .recv_timeout(WAIT)
                .expect("every item is dropped");
            assert_eq!(on.as_deref(), Some(THREAD_NAME));
        }
    }

    #[test]
    fn items_queued_before_the_last_clone_goes_are_still_dropped() {
        let reaper = Reaper::start();
        let other = reaper.clone();
        let (told, dropped_on) = mpsc::channel();
        for _ in 0..1_000 {
            other.reap(Tell(told.clone()));
        }
        drop(told);
        drop(other);
        drop(reaper);
        // The channel closes only once all 1,000 items (each holding a
        // sender) have been dropped, and the thread ends after that.
        let mut dropped = 0;
        while dropped_on.recv_timeout(WAIT).is_ok() {
            dropped += 1;
        }
        assert_eq!(dropped, 1_000);
    }
}
