//! How far each user has read each conversation, kept on the server so every
//! device of the user agrees. A marker only moves forward. The table lives in
//! memory; its journal is a [`ReadMarkerJournal`] (the file backend's is
//! `read_markers.log`, see `storage::read_markers_log`: one `write(2)` per
//! move, so a power loss may lose the latest moves, never a conversation's
//! history; compacted at start when it has grown).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

pub use crate::storage::read_markers_log::MarkerKey;
use crate::storage::read_markers_log::{self, MarkerMoved, MarkerTable, ReadMarkersLog};
use crate::storage::{HistoryError, ReadMarkerJournal};

/// Every user's read markers.
pub struct ReadMarkers {
    /// The journal is boxed once at start.
    inner: Mutex<(MarkerTable, Box<dyn ReadMarkerJournal>)>,
}

impl ReadMarkers {
    /// Opens the file backend's journal at `path` (compacting it if it has grown).
    pub fn open(path: &Path, storage_key: &[u8; 32]) -> Result<Self, HistoryError> {
        Self::with_journal(ReadMarkersLog::open(path, storage_key)?)
    }

    /// The markers `journal` holds (read once, now).
    pub fn with_journal(
        mut journal: impl ReadMarkerJournal + 'static,
    ) -> Result<Self, HistoryError> {
        let table = journal.table()?;
        Ok(Self {
            inner: Mutex::new((table, Box::new(journal))),
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
        let event = MarkerMoved {
            user: user.to_owned(),
            key,
            up_to,
        };
        journal.append(&event)?;
        read_markers_log::advance(table, &event);
        Ok(true)
    }

    /// `user`'s markers.
    pub fn of(&self, user: &str) -> HashMap<MarkerKey, u64> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.0.get(user).cloned().unwrap_or_default()
    }
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
