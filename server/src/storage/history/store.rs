//! The chat histories: the loaded logs (see `conversation_cache`), appends with resend
//! recognition, replay for a user, and syncing.

use std::fmt;
use std::fs::{DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use ring::rand::SystemRandom;
use zeroize::Zeroizing;

use super::conversation_cache::{CachedLog, Content, ConversationCache, MessageTail, PartnerList};
use super::entry::{Appended, Conversation, HistoryEntry, PartnerRecord};
use super::keyed_names::{self, DirectLogs, LogKeys};
use super::log_file::{Durability, LogFile};
use crate::storage::backend::{HistoryBackend, PendingSync};
use crate::storage::error::HistoryError;

/// Entries kept in memory per conversation unless configured otherwise.
pub const DEFAULT_TAIL_LEN: usize = 100;
/// Open log files kept unless configured otherwise.
pub const DEFAULT_MAX_OPEN_FILES: usize = 256;
/// Bytes of loaded conversations kept in memory unless configured otherwise.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Tuning of a [`HistoryStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Entries kept in memory per conversation; also the most `recent_for_user` returns.
    pub tail_len: usize,
    pub durability: Durability,
    /// Open file handles kept; least recently used ones are closed beyond this.
    pub max_open_files: usize,
    /// Bytes of loaded conversations kept between requests (as counted: see
    /// `conversation_cache`); least recently used ones are evicted beyond this.
    pub cache_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            tail_len: DEFAULT_TAIL_LEN,
            durability: Durability::default(),
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// Where an append goes, its logs named once (a direct message's names are HMACs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendTarget {
    /// A room's log (see [`HistoryStore::room_target`]).
    Room(String),
    Direct(DirectLogs),
}

/// What the cache of loaded conversations holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Bytes held, as counted against [`HistoryConfig::cache_bytes`].
    pub bytes: usize,
    /// Logs loaded: conversations and partner lists.
    pub logs: usize,
}

enum Kind {
    Messages,
    Partners,
}

/// The chat histories: a cache of loaded logs and their in-memory tails.
/// Not internally synchronised: the server gives it to one task.
pub struct HistoryStore {
    dir: PathBuf,
    keys: LogKeys,
    rng: SystemRandom,
    config: HistoryConfig,
    cache: ConversationCache,
}

impl fmt::Debug for HistoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryStore")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .field("cache", &self.cache_stats())
            .field("open_files", &self.cache.open_files())
            .finish_non_exhaustive()
    }
}

impl HistoryStore {
    /// Opens the history directory (normally `DataDir::chat_histories_dir()`), creating it
    /// with mode 0700 if missing. Reads nothing yet: logs are loaded on first use.
    pub fn open(dir: impl Into<PathBuf>, storage_key: &[u8; 32]) -> Result<Self, HistoryError> {
        Self::open_with_config(dir, storage_key, HistoryConfig::default())
    }

    pub fn open_with_config(
        dir: impl Into<PathBuf>,
        storage_key: &[u8; 32],
        config: HistoryConfig,
    ) -> Result<Self, HistoryError> {
        let dir = dir.into();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| HistoryError::Io {
                path: dir.clone(),
                source,
            })?;
        Ok(Self {
            dir,
            keys: LogKeys::new(storage_key)?,
            rng: SystemRandom::new(),
            config: HistoryConfig {
                max_open_files: config.max_open_files.max(1),
                ..config
            },
            cache: ConversationCache::new(config.cache_bytes),
        })
    }

    /// The target of a message in room `id`.
    pub fn room_target(&self, id: u64) -> AppendTarget {
        AppendTarget::Room(self.keys.room_id(id))
    }

    /// The target of a direct message between two canonical names (either order).
    pub fn direct_target(
        &self,
        a_canonical: &str,
        b_canonical: &str,
    ) -> Result<AppendTarget, HistoryError> {
        Ok(AppendTarget::Direct(
            self.keys.direct_logs(a_canonical, b_canonical)?,
        ))
    }

    /// Whether an append to `target` touches only memory and one `write(2)` (its logs
    /// are loaded), i.e. needs no file to be read first.
    pub fn is_loaded(&self, target: &AppendTarget) -> bool {
        match target {
            AppendTarget::Room(log) => self.cache.contains(log),
            AppendTarget::Direct(logs) => [&logs.dm, &logs.partners_of_a, &logs.partners_of_b]
                .iter()
                .all(|id| self.cache.contains(id)),
        }
    }

    /// Appends a message, unless it is a resend (see [`Appended`]). On a direct pair's
    /// first message each is recorded in the other's partner list, before the message,
    /// so a crash never leaves a message its users cannot find.
    pub fn append(
        &mut self,
        target: &AppendTarget,
        entry: &HistoryEntry,
    ) -> Result<Appended, HistoryError> {
        let appended = match target {
            AppendTarget::Room(log) => self.append_message(log, entry),
            AppendTarget::Direct(logs) => self.append_direct_logs(logs, entry),
        };
        self.cache.evict_over_budget();
        appended
    }

    fn append_direct_logs(
        &mut self,
        logs: &DirectLogs,
        entry: &HistoryEntry,
    ) -> Result<Appended, HistoryError> {
        self.add_partner(&logs.partners_of_a, &logs.b)?;
        self.add_partner(&logs.partners_of_b, &logs.a)?;
        self.append_message(&logs.dm, entry)
    }

    /// Each of `rooms` (in the order given), then each DM conversation of `canonical`
    /// (in first-contact order), each with its last `limit_per_conversation` entries,
    /// oldest first. At most `tail_len` entries per conversation are kept in memory, so
    /// larger limits return that many.
    pub fn recent_for_user(
        &mut self,
        canonical: &str,
        rooms: &[u64],
        limit_per_conversation: usize,
    ) -> Result<Vec<(Conversation, Vec<HistoryEntry>)>, HistoryError> {
        let partners_id = self.keys.partners_id(canonical)?;
        self.ensure_loaded(&partners_id, Kind::Partners)?;
        self.cache.update(&partners_id, |_| ());
        let partners = match self.cache.get(&partners_id).map(|c| &c.content) {
            Some(Content::Partners(list)) => list.order.clone(),
            _ => Vec::new(),
        };
        let mut result = Vec::with_capacity(partners.len() + rooms.len());
        for &id in rooms {
            let log = self.keys.room_id(id);
            let entries = self.recent(&log, limit_per_conversation)?;
            result.push((Conversation::Room { id }, entries));
        }
        for partner in partners {
            let dm_id = self.keys.dm_id(canonical, &partner)?;
            let entries = self.recent(&dm_id, limit_per_conversation)?;
            result.push((Conversation::Direct { partner }, entries));
        }
        Ok(result)
    }

    /// Writes buffered appends and fsyncs every log written since the last flush. Call it
    /// at shutdown (the server's periodic fsync uses [`take_unsynced`](Self::take_unsynced)).
    /// Tries every log; returns the first error.
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        let mut first_error = None;
        for (path, file) in self.cache.take_unsynced_closed() {
            if let Err(source) = file.sync_data() {
                first_error.get_or_insert(HistoryError::Io { path, source });
            }
        }
        let mut failed = Vec::new();
        for (id, log) in self.cache.logs_mut() {
            if let Err(e) = log.flush(true) {
                failed.push(id.clone());
                first_error.get_or_insert(e);
            }
        }
        for id in failed {
            self.cache.remove(&id);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Duplicates of the file handles written since the last fsync, so that
    /// the caller can fsync them elsewhere while appends go on (an fsync
    /// through a duplicate descriptor covers every write made before it);
    /// those logs then count as synced. Logs closed or evicted since the
    /// last call with writes not yet fsynced come with their own handles.
    pub fn take_unsynced(&mut self) -> Result<Vec<(PathBuf, File)>, HistoryError> {
        let mut files = self.cache.take_unsynced_closed();
        for (_, log) in self.cache.logs_mut() {
            match log.take_unsynced() {
                Ok(file) => files.extend(file),
                Err(e) => {
                    // What was already taken is not left unsynced.
                    for (_, file) in files {
                        let _ = file.sync_data();
                    }
                    return Err(e);
                }
            }
        }
        Ok(files)
    }

    /// Up to `limit` messages of the conversation `target` names with an id
    /// below `before_id` (0: the newest), oldest first, and whether none
    /// older exists. Reads the whole log (each record authenticated), so a
    /// page costs a scan of the conversation's file: fine for scrolling back,
    /// where a person reads far slower than this reads.
    pub fn page(
        &mut self,
        target: &AppendTarget,
        before_id: u64,
        limit: usize,
    ) -> Result<(Vec<HistoryEntry>, bool), HistoryError> {
        let id = match target {
            AppendTarget::Room(log) => log.clone(),
            AppendTarget::Direct(logs) => logs.dm.clone(),
        };
        // Written but unflushed appends (buffered durability) go first.
        self.cache.update(&id, cached_flush);
        let key = self.keys.log_key(&id)?;
        let mut log = LogFile::new(keyed_names::path_of(&self.dir, &id), id, key);
        let before = if before_id == 0 { u64::MAX } else { before_id };
        let mut kept: std::collections::VecDeque<HistoryEntry> =
            std::collections::VecDeque::with_capacity(limit + 1);
        let mut older = 0usize;
        log.scan(|_, plaintext| {
            let entry: HistoryEntry =
                serde_json::from_slice(plaintext).map_err(|_| super::log_file::Unparsable)?;
            if entry.id < before {
                kept.push_back(entry);
                if kept.len() > limit {
                    kept.pop_front();
                    older += 1;
                }
            }
            Ok(())
        })?;
        Ok((kept.into(), older == 0))
    }

    /// Deletes room `id`'s log (the room was deleted): what is cached of it,
    /// then its file. A room log that never existed is not an error.
    pub fn delete_room(&mut self, id: u64) -> Result<(), HistoryError> {
        let log = self.keys.room_id(id);
        drop(self.cache.remove(&log));
        let path = keyed_names::path_of(&self.dir, &log);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(HistoryError::Io { path, source }),
        }
    }

    /// What the cache of loaded conversations holds now.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            bytes: self.cache.bytes(),
            logs: self.cache.len(),
        }
    }

    fn recent(&mut self, id: &str, limit: usize) -> Result<Vec<HistoryEntry>, HistoryError> {
        self.ensure_loaded(id, Kind::Messages)?;
        let entries = self
            .cache
            .update(id, |cached| match &cached.content {
                Content::Messages(m) => {
                    let skip = m.tail.len().saturating_sub(limit);
                    m.tail.iter().skip(skip).cloned().collect()
                }
                Content::Partners(_) => Vec::new(),
            })
            .unwrap_or_default();
        self.cache.evict_over_budget();
        Ok(entries)
    }

    fn append_message(&mut self, id: &str, entry: &HistoryEntry) -> Result<Appended, HistoryError> {
        self.ensure_loaded(id, Kind::Messages)?;
        if let (
            Some(client_id),
            Some(CachedLog {
                content: Content::Messages(m),
                ..
            }),
        ) = (entry.client_id, self.cache.get(id))
        {
            if let Some((id_stored, timestamp_ms)) = m.keys.find(&entry.from, client_id) {
                self.cache.update(id, |_| ());
                return Ok(Appended::Duplicate {
                    id: id_stored,
                    timestamp_ms,
                });
            }
        }
        let plaintext =
            Zeroizing::new(serde_json::to_vec(entry).map_err(|e| HistoryError::Io {
                path: keyed_names::path_of(&self.dir, id),
                source: io::Error::other(e),
            })?);
        self.append_record(id, &plaintext)?;
        let tail_len = self.config.tail_len;
        self.cache.update(id, |cached| {
            if let Content::Messages(m) = &mut cached.content {
                if let Some(client_id) = entry.client_id {
                    m.keys
                        .remember(&entry.from, client_id, entry.id, entry.timestamp_ms);
                }
                m.push(entry.clone(), tail_len);
            }
        });
        Ok(Appended::New)
    }

    fn add_partner(&mut self, list_id: &str, partner: &str) -> Result<(), HistoryError> {
        self.ensure_loaded(list_id, Kind::Partners)?;
        if let Some(CachedLog {
            content: Content::Partners(list),
            ..
        }) = self.cache.get(list_id)
        {
            if list.contains(partner) {
                self.cache.update(list_id, |_| ());
                return Ok(());
            }
        }
        let record = PartnerRecord {
            partner: partner.to_owned(),
        };
        let plaintext = serde_json::to_vec(&record).map_err(|e| HistoryError::Io {
            path: keyed_names::path_of(&self.dir, list_id),
            source: io::Error::other(e),
        })?;
        self.append_record(list_id, &plaintext)?;
        self.cache.update(list_id, |cached| {
            if let Content::Partners(list) = &mut cached.content {
                list.add(partner.to_owned());
            }
        });
        Ok(())
    }

    /// Seals and writes one record; on an I/O error the log is dropped from the cache so
    /// its next use rescans the file (and truncates whatever was half written).
    fn append_record(&mut self, id: &str, plaintext: &[u8]) -> Result<(), HistoryError> {
        let needs_open = self.cache.get(id).is_some_and(|c| !c.log.is_open());
        if needs_open {
            self.close_lru_files_beyond(self.config.max_open_files - 1, id)?;
        }
        let (rng, durability) = (&self.rng, self.config.durability);
        let result = self
            .cache
            .update(id, |cached| cached.log.append(rng, plaintext, durability));
        match result {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                if !matches!(e, HistoryError::RecordTooLarge { .. }) {
                    self.cache.remove(id);
                }
                Err(e)
            }
            None => Err(HistoryError::Io {
                path: keyed_names::path_of(&self.dir, id),
                source: io::Error::other("log not loaded"),
            }),
        }
    }

    fn close_lru_files_beyond(&mut self, keep: usize, except: &str) -> Result<(), HistoryError> {
        while self.cache.open_files() > keep {
            let Some(victim) = self.cache.least_recent_open(except) else {
                break;
            };
            if let Err(e) = self.cache.close_file(&victim) {
                self.cache.remove(&victim);
                return Err(e);
            }
        }
        Ok(())
    }

    fn ensure_loaded(&mut self, id: &str, kind: Kind) -> Result<(), HistoryError> {
        if self.cache.contains(id) {
            return Ok(());
        }
        let key = self.keys.log_key(id)?;
        let mut log = LogFile::new(keyed_names::path_of(&self.dir, id), id.to_owned(), key);
        let content = match kind {
            Kind::Messages => Content::Messages(MessageTail::load(&mut log, self.config.tail_len)?),
            Kind::Partners => Content::Partners(PartnerList::load(&mut log)?),
        };
        self.cache
            .insert(id.to_owned(), CachedLog::new(log, content));
        Ok(())
    }
}

/// Handles of the logs written since the last sync (see
/// [`HistoryStore::take_unsynced`]), to fsync away from the writer.
#[derive(Debug, Default)]
pub struct UnsyncedLogs(pub Vec<(PathBuf, File)>);

impl PendingSync for UnsyncedLogs {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn run(self) {
        for (path, file) in self.0 {
            if let Err(e) = file.sync_data() {
                tracing::error!(path = %path.display(), error = %e, "history fsync failed");
            }
        }
    }
}

/// The file backend: each call is the inherent method of the same name.
impl HistoryBackend for HistoryStore {
    type Target = AppendTarget;
    type Unsynced = UnsyncedLogs;

    fn room_target(&self, id: u64) -> AppendTarget {
        HistoryStore::room_target(self, id)
    }

    fn direct_target(
        &self,
        a_canonical: &str,
        b_canonical: &str,
    ) -> Result<AppendTarget, HistoryError> {
        HistoryStore::direct_target(self, a_canonical, b_canonical)
    }

    fn is_ready(&self, target: &AppendTarget) -> bool {
        self.is_loaded(target)
    }

    fn append(
        &mut self,
        target: &AppendTarget,
        entry: &HistoryEntry,
    ) -> Result<Appended, HistoryError> {
        HistoryStore::append(self, target, entry)
    }

    fn recent_for_user(
        &mut self,
        canonical: &str,
        rooms: &[u64],
        limit_per_conversation: usize,
    ) -> Result<Vec<(Conversation, Vec<HistoryEntry>)>, HistoryError> {
        HistoryStore::recent_for_user(self, canonical, rooms, limit_per_conversation)
    }

    fn page(
        &mut self,
        target: &AppendTarget,
        before_id: u64,
        limit: usize,
    ) -> Result<(Vec<HistoryEntry>, bool), HistoryError> {
        HistoryStore::page(self, target, before_id, limit)
    }

    fn delete_room(&mut self, id: u64) -> Result<(), HistoryError> {
        HistoryStore::delete_room(self, id)
    }

    fn flush(&mut self) -> Result<(), HistoryError> {
        HistoryStore::flush(self)
    }

    fn take_unsynced(&mut self) -> Result<UnsyncedLogs, HistoryError> {
        HistoryStore::take_unsynced(self).map(UnsyncedLogs)
    }

    fn cache_stats(&self) -> CacheStats {
        HistoryStore::cache_stats(self)
    }
}

/// Writes a cached log's buffered appends (before it is read from disk).
fn cached_flush(cached: &mut CachedLog) {
    if let Err(e) = cached.log.flush(false) {
        tracing::warn!(error = %e, "a history log could not be flushed before a page read");
    }
}

impl Drop for HistoryStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "flushing chat histories at drop failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::keyed_names::ROOM_ID;
    use super::*;
    use crate::storage::history::{KEYS_PER_SENDER, MAX_RECORD_LEN, SEED_ROOM};
    use std::fs;
    use std::path::Path;

    const KEY: [u8; 32] = [5; 32];

    fn entry(id: u64, from: &str, to: Option<&str>, text: &str) -> HistoryEntry {
        HistoryEntry {
            id,
            timestamp_ms: 1_700_000_000_000 + id,
            from: from.into(),
            to: to.map(Into::into),
            text: text.into(),
            client_id: None,
        }
    }

    fn keyed(id: u64, from: &str, client_id: u64, text: &str) -> HistoryEntry {
        HistoryEntry {
            client_id: Some(client_id),
            ..entry(id, from, None, text)
        }
    }

    fn texts(entries: &[HistoryEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.text.as_str()).collect()
    }

    fn room_texts(dir: &Path, key: &[u8; 32]) -> Result<Vec<String>, HistoryError> {
        let mut store = HistoryStore::open(dir, key)?;
        let recent = store.recent_for_user("nobody", &[SEED_ROOM], 1000)?;
        Ok(recent[0].1.iter().map(|e| e.text.clone()).collect())
    }

    fn with_cache(cache_bytes: usize) -> HistoryConfig {
        HistoryConfig {
            cache_bytes,
            ..HistoryConfig::default()
        }
    }

    /// The running byte count is exact and within the budget.
    fn assert_within_budget(store: &HistoryStore) {
        assert_eq!(store.cache.bytes(), store.cache.recount());
        assert!(
            store.cache.bytes() <= store.config.cache_bytes,
            "{} > {}",
            store.cache.bytes(),
            store.config.cache_bytes
        );
    }

    #[test]
    fn a_page_is_the_messages_before_an_id_oldest_first_and_says_when_there_are_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
        for id in 1..=10 {
            store
                .append_room(SEED_ROOM, &entry(id, "A", None, &format!("m{id}")))
                .unwrap();
        }
        let target = store.room_target(SEED_ROOM);
        let ids = |page: &(Vec<HistoryEntry>, bool)| -> Vec<u64> {
            page.0.iter().map(|e| e.id).collect()
        };
        let newest = store.page(&target, 0, 3).unwrap();
        assert_eq!((ids(&newest), newest.1), (vec![8, 9, 10], false));
        let before = store.page(&target, 8, 3).unwrap();
        assert_eq!((ids(&before), before.1), (vec![5, 6, 7], false));
        let last = store.page(&target, 3, 3).unwrap();
        assert_eq!((ids(&last), last.1), (vec![1, 2], true));
        let none = store.page(&target, 1, 3).unwrap();
        assert_eq!((ids(&none), none.1), (vec![], true));
        let empty_room = store.room_target(99);
        assert_eq!(store.page(&empty_room, 0, 3).unwrap(), (vec![], true));
    }

    #[test]
    fn room_and_direct_messages_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
            store
                .append_room(SEED_ROOM, &entry(1, "Alice", None, "hello room"))
                .unwrap();
            store
                .append_direct("alice", "bob", &entry(2, "Alice", Some("Bob"), "hi bob"))
                .unwrap();
            store
                .append_direct("bob", "alice", &entry(3, "Bob", Some("Alice"), "hi alice"))
                .unwrap();
            store
                .append_direct(
                    "alice",
                    "carol",
                    &entry(4, "Alice", Some("Carol"), "hi carol"),
                )
                .unwrap();
        }
        let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
        let alice = store.recent_for_user("alice", &[SEED_ROOM], 10).unwrap();
        assert_eq!(alice.len(), 3);
        assert_eq!(alice[0].0, Conversation::Room { id: SEED_ROOM });
        assert_eq!(texts(&alice[0].1), ["hello room"]);
        assert_eq!(
            alice[1].0,
            Conversation::Direct {
                partner: "bob".into()
            }
        );
        assert_eq!(texts(&alice[1].1), ["hi bob", "hi alice"]);
        assert_eq!(
            alice[2].0,
            Conversation::Direct {
                partner: "carol".into()
            }
        );
        let bob = store.recent_for_user("bob", &[SEED_ROOM], 10).unwrap();
        assert_eq!(bob.len(), 2);
        assert_eq!(bob[1].1, alice[1].1, "one log per pair, either order");
        let dave = store.recent_for_user("dave", &[SEED_ROOM], 10).unwrap();
        assert_eq!(dave.len(), 1, "only the room");
        // 1 room + 2 pairs + 3 partner indexes, nothing else.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 6);
    }

    #[test]
    fn recent_returns_the_last_entries_oldest_first_up_to_the_tail_length() {
        let dir = tempfile::tempdir().unwrap();
        let config = HistoryConfig {
            tail_len: 5,
            ..HistoryConfig::default()
        };
        {
            let mut store = HistoryStore::open_with_config(dir.path(), &KEY, config).unwrap();
            for i in 0..12 {
                store
                    .append_room(SEED_ROOM, &entry(i, "A", None, &format!("m{i}")))
                    .unwrap();
            }
            let recent = store.recent_for_user("a", &[SEED_ROOM], 3).unwrap();
            assert_eq!(texts(&recent[0].1), ["m9", "m10", "m11"]);
        }
        let mut store = HistoryStore::open_with_config(dir.path(), &KEY, config).unwrap();
        let recent = store.recent_for_user("a", &[SEED_ROOM], 100).unwrap();
        assert_eq!(texts(&recent[0].1), ["m7", "m8", "m9", "m10", "m11"]);
    }

    #[test]
    fn records_copied_from_another_conversation_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
            for i in 0..2 {
                store
                    .append_direct("a", "b", &entry(i, "A", Some("B"), "secret"))
                    .unwrap();
            }
        }
        let dm = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("dm-"))
            .unwrap();
        fs::copy(&dm, dir.path().join("room.log")).unwrap();
        let err = room_texts(dir.path(), &KEY).unwrap_err();
        assert!(
            matches!(err, HistoryError::Corrupt { index: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("room.log"));
    }

    #[test]
    fn append_without_prior_read_also_heals_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
            store
                .append_room(SEED_ROOM, &entry(0, "A", None, "m0"))
                .unwrap();
            store
                .append_room(SEED_ROOM, &entry(1, "A", None, "m1"))
                .unwrap();
        }
        let path = dir.path().join("room.log");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        {
            let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
            store
                .append_room(SEED_ROOM, &entry(5, "A", None, "next"))
                .unwrap();
        }
        assert_eq!(room_texts(dir.path(), &KEY).unwrap(), ["m0", "next"]);
    }

    #[test]
    fn buffered_appends_reach_the_file_only_at_flush() {
        let dir = tempfile::tempdir().unwrap();
        let config = HistoryConfig {
            durability: Durability::Buffered,
            ..HistoryConfig::default()
        };
        let mut store = HistoryStore::open_with_config(dir.path(), &KEY, config).unwrap();
        store
            .append_room(SEED_ROOM, &entry(0, "A", None, "one"))
            .unwrap();
        store
            .append_room(SEED_ROOM, &entry(1, "A", None, "two"))
            .unwrap();
        assert_eq!(
            texts(&store.recent_for_user("a", &[SEED_ROOM], 10).unwrap()[0].1),
            ["one", "two"]
        );
        assert_eq!(fs::metadata(dir.path().join("room.log")).unwrap().len(), 0);
        store.flush().unwrap();
        assert_eq!(room_texts(dir.path(), &KEY).unwrap(), ["one", "two"]);
    }

    #[test]
    fn open_file_handles_are_capped_and_closed_logs_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = HistoryConfig {
            max_open_files: 2,
            durability: Durability::Buffered,
            ..HistoryConfig::default()
        };
        {
            let mut store = HistoryStore::open_with_config(dir.path(), &KEY, config).unwrap();
            for round in 0..3 {
                for peer in ["b", "c", "d", "e"] {
                    let text = format!("{peer}{round}");
                    store
                        .append_direct("a", peer, &entry(round, "A", None, &text))
                        .unwrap();
                    assert!(store.cache.open_files() <= 2);
                }
            }
        }
        let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
        let recent = store.recent_for_user("a", &[SEED_ROOM], 10).unwrap();
        assert_eq!(recent.len(), 5);
        assert_eq!(texts(&recent[3].1), ["d0", "d1", "d2"]);
    }

    #[test]
    fn names_with_nul_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
        let e = entry(0, "A", None, "x");
        assert!(matches!(
            store.append_direct("a\0b", "c", &e),
            Err(HistoryError::InvalidName)
        ));
    }

    #[test]
    fn oversized_entry_is_refused_and_the_log_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
        let huge = "x".repeat(MAX_RECORD_LEN);
        assert!(matches!(
            store.append_room(SEED_ROOM, &entry(0, "A", None, &huge)),
            Err(HistoryError::RecordTooLarge { .. })
        ));
        store
            .append_room(SEED_ROOM, &entry(1, "A", None, "ok"))
            .unwrap();
        drop(store);
        assert_eq!(room_texts(dir.path(), &KEY).unwrap(), ["ok"]);
    }

    #[test]
    fn history_store_is_send_and_sync() {
        fn is<T: Send + Sync>() {}
        is::<HistoryStore>();
    }

    #[test]
    fn a_resent_client_id_is_recognised_and_not_stored_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
        assert_eq!(
            store
                .append_room(SEED_ROOM, &keyed(1, "Ann", 42, "hi"))
                .unwrap(),
            Appended::New
        );
        // The same key from another sender is another message.
        assert_eq!(
            store
                .append_room(SEED_ROOM, &keyed(2, "Bob", 42, "yo"))
                .unwrap(),
            Appended::New
        );
        // Ann's resend (fresh id offered) gets the first one's id and time.
        assert_eq!(
            store
                .append_room(SEED_ROOM, &keyed(3, "Ann", 42, "hi"))
                .unwrap(),
            Appended::Duplicate {
                id: 1,
                timestamp_ms: 1_700_000_000_001
            }
        );
        // Unkeyed (version-1) messages are never deduplicated.
        for id in 4..6 {
            assert_eq!(
                store
                    .append_room(SEED_ROOM, &entry(id, "Ann", None, "hi"))
                    .unwrap(),
                Appended::New
            );
        }
        assert_eq!(
            room_texts(dir.path(), &KEY).unwrap(),
            ["hi", "yo", "hi", "hi"]
        );
    }

    #[test]
    fn resends_are_recognised_after_a_restart_beyond_the_cached_tail() {
        let dir = tempfile::tempdir().unwrap();
        let config = HistoryConfig {
            tail_len: 2,
            ..HistoryConfig::default()
        };
        {
            let mut store = HistoryStore::open_with_config(dir.path(), &KEY, config).unwrap();
            store
                .append_room(SEED_ROOM, &keyed(1, "Ann", 42, "mine"))
                .unwrap();
            for id in 2..10 {
                store
                    .append_room(SEED_ROOM, &keyed(id, "Bob", id, "busy room"))
                    .unwrap();
            }
        } // dropped: as after a crash, only the file remains
        let mut store = HistoryStore::open_with_config(dir.path(), &KEY, config).unwrap();
        assert_eq!(
            store
                .append_room(SEED_ROOM, &keyed(10, "Ann", 42, "mine"))
                .unwrap(),
            Appended::Duplicate {
                id: 1,
                timestamp_ms: 1_700_000_000_001
            }
        );
        assert_eq!(
            store
                .append_room(SEED_ROOM, &keyed(11, "Ann", 43, "new"))
                .unwrap(),
            Appended::New
        );
    }

    #[test]
    fn a_sender_keeps_its_last_keys_per_conversation_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
        let n = KEYS_PER_SENDER as u64;
        for k in 0..=n {
            store
                .append_room(SEED_ROOM, &keyed(k + 1, "Ann", k, "x"))
                .unwrap();
        }
        // Key 1 is still in the window; key 0 has fallen out of it.
        assert!(matches!(
            store
                .append_room(SEED_ROOM, &keyed(501, "Ann", 1, "x"))
                .unwrap(),
            Appended::Duplicate { id: 2, .. }
        ));
        assert_eq!(
            store
                .append_room(SEED_ROOM, &keyed(500, "Ann", 0, "x"))
                .unwrap(),
            Appended::New
        );
        // A direct conversation has its own keys.
        assert_eq!(
            store
                .append_direct("ann", "bob", &keyed(502, "Ann", 1, "x"))
                .unwrap(),
            Appended::New
        );
    }

    #[test]
    fn a_direct_target_names_its_logs_once_for_the_check_and_the_append() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = HistoryStore::open(dir.path(), &KEY).unwrap();
        let target = store.direct_target("bob", "ann").unwrap();
        assert!(!store.is_loaded(&target));
        store
            .append(&target, &entry(1, "Bob", Some("Ann"), "hi"))
            .unwrap();
        assert!(store.is_loaded(&target));
        assert!(!store.is_loaded(&store.room_target(SEED_ROOM)));
        let ann = store.recent_for_user("ann", &[SEED_ROOM], 10).unwrap();
        assert_eq!(
            ann[1].0,
            Conversation::Direct {
                partner: "bob".into()
            }
        );
        assert_eq!(texts(&ann[1].1), ["hi"]);
    }

    #[test]
    fn the_cache_stays_within_its_byte_budget_with_many_conversations() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 64 * 1024;
        let mut store =
            HistoryStore::open_with_config(dir.path(), &KEY, with_cache(budget)).unwrap();
        let users: Vec<String> = (0..40).map(|i| format!("user{i}")).collect();
        let mut id = 0;
        for round in 0..3 {
            for (i, a) in users.iter().enumerate() {
                let b = &users[(i + 1 + round) % users.len()];
                id += 1;
                let text = format!("{a} to {b} {}", "x".repeat(id as usize % 300));
                store.append_direct(a, b, &keyed(id, a, id, &text)).unwrap();
                assert_within_budget(&store);
                if id > 1 {
                    // Used by the request before: evictions take older ones.
                    assert!(store.cache.contains(ROOM_ID));
                }
                store
                    .append_room(SEED_ROOM, &keyed(id + 10_000, a, id, "room"))
                    .unwrap();
                assert_within_budget(&store);
            }
            for user in &users {
                store.recent_for_user(user, &[SEED_ROOM], 50).unwrap();
                assert_within_budget(&store);
            }
        }
        let stats = store.cache_stats();
        assert!(stats.bytes > budget / 2, "the budget is used: {stats:?}");
        // 40 partner lists, 120 pairs and the room do not fit: some were evicted.
        assert!(stats.logs < 40 + 120 + 1, "{stats:?}");
        // Nothing evicted was lost: every pair has its three messages.
        let recent = store.recent_for_user("user0", &[SEED_ROOM], 50).unwrap();
        assert_eq!(recent.len(), 1 + 6);
        assert!(recent[1..].iter().all(|(_, entries)| !entries.is_empty()));
        let total: usize = recent[1..].iter().map(|(_, e)| e.len()).sum();
        assert_eq!(total, 6, "user0 sent 3 and received 3");
    }

    #[test]
    fn an_evicted_conversation_reloads_its_history_and_its_resend_keys() {
        let dir = tempfile::tempdir().unwrap();
        let config = HistoryConfig {
            // Buffered: eviction must write what the evicted log still holds.
            durability: Durability::Buffered,
            ..with_cache(8 * 1024)
        };
        let mut store = HistoryStore::open_with_config(dir.path(), &KEY, config).unwrap();
        store
            .append_room(SEED_ROOM, &keyed(1, "Ann", 42, "first"))
            .unwrap();
        store
            .append_room(SEED_ROOM, &keyed(2, "Bob", 7, "second"))
            .unwrap();
        // Other conversations push the room out.
        let mut n = 0;
        while store.cache.contains(ROOM_ID) {
            n += 1;
            let peer = format!("peer{n}");
            store
                .append_direct("carol", &peer, &keyed(100 + n, "Carol", n, "filler"))
                .unwrap();
            assert_within_budget(&store);
        }
        // Ann's resend after the eviction is still recognised.
        assert_eq!(
            store
                .append_room(SEED_ROOM, &keyed(500, "Ann", 42, "first"))
                .unwrap(),
            Appended::Duplicate {
                id: 1,
                timestamp_ms: 1_700_000_000_001
            }
        );
        assert_eq!(
            store
                .append_room(SEED_ROOM, &keyed(501, "Ann", 43, "third"))
                .unwrap(),
            Appended::New
        );
        let recent = store.recent_for_user("ann", &[SEED_ROOM], 10).unwrap();
        assert_eq!(texts(&recent[0].1), ["first", "second", "third"]);
        // And the file continues the record sequence: a fresh reader agrees.
        store.flush().unwrap();
        assert_eq!(
            room_texts(dir.path(), &KEY).unwrap(),
            ["first", "second", "third"]
        );
    }

    #[test]
    fn an_evicted_log_written_since_the_last_fsync_waits_for_the_periodic_sync() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = HistoryStore::open_with_config(dir.path(), &KEY, with_cache(0)).unwrap();
        store
            .append_room(SEED_ROOM, &keyed(1, "Ann", 42, "one"))
            .unwrap();
        assert_eq!(store.cache_stats(), CacheStats::default(), "evicted");
        let unsynced = store.take_unsynced().unwrap();
        assert_eq!(
            unsynced.len(),
            1,
            "the evicted room's handle, not fsynced inline"
        );
        for (_, file) in unsynced {
            file.sync_data().unwrap();
        }
        assert!(store.take_unsynced().unwrap().is_empty(), "handed out once");
        // Evicted with nothing new written: nothing waits.
        let _ = store.recent_for_user("ann", &[SEED_ROOM], 10).unwrap();
        assert!(store.take_unsynced().unwrap().is_empty());
    }

    #[test]
    fn a_budget_below_one_conversation_keeps_nothing_between_requests_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = HistoryStore::open_with_config(dir.path(), &KEY, with_cache(0)).unwrap();
        store
            .append_room(SEED_ROOM, &keyed(1, "Ann", 42, "one"))
            .unwrap();
        assert_eq!(store.cache_stats(), CacheStats::default());
        store
            .append_direct("ann", "bob", &keyed(2, "Ann", 43, "dm"))
            .unwrap();
        assert_eq!(store.cache_stats(), CacheStats::default());
        assert!(matches!(
            store
                .append_room(SEED_ROOM, &keyed(3, "Ann", 42, "one"))
                .unwrap(),
            Appended::Duplicate { id: 1, .. }
        ));
        assert!(matches!(
            store
                .append_direct("bob", "ann", &keyed(4, "Ann", 43, "dm"))
                .unwrap(),
            Appended::Duplicate { id: 2, .. }
        ));
        store
            .append_room(SEED_ROOM, &entry(5, "Bob", None, "two"))
            .unwrap();
        let ann = store.recent_for_user("ann", &[SEED_ROOM], 10).unwrap();
        assert_eq!(texts(&ann[0].1), ["one", "two"]);
        assert_eq!(texts(&ann[1].1), ["dm"]);
        assert_eq!(store.cache_stats(), CacheStats::default());
    }
}
