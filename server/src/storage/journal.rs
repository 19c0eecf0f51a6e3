//! A sealed, append-only journal of JSON events: what `rooms.log`, `devices.log`,
//! `read_markers.log` and `audit.log` are. Each record is sealed like a history
//! record (AES-256-GCM under `HKDF(storage key, info)`, AAD = the journal's id ||
//! record index: see `history::record_codec`), so a record cannot be altered, removed,
//! reordered or moved from another journal without the next open failing
//! (`HistoryError::Corrupt`, naming the file); a torn last record (a crash mid-append)
//! is dropped. [`Journal::rewrite`] replaces a journal whole and atomically (a
//! temporary file, fsynced, renamed over it): the first start's initial contents, and
//! compaction.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::atomic_file;
use super::error::HistoryError;
use super::history::log_file::{Durability, LogFile, Unparsable};
use super::sealing;

/// Which journal: its key's HKDF info and its id in every record's AAD.
#[derive(Debug, Clone, Copy)]
pub struct JournalKind {
    pub info: &'static [u8],
    pub id: &'static str,
}

/// An open journal: appends go to its end.
pub struct Journal {
    log: LogFile,
    rng: SystemRandom,
    /// What [`read_all`](Self::read_all) reads with (the journal's own key, not the
    /// storage key).
    path: PathBuf,
    kind: JournalKind,
    key: ring::aead::LessSafeKey,
}

impl Journal {
    /// Opens (or, on first append, creates) the journal at `path` and reads
    /// every event in it, oldest first.
    pub fn open<E: DeserializeOwned>(
        path: &Path,
        storage_key: &[u8; 32],
        kind: JournalKind,
    ) -> Result<(Self, Vec<E>), HistoryError> {
        let key = key(storage_key, kind)?;
        let mut log = LogFile::new(path.to_path_buf(), kind.id.to_owned(), key.clone());
        let events = scan(&mut log)?;
        Ok((
            Self {
                log,
                rng: SystemRandom::new(),
                path: path.to_path_buf(),
                kind,
                key,
            },
            events,
        ))
    }

    /// Every event in the journal now, oldest first, read again from its file (every
    /// record authenticated; appends are written before they return, so all are there).
    pub fn read_all<E: DeserializeOwned>(&self) -> Result<Vec<E>, HistoryError> {
        let mut log = LogFile::new(self.path.clone(), self.kind.id.to_owned(), self.key.clone());
        scan(&mut log)
    }

    /// Appends `event`: fsynced before returning when `durable`, else one
    /// `write(2)` (survives a crash of the process, not a power loss).
    pub fn append<E: Serialize>(&mut self, event: &E, durable: bool) -> Result<(), HistoryError> {
        let plaintext = serde_json::to_vec(event).map_err(|_| HistoryError::Crypto)?;
        let durability = if durable {
            Durability::SyncEachAppend
        } else {
            Durability::WriteThrough
        };
        self.log.append(&self.rng, &plaintext, durability)
    }

    /// Appends `events` in order with one `write(2)`, fsynced when `durable`.
    /// If one cannot be sealed, those before it are still written.
    pub fn append_all<E: Serialize>(
        &mut self,
        events: &[E],
        durable: bool,
    ) -> Result<(), HistoryError> {
        let mut sealed = Ok(());
        for event in events {
            let plaintext = match serde_json::to_vec(event) {
                Ok(p) => p,
                Err(_) => {
                    sealed = Err(HistoryError::Crypto);
                    break;
                }
            };
            if let Err(e) = self.log.append(&self.rng, &plaintext, Durability::Buffered) {
                sealed = Err(e);
                break;
            }
        }
        self.log.flush(durable)?;
        sealed
    }

    /// Replaces the journal at `path` with `events`, atomically: a crash
    /// leaves the old journal or the new one (and a stale temporary file,
    /// removed by the next rewrite).
    pub fn rewrite<E: Serialize>(
        path: &Path,
        storage_key: &[u8; 32],
        kind: JournalKind,
        events: impl IntoIterator<Item = E>,
    ) -> Result<(), HistoryError> {
        let tmp = temp_path(path);
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source: io::Error| HistoryError::Io { path, source }
        };
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&tmp)(e)),
        }
        let rng = SystemRandom::new();
        let mut fresh = LogFile::new(tmp.clone(), kind.id.to_owned(), key(storage_key, kind)?);
        let mut any = false;
        for event in events {
            let plaintext = serde_json::to_vec(&event).map_err(|_| HistoryError::Crypto)?;
            fresh.append(&rng, &plaintext, Durability::Buffered)?;
            any = true;
        }
        if !any {
            // An empty journal is no file at all.
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(path)(e)),
            }
            return Ok(());
        }
        fresh.flush(true)?;
        drop(fresh);
        fs::rename(&tmp, path).map_err(io_error(path))?;
        if let Some(dir) = path.parent() {
            atomic_file::sync_dir(dir).map_err(io_error(dir))?;
        }
        Ok(())
    }
}

fn scan<E: DeserializeOwned>(log: &mut LogFile) -> Result<Vec<E>, HistoryError> {
    let mut events = Vec::new();
    log.scan(|_, plaintext| {
        events.push(serde_json::from_slice(plaintext).map_err(|_| Unparsable)?);
        Ok(())
    })?;
    Ok(events)
}

fn key(storage_key: &[u8; 32], kind: JournalKind) -> Result<ring::aead::LessSafeKey, HistoryError> {
    sealing::derive_aead_key(storage_key, &[kind.info]).map_err(|_| HistoryError::Crypto)
}

/// `<file>.tmp` beside `path`.
pub(super) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: JournalKind = JournalKind {
        info: b"securechat test journal v1",
        id: "test",
    };
    const OTHER: JournalKind = JournalKind {
        info: b"securechat other journal v1",
        id: "other",
    };

    #[test]
    fn events_come_back_in_order_and_a_rewrite_replaces_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let key = [2u8; 32];
        let (mut j, events) = Journal::open::<u32>(&path, &key, KIND).unwrap();
        assert!(events.is_empty());
        for n in [1u32, 2, 3] {
            j.append(&n, n == 3).unwrap();
        }
        drop(j);
        assert_eq!(
            Journal::open::<u32>(&path, &key, KIND).unwrap().1,
            [1, 2, 3]
        );
        Journal::rewrite(&path, &key, KIND, [9u32]).unwrap();
        assert_eq!(Journal::open::<u32>(&path, &key, KIND).unwrap().1, [9]);
    }

    #[test]
    fn a_journal_does_not_open_as_another_or_under_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        Journal::rewrite(&path, &[2u8; 32], KIND, [1u32, 2]).unwrap();
        assert!(matches!(
            Journal::open::<u32>(&path, &[2u8; 32], OTHER),
            Err(HistoryError::Corrupt { .. })
        ));
        assert!(matches!(
            Journal::open::<u32>(&path, &[3u8; 32], KIND),
            Err(HistoryError::Corrupt { .. })
        ));
    }
}
