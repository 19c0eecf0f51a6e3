//! The resume-token snapshot: the hashes of live resume tokens, sealed
//! under the storage key, written at graceful shutdown and consumed at the
//! next start (read, then deleted), so a token redeemed after a restart
//! cannot come back from an old file after a crash.
//!
//! File: `MAGIC || nonce || AES-256-GCM(JSON) || tag`, key
//! `HKDF(storage key, "securechat resume tokens v1")`, AAD `MAGIC || file name`.
//! The file holds SHA-256 hashes of tokens, never the tokens.

use std::fs;
use std::io;
use std::path::Path;

use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::storage::atomic_file;
use crate::storage::error::StoreError;
use crate::storage::sealing::SealedFile;

/// First bytes of the file.
pub const MAGIC: &[u8; 8] = b"SCTOKN1\n";
const KEY_INFO: &[u8] = b"securechat resume tokens v1";

/// One live token: its SHA-256, whose it is, when it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    #[serde(with = "hex::serde")]
    pub hash: [u8; 32],
    pub user: String,
    /// The device it was issued to (0 in a file from before devices).
    #[serde(default)]
    pub device: u64,
    pub expires_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct Contents {
    version: u64,
    tokens: Vec<StoredToken>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the snapshot atomically.
pub fn save(
    path: &Path,
    storage_key: &[u8; 32],
    tokens: Vec<StoredToken>,
) -> Result<(), StoreError> {
    let sealed =
        SealedFile::new(storage_key, KEY_INFO, MAGIC, path).map_err(|_| StoreError::Crypto)?;
    let plaintext = Zeroizing::new(
        serde_json::to_vec(&Contents { version: 1, tokens })
            .map_err(|e| io_err(path)(io::Error::other(e)))?,
    );
    let file = sealed
        .seal(&SystemRandom::new(), &plaintext)
        .map_err(|_| StoreError::Crypto)?;
    atomic_file::write_atomically(path, &file).map_err(io_err(path))
}

/// Reads the snapshot and deletes it. No file: no tokens. A file that does
/// not authenticate is an error (and is left in place for inspection).
pub fn take(path: &Path, storage_key: &[u8; 32]) -> Result<Vec<StoredToken>, StoreError> {
    let mut bytes = match fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    let corrupt = || StoreError::Corrupt {
        path: path.to_path_buf(),
    };
    let sealed =
        SealedFile::new(storage_key, KEY_INFO, MAGIC, path).map_err(|_| StoreError::Crypto)?;
    let plaintext = sealed.open(&mut bytes).ok_or_else(corrupt)?;
    let contents: Contents = serde_json::from_slice(plaintext).map_err(|_| corrupt())?;
    if contents.version != 1 {
        return Err(StoreError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: contents.version,
        });
    }
    fs::remove_file(path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        atomic_file::sync_dir(dir).map_err(io_err(dir))?;
    }
    Ok(contents.tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trips_once_and_holds_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resume_tokens.enc");
        let tokens = vec![StoredToken {
            device: 3,
            hash: [7; 32],
            user: "alice".into(),
            expires_ms: 99,
        }];
        save(&path, &[1; 32], tokens.clone()).unwrap();
        let raw = fs::read(&path).unwrap();
        assert!(!raw.windows(5).any(|w| w == b"alice"));
        assert_eq!(take(&path, &[1; 32]).unwrap(), tokens);
        // Consumed: a second start finds nothing.
        assert!(take(&path, &[1; 32]).unwrap().is_empty());
    }

    #[test]
    fn wrong_key_or_tampering_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resume_tokens.enc");
        save(&path, &[1; 32], Vec::new()).unwrap();
        assert!(matches!(
            take(&path, &[2; 32]),
            Err(StoreError::Corrupt { .. })
        ));
        let mut raw = fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        fs::write(&path, raw).unwrap();
        assert!(matches!(
            take(&path, &[1; 32]),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
