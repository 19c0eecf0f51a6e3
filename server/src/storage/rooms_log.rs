//! `rooms.log`: the rooms and who is in them, as an encrypted, append-only journal of
//! [`RoomEvent`]s (sealed records like a history log's: AES-256-GCM under
//! `HKDF(storage key, "securechat rooms v1")`, AAD = `rooms` || record index).
//!
//! Every change is one record, fsynced before the change is acknowledged (R3: a
//! membership a client was told about survives a crash or a power loss); a crash
//! mid-append leaves a torn last record, which is dropped, so the change is as if never
//! made, and the client was never told. Replaying the journal at start rebuilds the
//! state. A record other than the last that fails authentication stops the start
//! (`HistoryError::Corrupt`, naming the file), as for accounts and history.
//!
//! The first start of a server without the file (a new data directory, or one from
//! before rooms) writes the initial journal to `rooms.log.tmp` and renames it into
//! place: `#general` holding every existing account. A crash before the rename leaves
//! no `rooms.log`, so the next start does it again.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::backend::RoomJournal;
use super::error::HistoryError;
use super::journal::{Journal, JournalKind};

/// One change to the rooms. Names are canonical account names; a room is named by its
/// id (ids are never reused, so a room deleted and created again is another room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RoomEvent {
    Created {
        id: u64,
        /// The name as created (display form, with its `#`).
        name: String,
        topic: String,
        invite_only: bool,
        /// Canonical name of the creator, who becomes its owner and first member.
        owner: String,
    },
    Joined {
        id: u64,
        user: String,
    },
    Left {
        id: u64,
        user: String,
    },
    Topic {
        id: u64,
        topic: String,
    },
    InviteOnly {
        id: u64,
        invite_only: bool,
    },
    /// `user` may join although the room is invite-only (until they do);
    /// `by` invited them.
    Invited {
        id: u64,
        user: String,
        by: String,
    },
    Kicked {
        id: u64,
        user: String,
    },
    /// `user` is out and may not join before `until_ms` (0: until unbanned).
    Banned {
        id: u64,
        user: String,
        until_ms: u64,
    },
    Unbanned {
        id: u64,
        user: String,
    },
    /// `user` is a moderator (or no longer one).
    Moderator {
        id: u64,
        user: String,
        moderator: bool,
    },
    Muted {
        id: u64,
        user: String,
        muted: bool,
    },
    /// The room and its history are gone; its id is never used again.
    Deleted {
        id: u64,
    },
}

const KIND: JournalKind = JournalKind {
    info: b"securechat rooms v1",
    id: "rooms",
};

/// The open journal: appends go to its end. The file backend of
/// [`RoomJournal`](super::RoomJournal).
pub struct RoomsLog {
    journal: Journal,
    /// The events read at open, until the first replay or append takes them.
    unreplayed: Option<Vec<RoomEvent>>,
}

impl RoomsLog {
    /// Opens `path` and returns the journal and every event in it, oldest first. If
    /// the file does not exist, `initial()` gives the events to start it with; they
    /// are written to a temporary file and renamed into place (crash-atomic).
    pub fn open(
        path: &Path,
        storage_key: &[u8; 32],
        initial: impl FnOnce() -> Vec<RoomEvent>,
    ) -> Result<(Self, Vec<RoomEvent>), HistoryError> {
        let mut log = Self::open_or_start(path, storage_key, initial)?;
        let events = log.unreplayed.take().unwrap_or_default();
        Ok((log, events))
    }

    /// Like [`open`](Self::open), keeping the events for the first
    /// [`RoomJournal::replay`] (so a start reads the file once).
    pub fn open_or_start(
        path: &Path,
        storage_key: &[u8; 32],
        initial: impl FnOnce() -> Vec<RoomEvent>,
    ) -> Result<Self, HistoryError> {
        if !path.exists() {
            Journal::rewrite(path, storage_key, KIND, initial())?;
        }
        let (journal, events) = Journal::open(path, storage_key, KIND)?;
        Ok(Self {
            journal,
            unreplayed: Some(events),
        })
    }

    /// Appends `event` and fsyncs it before returning.
    pub fn append(&mut self, event: &RoomEvent) -> Result<(), HistoryError> {
        self.unreplayed = None;
        self.journal.append(event, true)
    }
}

impl RoomJournal for RoomsLog {
    /// The events read at open if nothing was appended since, else the file read
    /// again (every record authenticated).
    fn replay(&mut self) -> Result<Vec<RoomEvent>, HistoryError> {
        if let Some(events) = self.unreplayed.take() {
            return Ok(events);
        }
        self.journal.read_all()
    }

    fn append(&mut self, event: &RoomEvent) -> Result<(), HistoryError> {
        RoomsLog::append(self, event)
    }
}

#[cfg(test)]
mod tests {
    use super::super::journal::temp_path;
    use super::*;
    use std::fs;

    fn created(id: u64, name: &str) -> RoomEvent {
        RoomEvent::Created {
            id,
            name: name.into(),
            topic: String::new(),
            invite_only: false,
            owner: "alice".into(),
        }
    }

    #[test]
    fn events_survive_a_reopen_and_the_initial_ones_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rooms.log");
        let key = [7u8; 32];
        let (mut log, events) =
            RoomsLog::open(&path, &key, || vec![created(1, "#general")]).unwrap();
        assert_eq!(events, vec![created(1, "#general")]);
        let joined = RoomEvent::Joined {
            id: 1,
            user: "bob".into(),
        };
        log.append(&joined).unwrap();
        drop(log);
        let (_, events) =
            RoomsLog::open(&path, &key, || panic!("the file exists: nothing initial")).unwrap();
        assert_eq!(events, vec![created(1, "#general"), joined]);
    }

    #[test]
    fn a_crash_before_the_rename_leaves_a_directory_the_next_start_upgrades() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rooms.log");
        // What a crash mid-upgrade leaves: a partial temporary file, no journal.
        fs::write(temp_path(&path), b"\x00\x00\x00\x40partial").unwrap();
        let (_, events) =
            RoomsLog::open(&path, &[7u8; 32], || vec![created(1, "#general")]).unwrap();
        assert_eq!(events, vec![created(1, "#general")]);
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn the_journal_is_unreadable_without_the_key_and_names_no_room_or_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rooms.log");
        let (mut log, _) =
            RoomsLog::open(&path, &[7u8; 32], || vec![created(1, "#secretroom")]).unwrap();
        log.append(&RoomEvent::Joined {
            id: 1,
            user: "zanzibar".into(),
        })
        .unwrap();
        drop(log);
        let bytes = fs::read(&path).unwrap();
        for needle in [&b"secretroom"[..], b"zanzibar", b"general"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
        // A wrong key: the first record fails, and a later one exists, so it is corrupt.
        assert!(matches!(
            RoomsLog::open(&path, &[8u8; 32], Vec::new),
            Err(HistoryError::Corrupt { .. })
        ));
    }
}
