//! Password hashing: Argon2id, PHC strings, and a dummy hash for unknown users (E1).
//!
//! These functions block for ~10–20 ms and use ~19 MiB each: the async server calls them
//! in `spawn_blocking` behind a semaphore (M6). They are plain functions over `Send +
//! Sync` data, safe to call from any thread.
//!
//! Argon2's working memory is taken from a small global pool instead of being
//! allocated per hash (fresh 19 MiB allocations cost page faults on every call). The
//! pool is capped at [`MAX_POOLED_BUFFERS`] buffers, not one per thread, because a
//! blocking pool can have hundreds of threads. Buffers are zeroed after each use: the
//! first Argon2 blocks would let a memory reader test guesses with one Blake2b each.

use std::fmt;
use std::sync::Mutex;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, Zeroizing};

use crate::storage::error::PasswordError;

/// Longest password accepted; the protocol should enforce the same limit before this.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Salt length in bytes (the PHC string holds its base64 form).
pub const SALT_LEN: usize = 16;
/// Length of the raw Argon2 output.
pub const HASH_LEN: usize = 32;
/// Argon2 memory buffers kept for reuse; more concurrent hashes allocate and free.
pub const MAX_POOLED_BUFFERS: usize = 4;

// Stored hashes with larger costs are refused rather than run (a sanity bound).
const MAX_VERIFY_M_COST_KIB: u32 = 1 << 20;
const MAX_VERIFY_T_COST: u32 = 16;
const MAX_VERIFY_P_COST: u32 = 8;

/// Argon2id cost parameters for new hashes (`[password_hashing]` in the
/// config). The default is the OWASP minimum: m = 19456 KiB, t = 2, p = 1.
/// Stored hashes keep the costs they were made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self {
            m_cost_kib: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// The cheapest costs Argon2id accepts: for the server's own unit tests.
#[cfg(test)]
pub const TEST_PASSWORD_HASHING: PasswordParams = PasswordParams {
    m_cost_kib: 8,
    t_cost: 1,
    p_cost: 1,
};

impl PasswordParams {
    /// Refuses costs Argon2 cannot run, or that [`verify_password`] would
    /// refuse to verify later (so no account could ever log in).
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.m_cost_kib > MAX_VERIFY_M_COST_KIB
            || self.t_cost > MAX_VERIFY_T_COST
            || self.p_cost > MAX_VERIFY_P_COST
        {
            return Err("costs above what the server verifies (m 1 GiB, t 16, p 8)");
        }
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(HASH_LEN))
            .map(|_| ())
            .map_err(|_| "Argon2 refuses these costs (needs t >= 1, p >= 1, m >= 8 * p)")
    }
}

/// An Argon2id hash in PHC string form: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
/// `Debug` hides it: a hash is offline-crackable material (S1).
#[derive(Clone, PartialEq, Eq)]
pub struct PhcString(String);

impl PhcString {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<PhcString> for String {
    fn from(phc: PhcString) -> Self {
        phc.0
    }
}

impl fmt::Debug for PhcString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhcString(<redacted>)")
    }
}

/// Hashes `password` with the default parameters and a fresh 16-byte random salt.
pub fn hash_password(password: &[u8]) -> Result<PhcString, PasswordError> {
    hash_password_with(PasswordParams::default(), password)
}

/// Hashes `password` with the given parameters and a fresh 16-byte random salt.
pub fn hash_password_with(
    params: PasswordParams,
    password: &[u8],
) -> Result<PhcString, PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong {
            max: MAX_PASSWORD_BYTES,
        });
    }
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| PasswordError::Random)?;
    hash_with_salt(params, password, &salt)
}

/// True if `candidate` matches the PHC string. A malformed PHC string, another
/// algorithm, absurd costs or an over-long candidate give false. Constant-time compare.
pub fn verify_password(phc: &str, candidate: &[u8]) -> bool {
    if candidate.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match verify_inner(phc, candidate) {
        Ok(matches) => matches,
        Err(reason) => {
            tracing::warn!(reason, "stored password hash cannot be verified");
            false
        }
    }
}

/// The login check for E1: verifies against the account's hash, or, when the user does
/// not exist, against `dummy` (see [`dummy_phc`]) so both paths cost one Argon2id run,
/// then says false.
pub fn verify_login(stored_phc: Option<&str>, dummy: &PhcString, candidate: &[u8]) -> bool {
    match stored_phc {
        Some(phc) => verify_password(phc, candidate),
        None => {
            let _ = verify_password(dummy.as_str(), candidate);
            false
        }
    }
}

/// A PHC hash of a random password with a random salt and `params` (the costs new
/// accounts get), for unknown users. Compute it once at startup.
pub fn dummy_phc(params: PasswordParams) -> PhcString {
    let mut password = Zeroizing::new([0u8; 32]);
    let computed = SystemRandom::new()
        .fill(&mut password[..])
        .map_err(|_| PasswordError::Random)
        .and_then(|()| hash_password_with(params, &password[..]));
    computed.unwrap_or_else(|e| {
        // Only the cost matters: verify_login never accepts against the dummy.
        tracing::warn!(error = %e, "cannot compute the dummy password hash; using a fixed one");
        PhcString(DUMMY_FALLBACK.to_owned())
    })
}

const DUMMY_FALLBACK: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2VjdXJlY2hhdC1kdW1teQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn argon2id(params: PasswordParams) -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(
        params.m_cost_kib,
        params.t_cost,
        params.p_cost,
        Some(HASH_LEN),
    )
    .map_err(PasswordError::Argon2)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_with_salt(
    params: PasswordParams,
    password: &[u8],
    salt: &[u8],
) -> Result<PhcString, PasswordError> {
    let argon = argon2id(params)?;
    let mut raw = Zeroizing::new([0u8; HASH_LEN]);
    run_argon2(&argon, password, salt, &mut raw[..]).map_err(PasswordError::Argon2)?;
    let salt_string = SaltString::encode_b64(salt).map_err(PasswordError::Encoding)?;
    let output = Output::new(&raw[..]).map_err(PasswordError::Encoding)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon.params().try_into().map_err(PasswordError::Encoding)?,
        salt: Some(salt_string.as_salt()),
        hash: Some(output),
    };
    Ok(PhcString(phc.to_string()))
}

fn verify_inner(phc: &str, candidate: &[u8]) -> Result<bool, &'static str> {
    let parsed = PasswordHash::new(phc).map_err(|_| "malformed PHC string")?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err("not argon2id");
    }
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|_| "unknown argon2 version")?,
        None => Version::V0x13,
    };
    let params = Params::try_from(&parsed).map_err(|_| "bad argon2 parameters")?;
    if params.m_cost() > MAX_VERIFY_M_COST_KIB
        || params.t_cost() > MAX_VERIFY_T_COST
        || params.p_cost() > MAX_VERIFY_P_COST
    {
        return Err("argon2 costs out of bounds");
    }
    let expected = parsed.hash.ok_or("PHC string has no hash")?;
    let salt = parsed.salt.ok_or("PHC string has no salt")?;
    let mut salt_buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buf)
        .map_err(|_| "bad salt encoding")?;
    let params = Params::new(
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        Some(expected.len()),
    )
    .map_err(|_| "bad argon2 parameters")?;
    let argon = Argon2::new(Algorithm::Argon2id, version, params);
    let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
    run_argon2(&argon, candidate, salt, &mut computed).map_err(|_| "argon2 failed")?;
    let computed = Output::new(&computed).map_err(|_| "bad output length")?;
    // password_hash::Output compares in constant time.
    Ok(computed == expected)
}

static MEMORY_POOL: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

fn run_argon2(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let needed = argon.params().block_count();
    let pooled = MEMORY_POOL.lock().ok().and_then(|mut pool| pool.pop());
    let mut memory = match pooled {
        Some(buffer) if buffer.len() >= needed => buffer,
        _ => vec![Block::default(); needed],
    };
    let result = argon.hash_password_into_with_memory(password, salt, out, &mut memory[..]);
    for block in memory.iter_mut() {
        block.zeroize();
    }
    if let Ok(mut pool) = MEMORY_POOL.lock() {
        if pool.len() < MAX_POOLED_BUFFERS {
            pool.push(memory);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn correct_password_verifies_and_wrong_one_does_not() {
        let phc = hash_password(b"correct horse").unwrap();
        assert!(phc.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(phc.as_str(), b"correct horse"));
        assert!(!verify_password(phc.as_str(), b"correct horsf"));
        assert!(!verify_password(phc.as_str(), b""));
    }

    #[test]
    fn same_password_gets_different_salts() {
        let a = hash_password(b"pw").unwrap();
        let b = hash_password(b"pw").unwrap();
        assert_ne!(a, b);
        let salt = a.as_str().split('$').nth(4).unwrap();
        assert_eq!(salt.len(), 22, "16 bytes in unpadded base64");
    }

    #[test]
    fn hash_is_interoperable_with_the_argon2_crate_verifier() {
        use argon2::password_hash::PasswordVerifier;
        let phc = hash_password(b"interop").unwrap();
        let parsed = PasswordHash::new(phc.as_str()).unwrap();
        assert!(Argon2::default()
            .verify_password(b"interop", &parsed)
            .is_ok());
    }

    #[test]
    fn pooled_memory_path_reproduces_rfc9106_argon2id_vector() {
        // RFC 9106 §5.3 (it also uses a secret and associated data).
        use argon2::AssociatedData;
        let params = argon2::ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .data(AssociatedData::new(&[4; 12]).unwrap())
            .output_len(32)
            .build()
            .unwrap();
        let argon =
            Argon2::new_with_secret(&[3; 8], Algorithm::Argon2id, Version::V0x13, params).unwrap();
        let mut out = [0u8; 32];
        run_argon2(&argon, &[1; 32], &[2; 16], &mut out).unwrap();
        assert_eq!(
            hex::encode(out),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    #[test]
    fn unknown_user_path_uses_the_dummy_hash_and_returns_false() {
        let dummy = dummy_phc(PasswordParams::default());
        assert!(PasswordHash::new(dummy.as_str()).is_ok());
        assert!(dummy
            .as_str()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let real = hash_password(b"pw").unwrap();

        let start = Instant::now();
        assert!(!verify_login(None, &dummy, b"pw"));
        let unknown = start.elapsed();
        let start = Instant::now();
        assert!(!verify_login(Some(real.as_str()), &dummy, b"wrong"));
        let known = start.elapsed();
        assert!(verify_login(Some(real.as_str()), &dummy, b"pw"));
        // Both paths run one Argon2id of the same cost (loose bound: CI noise).
        let ratio = unknown.as_secs_f64() / known.as_secs_f64();
        assert!(
            (0.33..3.0).contains(&ratio),
            "unknown {unknown:?} known {known:?}"
        );
    }

    #[test]
    fn fallback_dummy_is_a_valid_phc_of_full_cost() {
        let parsed = PasswordHash::new(DUMMY_FALLBACK).unwrap();
        assert_eq!(Params::try_from(&parsed).unwrap().m_cost(), 19_456);
        assert_eq!(verify_inner(DUMMY_FALLBACK, b"x"), Ok(false));
    }

    #[test]
    fn malformed_or_foreign_phc_strings_do_not_verify() {
        assert!(!verify_password("", b"x"));
        assert!(!verify_password(
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
            b"x"
        ));
        assert!(!verify_password(
            "$argon2id$v=19$m=4000000,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
            b"x"
        ));
    }

    #[test]
    fn over_long_password_is_refused() {
        let long = vec![b'a'; MAX_PASSWORD_BYTES + 1];
        assert!(matches!(
            hash_password(&long),
            Err(PasswordError::TooLong { .. })
        ));
        let dummy = dummy_phc(PasswordParams::default());
        assert!(!verify_password(dummy.as_str(), &long));
    }

    #[test]
    fn configured_costs_are_the_costs_of_new_hashes_and_the_dummy() {
        let cheap = PasswordParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        };
        cheap.validate().unwrap();
        let phc = hash_password_with(cheap, b"pw").unwrap();
        assert!(phc.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(verify_password(phc.as_str(), b"pw"));
        let dummy = dummy_phc(cheap);
        assert!(dummy.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!verify_login(None, &dummy, b"pw"));
    }

    #[test]
    fn costs_argon2_cannot_run_or_the_server_would_not_verify_are_refused() {
        PasswordParams::default().validate().unwrap();
        let with = |m_cost_kib, t_cost, p_cost| PasswordParams {
            m_cost_kib,
            t_cost,
            p_cost,
        };
        assert!(with(7, 1, 1).validate().is_err());
        assert!(with(64, 0, 1).validate().is_err());
        assert!(with(64, 1, 0).validate().is_err());
        assert!(with(MAX_VERIFY_M_COST_KIB + 1, 2, 1).validate().is_err());
        assert!(with(19_456, MAX_VERIFY_T_COST + 1, 1).validate().is_err());
        assert!(with(19_456, 2, MAX_VERIFY_P_COST + 1).validate().is_err());
    }

    #[test]
    fn phc_debug_is_redacted() {
        let phc = hash_password(b"pw").unwrap();
        assert_eq!(format!("{phc:?}"), "PhcString(<redacted>)");
    }

    fn _assert_send_sync() {
        fn is<T: Send + Sync>() {}
        is::<PhcString>();
        is::<PasswordParams>();
    }
}
