//! Key derivation from the storage key and AES-256-GCM sealing, shared by the
//! credential store and the history logs.
//!
//! Every file or conversation gets its own key, `HKDF-SHA256(storage key, info)` with an
//! info string naming its purpose and version, so a ciphertext moved from one file to
//! another never authenticates. Nonces are 96 random bits per seal: counters are not
//! safe here because a torn history tail is truncated and its record indices reused.

use std::path::Path;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::error::Unspecified;
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

pub(crate) const TAG_LEN: usize = 16;
/// Bytes a sealed blob adds to its plaintext: nonce and tag.
pub(crate) const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// `HKDF-SHA256(ikm = storage_key, salt = empty, info = concat(info))` as an AES-256-GCM key.
pub(crate) fn derive_aead_key(
    storage_key: &[u8; 32],
    info: &[&[u8]],
) -> Result<LessSafeKey, Unspecified> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(storage_key);
    let okm = prk.expand(info, &aead::AES_256_GCM)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// `HKDF-SHA256(storage_key, info)` as an HMAC-SHA256 key.
pub(crate) fn derive_hmac_key(
    storage_key: &[u8; 32],
    info: &[&[u8]],
) -> Result<hmac::Key, Unspecified> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(storage_key);
    let okm = prk.expand(info, hmac::HMAC_SHA256)?;
    Ok(hmac::Key::from(okm))
}

/// Appends `nonce || AES-256-GCM(plaintext) || tag` to `out`. On error `out` is unchanged.
pub(crate) fn seal_into(
    key: &LessSafeKey,
    rng: &SystemRandom,
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Unspecified> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)?;
    let start = out.len();
    out.reserve(SEAL_OVERHEAD + plaintext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    match key.seal_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut out[start + NONCE_LEN..],
    ) {
        Ok(tag) => {
            out.extend_from_slice(tag.as_ref());
            Ok(())
        }
        Err(e) => {
            zeroize::Zeroize::zeroize(&mut out[start..]);
            out.truncate(start);
            Err(e)
        }
    }
}

/// Authenticates and decrypts `nonce || ciphertext || tag` in place; returns the plaintext.
pub(crate) fn open_in_place<'a>(
    key: &LessSafeKey,
    aad: &[u8],
    sealed: &'a mut [u8],
) -> Result<&'a mut [u8], Unspecified> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(Unspecified);
    }
    let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce)?;
    key.open_in_place(nonce, Aad::from(aad), rest)
        .map(|plaintext| &mut plaintext[..])
}

/// A file sealed as a whole (the accounts file, the resume-token
/// snapshot): `magic || nonce || AES-256-GCM(plaintext) || tag`, under a key
/// derived for its purpose, with AAD `magic || file name` so a blob copied
/// under another name does not open.
pub(crate) struct SealedFile {
    key: LessSafeKey,
    magic: &'static [u8; 8],
    aad: Vec<u8>,
}

impl SealedFile {
    pub(crate) fn new(
        storage_key: &[u8; 32],
        info: &[u8],
        magic: &'static [u8; 8],
        path: &Path,
    ) -> Result<Self, Unspecified> {
        let mut aad = magic.to_vec();
        if let Some(name) = path.file_name() {
            aad.extend_from_slice(name.as_encoded_bytes());
        }
        Ok(Self {
            key: derive_aead_key(storage_key, &[info])?,
            magic,
            aad,
        })
    }

    /// The file's bytes for `plaintext`.
    pub(crate) fn seal(
        &self,
        rng: &SystemRandom,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Unspecified> {
        let mut file = Vec::with_capacity(self.magic.len() + SEAL_OVERHEAD + plaintext.len());
        file.extend_from_slice(self.magic);
        seal_into(&self.key, rng, &self.aad, plaintext, &mut file)?;
        Ok(file)
    }

    /// The plaintext of a file's bytes, decrypted in place; `None` if the
    /// magic is wrong or the file does not authenticate.
    pub(crate) fn open<'a>(&self, file: &'a mut [u8]) -> Option<&'a mut [u8]> {
        let body = file.strip_prefix(self.magic.as_slice())?.len();
        let start = file.len() - body;
        open_in_place(&self.key, &self.aad, &mut file[start..]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_blob_opens_only_with_same_key_and_aad() {
        let rng = SystemRandom::new();
        let k1 = derive_aead_key(&[1; 32], &[b"a"]).unwrap();
        let k2 = derive_aead_key(&[1; 32], &[b"b"]).unwrap();
        let mut blob = Vec::new();
        seal_into(&k1, &rng, b"aad", b"hello", &mut blob).unwrap();
        assert_eq!(blob.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(
            open_in_place(&k1, b"aad", &mut blob.clone()).unwrap(),
            b"hello"
        );
        assert!(open_in_place(&k2, b"aad", &mut blob.clone()).is_err());
        assert!(open_in_place(&k1, b"aae", &mut blob.clone()).is_err());
        assert!(open_in_place(&k1, b"aad", &mut blob[..10]).is_err());
    }
}
