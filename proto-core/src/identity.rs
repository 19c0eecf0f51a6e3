//! The server's long-term Ed25519 identity, its public key as clients pin
//! it, and the fingerprint people compare.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

/// An Ed25519 public key of a server (32 bytes, RFC 8032 encoding).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerKey(pub [u8; 32]);

impl ServerKey {
    /// `SHA256:` followed by the unpadded base64 of SHA-256 over the 32 key
    /// bytes (OpenSSH's look; note OpenSSH hashes its own key blob instead).
    pub fn fingerprint(&self) -> Fingerprint {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }

    pub(crate) fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, sig)
            .is_ok()
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerKey({})", self.fingerprint())
    }
}

/// SHA-256 of a server key; displayed and parsed as `SHA256:<base64>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not a `SHA256:<base64>` fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a fingerprint: expected SHA256: followed by 43 base64 characters")]
pub struct InvalidFingerprint;

impl FromStr for Fingerprint {
    type Err = InvalidFingerprint;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b64 = s.trim().strip_prefix("SHA256:").ok_or(InvalidFingerprint)?;
        let bytes = STANDARD_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|_| InvalidFingerprint)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| InvalidFingerprint)?;
        Ok(Fingerprint(arr))
    }
}

/// The server's signing key. Built from a 32-byte seed that the server keeps
/// in a file only it can read.
pub struct ServerIdentity {
    key_pair: Ed25519KeyPair,
    public: ServerKey,
}

impl ServerIdentity {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let seed = Zeroizing::new(*seed);
        // from_seed_unchecked cannot fail for a 32-byte seed.
        let key_pair = Ed25519KeyPair::from_seed_unchecked(&seed[..])
            .expect("a 32-byte Ed25519 seed is always valid");
        let mut pk = [0u8; 32];
        pk.copy_from_slice(key_pair.public_key().as_ref());
        Self {
            key_pair,
            public: ServerKey(pk),
        }
    }

    pub fn public_key(&self) -> ServerKey {
        self.public
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.key_pair.sign(message).as_ref());
        out
    }
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerIdentity({})", self.public.fingerprint())
    }
}

/// What the client expects of the server's identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTrust {
    /// The key pinned at an earlier connection (known-servers file).
    Pinned(ServerKey),
    /// A fingerprint the user supplied out of band.
    Fingerprint(Fingerprint),
    /// Nothing known: the application is asked (trust on first use).
    FirstUse,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_through_its_text_form() {
        let id = ServerIdentity::from_seed(&[3u8; 32]);
        let fp = id.public_key().fingerprint();
        let text = fp.to_string();
        assert!(text.starts_with("SHA256:"));
        assert_eq!(text.len(), 7 + 43);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        assert!("SHA256:abc".parse::<Fingerprint>().is_err());
        assert!("MD5:xyz".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn rfc8032_test_1_public_key_and_signature() {
        // RFC 8032 §7.1 TEST 1 (empty message).
        let seed: [u8; 32] =
            hex_lit("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let id = ServerIdentity::from_seed(&seed);
        assert_eq!(
            id.public_key().0.to_vec(),
            hex_lit::<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .to_vec()
        );
        let sig = id.sign(b"");
        assert_eq!(
            sig.to_vec(),
            hex_lit::<64>(concat!(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155",
                "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            ))
            .to_vec()
        );
        assert!(id.public_key().verify(b"", &sig));
        assert!(!id.public_key().verify(b"x", &sig));
    }

    fn hex_lit<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
