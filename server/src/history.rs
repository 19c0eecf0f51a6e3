//! The history writer: one thread owns the encrypted history logs, so
//! appends never block the async workers and happen in the order messages
//! were delivered. Sessions talk to it through a bounded channel.

use std::thread;

use tokio::sync::{mpsc, oneshot};

use crate::storage::{Conversation, HistoryEntry, HistoryError, HistoryStore};

/// Requests queued before senders wait (backpressure on chat, not memory).
const QUEUE: usize = 16 * 1024;

/// Recent entries of each conversation of a user: the room first.
pub type Recent = Vec<(Conversation, Vec<HistoryEntry>)>;

enum Request {
    Room(HistoryEntry),
    Direct {
        a: String,
        b: String,
        entry: HistoryEntry,
    },
    Recent {
        user: String,
        limit: usize,
        reply: oneshot::Sender<Result<Recent, HistoryError>>,
    },
    Flush(oneshot::Sender<Result<(), HistoryError>>),
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct History {
    tx: mpsc::Sender<Request>,
}

/// The writer thread; [`HistoryThread::join`] after every [`History`]
/// handle is dropped.
pub struct HistoryThread(thread::JoinHandle<()>);

impl HistoryThread {
    /// Waits for the writer to finish its queue and exit.
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("history writer thread panicked");
        }
    }
}

/// Starts the writer thread owning `store`.
pub fn spawn(mut store: HistoryStore) -> std::io::Result<(History, HistoryThread)> {
    let (tx, mut rx) = mpsc::channel::<Request>(QUEUE);
    let handle = thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || {
            while let Some(req) = rx.blocking_recv() {
                match req {
                    Request::Room(entry) => {
                        if let Err(e) = store.append_room(&entry) {
                            tracing::error!(error = %e, "room history append failed");
                        }
                    }
                    Request::Direct { a, b, entry } => {
                        if let Err(e) = store.append_direct(&a, &b, &entry) {
                            tracing::error!(error = %e, "direct history append failed");
                        }
                    }
                    Request::Recent { user, limit, reply } => {
                        let _ = reply.send(store.recent_for_user(&user, limit));
                    }
                    Request::Flush(reply) => {
                        let _ = reply.send(store.flush());
                    }
                }
            }
            if let Err(e) = store.flush() {
                tracing::error!(error = %e, "history flush at exit failed");
            }
        })?;
    Ok((History { tx }, HistoryThread(handle)))
}

impl History {
    /// Appends a room message.
    pub async fn append_room(&self, entry: HistoryEntry) {
        if self.tx.send(Request::Room(entry)).await.is_err() {
            tracing::error!("history writer gone; room message not saved");
        }
    }

    /// Appends a direct message between `a` and `b` (canonical names).
    pub async fn append_direct(&self, a: String, b: String, entry: HistoryEntry) {
        if self.tx.send(Request::Direct { a, b, entry }).await.is_err() {
            tracing::error!("history writer gone; direct message not saved");
        }
    }

    /// The last `limit` entries of each of `user`'s conversations; it sees
    /// every append requested before it.
    pub async fn recent(&self, user: String, limit: usize) -> Result<Recent, HistoryError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Recent { user, limit, reply })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Waits until everything appended so far is written and synced.
    pub async fn flush(&self) -> Result<(), HistoryError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Flush(reply))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

fn gone() -> HistoryError {
    HistoryError::WriterStopped
}
