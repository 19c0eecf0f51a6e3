//! 32-byte secret key files: the Ed25519 identity seed and the storage key.
//!
//! A key file holds exactly 32 raw bytes, mode 0600. A missing file is generated from OS
//! randomness (ring `SystemRandom`) and created atomically with its final mode; an
//! existing file is never replaced. A file of the wrong length, not a regular file, or
//! accessible by group or others is refused (S4), as OpenSSH refuses unprotected keys.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::storage::atomic_file;
use crate::storage::error::KeyFileError;

/// Length of every key file.
pub const KEY_LEN: usize = 32;

/// A loaded or freshly generated secret. `Debug` never shows the bytes.
pub struct LoadedKey {
    pub secret: Zeroizing<[u8; KEY_LEN]>,
    /// True when the file did not exist and was generated now, so the server can say
    /// "generated new identity".
    pub generated: bool,
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedKey")
            .field("secret", &"<redacted>")
            .field("generated", &self.generated)
            .finish()
    }
}

/// Loads the key at `path`, or generates and stores a new one if the file is missing.
pub fn load_or_generate(path: &Path) -> Result<LoadedKey, KeyFileError> {
    match load(path) {
        Ok(secret) => Ok(LoadedKey {
            secret,
            generated: false,
        }),
        Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            generate(path)
        }
        Err(e) => Err(e),
    }
}

/// Loads an existing key file, checking type, permissions and length.
pub fn load(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyFileError> {
    let io_err = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Refuse symlinks: the data directory must hold the key itself.
    let link_meta = fs::symlink_metadata(path).map_err(io_err)?;
    if !link_meta.file_type().is_file() {
        return Err(KeyFileError::NotARegularFile {
            path: path.to_path_buf(),
        });
    }
    let mut file = File::open(path).map_err(io_err)?;
    // Check the opened file itself, not the name, so a swap after the check is harmless.
    let meta = file.metadata().map_err(io_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::PermissionsTooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(KeyFileError::WrongLength {
            path: path.to_path_buf(),
            found: meta.len(),
            expected: KEY_LEN,
        });
    }
    let mut secret = Zeroizing::new([0u8; KEY_LEN]);
    file.read_exact(&mut secret[..]).map_err(io_err)?;
    // The file must not have grown between fstat and read.
    let mut extra = [0u8; 1];
    if file.read(&mut extra).map_err(io_err)? != 0 {
        return Err(KeyFileError::WrongLength {
            path: path.to_path_buf(),
            found: KEY_LEN as u64 + 1,
            expected: KEY_LEN,
        });
    }
    Ok(secret)
}

fn generate(path: &Path) -> Result<LoadedKey, KeyFileError> {
    let mut secret = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(&mut secret[..])
        .map_err(|_| KeyFileError::Random)?;
    match atomic_file::create_new_atomically(path, &secret[..]) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated new key file");
            Ok(LoadedKey {
                secret,
                generated: true,
            })
        }
        // Another process created it meanwhile: use theirs, never replace it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(LoadedKey {
            secret: load(path)?,
            generated: false,
        }),
        Err(source) => Err(KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn missing_key_is_generated_with_mode_0600_and_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.key");
        let first = load_or_generate(&path).unwrap();
        assert!(first.generated);
        assert_ne!(*first.secret, [0u8; KEY_LEN]);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_generate(&path).unwrap();
        assert!(!again.generated);
        assert_eq!(*again.secret, *first.secret);
    }

    #[test]
    fn key_file_with_mode_0644_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .unwrap();
        fs::write(&path, [7u8; KEY_LEN]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_generate(&path).unwrap_err();
        assert!(
            matches!(err, KeyFileError::PermissionsTooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("identity.key"));
    }

    #[test]
    fn key_file_of_wrong_length_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.key");
        atomic_file::write_atomically(&path, &[1u8; 31]).unwrap();
        let err = load_or_generate(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::WrongLength { found: 31, .. }));
        assert_eq!(fs::read(&path).unwrap(), vec![1u8; 31]);
    }

    #[test]
    fn symlinked_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        atomic_file::write_atomically(&target, &[1u8; KEY_LEN]).unwrap();
        let path = dir.path().join("storage.key");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = load_or_generate(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::NotARegularFile { .. }));
    }

    #[test]
    fn loaded_key_debug_hides_the_secret() {
        let key = LoadedKey {
            secret: Zeroizing::new([0xAB; KEY_LEN]),
            generated: true,
        };
        let shown = format!("{key:?}");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab, "));
        assert!(shown.contains("redacted"));
    }
}
