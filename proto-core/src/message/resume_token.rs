//! The bearer token that lets a client resume a session without the password.

use core::fmt;

use zeroize::Zeroize;

use crate::message::codec::{Reader, Sink};

/// 32 random bytes issued in `AuthOk` and presented in `Resume`.
///
/// A bearer credential: `Debug` prints `ResumeToken(***)`, equality is
/// constant-time, and the bytes are zeroized on drop. Servers should store a
/// hash of it, not the token.
#[derive(Clone)]
pub struct ResumeToken([u8; 32]);

impl ResumeToken {
    pub const LEN: usize = 32;

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, crate::message::MessageError> {
        r.bytes32().map(Self)
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        out.put(&self.0);
    }
}

impl PartialEq for ResumeToken {
    fn eq(&self, other: &Self) -> bool {
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }
}

impl Eq for ResumeToken {}

impl Drop for ResumeToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_token_debug_does_not_leak() {
        let t = ResumeToken::from_bytes([0xAB; 32]);
        let s = format!("{t:?}");
        assert_eq!(s, "ResumeToken(***)");
        assert!(!s.contains("171") && !s.to_lowercase().contains("ab"));
    }

    #[test]
    fn resume_tokens_compare_by_every_byte() {
        let a = ResumeToken::from_bytes([7; 32]);
        let mut other = [7; 32];
        assert_eq!(a, ResumeToken::from_bytes(other));
        other[31] = 8;
        assert_ne!(a, ResumeToken::from_bytes(other));
    }
}
