//! The load accounts: deterministic names, passwords derived from a seed.
//!
//! Nothing is stored: the same `--seed` always yields the same password for
//! `load00042`, so accounts registered by one run log in on the next, and
//! Argon2id registration (the expensive part) happens once per server.

use proto_core::message::{Password, Username};
use ring::hmac;

/// The seed used when `--seed` is not given.
pub const DEFAULT_SEED: &str = "securechat-load";

/// Hex characters of the derived password (128 bits).
const PASSWORD_CHARS: usize = 32;

/// The name of load client `index`: `load00000`, `load00001`, ...
pub fn username(index: usize) -> String {
    format!("load{index:05}")
}

/// The password of account `name` under `seed`: HMAC-SHA256(seed, label ||
/// name), in hex. Knowing one password reveals nothing about the others or
/// about the seed.
pub fn password(seed: &str, name: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, seed.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"securechat-load password v1\0");
    ctx.update(name.as_bytes());
    let tag = ctx.sign();
    let mut hex = hex::encode(tag.as_ref());
    hex.truncate(PASSWORD_CHARS);
    hex
}

/// One load account's credentials, ready for `Login`/`Register`.
#[derive(Debug, Clone)]
pub struct Account {
    pub index: usize,
    pub username: Username,
    pub password: Password,
}

impl Account {
    pub fn new(seed: &str, index: usize) -> Self {
        let name = username(index);
        let password = password(seed, &name);
        Self {
            index,
            username: Username::new(&name).expect("load account names are valid usernames"),
            password: Password::new(password).expect("hex passwords are valid"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_zero_padded_and_grow_past_five_digits() {
        assert_eq!(username(0), "load00000");
        assert_eq!(username(42), "load00042");
        assert_eq!(username(99_999), "load99999");
        assert_eq!(username(123_456), "load123456");
    }

    #[test]
    fn passwords_are_deterministic_per_seed_and_name() {
        let a = password("seed-a", "load00001");
        assert_eq!(a, password("seed-a", "load00001"));
        assert_eq!(a.len(), PASSWORD_CHARS);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, password("seed-b", "load00001"), "seed matters");
        assert_ne!(a, password("seed-a", "load00002"), "name matters");
    }

    #[test]
    fn password_matches_a_fixed_vector() {
        // Pinned so a change of derivation (which would lock every
        // registered load account out) is a deliberate one.
        let expected = {
            let key = hmac::Key::new(hmac::HMAC_SHA256, DEFAULT_SEED.as_bytes());
            let tag = hmac::sign(&key, b"securechat-load password v1\0load00000");
            hex::encode(tag.as_ref())[..PASSWORD_CHARS].to_owned()
        };
        assert_eq!(password(DEFAULT_SEED, "load00000"), expected);
    }

    #[test]
    fn accounts_are_valid_protocol_credentials() {
        let acct = Account::new(DEFAULT_SEED, 7);
        assert_eq!(acct.username.as_str(), "load00007");
        assert_eq!(acct.password.expose(), password(DEFAULT_SEED, "load00007"));
        assert!(acct.password.expose().len() >= 8, "server minimum is 8");
    }
}
