//! The hybrid key exchange: ffdhe3072, X25519 and ML-KEM-768, combined by
//! concatenating their shared secrets into one HKDF-Extract input, so the
//! session keys stay secret as long as any one of the three holds.
//!
//! X25519 uses `x25519-dalek` rather than `ring`: ring only generates
//! X25519 keys from its own sealed OS random source, which a sans-IO core
//! with injected randomness (and published test vectors) cannot use.

use ml_kem::kem::{Decapsulate, DecapsulationKey, EncapsulationKey};
use ml_kem::{EncapsulateDeterministic, EncodedSizeUser, KemCore, MlKem768, MlKem768Params};
use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::HandshakeError;
use crate::ffdhe::{FfdheKeyPair, EXPONENT_BYTES, FFDHE3072_BYTES};
use crate::resumption::ResumptionPsk;

pub const X25519_BYTES: usize = 32;
pub const MLKEM768_EK_BYTES: usize = 1184;
pub const MLKEM768_CT_BYTES: usize = 1088;
/// ffdhe (384) || X25519 (32) || ML-KEM (32).
pub const IKM_BYTES: usize = FFDHE3072_BYTES + 32 + 32;
/// A resumed handshake's: resumption key (32) || X25519 (32) || ML-KEM (32).
pub const RESUMED_IKM_BYTES: usize = 32 + 32 + 32;

const MLKEM_Q: u16 = 3329;

/// The client's ephemeral secrets for one handshake (no ffdhe3072 pair in
/// a resumed one).
pub struct ClientShares {
    ffdhe: Option<FfdheKeyPair>,
    x25519: StaticSecret,
    x25519_public: [u8; X25519_BYTES],
    mlkem_dk: DecapsulationKey<MlKem768Params>,
    mlkem_ek: Vec<u8>,
}

impl ClientShares {
    /// Draws, in this order: 40 bytes ffdhe exponent, 32 bytes X25519
    /// scalar, 32 bytes ML-KEM `d`, 32 bytes ML-KEM `z` (FIPS 203 KeyGen).
    pub fn generate(rng: &mut dyn CryptoRngCore) -> Self {
        let mut exp = [0u8; EXPONENT_BYTES];
        rng.fill_bytes(&mut exp);
        let ffdhe = FfdheKeyPair::from_exponent(exp);
        Self::generate_ecdh_kem(rng, Some(ffdhe))
    }

    /// The shares of a resumed handshake: as [`generate`](Self::generate)
    /// without the ffdhe exponent (32 bytes X25519 scalar, then ML-KEM `d`
    /// and `z`).
    pub fn generate_resumed(rng: &mut dyn CryptoRngCore) -> Self {
        Self::generate_ecdh_kem(rng, None)
    }

    fn generate_ecdh_kem(rng: &mut dyn CryptoRngCore, ffdhe: Option<FfdheKeyPair>) -> Self {
        let mut x = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut x[..]);
        let x25519 = StaticSecret::from(*x);
        let x25519_public = PublicKey::from(&x25519).to_bytes();
        let mut d = Zeroizing::new([0u8; 32]);
        let mut z = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut d[..]);
        rng.fill_bytes(&mut z[..]);
        let (mlkem_dk, ek) = MlKem768::generate_deterministic(&(*d).into(), &(*z).into());
        Self {
            ffdhe,
            x25519,
            x25519_public,
            mlkem_dk,
            mlkem_ek: ek.as_bytes().to_vec(),
        }
    }

    /// The ffdhe3072 public value (empty in a resumed handshake).
    pub fn ffdhe_public(&self) -> &[u8] {
        match &self.ffdhe {
            Some(pair) => &pair.public()[..],
            None => &[],
        }
    }
    pub fn x25519_public(&self) -> &[u8; X25519_BYTES] {
        &self.x25519_public
    }
    pub fn mlkem_encapsulation_key(&self) -> &[u8] {
        &self.mlkem_ek
    }

    /// Combines the server's shares into the 448-byte IKM.
    pub fn finish(
        &self,
        server_ffdhe: &[u8],
        server_x25519: &[u8; X25519_BYTES],
        mlkem_ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HandshakeError> {
        let Some(ffdhe) = &self.ffdhe else {
            return Err(HandshakeError::MalformedHello);
        };
        let ff = ffdhe.agree(server_ffdhe)?;
        self.finish_with(&ff[..], server_x25519, mlkem_ct)
    }

    /// Combines the server's shares of a resumed handshake with the
    /// resumption key into the 96-byte IKM.
    pub fn finish_resumed(
        &self,
        psk: &ResumptionPsk,
        server_x25519: &[u8; X25519_BYTES],
        mlkem_ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HandshakeError> {
        self.finish_with(psk.expose(), server_x25519, mlkem_ct)
    }

    fn finish_with(
        &self,
        first: &[u8],
        server_x25519: &[u8; X25519_BYTES],
        mlkem_ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HandshakeError> {
        let x = x25519_agree(&self.x25519, server_x25519)?;
        let ct = ml_kem::Ciphertext::<MlKem768>::try_from(mlkem_ct)
            .map_err(|_| HandshakeError::MalformedHello)?;
        // ML-KEM decapsulation never fails on a well-sized ciphertext: a
        // forged one yields an unrelated secret (implicit rejection), so the
        // server's Finished then fails to verify.
        let k = self
            .mlkem_dk
            .decapsulate(&ct)
            .map_err(|_| HandshakeError::MalformedHello)?;
        Ok(ikm(first, &x[..], k.as_slice()))
    }
}

/// What the server sends back, and the shared IKM it computed.
pub struct ServerShares {
    /// Empty in a resumed handshake.
    pub ffdhe_public: Vec<u8>,
    pub x25519_public: [u8; X25519_BYTES],
    pub mlkem_ciphertext: Vec<u8>,
    pub ikm: Zeroizing<Vec<u8>>,
}

impl ServerShares {
    /// Validates the client's shares and answers them. Draws, in this order:
    /// 40 bytes ffdhe exponent, 32 bytes X25519 scalar, 32 bytes ML-KEM `m`.
    pub fn respond(
        rng: &mut dyn CryptoRngCore,
        client_ffdhe: &[u8],
        client_x25519: &[u8; X25519_BYTES],
        client_mlkem_ek: &[u8],
    ) -> Result<Self, HandshakeError> {
        // Cheap checks first, so a flood of garbage costs no modpow.
        crate::ffdhe::validate_public(client_ffdhe)?;
        check_mlkem_encapsulation_key(client_mlkem_ek)?;
        let mut exp = [0u8; EXPONENT_BYTES];
        rng.fill_bytes(&mut exp);
        let (x25519_public, mlkem_ciphertext, x_shared, k) =
            ecdh_kem_respond(rng, client_x25519, client_mlkem_ek)?;
        let ffdhe = FfdheKeyPair::from_exponent(exp);
        let ff = ffdhe.agree(client_ffdhe)?;
        Ok(Self {
            ffdhe_public: ffdhe.public().to_vec(),
            x25519_public,
            mlkem_ciphertext,
            ikm: ikm(&ff[..], &x_shared[..], &k[..]),
        })
    }

    /// Answers a resumed handshake's shares, with `psk` in place of the
    /// ffdhe3072 secret. Draws 32 bytes X25519 scalar, then 32 bytes
    /// ML-KEM `m`.
    pub fn respond_resumed(
        rng: &mut dyn CryptoRngCore,
        psk: &ResumptionPsk,
        client_x25519: &[u8; X25519_BYTES],
        client_mlkem_ek: &[u8],
    ) -> Result<Self, HandshakeError> {
        check_mlkem_encapsulation_key(client_mlkem_ek)?;
        let (x25519_public, mlkem_ciphertext, x_shared, k) =
            ecdh_kem_respond(rng, client_x25519, client_mlkem_ek)?;
        let ikm = ikm(psk.expose(), &x_shared[..], &k[..]);
        debug_assert_eq!(ikm.len(), RESUMED_IKM_BYTES);
        Ok(Self {
            ffdhe_public: Vec::new(),
            x25519_public,
            mlkem_ciphertext,
            ikm,
        })
    }
}

type EcdhKemAnswer = (
    [u8; X25519_BYTES],
    Vec<u8>,
    Zeroizing<[u8; 32]>,
    Zeroizing<[u8; 32]>,
);

/// The X25519 and ML-KEM halves of the server's answer: its X25519 public
/// value, the ML-KEM ciphertext, and the two shared secrets.
fn ecdh_kem_respond(
    rng: &mut dyn CryptoRngCore,
    client_x25519: &[u8; X25519_BYTES],
    client_mlkem_ek: &[u8],
) -> Result<EcdhKemAnswer, HandshakeError> {
    let mut x = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut x[..]);
    let mut m = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut m[..]);
    let x25519 = StaticSecret::from(*x);
    let x_shared = x25519_agree(&x25519, client_x25519)?;
    let ek_bytes = ml_kem::Encoded::<EncapsulationKey<MlKem768Params>>::try_from(client_mlkem_ek)
        .map_err(|_| HandshakeError::InvalidMlKemKey)?;
    let ek = EncapsulationKey::<MlKem768Params>::from_bytes(&ek_bytes);
    let (ct, k) = ek
        .encapsulate_deterministic(&(*m).into())
        .map_err(|_| HandshakeError::InvalidMlKemKey)?;
    let mut shared = Zeroizing::new([0u8; 32]);
    shared.copy_from_slice(k.as_slice());
    Ok((
        PublicKey::from(&x25519).to_bytes(),
        ct.to_vec(),
        x_shared,
        shared,
    ))
}

fn x25519_agree(
    secret: &StaticSecret,
    peer: &[u8; X25519_BYTES],
) -> Result<Zeroizing<[u8; 32]>, HandshakeError> {
    let shared = secret.diffie_hellman(&PublicKey::from(*peer));
    // Rejects low-order points: the all-zero result (RFC 7748 §6.1).
    if !shared.was_contributory() {
        return Err(HandshakeError::InvalidX25519Public);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

fn ikm(ffdhe: &[u8], x25519: &[u8], mlkem: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(IKM_BYTES));
    out.extend_from_slice(ffdhe);
    out.extend_from_slice(x25519);
    out.extend_from_slice(mlkem);
    out
}

/// FIPS 203 §7.2 encapsulation key check: right length, and every 12-bit
/// coefficient of the encoded vector `t` is below q = 3329
/// (ByteEncode12(ByteDecode12(ek)) == ek).
pub fn check_mlkem_encapsulation_key(ek: &[u8]) -> Result<(), HandshakeError> {
    if ek.len() != MLKEM768_EK_BYTES {
        return Err(HandshakeError::InvalidMlKemKey);
    }
    for c in ek[..MLKEM768_EK_BYTES - 32].chunks_exact(3) {
        let a = u16::from(c[0]) | (u16::from(c[1] & 0x0f) << 8);
        let b = u16::from(c[1] >> 4) | (u16::from(c[2]) << 4);
        if a >= MLKEM_Q || b >= MLKEM_Q {
            return Err(HandshakeError::InvalidMlKemKey);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn both_sides_derive_the_same_448_byte_secret() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let c = ClientShares::generate(&mut rng);
        let s = ServerShares::respond(
            &mut rng,
            c.ffdhe_public(),
            c.x25519_public(),
            c.mlkem_encapsulation_key(),
        )
        .unwrap();
        let ikm = c
            .finish(&s.ffdhe_public, &s.x25519_public, &s.mlkem_ciphertext)
            .unwrap();
        assert_eq!(ikm.len(), IKM_BYTES);
        assert_eq!(*ikm, *s.ikm);
    }

    #[test]
    fn a_resumed_exchange_puts_the_key_first_and_draws_no_ffdhe_exponent() {
        use crate::message::ResumeToken;
        let psk = ResumptionPsk::from_token(&ResumeToken::from_bytes([3; 32]));
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let c = ClientShares::generate_resumed(&mut rng);
        assert!(c.ffdhe_public().is_empty());
        let s = ServerShares::respond_resumed(
            &mut rng,
            &psk,
            c.x25519_public(),
            c.mlkem_encapsulation_key(),
        )
        .unwrap();
        assert!(s.ffdhe_public.is_empty());
        let ikm = c
            .finish_resumed(&psk, &s.x25519_public, &s.mlkem_ciphertext)
            .unwrap();
        assert_eq!(ikm.len(), RESUMED_IKM_BYTES);
        assert_eq!(*ikm, *s.ikm);
        assert_eq!(&ikm[..32], psk.expose());
        // A resumed client cannot finish a full exchange (it has no ffdhe).
        assert_eq!(
            c.finish(&[2u8; FFDHE3072_BYTES], &s.x25519_public, &s.mlkem_ciphertext)
                .err(),
            Some(HandshakeError::MalformedHello)
        );
    }

    #[test]
    fn low_order_x25519_points_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let c = ClientShares::generate(&mut rng);
        // The zero point and the order-8 point of RFC 7748 / Wycheproof.
        let mut order8 = [0u8; 32];
        order8.copy_from_slice(
            &hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
                .unwrap(),
        );
        for bad in [[0u8; 32], order8] {
            let r = ServerShares::respond(
                &mut rng,
                c.ffdhe_public(),
                &bad,
                c.mlkem_encapsulation_key(),
            );
            assert_eq!(r.err(), Some(HandshakeError::InvalidX25519Public));
        }
    }

    #[test]
    fn malformed_mlkem_keys_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let c = ClientShares::generate(&mut rng);
        let ek = c.mlkem_encapsulation_key();
        assert!(check_mlkem_encapsulation_key(ek).is_ok());
        let mut over_q = ek.to_vec();
        over_q[0] = 0xff;
        over_q[1] |= 0x0f; // first coefficient = 0xfff >= 3329
        for bad in [&over_q[..], &ek[..ek.len() - 1], &[]] {
            let r = ServerShares::respond(&mut rng, c.ffdhe_public(), c.x25519_public(), bad);
            assert_eq!(r.err(), Some(HandshakeError::InvalidMlKemKey));
        }
    }

    #[test]
    fn forged_mlkem_ciphertext_gives_a_different_secret() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let c = ClientShares::generate(&mut rng);
        let s = ServerShares::respond(
            &mut rng,
            c.ffdhe_public(),
            c.x25519_public(),
            c.mlkem_encapsulation_key(),
        )
        .unwrap();
        let mut ct = s.mlkem_ciphertext.clone();
        ct[10] ^= 1;
        let ikm = c.finish(&s.ffdhe_public, &s.x25519_public, &ct).unwrap();
        assert_ne!(*ikm, *s.ikm);
        assert!(c
            .finish(&s.ffdhe_public, &s.x25519_public, &ct[..100])
            .is_err());
    }
}
