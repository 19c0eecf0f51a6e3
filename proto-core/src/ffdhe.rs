//! Finite-field Diffie-Hellman over the RFC 7919 `ffdhe3072` group.
//!
//! The group is a safe prime `p = 2q + 1` with generator `g = 2`. A peer's
//! public value is accepted only if `1 < Y < p - 1` (RFC 7919 §5.1). The full
//! subgroup check `Y^q ≡ 1 (mod p)` is deliberately *not* done: for a safe
//! prime it only removes a one-bit Legendre-symbol leak about an ephemeral,
//! never-reused exponent, and it costs a full 3071-bit exponentiation
//! (~12 ms here, ten times the rest of the server's DH work), which would hand
//! a handshake flood a 10x amplification. See docs/PROTOCOL.md §Key exchange.
//!
//! num-bigint's `modpow` is not constant time; exponents are fresh per
//! handshake, fixed length, and the X25519 and ML-KEM halves of the hybrid
//! still protect the session if timing leaks one.

use num_bigint::BigUint;
use zeroize::Zeroizing;

use crate::error::HandshakeError;

/// Length in bytes of `p`, of every encoded public value and of the shared secret.
pub const FFDHE3072_BYTES: usize = 384;
/// Length in bytes of the secret exponent: 320 bits, above the 275-bit minimum
/// RFC 7919 §5.2 gives for ffdhe3072.
pub const EXPONENT_BYTES: usize = 40;

/// The ffdhe3072 prime, RFC 7919 Appendix A.2, big-endian.
pub const P_BYTES: [u8; FFDHE3072_BYTES] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xad, 0xf8, 0x54, 0x58, 0xa2, 0xbb, 0x4a, 0x9a,
    0xaf, 0xdc, 0x56, 0x20, 0x27, 0x3d, 0x3c, 0xf1, 0xd8, 0xb9, 0xc5, 0x83, 0xce, 0x2d, 0x36, 0x95,
    0xa9, 0xe1, 0x36, 0x41, 0x14, 0x64, 0x33, 0xfb, 0xcc, 0x93, 0x9d, 0xce, 0x24, 0x9b, 0x3e, 0xf9,
    0x7d, 0x2f, 0xe3, 0x63, 0x63, 0x0c, 0x75, 0xd8, 0xf6, 0x81, 0xb2, 0x02, 0xae, 0xc4, 0x61, 0x7a,
    0xd3, 0xdf, 0x1e, 0xd5, 0xd5, 0xfd, 0x65, 0x61, 0x24, 0x33, 0xf5, 0x1f, 0x5f, 0x06, 0x6e, 0xd0,
    0x85, 0x63, 0x65, 0x55, 0x3d, 0xed, 0x1a, 0xf3, 0xb5, 0x57, 0x13, 0x5e, 0x7f, 0x57, 0xc9, 0x35,
    0x98, 0x4f, 0x0c, 0x70, 0xe0, 0xe6, 0x8b, 0x77, 0xe2, 0xa6, 0x89, 0xda, 0xf3, 0xef, 0xe8, 0x72,
    0x1d, 0xf1, 0x58, 0xa1, 0x36, 0xad, 0xe7, 0x35, 0x30, 0xac, 0xca, 0x4f, 0x48, 0x3a, 0x79, 0x7a,
    0xbc, 0x0a, 0xb1, 0x82, 0xb3, 0x24, 0xfb, 0x61, 0xd1, 0x08, 0xa9, 0x4b, 0xb2, 0xc8, 0xe3, 0xfb,
    0xb9, 0x6a, 0xda, 0xb7, 0x60, 0xd7, 0xf4, 0x68, 0x1d, 0x4f, 0x42, 0xa3, 0xde, 0x39, 0x4d, 0xf4,
    0xae, 0x56, 0xed, 0xe7, 0x63, 0x72, 0xbb, 0x19, 0x0b, 0x07, 0xa7, 0xc8, 0xee, 0x0a, 0x6d, 0x70,
    0x9e, 0x02, 0xfc, 0xe1, 0xcd, 0xf7, 0xe2, 0xec, 0xc0, 0x34, 0x04, 0xcd, 0x28, 0x34, 0x2f, 0x61,
    0x91, 0x72, 0xfe, 0x9c, 0xe9, 0x85, 0x83, 0xff, 0x8e, 0x4f, 0x12, 0x32, 0xee, 0xf2, 0x81, 0x83,
    0xc3, 0xfe, 0x3b, 0x1b, 0x4c, 0x6f, 0xad, 0x73, 0x3b, 0xb5, 0xfc, 0xbc, 0x2e, 0xc2, 0x20, 0x05,
    0xc5, 0x8e, 0xf1, 0x83, 0x7d, 0x16, 0x83, 0xb2, 0xc6, 0xf3, 0x4a, 0x26, 0xc1, 0xb2, 0xef, 0xfa,
    0x88, 0x6b, 0x42, 0x38, 0x61, 0x1f, 0xcf, 0xdc, 0xde, 0x35, 0x5b, 0x3b, 0x65, 0x19, 0x03, 0x5b,
    0xbc, 0x34, 0xf4, 0xde, 0xf9, 0x9c, 0x02, 0x38, 0x61, 0xb4, 0x6f, 0xc9, 0xd6, 0xe6, 0xc9, 0x07,
    0x7a, 0xd9, 0x1d, 0x26, 0x91, 0xf7, 0xf7, 0xee, 0x59, 0x8c, 0xb0, 0xfa, 0xc1, 0x86, 0xd9, 0x1c,
    0xae, 0xfe, 0x13, 0x09, 0x85, 0x13, 0x92, 0x70, 0xb4, 0x13, 0x0c, 0x93, 0xbc, 0x43, 0x79, 0x44,
    0xf4, 0xfd, 0x44, 0x52, 0xe2, 0xd7, 0x4d, 0xd3, 0x64, 0xf2, 0xe2, 0x1e, 0x71, 0xf5, 0x4b, 0xff,
    0x5c, 0xae, 0x82, 0xab, 0x9c, 0x9d, 0xf6, 0x9e, 0xe8, 0x6d, 0x2b, 0xc5, 0x22, 0x36, 0x3a, 0x0d,
    0xab, 0xc5, 0x21, 0x97, 0x9b, 0x0d, 0xea, 0xda, 0x1d, 0xbf, 0x9a, 0x42, 0xd5, 0xc4, 0x48, 0x4e,
    0x0a, 0xbc, 0xd0, 0x6b, 0xfa, 0x53, 0xdd, 0xef, 0x3c, 0x1b, 0x20, 0xee, 0x3f, 0xd5, 0x9d, 0x7c,
    0x25, 0xe4, 0x1d, 0x2b, 0x66, 0xc6, 0x2e, 0x37, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

fn prime() -> &'static BigUint {
    use std::sync::OnceLock;
    static P: OnceLock<BigUint> = OnceLock::new();
    P.get_or_init(|| BigUint::from_bytes_be(&P_BYTES))
}

/// An ephemeral ffdhe3072 key pair. The exponent is zeroized on drop (as far
/// as the big-integer copies num-bigint makes internally allow).
pub struct FfdheKeyPair {
    exponent: Zeroizing<[u8; EXPONENT_BYTES]>,
    public: [u8; FFDHE3072_BYTES],
}

impl FfdheKeyPair {
    /// Builds the key pair from `EXPONENT_BYTES` of fresh randomness, used
    /// as a big-endian exponent. An all-zero draw (probability 2^-320) is
    /// bumped to one so the public value is never 1.
    pub fn from_exponent(mut exponent: [u8; EXPONENT_BYTES]) -> Self {
        if exponent.iter().all(|&b| b == 0) {
            exponent[EXPONENT_BYTES - 1] = 1;
        }
        let x = BigUint::from_bytes_be(&exponent);
        let y = BigUint::from(2u32).modpow(&x, prime());
        let exponent = Zeroizing::new(exponent);
        Self {
            exponent,
            public: left_pad(&y),
        }
    }

    /// `g^x mod p`, left-padded to 384 bytes.
    pub fn public(&self) -> &[u8; FFDHE3072_BYTES] {
        &self.public
    }

    /// Checks the peer's value and computes `Y^x mod p`, left-padded to 384
    /// bytes (RFC 8446 §7.4.1).
    pub fn agree(&self, peer: &[u8]) -> Result<Zeroizing<[u8; FFDHE3072_BYTES]>, HandshakeError> {
        let y = validate_public(peer)?;
        let x = BigUint::from_bytes_be(&self.exponent[..]);
        let z = y.modpow(&x, prime());
        Ok(Zeroizing::new(left_pad(&z)))
    }
}

/// Range check of RFC 7919 §5.1: exactly 384 bytes and `1 < Y < p - 1`.
pub fn validate_public(peer: &[u8]) -> Result<BigUint, HandshakeError> {
    if peer.len() != FFDHE3072_BYTES {
        return Err(HandshakeError::InvalidFfdhePublic);
    }
    let y = BigUint::from_bytes_be(peer);
    let p_minus_1 = prime() - 1u32;
    if y <= BigUint::from(1u32) || y >= p_minus_1 {
        return Err(HandshakeError::InvalidFfdhePublic);
    }
    Ok(y)
}

fn left_pad(n: &BigUint) -> [u8; FFDHE3072_BYTES] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; FFDHE3072_BYTES];
    out[FFDHE3072_BYTES - bytes.len()..].copy_from_slice(&bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(n: &BigUint) -> Vec<u8> {
        left_pad(n).to_vec()
    }

    #[test]
    fn prime_is_the_rfc7919_constant() {
        // p = 2^3072 - 2^3008 + {[2^2942 * e] + 2625351} * 2^64 - 1: spot-check
        // the structure (top and bottom 64 bits all ones, bit length 3072).
        let p = prime();
        assert_eq!(p.bits(), 3072);
        assert!(P_BYTES[..8].iter().all(|&b| b == 0xff));
        assert!(P_BYTES[FFDHE3072_BYTES - 8..].iter().all(|&b| b == 0xff));
        // Fermat test base 3 with an independent modpow chain: 3^(p-1) == 1.
        assert_eq!(
            BigUint::from(3u32).modpow(&(p - 1u32), p),
            BigUint::from(1u32)
        );
    }

    #[test]
    fn both_sides_agree() {
        let a = FfdheKeyPair::from_exponent([7u8; EXPONENT_BYTES]);
        let b = FfdheKeyPair::from_exponent([9u8; EXPONENT_BYTES]);
        assert_eq!(*a.agree(b.public()).unwrap(), *b.agree(a.public()).unwrap());
    }

    #[test]
    fn shared_secret_matches_independent_oracle() {
        // Oracle: square-and-multiply written here, independent of modpow.
        fn slow_pow(base: &BigUint, exp: &[u8], m: &BigUint) -> BigUint {
            let mut acc = BigUint::from(1u32);
            for byte in exp {
                for bit in (0..8).rev() {
                    acc = (&acc * &acc) % m;
                    if (byte >> bit) & 1 == 1 {
                        acc = (&acc * base) % m;
                    }
                }
            }
            acc
        }
        let xa = [0x5au8; EXPONENT_BYTES];
        let xb = [0xa5u8; EXPONENT_BYTES];
        let a = FfdheKeyPair::from_exponent(xa);
        let b = FfdheKeyPair::from_exponent(xb);
        let ya = slow_pow(&BigUint::from(2u32), &xa, prime());
        assert_eq!(a.public().to_vec(), be(&ya));
        let z = slow_pow(&ya, &xb, prime());
        assert_eq!(b.agree(a.public()).unwrap().to_vec(), be(&z));
    }

    #[test]
    fn invalid_public_values_are_refused() {
        let kp = FfdheKeyPair::from_exponent([1u8; EXPONENT_BYTES]);
        let p = prime().clone();
        let bad = [
            BigUint::from(0u32),
            BigUint::from(1u32),
            &p - 1u32,
            p.clone(),
            &p + 1u32,
        ];
        for y in bad {
            let enc = y.to_bytes_be();
            let mut padded = vec![0u8; FFDHE3072_BYTES.saturating_sub(enc.len())];
            padded.extend_from_slice(&enc);
            assert!(kp.agree(&padded).is_err(), "accepted {y}");
        }
        // All 0xff (>= p) and wrong lengths.
        assert!(kp.agree(&[0xff; FFDHE3072_BYTES]).is_err());
        assert!(kp.agree(&[2u8; FFDHE3072_BYTES - 1]).is_err());
        assert!(kp.agree(&[2u8; FFDHE3072_BYTES + 1]).is_err());
        assert!(kp.agree(&[]).is_err());
        // 2 and p - 2 are the extremes that pass.
        let mut two = [0u8; FFDHE3072_BYTES];
        two[FFDHE3072_BYTES - 1] = 2;
        assert!(kp.agree(&two).is_ok());
        assert!(kp.agree(&be(&(&p - 2u32))).is_ok());
    }
}
