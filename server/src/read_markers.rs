//! How far each user has read each conversation, kept on the server so every
//! device of the user agrees. A marker only moves forward. The table lives in
//! memory; its journal is `read_markers.log` (sealed like the others, one
//! `write(2)` per move: a power loss may lose the latest moves, never a
//! conversation's history), compacted at start when it has grown.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::storage::journal::{Journal, JournalKind};
use crate::storage::HistoryError;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Marked {
    user: String,
    key: MarkerKey,
    up_to: u64,
}

type Table = HashMap<String, HashMap<MarkerKey, u64>>;

/// Every user's read markers.
pub struct ReadMarkers {
    inner: Mutex<(Table, Journal)>,
}

impl ReadMarkers {
    pub fn open(path: &Path, storage_key: &[u8; 32]) -> Result<Self, HistoryError> {
        let (mut journal, events) = Journal::open::<Marked>(path, storage_key, KIND)?;
        let mut table = Table::new();
        for event in &events {
            advance(&mut table, event);
        }
        let live: usize = table.values().map(HashMap::len).sum();
        if events.len() > 2 * live + 1024 {
            drop(journal);
            let compacted = table.iter().flat_map(|(user, keys)| {
                keys.iter().map(|(key, up_to)| Marked {
                    user: user.clone(),
                    key: key.clone(),
                    up_to: *up_to,
                })
            });
            Journal::rewrite(path, storage_key, KIND, compacted)?;
            journal = Journal::open::<Marked>(path, storage_key, KIND)?.0;
        }
        Ok(Self {
            inner: Mutex::new((table, journal)),
        })
    }

    /// Moves `user`'s marker of `key` to `up_to`; false (and nothing
    /// written) if it was there or further already.
    pub fn mark(&self, user: &str, key: MarkerKey, up_to: u64) -> Result<bool, HistoryError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (table, journal) = &mut *inner;
        if table
            .get(user)
            .and_then(|keys| keys.get(&key))
            .is_some_and(|&at| at >= up_to)
        {
            return Ok(false);
        }
        let event = Marked {
            user: user.to_owned(),
            key,
            up_to,
        };
        journal.append(&event, false)?;
        advance(table, &event);
        Ok(true)
    }

    /// `user`'s markers.
    pub fn of(&self, user: &str) -> HashMap<MarkerKey, u64> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.0.get(user).cloned().unwrap_or_default()
    }
}

fn advance(table: &mut Table, event: &Marked) {
    let at = table
        .entry(event.user.clone())
        .or_default()
        .entry(event.key.clone())
        .or_insert(0);
    *at = (*at).max(event.up_to);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_only_move_forward_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read_markers.log");
        let markers = ReadMarkers::open(&path, &[6; 32]).unwrap();
        assert!(markers.mark("alice", MarkerKey::Room(1), 10).unwrap());
        assert!(
            !markers.mark("alice", MarkerKey::Room(1), 9).unwrap(),
            "never back"
        );
        assert!(!markers.mark("alice", MarkerKey::Room(1), 10).unwrap());
        assert!(markers
            .mark("alice", MarkerKey::Direct("bob".into()), 4)
            .unwrap());
        drop(markers);
        let markers = ReadMarkers::open(&path, &[6; 32]).unwrap();
        let alice = markers.of("alice");
        assert_eq!(alice[&MarkerKey::Room(1)], 10);
        assert_eq!(alice[&MarkerKey::Direct("bob".into())], 4);
        assert!(markers.of("bob").is_empty());
    }

    #[test]
    fn a_long_journal_is_compacted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read_markers.log");
        let markers = ReadMarkers::open(&path, &[6; 32]).unwrap();
        for up_to in 1..=3000 {
            markers.mark("alice", MarkerKey::Room(1), up_to).unwrap();
        }
        drop(markers);
        let before = std::fs::metadata(&path).unwrap().len();
        let markers = ReadMarkers::open(&path, &[6; 32]).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() * 100 < before);
        assert_eq!(markers.of("alice")[&MarkerKey::Room(1)], 3000);
    }
}
