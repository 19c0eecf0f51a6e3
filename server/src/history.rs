//! The history writer: one task owns the history backend (a
//! [`HistoryBackend`]; a server's is the encrypted logs of
//! `storage::HistoryStore`, and what this says of files is about that one)
//! and gives
//! every message its id and time, so ids increase in log order. A session
//! asks it to store a message and delivers the message only after the
//! answer: "stored, then delivered", so a message anyone has seen survives a
//! kill -9 (the append is a `write(2)` before the answer; see
//! `storage::history`).
//!
//! An append to a log already in memory is a seal and one `write(2)`
//! (microseconds): the task does it in place, so storing costs a message no
//! thread hop (a wake-up across this VM's vCPUs costs ~30 µs, and a task
//! woken from outside the runtime waits in its global queue behind a
//! fanout's worth of local work). Anything that reads a file (the first use
//! of a conversation, the replay at login) or fsyncs moves the store to the
//! blocking pool for that request. History written since the last fsync is
//! fsynced every `sync_every` (default 1 s) and at shutdown: a power loss
//! loses at most that much. The store keeps at most its cache budget of
//! conversations in memory (`history_cache_bytes`); [`History::stats`] shows
//! what it holds.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::clock::now_ms;
use crate::storage::{
    Appended, Conversation, HistoryBackend, HistoryEntry, HistoryError, PendingSync,
};

/// Requests queued before senders wait (backpressure on chat, not memory).
const QUEUE: usize = 16 * 1024;

/// Recent entries of each conversation of a user: the rooms first.
pub type Recent = Vec<(Conversation, Vec<HistoryEntry>)>;

/// A message to store; the writer stamps its id and time.
#[derive(Debug)]
pub struct NewMessage {
    /// Sender's display name.
    pub from: String,
    /// Recipient's display name for a direct message.
    pub to: Option<String>,
    pub text: String,
    /// The sender's idempotency key, if it sent one.
    pub client_id: Option<u64>,
}

/// Where a message goes.
#[derive(Debug)]
pub enum Destination {
    /// A room, by its server id.
    Room { id: u64 },
    /// A direct message between two canonical names.
    Direct { a: String, b: String },
}

/// A message in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub id: u64,
    pub timestamp_ms: u64,
    /// False for a resend of a message already stored (same sender and
    /// `client_id`): it was delivered the first time and is not again.
    pub is_new: bool,
}

/// A message to store: chat's hot path, served before any other request.
struct AppendRequest {
    destination: Destination,
    message: NewMessage,
    reply: oneshot::Sender<Result<Stored, HistoryError>>,
}

/// Everything else the writer is asked: reads and housekeeping.
enum Request {
    Recent {
        user: String,
        rooms: Vec<u64>,
        limit: usize,
        reply: oneshot::Sender<Result<Recent, HistoryError>>,
    },
    Flush(oneshot::Sender<Result<(), HistoryError>>),
    DeleteRoom {
        id: u64,
        reply: oneshot::Sender<Result<(), HistoryError>>,
    },
    Page {
        destination: Destination,
        before_id: u64,
        limit: usize,
        reply: oneshot::Sender<Result<(Vec<HistoryEntry>, bool), HistoryError>>,
    },
    Stats(oneshot::Sender<HistoryStats>),
}

/// What the writer has done since start and holds now (for tests and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Messages stored (resends not counted).
    pub stored: u64,
    /// Periodic and requested fsyncs that had something to sync.
    pub syncs: u64,
    /// Bytes of loaded conversations held, as counted against
    /// `history_cache_bytes`.
    pub cache_bytes: usize,
    /// Logs loaded (conversations and partner lists).
    pub cached_logs: usize,
}

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct History {
    appends: mpsc::Sender<AppendRequest>,
    tx: mpsc::Sender<Request>,
}

/// The writer task; [`HistoryTask::join`] after every [`History`] handle
/// is dropped.
pub struct HistoryTask(tokio::task::JoinHandle<()>);

impl HistoryTask {
    /// Waits for the writer to finish its queue, flush and exit.
    pub async fn join(self) {
        if self.0.await.is_err() {
            tracing::error!("history writer task failed");
        }
    }
}

/// The writer's own state: the store, the id counter, what is unsynced.
/// Generic over the backend, so an append costs no dynamic dispatch.
struct Writer<S> {
    store: S,
    next_id: u64,
    /// Something was written since the last fsync.
    unsynced: bool,
    stats: HistoryStats,
}

impl<S: HistoryBackend> Writer<S> {
    /// The logs `destination` names (a direct pair's are HMACs, computed
    /// once here for both the in-memory check and the append).
    fn target(&self, destination: Destination) -> Result<S::Target, HistoryError> {
        match destination {
            Destination::Room { id } => Ok(self.store.room_target(id)),
            Destination::Direct { a, b } => self.store.direct_target(&a, &b),
        }
    }

    fn append(&mut self, target: &S::Target, message: NewMessage) -> Result<Stored, HistoryError> {
        let entry = HistoryEntry {
            id: self.next_id,
            timestamp_ms: now_ms(),
            from: message.from,
            to: message.to,
            text: message.text,
            client_id: message.client_id,
        };
        let appended = self.store.append(target, &entry)?;
        Ok(match appended {
            Appended::New => {
                self.next_id += 1;
                self.unsynced = true;
                self.stats.stored += 1;
                Stored {
                    id: entry.id,
                    timestamp_ms: entry.timestamp_ms,
                    is_new: true,
                }
            }
            Appended::Duplicate { id, timestamp_ms } => Stored {
                id,
                timestamp_ms,
                is_new: false,
            },
        })
    }

    /// fsyncs what was written since the last time on the blocking pool,
    /// through duplicate handles, while appends go on: a periodic fsync
    /// must not hold up delivery.
    fn sync_in_background(&mut self) {
        self.unsynced = false;
        let pending = match self.store.take_unsynced() {
            Ok(pending) => pending,
            Err(e) => {
                tracing::error!(error = %e, "history fsync failed");
                return;
            }
        };
        if pending.is_empty() {
            return;
        }
        self.stats.syncs += 1;
        tokio::task::spawn_blocking(move || pending.run());
    }

    /// fsyncs what was written since the last time (blocking).
    fn sync(&mut self) -> Result<(), HistoryError> {
        if self.unsynced {
            self.stats.syncs += 1;
        }
        self.unsynced = false;
        self.store.flush()
    }
}

/// Runs `work` on the blocking pool with the writer moved there and back;
/// `None` if the blocking task failed (the writer is then lost, and said so).
async fn off_runtime<S: HistoryBackend, T: Send + 'static>(
    writer: Writer<S>,
    work: impl FnOnce(&mut Writer<S>) -> T + Send + 'static,
) -> Option<(Writer<S>, T)> {
    let moved = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        let result = work(&mut writer);
        (writer, result)
    })
    .await;
    if moved.is_err() {
        tracing::error!("history writer lost; messages can no longer be stored");
    }
    moved.ok()
}

/// Shortest fsync interval accepted.
const MIN_SYNC_EVERY: Duration = Duration::from_millis(10);

/// Starts the writer task owning `store`; message ids start at `first_id`
/// (choose it above any id in history); unsynced history is fsynced every
/// `sync_every`. Needs a tokio runtime.
pub fn spawn<S: HistoryBackend>(
    store: S,
    first_id: u64,
    sync_every: Duration,
) -> (History, HistoryTask) {
    let (appends, appends_rx) = mpsc::channel::<AppendRequest>(QUEUE);
    let (tx, rx) = mpsc::channel::<Request>(QUEUE);
    let writer = Writer {
        store,
        next_id: first_id,
        unsynced: false,
        stats: HistoryStats::default(),
    };
    let task = tokio::spawn(serve(
        writer,
        appends_rx,
        rx,
        sync_every.max(MIN_SYNC_EVERY),
    ));
    (History { appends, tx }, HistoryTask(task))
}

/// Stores one message; `None` if the writer was lost off the runtime.
async fn serve_append<S: HistoryBackend>(
    mut writer: Writer<S>,
    request: AppendRequest,
) -> Option<Writer<S>> {
    let AppendRequest {
        destination,
        message,
        reply,
    } = request;
    let result = match writer.target(destination) {
        Ok(target) if writer.store.is_ready(&target) => writer.append(&target, message),
        Ok(target) => {
            let (back, result) = off_runtime(writer, move |w| w.append(&target, message)).await?;
            writer = back;
            result
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, "history append failed; message not delivered");
    }
    let _ = reply.send(result);
    Some(writer)
}

/// Serves appends before anything else: a login's replay or a page (a
/// trip to the blocking pool each) never has a message wait behind a
/// queue of them. In a mass reconnect hundreds of replays are queued at
/// once; in one queue, a message waited behind all of them.
async fn serve<S: HistoryBackend>(
    mut writer: Writer<S>,
    mut appends: mpsc::Receiver<AppendRequest>,
    mut rx: mpsc::Receiver<Request>,
    sync_every: Duration,
) {
    let mut sync = tokio::time::interval(sync_every);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut appending, mut requesting) = (true, true);
    while appending || requesting {
        let req = tokio::select! {
            biased;
            _ = sync.tick(), if writer.unsynced => {
                writer.sync_in_background();
                continue;
            }
            append = appends.recv(), if appending => {
                match append {
                    Some(append) => match serve_append(writer, append).await {
                        Some(back) => writer = back,
                        None => return,
                    },
                    None => appending = false,
                }
                continue;
            }
            req = rx.recv(), if requesting => match req {
                Some(req) => req,
                None => {
                    requesting = false;
                    continue;
                }
            },
        };
        // An append requested before `req` may have arrived after the
        // poll above: served first, so a read sees every append requested
        // before it (and a flush covers them).
        while let Ok(append) = appends.try_recv() {
            match serve_append(writer, append).await {
                Some(back) => writer = back,
                None => return,
            }
        }
        match req {
            Request::Recent {
                user,
                rooms,
                limit,
                reply,
            } => {
                let moved = off_runtime(writer, move |w| {
                    w.store.recent_for_user(&user, &rooms, limit)
                })
                .await;
                let Some((back, result)) = moved else { return };
                writer = back;
                let _ = reply.send(result);
            }
            Request::Page {
                destination,
                before_id,
                limit,
                reply,
            } => {
                let moved = off_runtime(writer, move |w| {
                    let target = w.target(destination)?;
                    w.store.page(&target, before_id, limit)
                })
                .await;
                let Some((back, result)) = moved else { return };
                writer = back;
                let _ = reply.send(result);
            }
            Request::DeleteRoom { id, reply } => {
                let moved = off_runtime(writer, move |w| w.store.delete_room(id)).await;
                let Some((back, result)) = moved else { return };
                writer = back;
                let _ = reply.send(result);
            }
            Request::Stats(reply) => {
                let cache = writer.store.cache_stats();
                let _ = reply.send(HistoryStats {
                    cache_bytes: cache.bytes,
                    cached_logs: cache.logs,
                    ..writer.stats
                });
            }
            Request::Flush(reply) => {
                let Some((back, result)) = off_runtime(writer, Writer::sync).await else {
                    return;
                };
                writer = back;
                let _ = reply.send(result);
            }
        }
    }
    let flushed = off_runtime(writer, Writer::sync).await;
    if let Some((_, Err(e))) = flushed {
        tracing::error!(error = %e, "history flush at exit failed");
    }
}

impl History {
    /// Stores a message and answers once it is written (a resend of a
    /// stored `client_id` answers with the first one's id, `is_new` false).
    pub async fn append(
        &self,
        destination: Destination,
        message: NewMessage,
    ) -> Result<Stored, HistoryError> {
        let (reply, rx) = oneshot::channel();
        self.appends
            .send(AppendRequest {
                destination,
                message,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// The last `limit` entries of each of `user`'s conversations; it sees
    /// every append requested before it.
    pub async fn recent(
        &self,
        user: String,
        rooms: Vec<u64>,
        limit: usize,
    ) -> Result<Recent, HistoryError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Recent {
                user,
                rooms,
                limit,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// What the writer has done since start and holds now.
    pub async fn stats(&self) -> Result<HistoryStats, HistoryError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Stats(reply))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// A page of older messages (see [`HistoryBackend::page`]): the entries and
    /// whether none older exists.
    pub async fn page(
        &self,
        destination: Destination,
        before_id: u64,
        limit: usize,
    ) -> Result<(Vec<HistoryEntry>, bool), HistoryError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Page {
                destination,
                before_id,
                limit,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Deletes room `id`'s history (the room was deleted): its file, and
    /// what the writer holds of it.
    pub async fn delete_room(&self, id: u64) -> Result<(), HistoryError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::DeleteRoom { id, reply })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::HistoryStore;

    fn message(text: &str) -> NewMessage {
        NewMessage {
            from: "Ann".into(),
            to: None,
            text: text.into(),
            client_id: None,
        }
    }

    /// The writer's path to an evicted conversation (read off the runtime)
    /// stores and recognises resends as the in-memory one does.
    #[tokio::test]
    async fn a_resend_to_an_evicted_conversation_is_recognised_and_the_cache_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 16 * 1024;
        let config = crate::storage::HistoryConfig {
            cache_bytes: budget,
            ..Default::default()
        };
        let store = HistoryStore::open_with_config(dir.path(), &[3; 32], config).unwrap();
        let (history, task) = spawn(store, 1, Duration::from_secs(1));
        let direct = |a: &str, b: &str| Destination::Direct {
            a: a.into(),
            b: b.into(),
        };
        let keyed = |client_id| NewMessage {
            client_id: Some(client_id),
            ..message("hi")
        };
        let first = history
            .append(direct("ann", "bob"), keyed(5))
            .await
            .unwrap();
        assert!(first.is_new);
        for i in 0..40 {
            let peer = format!("peer{i}");
            let stored = history
                .append(direct("carol", &peer), keyed(i))
                .await
                .unwrap();
            assert!(stored.is_new);
        }
        let stats = history.stats().await.unwrap();
        assert!(stats.cache_bytes <= budget, "{stats:?}");
        assert!(
            stats.cached_logs < 3 + 40 * 2,
            "some were evicted: {stats:?}"
        );
        let again = history
            .append(direct("bob", "ann"), keyed(5))
            .await
            .unwrap();
        assert_eq!((again.id, again.is_new), (first.id, false));
        assert_eq!(history.stats().await.unwrap().stored, 41);
        drop(history);
        task.join().await;
    }

    /// A power loss loses at most `sync_every` of history: what was written
    /// is fsynced that long after, and an idle writer does not fsync.
    #[tokio::test(start_paused = true)]
    async fn written_history_is_fsynced_within_the_interval_and_idle_history_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(dir.path(), &[3; 32]).unwrap();
        let (history, task) = spawn(store, 1, Duration::from_secs(1));
        let stats = |h: History| async move { h.stats().await.unwrap() };

        history
            .append(Destination::Room { id: 1 }, message("one"))
            .await
            .unwrap();
        history
            .append(Destination::Room { id: 1 }, message("two"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let after_a_second = stats(history.clone()).await;
        assert_eq!(after_a_second.stored, 2);
        assert!(after_a_second.syncs >= 1, "{after_a_second:?}");
        // Nothing new: ten more seconds bring no fsync.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(stats(history.clone()).await.syncs, after_a_second.syncs);
        history
            .append(Destination::Room { id: 1 }, message("three"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(stats(history.clone()).await.syncs, after_a_second.syncs + 1);
        drop(history);
        task.join().await;
    }

    /// The writer over another backend: the memory one (static dispatch, so
    /// the writer is built for each backend).
    #[tokio::test]
    async fn the_writer_runs_on_the_memory_backend_alike() {
        let store = crate::storage::memory::MemoryHistory::new();
        let (history, task) = spawn(store, 100, Duration::from_secs(1));
        let keyed = NewMessage {
            client_id: Some(3),
            ..message("one")
        };
        let first = history
            .append(Destination::Room { id: 1 }, keyed)
            .await
            .unwrap();
        assert_eq!((first.id, first.is_new), (100, true));
        let again = history
            .append(
                Destination::Room { id: 1 },
                NewMessage {
                    client_id: Some(3),
                    ..message("one")
                },
            )
            .await
            .unwrap();
        assert_eq!((again.id, again.is_new), (100, false));
        let direct = || Destination::Direct {
            a: "ann".into(),
            b: "bob".into(),
        };
        history.append(direct(), message("two")).await.unwrap();
        let recent = history.recent("bob".into(), vec![1], 10).await.unwrap();
        let ids: Vec<(Conversation, Vec<u64>)> = recent
            .into_iter()
            .map(|(c, e)| (c, e.iter().map(|e| e.id).collect()))
            .collect();
        assert_eq!(
            ids,
            [
                (Conversation::Room { id: 1 }, vec![100]),
                (
                    Conversation::Direct {
                        partner: "ann".into()
                    },
                    vec![101]
                ),
            ]
        );
        let (page, none_older) = history.page(direct(), 0, 10).await.unwrap();
        assert_eq!((page.len(), none_older), (1, true));
        history.delete_room(1).await.unwrap();
        history.flush().await.unwrap();
        let recent = history.recent("bob".into(), vec![1], 10).await.unwrap();
        assert!(recent[0].1.is_empty());
        assert_eq!(history.stats().await.unwrap().stored, 2);
        drop(history);
        task.join().await;
    }

    /// The memory backend, with each replay held until the test lets it go
    /// (and saying when one started).
    struct GatedReplays {
        inner: crate::storage::memory::MemoryHistory,
        started: std::sync::mpsc::Sender<()>,
        go: std::sync::mpsc::Receiver<()>,
    }

    impl HistoryBackend for GatedReplays {
        type Target = crate::storage::memory::MemoryTarget;
        type Unsynced = crate::storage::memory::NothingUnsynced;

        fn room_target(&self, id: u64) -> Self::Target {
            self.inner.room_target(id)
        }
        fn direct_target(&self, a: &str, b: &str) -> Result<Self::Target, HistoryError> {
            self.inner.direct_target(a, b)
        }
        fn is_ready(&self, target: &Self::Target) -> bool {
            self.inner.is_ready(target)
        }
        fn append(
            &mut self,
            target: &Self::Target,
            entry: &HistoryEntry,
        ) -> Result<Appended, HistoryError> {
            self.inner.append(target, entry)
        }
        fn recent_for_user(
            &mut self,
            canonical: &str,
            rooms: &[u64],
            limit: usize,
        ) -> Result<Recent, HistoryError> {
            let _ = self.started.send(());
            let _ = self.go.recv();
            self.inner.recent_for_user(canonical, rooms, limit)
        }
        fn page(
            &mut self,
            target: &Self::Target,
            before_id: u64,
            limit: usize,
        ) -> Result<(Vec<HistoryEntry>, bool), HistoryError> {
            self.inner.page(target, before_id, limit)
        }
        fn delete_room(&mut self, id: u64) -> Result<(), HistoryError> {
            self.inner.delete_room(id)
        }
        fn flush(&mut self) -> Result<(), HistoryError> {
            self.inner.flush()
        }
        fn take_unsynced(&mut self) -> Result<Self::Unsynced, HistoryError> {
            self.inner.take_unsynced()
        }
        fn cache_stats(&self) -> crate::storage::CacheStats {
            self.inner.cache_stats()
        }
    }

    /// A mass reconnect queues hundreds of logins' replays; a message sent
    /// meanwhile is stored after the replay in progress, not after the
    /// queue (in one queue it waited for all of them).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_is_stored_ahead_of_the_replays_queued_before_it() {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel();
        let store = GatedReplays {
            inner: crate::storage::memory::MemoryHistory::new(),
            started: started_tx,
            go: go_rx,
        };
        let (history, task) = spawn(store, 1, Duration::from_secs(1));
        let replay = || {
            let (reply, rx) = oneshot::channel();
            let request = Request::Recent {
                user: "ann".into(),
                rooms: vec![1],
                limit: 50,
                reply,
            };
            (request, rx)
        };
        // One replay in progress (held in the backend) ...
        let (request, first) = replay();
        history.tx.send(request).await.unwrap();
        tokio::task::block_in_place(|| started.recv().unwrap());
        // ... ten queued behind it, then a message.
        let mut queued = Vec::new();
        for _ in 0..10 {
            let (request, rx) = replay();
            history.tx.send(request).await.unwrap();
            queued.push(rx);
        }
        let (reply, stored) = oneshot::channel();
        let append = AppendRequest {
            destination: Destination::Room { id: 1 },
            message: message("hi"),
            reply,
        };
        history.appends.send(append).await.unwrap();
        // Only the replay in progress is let go: the message is stored
        // while the ten still wait.
        go.send(()).unwrap();
        first.await.unwrap().unwrap();
        let stored = tokio::time::timeout(Duration::from_secs(30), stored)
            .await
            .expect("the message waited for the queued replays")
            .unwrap()
            .unwrap();
        assert!(stored.is_new);
        for mut rx in queued.drain(..) {
            assert!(rx.try_recv().is_err(), "a queued replay was answered first");
            go.send(()).unwrap();
            let recent = rx.await.unwrap().unwrap();
            assert_eq!(
                recent[0].1.len(),
                1,
                "and sees the message stored before it"
            );
        }
        drop(history);
        task.join().await;
    }
}
