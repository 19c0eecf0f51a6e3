//! `devices.log`: each user's devices (the id the client chose, the name the user gave
//! it, when and from where it was last seen), as an append-only journal of sealed
//! records (AES-256-GCM under `HKDF(storage key, "securechat devices v1")`, AAD =
//! `devices` || record index).
//!
//! Logins and departures are appended as `Seen` records in batches, one `write(2)` a
//! second at most (`devices::Devices::flush`; no fsync: a crash of the server loses at
//! most the last second's "last seen" times and logins of new devices, which come back
//! at their next login; a power loss may lose more, never reorder); a rename or a
//! logout is written behind them and fsynced before it is acknowledged. The journal
//! grows with every login, so opening it rewrites it compactly (one record per device)
//! when it holds more than twice that plus 1,024 records: to `devices.log.tmp`,
//! fsynced, renamed over the old one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::backend::DeviceJournal;
use super::error::HistoryError;
use super::journal::{Journal, JournalKind};

/// One change to a user's devices (canonical names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeviceEvent {
    Seen {
        user: String,
        id: u64,
        name: String,
        at_ms: u64,
        address: String,
    },
    Forgotten {
        user: String,
        id: u64,
    },
    ForgottenAll {
        user: String,
    },
}

/// What is known of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub name: String,
    pub last_seen_ms: u64,
    pub address: String,
}

/// Every user's devices, by user then id.
pub type DeviceTable = HashMap<String, BTreeMap<u64, DeviceRecord>>;

/// Applies `event` to `table`.
pub fn apply(table: &mut DeviceTable, event: &DeviceEvent) {
    match event {
        DeviceEvent::Seen {
            user,
            id,
            name,
            at_ms,
            address,
        } => {
            table.entry(user.clone()).or_default().insert(
                *id,
                DeviceRecord {
                    name: name.clone(),
                    last_seen_ms: *at_ms,
                    address: address.clone(),
                },
            );
        }
        DeviceEvent::Forgotten { user, id } => {
            if let Some(devices) = table.get_mut(user) {
                devices.remove(id);
                if devices.is_empty() {
                    table.remove(user);
                }
            }
        }
        DeviceEvent::ForgottenAll { user } => {
            table.remove(user);
        }
    }
}

const KIND: JournalKind = JournalKind {
    info: b"securechat devices v1",
    id: "devices",
};

/// The open journal: the file backend of [`DeviceJournal`].
pub struct DevicesLog {
    journal: Journal,
    /// The table read at open, until the first `table()` or append takes it.
    unread: Option<DeviceTable>,
}

impl DevicesLog {
    /// Opens (or creates) the journal at `path` and returns it with the table it
    /// holds, compacting it first if it has grown.
    pub fn open(path: &Path, storage_key: &[u8; 32]) -> Result<(Self, DeviceTable), HistoryError> {
        let mut log = Self::open_keeping_table(path, storage_key)?;
        let table = log.unread.take().unwrap_or_default();
        Ok((log, table))
    }

    /// Like [`open`](Self::open), keeping the table for the first
    /// [`DeviceJournal::table`] (so a start reads the file once).
    pub fn open_keeping_table(path: &Path, storage_key: &[u8; 32]) -> Result<Self, HistoryError> {
        let (mut journal, events) = Journal::open::<DeviceEvent>(path, storage_key, KIND)?;
        let table = table_of(&events);
        let live: usize = table.values().map(BTreeMap::len).sum();
        if events.len() > 2 * live + 1024 {
            drop(journal);
            Journal::rewrite(path, storage_key, KIND, compacted(&table))?;
            journal = Journal::open::<DeviceEvent>(path, storage_key, KIND)?.0;
        }
        Ok(Self {
            journal,
            unread: Some(table),
        })
    }

    /// Appends `event`: fsynced when `durable`, else one `write(2)`.
    pub fn append(&mut self, event: &DeviceEvent, durable: bool) -> Result<(), HistoryError> {
        self.unread = None;
        self.journal.append(event, durable)
    }
}

impl DeviceJournal for DevicesLog {
    /// The table read at open if nothing was appended since, else the file read again.
    fn table(&mut self) -> Result<DeviceTable, HistoryError> {
        if let Some(table) = self.unread.take() {
            return Ok(table);
        }
        let events = self.journal.read_all::<DeviceEvent>()?;
        Ok(table_of(&events))
    }

    fn append(&mut self, event: &DeviceEvent, durable: bool) -> Result<(), HistoryError> {
        DevicesLog::append(self, event, durable)
    }

    /// One `write(2)` for the whole batch (and one fsync when `durable`).
    fn append_batch(&mut self, events: &[DeviceEvent], durable: bool) -> Result<(), HistoryError> {
        self.unread = None;
        self.journal.append_all(events, durable)
    }
}

/// The table `events` leave.
pub fn table_of(events: &[DeviceEvent]) -> DeviceTable {
    let mut table = DeviceTable::new();
    for event in events {
        apply(&mut table, event);
    }
    table
}

/// One `Seen` per device.
fn compacted(table: &DeviceTable) -> Vec<DeviceEvent> {
    table
        .iter()
        .flat_map(|(user, devices)| {
            devices.iter().map(|(id, record)| DeviceEvent::Seen {
                user: user.clone(),
                id: *id,
                name: record.name.clone(),
                at_ms: record.last_seen_ms,
                address: record.address.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn seen(user: &str, id: u64, at_ms: u64) -> DeviceEvent {
        DeviceEvent::Seen {
            user: user.into(),
            id,
            name: format!("device {id}"),
            at_ms,
            address: "192.0.2.7".into(),
        }
    }

    #[test]
    fn devices_survive_a_reopen_and_forgetting_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.log");
        let key = [4u8; 32];
        let (mut log, table) = DevicesLog::open(&path, &key).unwrap();
        assert!(table.is_empty());
        for event in [
            seen("alice", 1, 10),
            seen("alice", 2, 20),
            seen("bob", 1, 30),
        ] {
            log.append(&event, false).unwrap();
        }
        log.append(
            &DeviceEvent::Forgotten {
                user: "alice".into(),
                id: 1,
            },
            true,
        )
        .unwrap();
        log.append(&DeviceEvent::ForgottenAll { user: "bob".into() }, true)
            .unwrap();
        drop(log);
        let (_, table) = DevicesLog::open(&path, &key).unwrap();
        assert_eq!(table.len(), 1);
        assert_eq!(table["alice"].keys().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(table["alice"][&2].last_seen_ms, 20);
        let bytes = fs::read(&path).unwrap();
        for needle in [&b"alice"[..], b"192.0.2.7", b"device"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
    }

    #[test]
    fn a_long_journal_is_compacted_at_open_and_keeps_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.log");
        let key = [4u8; 32];
        let (mut log, _) = DevicesLog::open(&path, &key).unwrap();
        for at in 0..2000 {
            log.append(&seen("alice", at % 3, at), false).unwrap();
        }
        drop(log);
        let before = fs::metadata(&path).unwrap().len();
        let (_, table) = DevicesLog::open(&path, &key).unwrap();
        let after = fs::metadata(&path).unwrap().len();
        assert!(after * 100 < before, "{before} -> {after}");
        assert_eq!(table["alice"].len(), 3);
        assert_eq!(table["alice"][&1].last_seen_ms, 1999);
        let (_, again) = DevicesLog::open(&path, &key).unwrap();
        assert_eq!(again, table);
    }
}
