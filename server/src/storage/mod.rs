//! The server's storage layer: everything the services keep, behind one boundary.
//!
//! - [`backend`] — the interface: one small trait per kind of data ([`AccountStore`],
//!   [`RoomJournal`], [`HistoryBackend`], [`AuditTrail`], [`DeviceJournal`],
//!   [`ReadMarkerJournal`], [`TokenSnapshot`]), synchronous like the services' calls.
//!   The services (`accounts`, `rooms`, the `history` writer, `devices`,
//!   `read_markers`, the audit log in `session::Shared`) hold a trait, never a file
//!   type; `app` picks the backend. A second backend (a database server, for several
//!   server nodes) implements the same traits.
//! - The file backend (the one a server runs), in the data directory ([`data_dir`]
//!   describes the on-disk layout): the encrypted credential store
//!   ([`CredentialStore`]), the rooms journal ([`RoomsLog`]), the encrypted
//!   chat-history logs ([`HistoryStore`]), the audit log ([`AuditLog`]), the devices
//!   and read-marker journals ([`devices_log`], [`read_markers_log`]) and the
//!   resume-token snapshot ([`token_snapshot`] over [`token_file`]); all but the
//!   credential store and the snapshot are sealed [`journal`]s. The key files
//!   ([`key_files`], [`opaque_key_file`]) stay outside the interface: every node of a
//!   deployment needs its own copy of them, whatever holds the data.
//! - [`memory`] — the memory backend, for tests (not durable, not encrypted).
//! - [`password`] — Argon2id hashing of pre-OPAQUE accounts.
//!
//! Both backends pass one conformance suite (`conformance`, tests only), written once
//! against the traits.

pub mod atomic_file;
pub mod audit_log;
pub mod backend;
#[cfg(test)]
mod conformance;
pub mod credential_store;
pub mod data_dir;
pub mod devices_log;
pub mod error;
pub mod history;
pub mod journal;
pub mod key_files;
pub mod memory;
pub mod opaque_key_file;
pub mod password;
pub mod read_markers_log;
pub mod rooms_log;
mod sealing;
pub mod token_file;
pub mod token_snapshot;

pub use audit_log::{AuditEntry, AuditLog};
pub use backend::{
    AccountStore, AuditTrail, DeviceJournal, HistoryBackend, PendingSync, ReadMarkerJournal,
    RoomJournal, TokenSnapshot,
};
pub use credential_store::{Account, Credential, CredentialStore};
pub use data_dir::DataDir;
pub use error::{
    DataDirError, HistoryError, KeyFileError, PasswordError, RegisterError, StorageError,
    StoreError,
};
pub use history::{
    AppendTarget, Appended, CacheStats, Conversation, Durability, HistoryConfig, HistoryEntry,
    HistoryStore,
};
pub use key_files::LoadedKey;
pub use password::{
    dummy_phc, hash_password, hash_password_with, verify_login, verify_password, PasswordParams,
    PhcString,
};
pub use rooms_log::{RoomEvent, RoomsLog};

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn all_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                all_files(&path, out);
            } else {
                out.push(path);
            }
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn data_dir_holds_no_username_password_or_message_text_in_readable_form() {
        let parent = tempfile::tempdir().unwrap();
        let dir = DataDir::open_or_create(parent.path().join("data")).unwrap();
        dir.load_or_generate_identity_seed().unwrap();
        let storage_key = dir.load_or_generate_storage_key().unwrap();
        let (user, display, peer, password) =
            ("zanzibar", "Zanzibar", "quixotic", "hunter2-Pa55word");
        let (room_text, dm_text) = ("the eagle lands at midnight", "meet me by the old mill");

        let mut accounts = CredentialStore::open(dir.accounts_path(), &storage_key.secret).unwrap();
        let phc = hash_password(password.as_bytes()).unwrap();
        accounts
            .register(user, display, Credential::LegacyPhc(phc.into_string()))
            .unwrap();
        accounts
            .register(
                peer,
                "Quixotic",
                Credential::LegacyPhc(hash_password(b"other").unwrap().into_string()),
            )
            .unwrap();
        let Credential::LegacyPhc(stored) = &accounts.get(user).unwrap().credential else {
            panic!("registered with a hash");
        };
        assert!(verify_login(
            Some(stored.as_str()),
            &dummy_phc(PasswordParams::default()),
            password.as_bytes()
        ));

        let mut history =
            HistoryStore::open(dir.chat_histories_dir(), &storage_key.secret).unwrap();
        let entry = |id, to: Option<&str>, text: &str| HistoryEntry {
            id,
            timestamp_ms: 1,
            from: display.into(),
            to: to.map(Into::into),
            text: text.into(),
            client_id: Some(7),
        };
        history
            .append_room(history::SEED_ROOM, &entry(1, None, room_text))
            .unwrap();
        history
            .append_direct(user, peer, &entry(2, Some("Quixotic"), dm_text))
            .unwrap();
        history.flush().unwrap();
        drop(history);

        let mut files = Vec::new();
        all_files(dir.path(), &mut files);
        assert_eq!(
            files.len(),
            3 + 4,
            "keys, accounts, room, dm, 2 partner indexes"
        );
        let needles = [
            user, display, peer, "Quixotic", password, room_text, dm_text,
        ];
        for file in &files {
            let name = file.to_string_lossy().to_lowercase();
            let bytes = fs::read(file).unwrap();
            let lower = bytes.to_ascii_lowercase();
            for needle in needles {
                assert!(
                    !name.contains(&needle.to_lowercase()),
                    "{needle} in name {name}"
                );
                assert!(
                    !contains(&lower, needle.to_lowercase().as_bytes()),
                    "{needle} in {name}"
                );
                assert!(
                    !contains(&lower, hex::encode(needle).as_bytes()),
                    "hex {needle} in {name}"
                );
            }
        }

        // And it all reads back with the same key.
        let mut history =
            HistoryStore::open(dir.chat_histories_dir(), &storage_key.secret).unwrap();
        let recent = history
            .recent_for_user(peer, &[history::SEED_ROOM], 10)
            .unwrap();
        assert_eq!(recent[1].1[0].text, dm_text);
    }
}
