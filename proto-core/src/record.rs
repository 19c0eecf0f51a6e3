//! The record layer: AES-256-CFB128 with a fresh random IV per record, then
//! HMAC-SHA256 over `seq || header || IV || ciphertext` (encrypt-then-MAC).
//!
//! ```text
//! frame  = 0x17 || u32 BE body_len || IV[16] || CT[1 + n] || TAG[32]
//! CT     = AES-256-CFB128(enc_key, IV, content_type || payload)
//! TAG    = HMAC-SHA256(mac_key, u64 BE seq || frame header || IV || CT)
//! ```
//! The tag is checked in constant time before a single byte is decrypted.
//! Sequence numbers are implicit, per direction, start at 0 and never wrap.

use aes::cipher::{AsyncStreamCipher, InnerIvInit, KeyInit};
use aes::Aes256Enc;
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::error::PeerMisbehaved;
use crate::frame::{FrameHeader, FrameType, HEADER_LEN};
use crate::key_schedule::{next_traffic_secret, Secret, TrafficKeys};

pub const IV_LEN: usize = 16;
pub const TAG_LEN: usize = 32;
/// Bytes a record adds around its payload: IV, content type, tag.
pub const RECORD_OVERHEAD: usize = IV_LEN + 1 + TAG_LEN;

/// The encrypted content type, first byte of every record's plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Finished = 0x01,
    KeyUpdate = 0x02,
    Application = 0x03,
    Alert = 0x04,
}

impl ContentType {
    fn from_byte(b: u8) -> Result<Self, PeerMisbehaved> {
        match b {
            0x01 => Ok(ContentType::Finished),
            0x02 => Ok(ContentType::KeyUpdate),
            0x03 => Ok(ContentType::Application),
            0x04 => Ok(ContentType::Alert),
            other => Err(PeerMisbehaved::UnknownContentType(other)),
        }
    }
}

/// When a sender must ratchet its keys (as TLS 1.3 KeyUpdate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUpdatePolicy {
    /// Records sent under one generation of keys before a key update.
    pub max_records: u64,
    /// Plaintext bytes sent under one generation before a key update.
    pub max_bytes: u64,
}

impl Default for KeyUpdatePolicy {
    fn default() -> Self {
        Self {
            max_records: 1 << 20,
            max_bytes: 1 << 30,
        }
    }
}

impl KeyUpdatePolicy {
    /// A receiver tolerates this many records per generation before it
    /// declares the peer's key update overdue: twice the policy, so two
    /// compliant peers with different settings within 2x still interoperate.
    pub fn receive_limit(&self) -> u64 {
        self.max_records.saturating_mul(2).saturating_add(16)
    }
}

/// One direction's keys, for one generation.
#[cfg_attr(feature = "internals", derive(Clone))]
struct DirectionKeys {
    traffic_secret: Secret,
    /// CFB runs the block cipher forwards in both directions, so only the
    /// encryption key schedule is built. (Not smaller in memory: the
    /// autodetecting type reserves room for the software key schedule.)
    cipher: Aes256Enc,
    mac: hmac::Key,
    records: u64,
    bytes: u64,
}

impl DirectionKeys {
    fn new(traffic_secret: Secret) -> Self {
        let keys = TrafficKeys::from_traffic_secret(&traffic_secret);
        Self {
            cipher: Aes256Enc::new(keys.enc[..].into()),
            mac: hmac::Key::new(hmac::HMAC_SHA256, &keys.mac[..]),
            traffic_secret,
            records: 0,
            bytes: 0,
        }
    }

    fn ratchet(&mut self) {
        *self = DirectionKeys::new(next_traffic_secret(&self.traffic_secret));
    }

    fn tag(&self, seq: u64, header_iv_ct: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(&seq.to_be_bytes());
        ctx.update(header_iv_ct);
        ctx.sign()
    }
}

/// Seals records in one direction. (Cloned only by the fuzz targets, to
/// seal as a peer would from a cached handshake.)
#[cfg_attr(feature = "internals", derive(Clone))]
pub struct RecordSealer {
    keys: DirectionKeys,
    seq: u64,
}

impl RecordSealer {
    pub fn new(traffic_secret: Secret) -> Self {
        Self {
            keys: DirectionKeys::new(traffic_secret),
            seq: 0,
        }
    }

    /// Appends one record frame to `out`. `iv` must be fresh, unpredictable
    /// randomness (NIST SP 800-38A §5.3).
    pub fn seal(
        &mut self,
        content_type: ContentType,
        payload: &[u8],
        iv: [u8; IV_LEN],
        out: &mut Vec<u8>,
    ) -> Result<(), PeerMisbehaved> {
        if self.seq == u64::MAX {
            return Err(PeerMisbehaved::SequenceExhausted);
        }
        let start = out.len();
        let header = FrameHeader {
            frame_type: FrameType::Record,
            body_len: (RECORD_OVERHEAD + payload.len()) as u32,
        };
        out.reserve(header.frame_len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&iv);
        let ct_start = out.len();
        out.push(content_type as u8);
        out.extend_from_slice(payload);
        cfb_mode::Encryptor::<&Aes256Enc>::inner_iv_init(&self.keys.cipher, (&iv).into())
            .encrypt(&mut out[ct_start..]);
        let tag = self.keys.tag(self.seq, &out[start..]);
        out.extend_from_slice(tag.as_ref());
        self.seq += 1;
        self.keys.records += 1;
        self.keys.bytes += payload.len() as u64;
        Ok(())
    }

    /// Whether the policy says it is time to send a KeyUpdate.
    pub fn update_due(&self, policy: &KeyUpdatePolicy) -> bool {
        self.keys.records >= policy.max_records || self.keys.bytes >= policy.max_bytes
    }

    /// Switches to the next generation (after sealing the KeyUpdate record).
    pub fn ratchet(&mut self) {
        self.keys.ratchet();
    }
}

/// Opens records in one direction.
pub struct RecordOpener {
    keys: DirectionKeys,
    seq: u64,
    scratch: Vec<u8>,
}

impl RecordOpener {
    pub fn new(traffic_secret: Secret) -> Self {
        Self {
            keys: DirectionKeys::new(traffic_secret),
            seq: 0,
            scratch: Vec::new(),
        }
    }

    /// Verifies and decrypts one whole record frame (header included).
    /// Returns the content type and the payload, borrowed from an internal
    /// buffer that the next call reuses.
    pub fn open(
        &mut self,
        frame: &[u8],
        receive_limit: u64,
    ) -> Result<(ContentType, &[u8]), PeerMisbehaved> {
        if frame.len() < HEADER_LEN + RECORD_OVERHEAD {
            return Err(PeerMisbehaved::RecordTooShort);
        }
        if self.seq == u64::MAX {
            return Err(PeerMisbehaved::SequenceExhausted);
        }
        if self.keys.records >= receive_limit {
            return Err(PeerMisbehaved::KeyUpdateOverdue);
        }
        let (authenticated, tag) = frame.split_at(frame.len() - TAG_LEN);
        let expected = self.keys.tag(self.seq, authenticated);
        if !bool::from(expected.as_ref().ct_eq(tag)) {
            return Err(PeerMisbehaved::BadRecordMac);
        }
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&authenticated[HEADER_LEN..HEADER_LEN + IV_LEN]);
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&authenticated[HEADER_LEN + IV_LEN..]);
        cfb_mode::Decryptor::<&Aes256Enc>::inner_iv_init(&self.keys.cipher, (&iv).into())
            .decrypt(&mut self.scratch);
        self.seq += 1;
        self.keys.records += 1;
        let content_type = ContentType::from_byte(self.scratch[0])?;
        self.keys.bytes += (self.scratch.len() - 1) as u64;
        Ok((content_type, &self.scratch[1..]))
    }

    /// Switches to the next generation (after opening the peer's KeyUpdate).
    pub fn ratchet(&mut self) {
        self.keys.ratchet();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn pair() -> (RecordSealer, RecordOpener) {
        let ts = Zeroizing::new([9u8; 32]);
        (RecordSealer::new(ts.clone()), RecordOpener::new(ts))
    }

    #[test]
    fn aes256_cfb128_matches_nist_sp800_38a_f3_17_and_f3_18() {
        let key = hex::decode("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
            .unwrap();
        let iv = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let plain = hex::decode(concat!(
            "6bc1bee22e409f96e93d7e117393172a",
            "ae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52ef",
            "f69f2445df4f9b17ad2b417be66c3710"
        ))
        .unwrap();
        let cipher_hex = concat!(
            "dc7e84bfda79164b7ecd8486985d3860",
            "39ffed143b28b1c832113c6331e5407b",
            "df10132415e54b92a13ed0a8267ae2f9",
            "75a385741ab9cef82031623d55b1e471"
        );
        let cipher = Aes256Enc::new(key.as_slice().into());
        let mut buf = plain.clone();
        cfb_mode::Encryptor::<Aes256Enc>::inner_iv_init(cipher.clone(), iv.as_slice().into())
            .encrypt(&mut buf);
        assert_eq!(hex::encode(&buf), cipher_hex);
        cfb_mode::Decryptor::<Aes256Enc>::inner_iv_init(cipher, iv.as_slice().into())
            .decrypt(&mut buf);
        assert_eq!(buf, plain);
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_test_cases_1_and_2() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[0x0b; 20]);
        assert_eq!(
            hex::encode(hmac::sign(&key, b"Hi There").as_ref()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            hex::encode(hmac::sign(&key, b"what do ya want for nothing?").as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn records_round_trip_in_order() {
        let (mut s, mut o) = pair();
        let mut wire = Vec::new();
        s.seal(ContentType::Application, b"hello", [1; 16], &mut wire)
            .unwrap();
        let first_len = wire.len();
        s.seal(ContentType::Application, b"world", [2; 16], &mut wire)
            .unwrap();
        let (ct, p) = o.open(&wire[..first_len], u64::MAX).unwrap();
        assert_eq!((ct, p), (ContentType::Application, &b"hello"[..]));
        let (_, p) = o.open(&wire[first_len..], u64::MAX).unwrap();
        assert_eq!(p, b"world");
    }

    #[test]
    fn flipping_any_bit_of_a_record_is_detected() {
        let (mut s, _) = pair();
        let mut wire = Vec::new();
        s.seal(
            ContentType::Application,
            b"attack at dawn",
            [7; 16],
            &mut wire,
        )
        .unwrap();
        for byte in 0..wire.len() {
            for bit in 0..8 {
                let mut tampered = wire.clone();
                tampered[byte] ^= 1 << bit;
                let (_, mut o) = pair();
                assert!(
                    o.open(&tampered, u64::MAX).is_err(),
                    "flip of bit {bit} of byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn replayed_and_reordered_records_fail_the_mac() {
        let (mut s, mut o) = pair();
        let mut a = Vec::new();
        let mut b = Vec::new();
        s.seal(ContentType::Application, b"one", [1; 16], &mut a)
            .unwrap();
        s.seal(ContentType::Application, b"two", [2; 16], &mut b)
            .unwrap();
        // Reorder: the second record first.
        assert_eq!(o.open(&b, u64::MAX), Err(PeerMisbehaved::BadRecordMac));
        // Replay: the first, accepted, then again.
        let (_, mut o) = pair();
        o.open(&a, u64::MAX).unwrap();
        assert_eq!(o.open(&a, u64::MAX), Err(PeerMisbehaved::BadRecordMac));
    }

    #[test]
    fn ratcheted_keys_change_and_stay_in_step() {
        let (mut s, mut o) = pair();
        let mut w1 = Vec::new();
        s.seal(ContentType::Application, b"same", [3; 16], &mut w1)
            .unwrap();
        s.ratchet();
        o.open(&w1, u64::MAX).unwrap();
        let mut w2 = Vec::new();
        s.seal(ContentType::Application, b"same", [3; 16], &mut w2)
            .unwrap();
        // Old-generation opener rejects the new-generation record.
        let mut stale_opener = RecordOpener::new(Zeroizing::new([9u8; 32]));
        stale_opener.seq = 1;
        assert!(stale_opener.open(&w2, u64::MAX).is_err());
        o.ratchet();
        assert_eq!(o.open(&w2, u64::MAX).unwrap().1, b"same");
    }

    #[test]
    fn receiver_enforces_the_key_update_limit() {
        let (mut s, mut o) = pair();
        for i in 0..3u8 {
            let mut w = Vec::new();
            s.seal(ContentType::Application, &[i], [i; 16], &mut w)
                .unwrap();
            let r = o.open(&w, 2);
            if i < 2 {
                assert!(r.is_ok());
            } else {
                assert_eq!(r, Err(PeerMisbehaved::KeyUpdateOverdue));
            }
        }
    }
}
