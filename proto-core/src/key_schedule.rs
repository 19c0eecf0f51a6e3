//! The key schedule: HKDF-SHA256 over the hybrid secret, with TLS 1.3-style
//! labelled expansion bound to the transcript hash (docs/PROTOCOL.md §Key schedule).

use ring::{hkdf, hmac};
use zeroize::Zeroizing;

/// Prefix of every label, so our keys never collide with another protocol's.
pub const LABEL_PREFIX: &[u8] = b"schat1 ";

pub type Secret = Zeroizing<[u8; 32]>;

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Extract(salt, ikm).
pub fn extract(salt: &[u8], ikm: &[u8]) -> hkdf::Prk {
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm)
}

/// HKDF-Expand(prk, info, out.len()). `out.len()` must be at most 255 * 32.
pub fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) {
    prk.expand(info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF output length within 255 * HashLen");
}

/// HKDF-Expand-Label(secret, label, context, 32):
/// info = u16(32) || u8(len) || "schat1 " || label || u8(len(context)) || context.
pub fn expand_label(prk: &hkdf::Prk, label: &[u8], context: &[u8]) -> Secret {
    let mut out = Zeroizing::new([0u8; 32]);
    let len = 32u16.to_be_bytes();
    let label_len = [(LABEL_PREFIX.len() + label.len()) as u8];
    let ctx_len = [context.len() as u8];
    expand(
        prk,
        &[&len, &label_len, LABEL_PREFIX, label, &ctx_len, context],
        &mut out[..],
    );
    out
}

/// Expand-Label keyed by a 32-byte secret used directly as the PRK.
pub fn expand_label_from(secret: &[u8; 32], label: &[u8], context: &[u8]) -> Secret {
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret);
    expand_label(&prk, label, context)
}

/// Everything the handshake derives from the hybrid secret.
pub struct HandshakeSecrets {
    pub client_traffic: Secret,
    pub server_traffic: Secret,
    pub client_finished: Secret,
    pub server_finished: Secret,
    /// The connection's channel binding (docs/PROTOCOL.md §Key schedule):
    /// OPAQUE's context, so a login cannot be relayed to another connection.
    pub exporter: Secret,
}

impl HandshakeSecrets {
    /// `salt` is the signed transcript hash TH_sig; `ikm` the concatenated
    /// ffdhe, X25519 and ML-KEM shared secrets.
    pub fn derive(th_sig: &[u8; 32], ikm: &[u8]) -> Self {
        let prk = extract(th_sig, ikm);
        Self {
            client_traffic: expand_label(&prk, b"c traffic", th_sig),
            server_traffic: expand_label(&prk, b"s traffic", th_sig),
            client_finished: expand_label(&prk, b"c finished", th_sig),
            server_finished: expand_label(&prk, b"s finished", th_sig),
            exporter: expand_label(&prk, b"exporter", th_sig),
        }
    }
}

/// Keys of one direction and generation, derived from its traffic secret.
pub struct TrafficKeys {
    pub enc: Secret,
    pub mac: Secret,
}

impl TrafficKeys {
    pub fn from_traffic_secret(ts: &[u8; 32]) -> Self {
        Self {
            enc: expand_label_from(ts, b"enc", b""),
            mac: expand_label_from(ts, b"mac", b""),
        }
    }
}

/// The next generation's traffic secret (key update ratchet).
pub fn next_traffic_secret(ts: &[u8; 32]) -> Secret {
    expand_label_from(ts, b"next", b"")
}

/// verify_data = HMAC-SHA256(finished_key, transcript_hash).
pub fn finished_mac(finished_key: &[u8; 32], transcript_hash: &[u8; 32]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, finished_key);
    let tag = hmac::sign(&key, transcript_hash);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn hkdf_matches_rfc5869_test_case_1() {
        let ikm = unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        let salt = unhex("000102030405060708090a0b0c");
        let info = unhex("f0f1f2f3f4f5f6f7f8f9");
        let prk = extract(&salt, &ikm);
        let mut okm = [0u8; 42];
        expand(&prk, &[&info], &mut okm);
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn hkdf_matches_rfc5869_test_case_3_empty_salt_and_info() {
        let ikm = unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        let prk = extract(&[], &ikm);
        let mut okm = [0u8; 42];
        expand(&prk, &[], &mut okm);
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn labels_give_distinct_keys_per_direction_and_purpose() {
        let hs = HandshakeSecrets::derive(&[1u8; 32], &[2u8; 448]);
        let all = [
            *hs.client_traffic,
            *hs.server_traffic,
            *hs.client_finished,
            *hs.server_finished,
        ];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j]);
            }
        }
        let c = TrafficKeys::from_traffic_secret(&hs.client_traffic);
        let s = TrafficKeys::from_traffic_secret(&hs.server_traffic);
        assert_ne!(*c.enc, *s.enc);
        assert_ne!(*c.mac, *s.mac);
        assert_ne!(*c.enc, *c.mac);
        assert_ne!(*next_traffic_secret(&hs.client_traffic), *hs.client_traffic);
    }
}
