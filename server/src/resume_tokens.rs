//! Resume tokens: 256 random bits handed out at login, redeemable once to
//! log in again after a dropped connection without the password (and
//! without another Argon2id run). Only their SHA-256 is kept; each has an
//! expiry; redeeming one rotates it; `#exit` revokes it. A token belongs to
//! one device of its user: a device holds one live token (a new one
//! replaces it), and logging a device out revokes its token alone.
//!
//! A live token's hash is also the key of a resumed handshake
//! (`proto_core::resumption`): [`ResumeTokens::resumption_key`] finds it by
//! the public id a ResumeHello names. Revoking or redeeming a token ends
//! that too; a redeemed token's successor is the next key.

use std::collections::{HashMap, VecDeque};

use proto_core::message::ResumeToken;
use proto_core::ResumptionPsk;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use crate::storage::token_file::StoredToken;

/// Live tokens kept per user (one per device; the server's device cap is at
/// most this); one more drops the oldest.
pub const MAX_TOKENS_PER_USER: usize = 64;

type TokenHash = [u8; 32];

fn hash(token: &ResumeToken) -> TokenHash {
    let d = digest::digest(&digest::SHA256, token.expose());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[derive(Debug)]
struct Entry {
    user: String,
    device: u64,
    expires_ms: u64,
}

/// The live tokens of every user.
#[derive(Debug, Default)]
pub struct ResumeTokens {
    by_hash: HashMap<TokenHash, Entry>,
    by_user: HashMap<String, VecDeque<TokenHash>>,
    /// Each live token's hash by the id of the resumption key it is.
    by_psk_id: HashMap<[u8; 32], TokenHash>,
}

fn psk_id(h: &TokenHash) -> [u8; 32] {
    ResumptionPsk::from_token_hash(*h).id()
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomFailed;

impl ResumeTokens {
    /// Restores a snapshot, dropping expired entries.
    pub fn from_snapshot(tokens: Vec<StoredToken>, now_ms: u64) -> Self {
        let mut this = Self::default();
        for t in tokens.into_iter().filter(|t| t.expires_ms > now_ms) {
            this.insert(t.hash, t.user, t.device, t.expires_ms);
        }
        this
    }

    /// The live tokens, for the shutdown snapshot.
    pub fn snapshot(&self, now_ms: u64) -> Vec<StoredToken> {
        self.by_hash
            .iter()
            .filter(|(_, e)| e.expires_ms > now_ms)
            .map(|(h, e)| StoredToken {
                hash: *h,
                user: e.user.clone(),
                device: e.device,
                expires_ms: e.expires_ms,
            })
            .collect()
    }

    /// A new token for `user` (canonical name) on `device`, valid until
    /// `expires_ms`; the device's earlier token is revoked.
    pub fn issue(
        &mut self,
        rng: &SystemRandom,
        user: &str,
        device: u64,
        expires_ms: u64,
    ) -> Result<ResumeToken, RandomFailed> {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes).map_err(|_| RandomFailed)?;
        let token = ResumeToken::from_bytes(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        self.revoke_device(user, device);
        self.insert(hash(&token), user.to_owned(), device, expires_ms);
        Ok(token)
    }

    fn insert(&mut self, h: TokenHash, user: String, device: u64, expires_ms: u64) {
        let list = self.by_user.entry(user.clone()).or_default();
        list.push_back(h);
        while list.len() > MAX_TOKENS_PER_USER {
            if let Some(old) = list.pop_front() {
                self.by_hash.remove(&old);
                self.by_psk_id.remove(&psk_id(&old));
            }
        }
        self.by_psk_id.insert(psk_id(&h), h);
        self.by_hash.insert(
            h,
            Entry {
                user,
                device,
                expires_ms,
            },
        );
    }

    /// Consumes `token`: the user and device it belongs to if it is live.
    /// Whatever the outcome, the token is no longer valid afterwards.
    pub fn redeem(&mut self, token: &ResumeToken, now_ms: u64) -> Option<(String, u64)> {
        let h = hash(token);
        let entry = self.remove(&h)?;
        (entry.expires_ms > now_ms).then_some((entry.user, entry.device))
    }

    /// Revokes the token of one device of `user` (logging it out).
    pub fn revoke_device(&mut self, user: &str, device: u64) {
        let hashes: Vec<TokenHash> = self
            .by_user
            .get(user)
            .map(|list| {
                list.iter()
                    .filter(|h| self.by_hash.get(*h).is_some_and(|e| e.device == device))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        for h in hashes {
            self.remove(&h);
        }
    }

    /// Revokes `token` (the `#exit` path). Unknown tokens are ignored.
    pub fn revoke(&mut self, token: &ResumeToken) {
        self.remove(&hash(token));
    }

    /// Revokes every token of `user` (a password change).
    pub fn revoke_all(&mut self, user: &str) {
        if let Some(list) = self.by_user.remove(user) {
            for h in list {
                self.by_hash.remove(&h);
                self.by_psk_id.remove(&psk_id(&h));
            }
        }
    }

    /// The resumption key a ResumeHello names by `id`, if its token is
    /// live. Looking it up does not redeem the token: the login that
    /// follows the handshake does.
    pub fn resumption_key(&self, id: &[u8; 32], now_ms: u64) -> Option<ResumptionPsk> {
        let h = self.by_psk_id.get(id)?;
        let entry = self.by_hash.get(h)?;
        (entry.expires_ms > now_ms).then(|| ResumptionPsk::from_token_hash(*h))
    }

    fn remove(&mut self, h: &TokenHash) -> Option<Entry> {
        let entry = self.by_hash.remove(h)?;
        self.by_psk_id.remove(&psk_id(h));
        if let Some(list) = self.by_user.get_mut(&entry.user) {
            list.retain(|x| x != h);
            if list.is_empty() {
                self.by_user.remove(&entry.user);
            }
        }
        Some(entry)
    }

    /// Live tokens (for stats and tests).
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_redeems_once_and_only_before_expiry() {
        let rng = SystemRandom::new();
        let mut t = ResumeTokens::default();
        let a = t.issue(&rng, "alice", 1, 100).unwrap();
        assert_eq!(t.redeem(&a, 50), Some(("alice".to_owned(), 1)));
        assert_eq!(t.redeem(&a, 50), None);
        let b = t.issue(&rng, "alice", 1, 100).unwrap();
        assert_eq!(t.redeem(&b, 100), None);
        assert!(t.is_empty());
    }

    #[test]
    fn revoked_and_forged_tokens_do_not_redeem() {
        let rng = SystemRandom::new();
        let mut t = ResumeTokens::default();
        let a = t.issue(&rng, "alice", 1, 100).unwrap();
        t.revoke(&a);
        assert_eq!(t.redeem(&a, 1), None);
        assert_eq!(t.redeem(&ResumeToken::from_bytes([0; 32]), 1), None);
    }

    #[test]
    fn old_tokens_of_a_user_are_dropped_beyond_the_cap() {
        let rng = SystemRandom::new();
        let mut t = ResumeTokens::default();
        let first = t.issue(&rng, "alice", 0, 100).unwrap();
        for device in 1..=MAX_TOKENS_PER_USER as u64 {
            t.issue(&rng, "alice", device, 100).unwrap();
        }
        assert_eq!(t.len(), MAX_TOKENS_PER_USER);
        assert_eq!(t.redeem(&first, 1), None);
    }

    #[test]
    fn a_device_holds_one_token_and_is_logged_out_alone() {
        let rng = SystemRandom::new();
        let mut t = ResumeTokens::default();
        let laptop = t.issue(&rng, "alice", 1, 100).unwrap();
        let laptop_again = t.issue(&rng, "alice", 1, 100).unwrap();
        let phone = t.issue(&rng, "alice", 2, 100).unwrap();
        assert_eq!(
            t.redeem(&laptop, 1),
            None,
            "replaced by the device's next token"
        );
        t.revoke_device("alice", 1);
        assert_eq!(t.redeem(&laptop_again, 1), None);
        assert_eq!(t.redeem(&phone, 1), Some(("alice".to_owned(), 2)));
    }

    #[test]
    fn a_live_token_is_a_resumption_key_until_redeemed_revoked_or_expired() {
        let rng = SystemRandom::new();
        let mut t = ResumeTokens::default();
        let key_of = |token: &ResumeToken| ResumptionPsk::from_token(token);
        let a = t.issue(&rng, "alice", 1, 100).unwrap();
        let b = t.issue(&rng, "bob", 1, 100).unwrap();
        let c = t.issue(&rng, "carol", 1, 100).unwrap();
        // What the client derives from its token is what the server finds.
        let found = t.resumption_key(&key_of(&a).id(), 50).unwrap();
        assert_eq!(found.id(), key_of(&a).id());
        assert!(t.resumption_key(&key_of(&a).id(), 100).is_none(), "expired");
        assert!(t
            .resumption_key(&key_of(&ResumeToken::from_bytes([9; 32])).id(), 1)
            .is_none());
        // Redeemed, revoked, revoked with the user's every token: gone.
        t.redeem(&a, 1);
        t.revoke(&b);
        t.revoke_all("carol");
        for token in [&a, &b, &c] {
            assert!(t.resumption_key(&key_of(token).id(), 1).is_none());
        }
        assert!(t.by_psk_id.is_empty());
        // A device's next token replaces its key; the cap drops the oldest.
        let d1 = t.issue(&rng, "dave", 1, 100).unwrap();
        let d2 = t.issue(&rng, "dave", 1, 100).unwrap();
        assert!(t.resumption_key(&key_of(&d1).id(), 1).is_none());
        assert!(t.resumption_key(&key_of(&d2).id(), 1).is_some());
        for device in 2..=MAX_TOKENS_PER_USER as u64 + 1 {
            t.issue(&rng, "dave", device, 100).unwrap();
        }
        assert!(t.resumption_key(&key_of(&d2).id(), 1).is_none());
        assert_eq!(t.by_psk_id.len(), t.len());
        // And the keys survive a snapshot (a restart).
        let e = t.issue(&rng, "erin", 1, 100).unwrap();
        let restored = ResumeTokens::from_snapshot(t.snapshot(0), 1);
        assert!(restored.resumption_key(&key_of(&e).id(), 1).is_some());
    }

    #[test]
    fn snapshot_keeps_live_tokens_and_their_owner() {
        let rng = SystemRandom::new();
        let mut t = ResumeTokens::default();
        let a = t.issue(&rng, "alice", 1, 100).unwrap();
        t.issue(&rng, "bob", 1, 10).unwrap();
        let mut restored = ResumeTokens::from_snapshot(t.snapshot(0), 50);
        assert_eq!(restored.len(), 1);
        assert_eq!(restored.redeem(&a, 60), Some(("alice".to_owned(), 1)));
    }
}
