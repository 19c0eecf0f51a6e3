//! `read_markers.log`: how far each user has read each conversation, as an append-only
//! journal of sealed records (AES-256-GCM under `HKDF(storage key, "securechat read
//! markers v1")`, AAD = `read_markers` || record index). One `write(2)` per move, no
//! fsync: a power loss may lose the latest moves, never a conversation's history.
//! Opening it rewrites it compactly (one record per marker) when it holds more than
//! twice that plus 1,024 records.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::backend::ReadMarkerJournal;
use super::error::HistoryError;
use super::journal::{Journal, JournalKind};

const KIND: JournalKind = JournalKind {
    info: b"securechat read markers v1",
    id: "read_markers",
};

/// A conversation as markers name it: a room by id, a direct conversation
/// by the partner's canonical name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerKey {
    Room(u64),
    Direct(String),
}

/// One move of a marker: `user` has read `key` up to message id `up_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerMoved {
    pub user: String,
    pub key: MarkerKey,
    pub up_to: u64,
}

/// Every user's markers: user, then conversation, to the furthest id read.
pub type MarkerTable = HashMap<String, HashMap<MarkerKey, u64>>;

/// Applies `event` to `table` (a marker only moves forward).
pub fn advance(table: &mut MarkerTable, event: &MarkerMoved) {
    let at = table
        .entry(event.user.clone())
        .or_default()
        .entry(event.key.clone())
        .or_insert(0);
    *at = (*at).max(event.up_to);
}

fn table_of(events: &[MarkerMoved]) -> MarkerTable {
    let mut table = MarkerTable::new();
    for event in events {
        advance(&mut table, event);
    }
    table
}

/// The open journal: the file backend of [`ReadMarkerJournal`].
pub struct ReadMarkersLog {
    journal: Journal,
    /// The table read at open, until the first `table()` or append takes it.
    unread: Option<MarkerTable>,
}

impl ReadMarkersLog {
    /// Opens (or, on first append, creates) the journal at `path`, compacting it if it
    /// has grown; keeps the table it holds for the first [`ReadMarkerJournal::table`].
    pub fn open(path: &Path, storage_key: &[u8; 32]) -> Result<Self, HistoryError> {
        let (mut journal, events) = Journal::open::<MarkerMoved>(path, storage_key, KIND)?;
        let table = table_of(&events);
        let live: usize = table.values().map(HashMap::len).sum();
        if events.len() > 2 * live + 1024 {
            drop(journal);
            let compacted = table.iter().flat_map(|(user, keys)| {
                keys.iter().map(|(key, up_to)| MarkerMoved {
                    user: user.clone(),
                    key: key.clone(),
                    up_to: *up_to,
                })
            });
            Journal::rewrite(path, storage_key, KIND, compacted)?;
            journal = Journal::open::<MarkerMoved>(path, storage_key, KIND)?.0;
        }
        Ok(Self {
            journal,
            unread: Some(table),
        })
    }
}

impl ReadMarkerJournal for ReadMarkersLog {
    /// The table read at open if nothing was appended since, else the file read again.
    fn table(&mut self) -> Result<MarkerTable, HistoryError> {
        if let Some(table) = self.unread.take() {
            return Ok(table);
        }
        let events = self.journal.read_all::<MarkerMoved>()?;
        Ok(table_of(&events))
    }

    fn append(&mut self, event: &MarkerMoved) -> Result<(), HistoryError> {
        self.unread = None;
        self.journal.append(event, false)
    }
}
