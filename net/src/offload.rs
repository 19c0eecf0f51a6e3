//! Where a handshake's expensive steps run.

use std::fmt;
use std::io;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::error::NetError;

/// A job handed to an [`Offload`].
pub type OffloadJob = Box<dyn FnOnce() + Send + 'static>;

type Spawn = dyn Fn(OffloadJob) -> JoinHandle<()> + Send + Sync;

/// Runs the handshake's milliseconds of cryptography (a client's key
/// generation, the hello the core reports with
/// `expensive_input_pending()`) off the async workers, which stay free for
/// chat or a UI. The default is tokio's blocking pool at normal priority;
/// the server passes its own, which also lowers the worker thread's
/// priority (`server::background_cpu`).
#[derive(Clone)]
pub struct Offload(Arc<Spawn>);

impl Offload {
    /// Runs each job with `spawn`, which must run it to completion on a
    /// thread where blocking is fine and return its handle.
    pub fn new(spawn: impl Fn(OffloadJob) -> JoinHandle<()> + Send + Sync + 'static) -> Self {
        Self(Arc::new(spawn))
    }

    /// tokio's blocking pool, at the thread's normal priority.
    pub fn blocking_pool() -> Self {
        Self::new(tokio::task::spawn_blocking)
    }

    /// Runs `work` through the hook and returns its result.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NetError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (self.0)(Box::new(move || {
            let _ = tx.send(work());
        }))
        .await?;
        rx.await
            .map_err(|_| io::Error::other("the offload hook dropped the handshake work").into())
    }
}

impl Default for Offload {
    fn default() -> Self {
        Self::blocking_pool()
    }
}

impl fmt::Debug for Offload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Offload(..)")
    }
}
