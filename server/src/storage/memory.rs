//! The memory backend: every storage trait kept in plain collections, for tests and as
//! a worked example for writing another backend. **Not for a server**: nothing is
//! durable, nothing is encrypted, and everything is gone when it is dropped. It is
//! complete (the conformance suite in `storage::conformance` runs against it and the
//! file backend alike), so the services can run on it in tests that need no disk.
//!
//! Where the file backend bounds what it keeps at hand, this one answers the same:
//! [`MemoryHistory::recent_for_user`](super::HistoryBackend::recent_for_user) returns
//! at most `tail_len` entries per conversation, and a resend is recognised among the
//! sender's last [`KEYS_PER_SENDER`] keyed messages of the conversation.

use std::collections::HashMap;
use std::mem::size_of;

use super::audit_log::AuditEntry;
use super::backend::{
    AccountStore, AuditTrail, DeviceJournal, HistoryBackend, PendingSync, ReadMarkerJournal,
    RoomJournal, TokenSnapshot,
};
use super::credential_store::{Account, Credential};
use super::devices_log::{self, DeviceEvent, DeviceTable};
use super::error::{HistoryError, RegisterError, StoreError};
use super::history::{
    Appended, CacheStats, Conversation, HistoryEntry, DEFAULT_TAIL_LEN, KEYS_PER_SENDER,
};
use super::read_markers_log::{self, MarkerMoved, MarkerTable};
use super::rooms_log::RoomEvent;
use super::token_file::StoredToken;
use crate::clock::now_ms;

/// Accounts in a map, keyed by canonical name.
#[derive(Debug, Default)]
pub struct MemoryAccounts {
    accounts: HashMap<String, Account>,
}

impl MemoryAccounts {
    pub fn new() -> Self {
        Self::default()
    }
}

impl AccountStore for MemoryAccounts {
    fn accounts(&self) -> Vec<Account> {
        self.accounts.values().cloned().collect()
    }

    fn get(&self, canonical: &str) -> Option<Account> {
        self.accounts.get(canonical).cloned()
    }

    fn register(
        &mut self,
        canonical: &str,
        display: &str,
        credential: Credential,
    ) -> Result<(), RegisterError> {
        if self.accounts.contains_key(canonical) {
            return Err(RegisterError::NameTaken);
        }
        self.accounts.insert(
            canonical.to_owned(),
            Account {
                username: display.to_owned(),
                canonical: canonical.to_owned(),
                credential,
                created_ms: now_ms(),
                disabled: false,
            },
        );
        Ok(())
    }

    fn replace_credential(
        &mut self,
        canonical: &str,
        credential: Credential,
    ) -> Result<(), StoreError> {
        let account = self
            .accounts
            .get_mut(canonical)
            .ok_or(StoreError::UnknownAccount)?;
        account.credential = credential;
        Ok(())
    }

    fn set_disabled(&mut self, canonical: &str, disabled: bool) -> Result<(), StoreError> {
        let account = self
            .accounts
            .get_mut(canonical)
            .ok_or(StoreError::UnknownAccount)?;
        account.disabled = disabled;
        Ok(())
    }
}

/// The room events in a vector.
#[derive(Debug, Default)]
pub struct MemoryRoomJournal {
    events: Vec<RoomEvent>,
}

impl MemoryRoomJournal {
    /// A journal started with `initial` (as the file backend starts a new one).
    pub fn new(initial: Vec<RoomEvent>) -> Self {
        Self { events: initial }
    }
}

impl RoomJournal for MemoryRoomJournal {
    fn replay(&mut self) -> Result<Vec<RoomEvent>, HistoryError> {
        Ok(self.events.clone())
    }

    fn append(&mut self, event: &RoomEvent) -> Result<(), HistoryError> {
        self.events.push(event.clone());
        Ok(())
    }
}

/// The audit entries in a vector.
#[derive(Debug, Default)]
pub struct MemoryAudit {
    entries: Vec<AuditEntry>,
}

impl MemoryAudit {
    pub fn new() -> Self {
        Self::default()
    }
}

impl AuditTrail for MemoryAudit {
    fn append(&mut self, entry: &AuditEntry) -> Result<(), HistoryError> {
        self.entries.push(entry.clone());
        Ok(())
    }

    fn entries(&self) -> Result<Vec<AuditEntry>, HistoryError> {
        Ok(self.entries.clone())
    }
}

/// The devices table, kept up to date by each append.
#[derive(Debug, Default)]
pub struct MemoryDevices {
    table: DeviceTable,
}

impl MemoryDevices {
    pub fn new() -> Self {
        Self::default()
    }
}

impl DeviceJournal for MemoryDevices {
    fn table(&mut self) -> Result<DeviceTable, HistoryError> {
        Ok(self.table.clone())
    }

    fn append(&mut self, event: &DeviceEvent, _durable: bool) -> Result<(), HistoryError> {
        devices_log::apply(&mut self.table, event);
        Ok(())
    }
}

/// The read markers table, kept up to date by each append.
#[derive(Debug, Default)]
pub struct MemoryReadMarkers {
    table: MarkerTable,
}

impl MemoryReadMarkers {
    pub fn new() -> Self {
        Self::default()
    }
}

impl ReadMarkerJournal for MemoryReadMarkers {
    fn table(&mut self) -> Result<MarkerTable, HistoryError> {
        Ok(self.table.clone())
    }

    fn append(&mut self, event: &MarkerMoved) -> Result<(), HistoryError> {
        read_markers_log::advance(&mut self.table, event);
        Ok(())
    }
}

/// The resume-token snapshot, if one was saved and not taken since.
#[derive(Debug, Default)]
pub struct MemoryTokens {
    saved: Option<Vec<StoredToken>>,
}

impl MemoryTokens {
    pub fn new() -> Self {
        Self::default()
    }
}

impl TokenSnapshot for MemoryTokens {
    fn take(&mut self) -> Result<Vec<StoredToken>, StoreError> {
        Ok(self.saved.take().unwrap_or_default())
    }

    fn save(&mut self, tokens: Vec<StoredToken>) -> Result<(), StoreError> {
        self.saved = Some(tokens);
        Ok(())
    }
}

/// A conversation of [`MemoryHistory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryTarget {
    Room(u64),
    /// The two canonical names, in order (so either order names one conversation).
    Direct(String, String),
}

/// Nothing is ever waiting to be synced in memory.
#[derive(Debug, Default)]
pub struct NothingUnsynced;

impl PendingSync for NothingUnsynced {
    fn is_empty(&self) -> bool {
        true
    }

    fn run(self) {}
}

/// Every conversation's messages in vectors, and each user's partners in
/// first-contact order.
#[derive(Debug)]
pub struct MemoryHistory {
    tail_len: usize,
    rooms: HashMap<u64, Vec<HistoryEntry>>,
    direct: HashMap<(String, String), Vec<HistoryEntry>>,
    partners: HashMap<String, Vec<String>>,
}

impl Default for MemoryHistory {
    fn default() -> Self {
        Self::with_tail_len(DEFAULT_TAIL_LEN)
    }
}

impl MemoryHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `tail_len` entries per conversation from `recent_for_user` (like the
    /// file backend's `HistoryConfig::tail_len`).
    pub fn with_tail_len(tail_len: usize) -> Self {
        Self {
            tail_len,
            rooms: HashMap::new(),
            direct: HashMap::new(),
            partners: HashMap::new(),
        }
    }

    fn entries(&self, target: &MemoryTarget) -> &[HistoryEntry] {
        let found = match target {
            MemoryTarget::Room(id) => self.rooms.get(id),
            MemoryTarget::Direct(a, b) => self.direct.get(&(a.clone(), b.clone())),
        };
        found.map_or(&[], Vec::as_slice)
    }

    fn add_partner(&mut self, of: &str, partner: &str) {
        let list = self.partners.entry(of.to_owned()).or_default();
        if !list.iter().any(|p| p == partner) {
            list.push(partner.to_owned());
        }
    }
}

fn check_name(name: &str) -> Result<(), HistoryError> {
    if name.as_bytes().contains(&0) {
        Err(HistoryError::InvalidName)
    } else {
        Ok(())
    }
}

fn last(entries: &[HistoryEntry], limit: usize) -> Vec<HistoryEntry> {
    entries[entries.len().saturating_sub(limit)..].to_vec()
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

impl HistoryBackend for MemoryHistory {
    type Target = MemoryTarget;
    type Unsynced = NothingUnsynced;

    fn room_target(&self, id: u64) -> MemoryTarget {
        MemoryTarget::Room(id)
    }

    fn direct_target(
        &self,
        a_canonical: &str,
        b_canonical: &str,
    ) -> Result<MemoryTarget, HistoryError> {
        check_name(a_canonical)?;
        check_name(b_canonical)?;
        let (a, b) = pair(a_canonical, b_canonical);
        Ok(MemoryTarget::Direct(a, b))
    }

    fn is_ready(&self, _: &MemoryTarget) -> bool {
        true
    }

    fn append(
        &mut self,
        target: &MemoryTarget,
        entry: &HistoryEntry,
    ) -> Result<Appended, HistoryError> {
        if let MemoryTarget::Direct(a, b) = target {
            self.add_partner(a, b);
            self.add_partner(b, a);
        }
        if let Some(client_id) = entry.client_id {
            let stored = self
                .entries(target)
                .iter()
                .rev()
                .filter(|e| e.from == entry.from && e.client_id.is_some())
                .take(KEYS_PER_SENDER)
                .find(|e| e.client_id == Some(client_id));
            if let Some(stored) = stored {
                return Ok(Appended::Duplicate {
                    id: stored.id,
                    timestamp_ms: stored.timestamp_ms,
                });
            }
        }
        let log = match target {
            MemoryTarget::Room(id) => self.rooms.entry(*id).or_default(),
            MemoryTarget::Direct(a, b) => self.direct.entry((a.clone(), b.clone())).or_default(),
        };
        log.push(entry.clone());
        Ok(Appended::New)
    }

    fn recent_for_user(
        &mut self,
        canonical: &str,
        rooms: &[u64],
        limit_per_conversation: usize,
    ) -> Result<Vec<(Conversation, Vec<HistoryEntry>)>, HistoryError> {
        check_name(canonical)?;
        let limit = limit_per_conversation.min(self.tail_len);
        let mut result = Vec::new();
        for &id in rooms {
            let entries = last(self.entries(&MemoryTarget::Room(id)), limit);
            result.push((Conversation::Room { id }, entries));
        }
        for partner in self.partners.get(canonical).into_iter().flatten() {
            let (a, b) = pair(canonical, partner);
            let entries = last(self.entries(&MemoryTarget::Direct(a, b)), limit);
            result.push((
                Conversation::Direct {
                    partner: partner.clone(),
                },
                entries,
            ));
        }
        Ok(result)
    }

    fn page(
        &mut self,
        target: &MemoryTarget,
        before_id: u64,
        limit: usize,
    ) -> Result<(Vec<HistoryEntry>, bool), HistoryError> {
        let before = if before_id == 0 { u64::MAX } else { before_id };
        let older: Vec<HistoryEntry> = self
            .entries(target)
            .iter()
            .filter(|e| e.id < before)
            .cloned()
            .collect();
        let none_older = older.len() <= limit;
        Ok((last(&older, limit), none_older))
    }

    fn delete_room(&mut self, id: u64) -> Result<(), HistoryError> {
        self.rooms.remove(&id);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), HistoryError> {
        Ok(())
    }

    fn take_unsynced(&mut self) -> Result<NothingUnsynced, HistoryError> {
        Ok(NothingUnsynced)
    }

    /// Everything is held: `logs` counts conversations and partner lists, `bytes`
    /// the entries (their strings and the structs), roughly.
    fn cache_stats(&self) -> CacheStats {
        let entry_bytes = |e: &HistoryEntry| {
            size_of::<HistoryEntry>()
                + e.from.len()
                + e.text.len()
                + e.to.as_ref().map_or(0, String::len)
        };
        let bytes = self
            .rooms
            .values()
            .chain(self.direct.values())
            .flatten()
            .map(entry_bytes)
            .sum();
        CacheStats {
            bytes,
            logs: self.rooms.len() + self.direct.len() + self.partners.len(),
        }
    }
}
