//! `audit.log`: who did what to whom, for every moderation and administration action,
//! as an append-only journal of sealed records (AES-256-GCM under
//! `HKDF(storage key, "securechat audit v1")`, AAD = `audit` || record index, so a
//! record cannot be removed, reordered or moved from another file without the next
//! read noticing). Each entry is fsynced before the action is acknowledged. The server
//! never rewrites or truncates it, except to drop a torn last record after a crash.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::backend::AuditTrail;
use super::error::HistoryError;
use super::journal::{Journal, JournalKind};

/// One action. Names are canonical account names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch, server time.
    pub at_ms: u64,
    /// Who did it.
    pub actor: String,
    /// What: `kick`, `ban`, `unban`, `invite`, `topic`, `mode`, `role`, `mute`,
    /// `delete_room`, `disable_account`, `enable_account`, `end_sessions`.
    pub action: String,
    /// The room, by its name as created (room actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Whom it was done to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The reason, the new topic, the mode, the role, the ban's end.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

const KIND: JournalKind = JournalKind {
    info: b"securechat audit v1",
    id: "audit",
};

/// The open audit log: the file backend of [`AuditTrail`](super::AuditTrail).
pub struct AuditLog {
    journal: Journal,
}

impl AuditLog {
    /// Opens (or, on first use, creates) the log at `path`, checking every record.
    pub fn open(path: &Path, storage_key: &[u8; 32]) -> Result<Self, HistoryError> {
        let (journal, _) = Journal::open::<AuditEntry>(path, storage_key, KIND)?;
        Ok(Self { journal })
    }

    /// Appends `entry` and fsyncs it.
    pub fn append(&mut self, entry: &AuditEntry) -> Result<(), HistoryError> {
        self.journal.append(entry, true)
    }

    /// Every entry at `path`, oldest first (for the operator's tools and tests).
    pub fn read_all(path: &Path, storage_key: &[u8; 32]) -> Result<Vec<AuditEntry>, HistoryError> {
        Ok(Journal::open(path, storage_key, KIND)?.1)
    }
}

impl AuditTrail for AuditLog {
    fn append(&mut self, entry: &AuditEntry) -> Result<(), HistoryError> {
        AuditLog::append(self, entry)
    }

    /// The file read again, every record authenticated.
    fn entries(&self) -> Result<Vec<AuditEntry>, HistoryError> {
        self.journal.read_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            at_ms: 7,
            actor: "alice".into(),
            action: action.into(),
            room: Some("#den".into()),
            target: Some("mallory".into()),
            detail: "spamming links".into(),
        }
    }

    #[test]
    fn entries_are_appended_kept_across_reopens_and_unreadable_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let key = [9u8; 32];
        let mut log = AuditLog::open(&path, &key).unwrap();
        log.append(&entry("kick")).unwrap();
        drop(log);
        let mut log = AuditLog::open(&path, &key).unwrap();
        log.append(&entry("ban")).unwrap();
        let actions: Vec<String> = AuditLog::read_all(&path, &key)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["kick", "ban"]);
        let bytes = std::fs::read(&path).unwrap();
        for needle in [&b"mallory"[..], b"spamming", b"alice", b"kick"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
    }

    #[test]
    fn a_removed_entry_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let key = [9u8; 32];
        let mut log = AuditLog::open(&path, &key).unwrap();
        for action in ["kick", "ban", "mute"] {
            log.append(&entry(action)).unwrap();
        }
        drop(log);
        // Cut the first record out: the others are bound to their positions.
        let bytes = std::fs::read(&path).unwrap();
        let first_len = 4 + u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        std::fs::write(&path, &bytes[first_len..]).unwrap();
        assert!(matches!(
            AuditLog::read_all(&path, &key),
            Err(HistoryError::Corrupt { .. })
        ));
    }
}
