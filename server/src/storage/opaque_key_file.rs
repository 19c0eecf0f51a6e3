//! `opaque_server.key.enc`: the server's OPAQUE secret (S1, P3).
//!
//! It holds the OPRF seed from which every account's OPRF key is derived
//! and the key pair the server proves itself with at login. Without it no
//! password record works: it belongs in every backup of the data
//! directory, with the other key files. Format: `"SCOPAQ1\n"` || 12-byte
//! nonce || AES-256-GCM ciphertext of the 128 bytes of opaque-ke's
//! `ServerSetup` || tag, AAD = magic || file name, key =
//! `HKDF-SHA256(storage key, info "securechat opaque server setup v1")`,
//! mode 0600 (the data directory refuses to open if it is readable by
//! others). Generated at first start; never replaced.

use std::fs;
use std::io;
use std::path::Path;

use proto_core::opaque::ServerKeys;
use rand_core::OsRng;
use ring::rand::SystemRandom;
use zeroize::Zeroizing;

use crate::storage::atomic_file;
use crate::storage::error::StoreError;
use crate::storage::sealing::SealedFile;

pub const MAGIC: &[u8; 8] = b"SCOPAQ1\n";
const KEY_INFO: &[u8] = b"securechat opaque server setup v1";

/// Loads the OPAQUE keys, or generates and stores them if the file is
/// missing (`true`: generated now).
pub fn load_or_generate(
    path: &Path,
    storage_key: &[u8; 32],
) -> Result<(ServerKeys, bool), StoreError> {
    let io_err = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = || StoreError::Corrupt {
        path: path.to_path_buf(),
    };
    let sealed =
        SealedFile::new(storage_key, KEY_INFO, MAGIC, path).map_err(|_| StoreError::Crypto)?;
    match fs::read(path) {
        Ok(bytes) => {
            let mut bytes = Zeroizing::new(bytes);
            let plaintext = sealed.open(&mut bytes).ok_or_else(corrupt)?;
            let keys = ServerKeys::from_bytes(plaintext, &mut OsRng).map_err(|_| corrupt())?;
            Ok((keys, false))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keys = ServerKeys::generate(&mut OsRng);
            let file = sealed
                .seal(&SystemRandom::new(), &keys.to_bytes())
                .map_err(|_| StoreError::Crypto)?;
            atomic_file::create_new_atomically(path, &file).map_err(io_err)?;
            Ok((keys, true))
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_then_loaded_and_hold_no_plaintext_seed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opaque_server.key.enc");
        let (first, generated) = load_or_generate(&path, &[7; 32]).unwrap();
        assert!(generated);
        let (second, generated) = load_or_generate(&path, &[7; 32]).unwrap();
        assert!(!generated);
        assert_eq!(*first.to_bytes(), *second.to_bytes());
        let on_disk = fs::read(&path).unwrap();
        assert!(!on_disk
            .windows(32)
            .any(|w| first.to_bytes().windows(32).any(|k| k == w)));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_tampered_file_or_another_storage_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opaque_server.key.enc");
        load_or_generate(&path, &[7; 32]).unwrap();
        assert!(matches!(
            load_or_generate(&path, &[8; 32]),
            Err(StoreError::Corrupt { .. })
        ));
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            load_or_generate(&path, &[7; 32]),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
