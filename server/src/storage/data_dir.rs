//! The server's data directory.
//!
//! Layout (the directory and `chat_histories/` are mode 0700, every file 0600):
//!
//! ```text
//! <data dir>/
//!   identity.key          32 raw bytes: the server's Ed25519 identity seed
//!   storage.key           32 raw bytes: root key for everything encrypted below (HKDF)
//!   opaque_server.key.enc the OPAQUE server secret (OPRF seed, AKE key pair), sealed under
//!                         storage.key (see opaque_key_file)
//!   accounts.json.enc     the credential store, one AES-256-GCM blob (see credential_store)
//!   resume_tokens.enc     only between a graceful stop and the next start: SHA-256 of live
//!                         resume tokens, sealed the same way (see token_file)
//!   rooms.log             the rooms and their members: an append-only journal of sealed
//!                         records (see rooms_log)
//!   audit.log             every moderation and administration action, the same way
//!                         (see audit_log)
//!   devices.log           each user's devices: name, last seen, address (see devices_log)
//!   read_markers.log      how far each user has read each conversation (see read_markers)
//!   chat_histories/
//!     room.log                 #general's messages (the room from before rooms)
//!     room-<hex>.log           one per other room; hex = HMAC-SHA256(name key, "room" 0x00 id)
//!     dm-<hex>.log             one per direct-message pair; hex = HMAC-SHA256(name key, A 0x00 B)
//!     partners-<hex>.log       one per user: the DM partners; hex = HMAC-SHA256(name key, user)
//! ```
//!
//! No file name or byte on disk reveals a username, a password or message text (S5).
//! Stealing the directory with `storage.key` defeats the encryption; that is why the
//! server refuses to start when the directory or a key file is accessible by group or
//! others (S4), like OpenSSH with an unprotected private key.
//!
//! Rolling the whole directory (or one file) back to an older copy cannot be detected
//! without a counter kept elsewhere; the storage layer does not try (S2).

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::storage::atomic_file;
use crate::storage::error::{DataDirError, KeyFileError};
use crate::storage::key_files::{self, LoadedKey};

pub const IDENTITY_KEY_FILE: &str = "identity.key";
pub const STORAGE_KEY_FILE: &str = "storage.key";
pub const ACCOUNTS_FILE: &str = "accounts.json.enc";
pub const OPAQUE_KEY_FILE: &str = "opaque_server.key.enc";
pub const CHAT_HISTORIES_DIR: &str = "chat_histories";
pub const RESUME_TOKENS_FILE: &str = "resume_tokens.enc";
pub const ROOMS_FILE: &str = "rooms.log";
pub const AUDIT_FILE: &str = "audit.log";
pub const DEVICES_FILE: &str = "devices.log";
pub const READ_MARKERS_FILE: &str = "read_markers.log";

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// An opened, permission-checked data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the directory (0700) and `chat_histories/` (0700) if missing, then
    /// refuses to continue if either, or any key or accounts file, is accessible by
    /// group or others or is a symlink. Removes temp files left by a crash.
    pub fn open_or_create(path: impl Into<PathBuf>) -> Result<Self, DataDirError> {
        let root = path.into();
        create_private_dir(&root)?;
        check_dir(&root, true)?;
        let histories = root.join(CHAT_HISTORIES_DIR);
        create_private_dir(&histories)?;
        check_dir(&histories, false)?;

        for name in [
            IDENTITY_KEY_FILE,
            STORAGE_KEY_FILE,
            OPAQUE_KEY_FILE,
            ACCOUNTS_FILE,
            RESUME_TOKENS_FILE,
            ROOMS_FILE,
            AUDIT_FILE,
            DEVICES_FILE,
            READ_MARKERS_FILE,
        ] {
            check_file_if_present(&root.join(name))?;
        }
        for entry in fs::read_dir(&histories).map_err(io_err(&histories))? {
            let entry = entry.map_err(io_err(&histories))?;
            check_file_if_present(&entry.path())?;
        }
        atomic_file::remove_stale_temp_files(&root).map_err(io_err(&root))?;
        Ok(Self { root })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn identity_key_path(&self) -> PathBuf {
        self.root.join(IDENTITY_KEY_FILE)
    }

    pub fn storage_key_path(&self) -> PathBuf {
        self.root.join(STORAGE_KEY_FILE)
    }

    pub fn accounts_path(&self) -> PathBuf {
        self.root.join(ACCOUNTS_FILE)
    }

    pub fn opaque_key_path(&self) -> PathBuf {
        self.root.join(OPAQUE_KEY_FILE)
    }

    pub fn resume_tokens_path(&self) -> PathBuf {
        self.root.join(RESUME_TOKENS_FILE)
    }

    /// The rooms journal (`storage::rooms_log`).
    pub fn rooms_path(&self) -> PathBuf {
        self.root.join(ROOMS_FILE)
    }

    /// How far each user has read each conversation (`read_markers`).
    pub fn read_markers_path(&self) -> PathBuf {
        self.root.join(READ_MARKERS_FILE)
    }

    /// Each user's devices (`storage::devices_log`).
    pub fn devices_path(&self) -> PathBuf {
        self.root.join(DEVICES_FILE)
    }

    /// The moderation and administration audit log (`storage::audit_log`).
    pub fn audit_path(&self) -> PathBuf {
        self.root.join(AUDIT_FILE)
    }

    pub fn chat_histories_dir(&self) -> PathBuf {
        self.root.join(CHAT_HISTORIES_DIR)
    }

    /// The Ed25519 identity seed; `generated` says it is new (print the fingerprint).
    pub fn load_or_generate_identity_seed(&self) -> Result<LoadedKey, KeyFileError> {
        key_files::load_or_generate(&self.identity_key_path())
    }

    /// The storage key from which the accounts and history keys are derived.
    pub fn load_or_generate_storage_key(&self) -> Result<LoadedKey, KeyFileError> {
        key_files::load_or_generate(&self.storage_key_path())
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn create_private_dir(path: &Path) -> Result<(), DataDirError> {
    // The mode applies at creation (minus umask); an existing directory is checked, not
    // changed: silently fixing permissions would hide that the keys may have leaked.
    match DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
    {
        Ok(()) => Ok(()),
        Err(source) => Err(DataDirError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `follow_symlink`: the data directory itself may be reached through a symlink (what it
/// points at is checked); `chat_histories/` inside it must be a real directory.
fn check_dir(path: &Path, follow_symlink: bool) -> Result<(), DataDirError> {
    let meta = if follow_symlink {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    }
    .map_err(io_err(path))?;
    if !meta.is_dir() {
        return Err(DataDirError::WrongFileType {
            path: path.to_path_buf(),
            expected: "directory",
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(DataDirError::PermissionsTooOpen {
            path: path.to_path_buf(),
            mode,
            wanted: DIR_MODE,
        });
    }
    Ok(())
}

fn check_file_if_present(path: &Path) -> Result<(), DataDirError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(DataDirError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.file_type().is_file() {
        return Err(DataDirError::WrongFileType {
            path: path.to_path_buf(),
            expected: "regular file",
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(DataDirError::PermissionsTooOpen {
            path: path.to_path_buf(),
            mode,
            wanted: FILE_MODE,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_data_dir_and_chat_histories_are_created_with_mode_0700() {
        let parent = tempfile::tempdir().unwrap();
        let dir = DataDir::open_or_create(parent.path().join("data")).unwrap();
        assert_eq!(mode_of(dir.path()), 0o700);
        assert_eq!(mode_of(&dir.chat_histories_dir()), 0o700);
        let seed = dir.load_or_generate_identity_seed().unwrap();
        assert!(seed.generated);
        assert!(!dir.load_or_generate_identity_seed().unwrap().generated);
        // Reopening a healthy directory works.
        DataDir::open_or_create(dir.path()).unwrap();
    }

    #[test]
    fn data_dir_with_mode_0755_is_refused_naming_the_path() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("data");
        DataDir::open_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let err = DataDir::open_or_create(&path).unwrap_err();
        assert!(matches!(
            err,
            DataDirError::PermissionsTooOpen { mode: 0o755, .. }
        ));
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn chat_histories_with_group_access_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let dir = DataDir::open_or_create(parent.path().join("data")).unwrap();
        fs::set_permissions(dir.chat_histories_dir(), fs::Permissions::from_mode(0o750)).unwrap();
        let err = DataDir::open_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, DataDirError::PermissionsTooOpen { .. }));
    }

    #[test]
    fn key_file_with_mode_0644_makes_the_data_dir_refuse_to_open() {
        let parent = tempfile::tempdir().unwrap();
        let dir = DataDir::open_or_create(parent.path().join("data")).unwrap();
        dir.load_or_generate_storage_key().unwrap();
        fs::set_permissions(dir.storage_key_path(), fs::Permissions::from_mode(0o644)).unwrap();
        let err = DataDir::open_or_create(dir.path()).unwrap_err();
        assert!(matches!(
            err,
            DataDirError::PermissionsTooOpen {
                mode: 0o644,
                wanted: 0o600,
                ..
            }
        ));
        assert!(err.to_string().contains("storage.key"));
        assert!(matches!(
            dir.load_or_generate_storage_key().unwrap_err(),
            KeyFileError::PermissionsTooOpen { .. }
        ));
    }

    #[test]
    fn stale_temp_file_is_removed_at_open() {
        let parent = tempfile::tempdir().unwrap();
        let dir = DataDir::open_or_create(parent.path().join("data")).unwrap();
        let temp = dir.path().join(".accounts.json.enc.99-0.tmp");
        atomic_file::write_atomically(&temp, b"half").unwrap();
        DataDir::open_or_create(dir.path()).unwrap();
        assert!(!temp.exists());
    }
}
