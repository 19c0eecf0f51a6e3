//! The loaded logs: each with its handle and write position, and what its conversation
//! needs in memory (the last `tail_len` entries and the senders' resend keys, or a
//! user's partner list), least recently used first out beyond a byte budget.
//!
//! Bytes are counted as held, not as allocated: a conversation counts its fixed structs
//! (the log's key schedule, handle and position, the map and LRU slots), its names, each
//! cached entry's struct and strings (sender, recipient, text), each sender's name and
//! keys, each partner name twice (list and set). Allocator slack is not counted, nor an
//! open log's write buffer (at most `log_file::WRITE_BUFFER_KEPT`, 4 KiB, per open file
//! between appends, so at most `max_open_files` × 4 KiB; unbounded only under
//! `Durability::Buffered`, which the server does not use).
//! Evicting a log writes what it buffered and closes it; if it was written since the
//! last fsync, its handle waits for the periodic sync instead (at most
//! [`MAX_UNSYNCED_CLOSED`], then a close fsyncs at once); nothing else is lost, since everything it held is
//! in its file and the next use loads it again (resend keys included).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::mem::size_of;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::entry::{HistoryEntry, KeyedRecord, PartnerRecord};
use super::log_file::{LogFile, Unparsable};
use super::sender_keys::SenderKeys;
use crate::storage::error::HistoryError;

/// Bytes counted per conversation besides its names and content: the map slot, the
/// two LRU slots and the content structs (the log's key schedule is inside).
const LOG_BYTES: usize = size_of::<(String, (CachedLog, usize))>() + 2 * size_of::<(u64, String)>();
/// Bytes counted per cached entry besides its strings.
const ENTRY_BYTES: usize = size_of::<HistoryEntry>();
/// Bytes counted per partner besides the name (held twice: in order and as a set).
const PARTNER_BYTES: usize = 2 * size_of::<String>();
/// Closed logs whose fsync waits for the periodic sync, at most; beyond it
/// a close fsyncs at once.
pub(super) const MAX_UNSYNCED_CLOSED: usize = 64;

/// One loaded log and what is kept of it.
pub(super) struct CachedLog {
    pub(super) log: LogFile,
    pub(super) content: Content,
    last_used: u64,
}

pub(super) enum Content {
    Messages(MessageTail),
    Partners(PartnerList),
}

/// The last `tail_len` entries of a conversation and its senders' resend keys.
#[derive(Default)]
pub(super) struct MessageTail {
    pub(super) tail: VecDeque<HistoryEntry>,
    pub(super) keys: SenderKeys,
    /// Bytes of `tail`'s entries.
    tail_bytes: usize,
}

/// A user's direct-message partners in first-contact order.
#[derive(Default)]
pub(super) struct PartnerList {
    pub(super) order: Vec<String>,
    set: HashSet<String>,
    bytes: usize,
}

fn entry_bytes(entry: &HistoryEntry) -> usize {
    ENTRY_BYTES + entry.from.len() + entry.to.as_ref().map_or(0, String::len) + entry.text.len()
}

impl MessageTail {
    /// Authenticates the whole log once, keeping its last `tail_len` entries and every
    /// sender's last keys (parsed from each record, the text skipped).
    pub(super) fn load(log: &mut LogFile, tail_len: usize) -> Result<Self, HistoryError> {
        let mut raw: VecDeque<(u64, Zeroizing<Vec<u8>>)> = VecDeque::new();
        let mut keys = SenderKeys::default();
        log.scan(|index, plaintext| {
            let keyed: KeyedRecord<'_> =
                serde_json::from_slice(plaintext).map_err(|_| Unparsable)?;
            if let Some(client_id) = keyed.client_id {
                keys.remember(&keyed.from, client_id, keyed.id, keyed.timestamp_ms);
            }
            if tail_len > 0 {
                if raw.len() == tail_len {
                    raw.pop_front();
                }
                raw.push_back((index, Zeroizing::new(plaintext.to_vec())));
            }
            Ok(())
        })?;
        let mut loaded = Self {
            keys,
            ..Self::default()
        };
        for (index, plaintext) in raw {
            let entry: HistoryEntry =
                serde_json::from_slice(&plaintext).map_err(|_| log.corrupt(index))?;
            loaded.push(entry, tail_len);
        }
        Ok(loaded)
    }

    /// Adds an entry appended to the log, dropping the oldest beyond `tail_len`.
    pub(super) fn push(&mut self, entry: HistoryEntry, tail_len: usize) {
        self.tail_bytes += entry_bytes(&entry);
        self.tail.push_back(entry);
        while self.tail.len() > tail_len {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= entry_bytes(&old);
            }
        }
    }

    fn bytes(&self) -> usize {
        self.tail_bytes + self.keys.bytes()
    }
}

impl PartnerList {
    pub(super) fn load(log: &mut LogFile) -> Result<Self, HistoryError> {
        let mut list = Self::default();
        log.scan(|_, plaintext| {
            let record: PartnerRecord =
                serde_json::from_slice(plaintext).map_err(|_| Unparsable)?;
            list.add(record.partner);
            Ok(())
        })?;
        Ok(list)
    }

    pub(super) fn contains(&self, partner: &str) -> bool {
        self.set.contains(partner)
    }

    pub(super) fn add(&mut self, partner: String) {
        if !self.set.contains(&partner) {
            self.bytes += PARTNER_BYTES + 2 * partner.len();
            self.set.insert(partner.clone());
            self.order.push(partner);
        }
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Content {
    fn bytes(&self) -> usize {
        match self {
            Content::Messages(m) => m.bytes(),
            Content::Partners(p) => p.bytes(),
        }
    }
}

impl CachedLog {
    pub(super) fn new(log: LogFile, content: Content) -> Self {
        Self {
            log,
            content,
            last_used: 0,
        }
    }

    /// What this log counts against the budget under the name `id`.
    fn bytes(&self, id: &str) -> usize {
        LOG_BYTES + id.len() + self.log.path().as_os_str().len() + self.content.bytes()
    }
}

/// Loaded logs by id, with byte and open-handle accounting and LRU order.
pub(super) struct ConversationCache {
    budget: usize,
    bytes: usize,
    logs: HashMap<String, (CachedLog, usize)>,
    /// Every log by last use, and the open ones again (for the handle cap).
    lru: BTreeMap<u64, String>,
    open_lru: BTreeMap<u64, String>,
    clock: u64,
    /// Handles of logs closed with writes not yet fsynced, for the periodic
    /// sync (on the blocking pool) to fsync and drop.
    unsynced_closed: Vec<(PathBuf, File)>,
}

impl ConversationCache {
    pub(super) fn new(budget: usize) -> Self {
        Self {
            budget,
            bytes: 0,
            logs: HashMap::new(),
            lru: BTreeMap::new(),
            open_lru: BTreeMap::new(),
            clock: 0,
            unsynced_closed: Vec::new(),
        }
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.logs.contains_key(id)
    }

    pub(super) fn get(&self, id: &str) -> Option<&CachedLog> {
        self.logs.get(id).map(|(cached, _)| cached)
    }

    /// Bytes held, as counted (see the module doc).
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Conversations (and partner lists) held.
    pub(super) fn len(&self) -> usize {
        self.logs.len()
    }

    pub(super) fn open_files(&self) -> usize {
        self.open_lru.len()
    }

    /// Adds a freshly loaded log as the most recently used.
    pub(super) fn insert(&mut self, id: String, cached: CachedLog) {
        self.remove(&id);
        let bytes = cached.bytes(&id);
        self.bytes += bytes;
        self.logs.insert(id.clone(), (cached, bytes));
        self.touch(&id);
    }

    /// Uses log `id` (it becomes the most recently used) and accounts for whatever `f`
    /// changed in it: its content's bytes, whether its file is open.
    pub(super) fn update<T>(&mut self, id: &str, f: impl FnOnce(&mut CachedLog) -> T) -> Option<T> {
        let (cached, bytes) = self.logs.get_mut(id)?;
        let out = f(cached);
        let now = cached.bytes(id);
        self.bytes = self.bytes - *bytes + now;
        *bytes = now;
        self.touch(id);
        Some(out)
    }

    /// Every loaded log, for flushing. The closure may write and fsync, not close.
    pub(super) fn logs_mut(&mut self) -> impl Iterator<Item = (&String, &mut LogFile)> {
        self.logs
            .iter_mut()
            .map(|(id, (cached, _))| (id, &mut cached.log))
    }

    /// Drops log `id` without flushing it (after an I/O error: its next use rescans the
    /// file).
    pub(super) fn remove(&mut self, id: &str) -> Option<CachedLog> {
        let (cached, bytes) = self.logs.remove(id)?;
        self.bytes -= bytes;
        self.lru.remove(&cached.last_used);
        self.open_lru.remove(&cached.last_used);
        Some(cached)
    }

    /// The least recently used log with an open file, other than `except`.
    pub(super) fn least_recent_open(&self, except: &str) -> Option<String> {
        self.open_lru
            .values()
            .find(|id| id.as_str() != except)
            .cloned()
    }

    /// Closes log `id`'s file (flushing it first); it stays loaded.
    pub(super) fn close_file(&mut self, id: &str) -> Result<(), HistoryError> {
        let Some((cached, _)) = self.logs.get_mut(id) else {
            return Ok(());
        };
        let flushed = cached.log.flush(false);
        let unsynced = cached.log.close();
        self.open_lru.remove(&cached.last_used);
        self.keep_for_sync(unsynced);
        flushed
    }

    /// Evicts least recently used logs until at most the budget is held.
    pub(super) fn evict_over_budget(&mut self) {
        while self.bytes > self.budget {
            let Some((_, id)) = self.lru.pop_first() else {
                break;
            };
            if let Some(mut cached) = self.remove(&id) {
                // Buffered records reach the file before it is forgotten; a write error
                // loses them as it would at a flush.
                if let Err(e) = cached.log.flush(false) {
                    tracing::error!(error = %e, "writing an evicted history log failed");
                }
                let unsynced = cached.log.close();
                self.keep_for_sync(unsynced);
            }
        }
    }

    /// Keeps a closed log's handle for the next periodic sync. Beyond
    /// [`MAX_UNSYNCED_CLOSED`] (a cache thrashing faster than the sync
    /// runs) it is fsynced here instead, so open descriptors stay bounded.
    fn keep_for_sync(&mut self, unsynced: Option<(PathBuf, File)>) {
        let Some((path, file)) = unsynced else {
            return;
        };
        if self.unsynced_closed.len() < MAX_UNSYNCED_CLOSED {
            self.unsynced_closed.push((path, file));
        } else if let Err(e) = file.sync_data() {
            tracing::warn!(path = %path.display(), error = %e, "fsync at close failed");
        }
    }

    /// The handles kept by [`keep_for_sync`](Self::keep_for_sync), to fsync
    /// and drop.
    pub(super) fn take_unsynced_closed(&mut self) -> Vec<(PathBuf, File)> {
        std::mem::take(&mut self.unsynced_closed)
    }

    fn touch(&mut self, id: &str) {
        let Some((cached, _)) = self.logs.get_mut(id) else {
            return;
        };
        let open = cached.log.is_open();
        let is_latest = cached.last_used == self.clock && self.lru.contains_key(&self.clock);
        if is_latest && open == self.open_lru.contains_key(&self.clock) {
            // Already the most recent (an append uses its log twice): no reordering.
            return;
        }
        self.lru.remove(&cached.last_used);
        self.open_lru.remove(&cached.last_used);
        self.clock += 1;
        cached.last_used = self.clock;
        self.lru.insert(self.clock, id.to_owned());
        if open {
            self.open_lru.insert(self.clock, id.to_owned());
        }
    }

    /// [`bytes`](Self::bytes) counted from scratch, checking every running count on the way.
    #[cfg(test)]
    pub(super) fn recount(&self) -> usize {
        self.logs
            .iter()
            .map(|(id, (cached, bytes))| {
                let content = match &cached.content {
                    Content::Messages(m) => {
                        assert_eq!(m.keys.bytes(), m.keys.recount());
                        m.tail.iter().map(entry_bytes).sum::<usize>() + m.keys.recount()
                    }
                    Content::Partners(p) => {
                        assert_eq!(p.order.len(), p.set.len());
                        p.order.iter().map(|p| PARTNER_BYTES + 2 * p.len()).sum()
                    }
                };
                let counted = LOG_BYTES + id.len() + cached.log.path().as_os_str().len() + content;
                assert_eq!(counted, *bytes, "{id}");
                counted
            })
            .sum()
    }

    /// Ids from least to most recently used.
    #[cfg(test)]
    pub(super) fn lru_order(&self) -> Vec<&str> {
        self.lru.values().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sealing::derive_aead_key;
    use std::path::PathBuf;

    /// A loaded, empty message log; nothing touches the disk until an append.
    fn empty(id: &str) -> CachedLog {
        let key = derive_aead_key(&[5; 32], &[id.as_bytes()]).unwrap();
        let log = LogFile::new(PathBuf::from(format!("/nowhere/{id}.log")), id.into(), key);
        CachedLog::new(log, Content::Messages(MessageTail::default()))
    }

    fn entry(text: &str) -> HistoryEntry {
        HistoryEntry {
            id: 1,
            timestamp_ms: 2,
            from: "Ann".into(),
            to: Some("Bob".into()),
            text: text.into(),
            client_id: Some(3),
        }
    }

    #[test]
    fn the_least_recently_used_log_is_evicted_first() {
        let one = empty("a").bytes("a");
        let mut cache = ConversationCache::new(3 * one);
        for id in ["a", "b", "c"] {
            cache.insert(id.into(), empty(id));
        }
        cache.update("a", |_| ());
        assert_eq!(cache.lru_order(), ["b", "c", "a"]);
        cache.insert("d".into(), empty("d"));
        cache.evict_over_budget();
        assert!(!cache.contains("b"), "least recently used");
        assert!(cache.contains("a") && cache.contains("c") && cache.contains("d"));
        assert_eq!(cache.bytes(), 3 * one);
        assert_eq!(cache.recount(), cache.bytes());
    }

    #[test]
    fn the_byte_count_follows_every_change_exactly() {
        let mut cache = ConversationCache::new(usize::MAX);
        cache.insert("room".into(), empty("room"));
        cache.insert(
            "partners-x".into(),
            CachedLog::new(
                empty("partners-x").log,
                Content::Partners(PartnerList::default()),
            ),
        );
        let base = cache.bytes();
        for i in 0..10 {
            let text = "x".repeat(i * 7);
            cache.update("room", |c| {
                if let Content::Messages(m) = &mut c.content {
                    m.keys.remember("Ann", i as u64, i as u64, 0);
                    m.push(entry(&text), 4);
                }
            });
            cache.update("partners-x", |c| {
                if let Content::Partners(p) = &mut c.content {
                    p.add(format!("peer{}", i % 3));
                }
            });
            assert_eq!(cache.bytes(), cache.recount());
        }
        // Four entries of the last texts, ten keys of one sender, three partners.
        let texts: usize = (6..10).map(|i| ENTRY_BYTES + "AnnBob".len() + i * 7).sum();
        let keys = "Ann".len()
            + size_of::<(String, VecDeque<(u64, u64, u64)>)>()
            + 10 * super::super::sender_keys::KEY_BYTES;
        let partners = 3 * (PARTNER_BYTES + 2 * "peer0".len());
        assert_eq!(cache.bytes(), base + texts + keys + partners);
        cache.remove("room");
        cache.remove("partners-x");
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn an_evicted_log_frees_its_handle_slot() {
        let dir = tempfile::tempdir().unwrap();
        let key = derive_aead_key(&[5; 32], &[b"room"]).unwrap();
        let mut log = LogFile::new(dir.path().join("room.log"), "room".into(), key);
        log.scan(|_, _| Ok(())).unwrap();
        let mut cache = ConversationCache::new(usize::MAX);
        cache.insert(
            "room".into(),
            CachedLog::new(log, Content::Messages(MessageTail::default())),
        );
        let rng = ring::rand::SystemRandom::new();
        cache.update("room", |c| {
            c.log
                .append(&rng, b"{}", super::super::log_file::Durability::Buffered)
                .unwrap()
        });
        assert_eq!(cache.open_files(), 1);
        assert_eq!(cache.least_recent_open("other").as_deref(), Some("room"));
        cache.budget = 0;
        cache.evict_over_budget();
        assert_eq!((cache.len(), cache.open_files(), cache.bytes()), (0, 0, 0));
        assert!(
            std::fs::metadata(dir.path().join("room.log"))
                .unwrap()
                .len()
                > 0,
            "written at eviction"
        );
    }
}
