//! Resumed handshakes (docs/PROTOCOL.md §Resumed handshake): a client
//! holding a resume token skips the ffdhe3072 exchange, the costly half of
//! the full handshake (two 3072-bit exponentiations on each side), and puts
//! a key both sides already hold in its place.
//!
//! That key is `SHA-256(resume token)`: what the server keeps of each token
//! anyway, so a resumed handshake needs no new state on either side and
//! survives a server restart exactly as the tokens do. The ClientHello
//! names it by a public id derived from it (`HKDF-Expand-Label(psk,
//! "psk id", "", 32)`), never by the token, which stays a secret sent only
//! inside the encrypted session.
//!
//! The session keys of a resumed handshake come from the key, a fresh
//! X25519 exchange and a fresh ML-KEM-768 encapsulation, and the server
//! still signs the transcript with its identity key: an attacker who knew
//! the key (a stolen token) still has to break X25519 and ML-KEM to read the
//! session, and cannot impersonate the server without its identity key.

use std::fmt;

use zeroize::Zeroizing;

use crate::hello::PSK_ID_BYTES;
use crate::key_schedule::expand_label_from;
use crate::message::ResumeToken;

/// A resumption key (32 bytes), zeroized on drop.
#[derive(Clone)]
pub struct ResumptionPsk(Zeroizing<[u8; 32]>);

impl ResumptionPsk {
    /// The key a client derives from the resume token it holds.
    pub fn from_token(token: &ResumeToken) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.expose());
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(digest.as_ref());
        Self(key)
    }

    /// The key as the server stores it (the token's SHA-256).
    pub fn from_token_hash(hash: [u8; 32]) -> Self {
        Self(Zeroizing::new(hash))
    }

    /// The public name of this key in a ResumeHello.
    pub fn id(&self) -> [u8; PSK_ID_BYTES] {
        *expand_label_from(&self.0, b"psk id", b"")
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ResumptionPsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumptionPsk(..)")
    }
}

/// Where a server looks up the key a ResumeHello names. `None` (unknown,
/// expired or revoked) refuses the hello with the `unknown_psk` alert, and
/// the client connects again with a full handshake.
///
/// Called on the connection's handshake step, off the async runtime; an
/// implementation may take a lock but should not block on I/O.
pub trait PskStore: Send + Sync + fmt::Debug {
    fn find(&self, id: &[u8; PSK_ID_BYTES]) -> Option<ResumptionPsk>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_name_and_hold_the_same_key() {
        let token = ResumeToken::from_bytes([7u8; 32]);
        let client = ResumptionPsk::from_token(&token);
        let stored = ring::digest::digest(&ring::digest::SHA256, &[7u8; 32]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(stored.as_ref());
        let server = ResumptionPsk::from_token_hash(hash);
        assert_eq!(client.expose(), server.expose());
        assert_eq!(client.id(), server.id());
        // The id is neither the token nor the key.
        assert_ne!(&client.id(), token.expose());
        assert_ne!(&client.id(), client.expose());
        let other = ResumptionPsk::from_token(&ResumeToken::from_bytes([8u8; 32]));
        assert_ne!(client.id(), other.id());
        assert_eq!(format!("{client:?}"), "ResumptionPsk(..)");
    }
}
