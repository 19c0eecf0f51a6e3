//! One sealed history record, pure over bytes (no files):
//! `u32 BE body length || 12-byte random nonce || ciphertext || 16-byte tag`, AES-256-GCM
//! under the log's key, AAD = log id || record index (u64 BE from 0).
//!
//! The AAD makes a record moved to another file, swapped, reordered or dropped from the
//! middle fail authentication. Nonces are random, not the index, because a truncated
//! torn tail's indices are reused.

use ring::aead::LessSafeKey;
use ring::rand::SystemRandom;

use crate::storage::error::HistoryError;
use crate::storage::sealing::{self, SEAL_OVERHEAD};

/// Bytes of the length prefix.
pub(super) const LEN_PREFIX: usize = 4;
/// Largest record body (nonce + ciphertext + tag). A 65,000-byte message is far below
/// it even with JSON escaping; a larger length prefix can only be damage.
pub const MAX_RECORD_LEN: usize = 512 * 1024;

/// `log_id || index (u64 BE)`: binds a record to its log and position.
pub(super) fn aad(log_id: &str, index: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(log_id.len() + 8);
    aad.extend_from_slice(log_id.as_bytes());
    aad.extend_from_slice(&index.to_be_bytes());
    aad
}

/// Appends record `index` of log `log_id` holding `plaintext` to `out`; returns its
/// length (prefix included). On error `out` is unchanged.
pub(super) fn encode(
    key: &LessSafeKey,
    rng: &SystemRandom,
    log_id: &str,
    index: u64,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, HistoryError> {
    let body_len = plaintext.len() + SEAL_OVERHEAD;
    if body_len > MAX_RECORD_LEN {
        return Err(HistoryError::RecordTooLarge {
            len: body_len,
            max: MAX_RECORD_LEN,
        });
    }
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    if sealing::seal_into(key, rng, &aad(log_id, index), plaintext, out).is_err() {
        out.truncate(start);
        return Err(HistoryError::Crypto);
    }
    Ok(LEN_PREFIX + body_len)
}

/// The body length a prefix announces, or `None` if no writer produces it (damage, not
/// a torn append).
pub(super) fn body_len(prefix: [u8; LEN_PREFIX]) -> Option<u64> {
    let len = u64::from(u32::from_be_bytes(prefix));
    (len <= MAX_RECORD_LEN as u64).then_some(len)
}

/// Authenticates and decrypts the body of record `index` in place: the plaintext, or
/// `None` if it does not authenticate (tampered, torn, wrong log, position or key).
pub(super) fn decode<'a>(
    key: &LessSafeKey,
    log_id: &str,
    index: u64,
    body: &'a mut [u8],
) -> Option<&'a [u8]> {
    sealing::open_in_place(key, &aad(log_id, index), body)
        .ok()
        .map(|plaintext| &*plaintext)
}

/// Whether a length prefix `len` that runs past the end of the file (or whose record
/// fails authentication) is a real record's length with one bit flipped: some length one
/// bit away gives a body at the start of `rest` (the bytes after the prefix) that
/// authenticates. A torn tail must pass this before it may be dropped, or one flipped bit
/// would hide that record and all after it.
pub(super) fn is_flipped_length(
    key: &LessSafeKey,
    log_id: &str,
    index: u64,
    len: u64,
    rest: &[u8],
) -> bool {
    let aad = aad(log_id, index);
    (0..32).any(|bit| {
        let candidate = len ^ (1 << bit);
        if candidate < SEAL_OVERHEAD as u64 || candidate >= rest.len() as u64 {
            return false;
        }
        let mut body = zeroize::Zeroizing::new(rest[..candidate as usize].to_vec());
        sealing::open_in_place(key, &aad, &mut body[..]).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sealing::derive_aead_key;

    fn key(seed: u8) -> LessSafeKey {
        derive_aead_key(&[seed; 32], &[b"test"]).unwrap()
    }

    fn record(log_id: &str, index: u64, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let len = encode(
            &key(1),
            &SystemRandom::new(),
            log_id,
            index,
            plaintext,
            &mut out,
        )
        .unwrap();
        assert_eq!(len, out.len());
        out
    }

    #[test]
    fn a_record_is_its_body_length_then_nonce_ciphertext_and_tag() {
        let bytes = record("room", 0, b"hello");
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, 5 + SEAL_OVERHEAD);
        assert_eq!(bytes.len(), LEN_PREFIX + len);
        assert!(!bytes.windows(5).any(|w| w == b"hello"));
    }

    #[test]
    fn a_record_decodes_only_in_its_log_at_its_index_under_its_key() {
        let bytes = record("room", 3, b"hello");
        let body = || bytes[LEN_PREFIX..].to_vec();
        assert_eq!(decode(&key(1), "room", 3, &mut body()), Some(&b"hello"[..]));
        assert_eq!(decode(&key(1), "room", 2, &mut body()), None);
        assert_eq!(decode(&key(1), "dm-00", 3, &mut body()), None);
        assert_eq!(decode(&key(2), "room", 3, &mut body()), None);
    }

    #[test]
    fn oversized_plaintext_is_refused_and_leaves_the_buffer_unchanged() {
        let mut out = vec![7];
        let huge = vec![0; MAX_RECORD_LEN];
        let result = encode(&key(1), &SystemRandom::new(), "room", 0, &huge, &mut out);
        assert!(matches!(result, Err(HistoryError::RecordTooLarge { .. })));
        assert_eq!(out, [7]);
    }

    #[test]
    fn a_length_prefix_beyond_the_maximum_is_not_a_body_length() {
        assert_eq!(
            body_len((MAX_RECORD_LEN as u32).to_be_bytes()),
            Some(MAX_RECORD_LEN as u64)
        );
        assert_eq!(body_len((MAX_RECORD_LEN as u32 + 1).to_be_bytes()), None);
    }

    #[test]
    fn a_flipped_length_bit_is_told_apart_from_a_cut_record() {
        let mut bytes = record("room", 0, b"first");
        bytes.extend(record("room", 1, b"second"));
        let len = u64::from(u32::from_be_bytes(bytes[..4].try_into().unwrap()));
        let rest = &bytes[LEN_PREFIX..];
        for bit in 0..32 {
            let flipped = len ^ (1 << bit);
            if flipped > len {
                assert!(
                    is_flipped_length(&key(1), "room", 0, flipped, rest),
                    "bit {bit}"
                );
            }
        }
        // A genuinely cut record: nothing one bit away authenticates.
        let cut = &rest[..rest.len() / 3];
        assert!(!is_flipped_length(&key(1), "room", 0, len, cut));
    }
}
