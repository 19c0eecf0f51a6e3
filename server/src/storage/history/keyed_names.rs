//! What each log is called and keyed with. One log per conversation, so a room message
//! is written once, not once per member:
//! - `room.log` — the seed's room (`#general`, room id 1; its name from before rooms);
//! - `room-<hex>.log` — any other room, hex = HMAC-SHA256(name key, "room" || 0x00 ||
//!   the room id in decimal) (ids are never reused, so a room created again after a
//!   deletion gets a new log);
//! - `dm-<hex>.log` — a direct-message pair, hex = HMAC-SHA256(name key, A || 0x00 || B)
//!   over the two canonical names with A < B;
//! - `partners-<hex>.log` — a user's DM partners (canonical names), hex =
//!   HMAC-SHA256(name key, user), one record per partner, appended on first contact.
//!
//! The log id is the file stem (`room`, `dm-…`, `partners-…`). Each log has its own
//! AES-256-GCM key, `HKDF-SHA256(storage key, "securechat history v1" || 0x00 || id)`;
//! the name key is `HKDF(storage key, "securechat history names v1")`. No file name or
//! byte on disk reveals a username or text (S5).

use std::path::{Path, PathBuf};

use ring::aead::LessSafeKey;
use ring::hmac;
use zeroize::Zeroizing;

use crate::storage::error::HistoryError;
use crate::storage::sealing;

const HISTORY_INFO: &[u8] = b"securechat history v1";
const NAME_KEY_INFO: &[u8] = b"securechat history names v1";
pub(super) const ROOM_ID: &str = "room";
/// The id of the seed's room, whose log is `room.log`.
pub const SEED_ROOM: u64 = 1;
const LOG_EXT: &str = ".log";

/// The keys that name and seal the logs, derived from the storage key.
pub(super) struct LogKeys {
    storage_key: Zeroizing<[u8; 32]>,
    name_key: hmac::Key,
}

/// The three logs a direct message touches, named once (each name is an HMAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectLogs {
    pub(super) a: String,
    pub(super) b: String,
    pub(super) dm: String,
    pub(super) partners_of_a: String,
    pub(super) partners_of_b: String,
}

impl LogKeys {
    pub(super) fn new(storage_key: &[u8; 32]) -> Result<Self, HistoryError> {
        let name_key = sealing::derive_hmac_key(storage_key, &[NAME_KEY_INFO])
            .map_err(|_| HistoryError::Crypto)?;
        Ok(Self {
            storage_key: Zeroizing::new(*storage_key),
            name_key,
        })
    }

    /// The AES-256-GCM key of log `id`.
    pub(super) fn log_key(&self, id: &str) -> Result<LessSafeKey, HistoryError> {
        sealing::derive_aead_key(&self.storage_key, &[HISTORY_INFO, &[0], id.as_bytes()])
            .map_err(|_| HistoryError::Crypto)
    }

    /// The log of the direct conversation of `a` and `b` (either order).
    pub(super) fn dm_id(&self, a: &str, b: &str) -> Result<String, HistoryError> {
        check_name(a)?;
        check_name(b)?;
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let mut ctx = hmac::Context::with_key(&self.name_key);
        ctx.update(low.as_bytes());
        ctx.update(&[0]);
        ctx.update(high.as_bytes());
        Ok(format!("dm-{}", hex::encode(ctx.sign().as_ref())))
    }

    /// The log of room `room` (its server id).
    pub(super) fn room_id(&self, room: u64) -> String {
        if room == SEED_ROOM {
            return ROOM_ID.to_owned();
        }
        let mut ctx = hmac::Context::with_key(&self.name_key);
        ctx.update(b"room");
        ctx.update(&[0]);
        ctx.update(room.to_string().as_bytes());
        format!("room-{}", hex::encode(ctx.sign().as_ref()))
    }

    /// The log listing `user`'s direct-message partners.
    pub(super) fn partners_id(&self, user: &str) -> Result<String, HistoryError> {
        check_name(user)?;
        let tag = hmac::sign(&self.name_key, user.as_bytes());
        Ok(format!("partners-{}", hex::encode(tag.as_ref())))
    }

    pub(super) fn direct_logs(&self, a: &str, b: &str) -> Result<DirectLogs, HistoryError> {
        Ok(DirectLogs {
            dm: self.dm_id(a, b)?,
            partners_of_a: self.partners_id(a)?,
            partners_of_b: self.partners_id(b)?,
            a: a.to_owned(),
            b: b.to_owned(),
        })
    }
}

/// The file of log `id` in `dir`.
pub(super) fn path_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}{LOG_EXT}"))
}

/// NUL separates the two names of a pair in the HMAC input, so it must not occur in one.
fn check_name(name: &str) -> Result<(), HistoryError> {
    if name.as_bytes().contains(&0) {
        Err(HistoryError::InvalidName)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_has_one_dm_log_whatever_the_order() {
        let keys = LogKeys::new(&[5; 32]).unwrap();
        assert_eq!(
            keys.dm_id("ann", "bob").unwrap(),
            keys.dm_id("bob", "ann").unwrap()
        );
        assert_ne!(
            keys.dm_id("ann", "bob").unwrap(),
            keys.dm_id("ann", "bo").unwrap()
        );
        // The NUL separator keeps ("a", "bc") and ("ab", "c") apart.
        assert_ne!(
            keys.dm_id("a", "bc").unwrap(),
            keys.dm_id("ab", "c").unwrap()
        );
    }

    #[test]
    fn log_names_reveal_no_username_and_depend_on_the_storage_key() {
        let keys = LogKeys::new(&[5; 32]).unwrap();
        let other = LogKeys::new(&[6; 32]).unwrap();
        let dm = keys.dm_id("zanzibar", "quixotic").unwrap();
        let partners = keys.partners_id("zanzibar").unwrap();
        assert!(dm.starts_with("dm-") && dm.len() == 3 + 64);
        assert!(partners.starts_with("partners-"));
        for name in [&dm, &partners] {
            assert!(!name.contains("zanzibar") && !name.contains(&hex::encode("zanzibar")));
        }
        assert_ne!(dm, other.dm_id("zanzibar", "quixotic").unwrap());
        assert_ne!(partners, other.partners_id("zanzibar").unwrap());
    }

    #[test]
    fn direct_logs_name_the_pair_and_each_partner_list() {
        let keys = LogKeys::new(&[5; 32]).unwrap();
        let logs = keys.direct_logs("ann", "bob").unwrap();
        assert_eq!(logs.dm, keys.dm_id("bob", "ann").unwrap());
        assert_eq!(logs.partners_of_a, keys.partners_id("ann").unwrap());
        assert_eq!(logs.partners_of_b, keys.partners_id("bob").unwrap());
    }

    #[test]
    fn names_with_nul_are_rejected() {
        let keys = LogKeys::new(&[5; 32]).unwrap();
        assert!(matches!(
            keys.dm_id("a\0b", "c"),
            Err(HistoryError::InvalidName)
        ));
        assert!(matches!(
            keys.partners_id("a\0"),
            Err(HistoryError::InvalidName)
        ));
    }
}
