//! Registration, password login and resume, in front of the encrypted
//! credential store: Argon2id off the async runtime behind a semaphore,
//! brute-force throttling, and resume tokens.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use proto_core::message::{AuthFailure, Password, ResumeToken, Username};
use ring::rand::SystemRandom;
use tokio::sync::Semaphore;

use crate::attempt_queue::AttemptQueues;
use crate::clock::now_ms;
use crate::login_throttle::LoginThrottle;
use crate::resume_tokens::ResumeTokens;
use crate::storage::token_file::StoredToken;
use crate::storage::{
    dummy_phc, hash_password_with, verify_login, CredentialStore, PasswordParams, PhcString,
    RegisterError,
};

/// A successful register, login or resume.
#[derive(Debug)]
pub struct LoggedIn {
    /// The name as registered (display form).
    pub username: Username,
    /// The case-folded key of the account.
    pub canonical: String,
    /// The new resume token (its hash is kept; this is the only copy).
    pub token: ResumeToken,
}

/// Why an authentication attempt did not log anyone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Told to the client as `AuthFailed { reason }`.
    #[error("authentication failed: {0:?}")]
    Failed(AuthFailure),
    /// The server could not complete it (disk, randomness): `Error Internal`.
    #[error("internal error during authentication")]
    Internal,
}

impl From<AuthFailure> for AuthError {
    fn from(f: AuthFailure) -> Self {
        AuthError::Failed(f)
    }
}

struct KnownAccount {
    display: Username,
    phc: Arc<str>,
}

/// Settings of [`Accounts`].
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Argon2id costs of new password hashes (and of the unknown-user dummy).
    pub password_hashing: PasswordParams,
    pub hash_workers: usize,
    pub min_password_chars: usize,
    pub token_lifetime: Duration,
}

/// The account service shared by every connection.
pub struct Accounts {
    /// Written only on the blocking pool (each registration fsyncs).
    store: Arc<Mutex<CredentialStore>>,
    /// Read from async code: never waits for the disk.
    known: RwLock<HashMap<String, KnownAccount>>,
    hash_permits: Arc<Semaphore>,
    /// One password check at a time per account (parallel guesses queue).
    attempts: AttemptQueues,
    throttle: Mutex<LoginThrottle>,
    tokens: Mutex<ResumeTokens>,
    rng: SystemRandom,
    /// Verified for unknown users, so they cost what a real account costs.
    dummy: Arc<PhcString>,
    config: AccountsConfig,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Accounts {
    /// Wraps an opened store; `tokens` is the snapshot from the last graceful stop.
    pub fn new(store: CredentialStore, tokens: Vec<StoredToken>, config: AccountsConfig) -> Self {
        let mut known = HashMap::new();
        for account in store.accounts() {
            // An entry that no longer parses (rules tightened) can't log in.
            if let Ok(display) = Username::new(&account.username) {
                known.insert(
                    account.canonical.clone(),
                    KnownAccount {
                        display,
                        phc: Arc::from(account.phc.as_str()),
                    },
                );
            }
        }
        // Hashed once now, with the costs new accounts get.
        let dummy = Arc::new(dummy_phc(config.password_hashing));
        Self {
            store: Arc::new(Mutex::new(store)),
            known: RwLock::new(known),
            hash_permits: Arc::new(Semaphore::new(config.hash_workers.max(1))),
            attempts: AttemptQueues::default(),
            throttle: Mutex::new(LoginThrottle::default()),
            tokens: Mutex::new(ResumeTokens::from_snapshot(tokens, now_ms())),
            rng: SystemRandom::new(),
            dummy,
            config,
        }
    }

    /// Registered accounts.
    pub fn count(&self) -> usize {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The registered display name of `canonical`, if the account exists.
    pub fn display_name(&self, canonical: &str) -> Option<Username> {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(canonical)
            .map(|a| a.display.clone())
    }

    /// Live resume tokens, for the snapshot written at shutdown.
    pub fn token_snapshot(&self) -> Vec<StoredToken> {
        lock(&self.tokens).snapshot(now_ms())
    }

    /// Creates an account and logs it in. Exactly one of any number of
    /// concurrent registrations of a name (in any letter case) succeeds.
    pub async fn register(
        &self,
        username: &Username,
        password: Password,
    ) -> Result<LoggedIn, AuthError> {
        if password.expose().chars().count() < self.config.min_password_chars {
            return Err(AuthFailure::WeakPassword.into());
        }
        let canonical = username.canonical();
        if self.display_name(&canonical).is_some() {
            return Err(AuthFailure::NameTaken.into());
        }
        let params = self.config.password_hashing;
        let phc = self
            .hashing(move || hash_password_with(params, password.expose().as_bytes()))
            .await?
            .map_err(|_| AuthError::Internal)?
            .into_string();
        let store = Arc::clone(&self.store);
        let (c, d, p) = (canonical.clone(), username.as_str().to_owned(), phc.clone());
        let stored = tokio::task::spawn_blocking(move || lock(&store).register(&c, &d, p))
            .await
            .map_err(|_| AuthError::Internal)?;
        match stored {
            Ok(()) => {}
            Err(RegisterError::NameTaken) => return Err(AuthFailure::NameTaken.into()),
            Err(e) => {
                tracing::error!(error = %e, "registration could not be stored");
                return Err(AuthError::Internal);
            }
        }
        self.known
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                canonical.clone(),
                KnownAccount {
                    display: username.clone(),
                    phc: Arc::from(phc.as_str()),
                },
            );
        tracing::info!(user = %canonical, "account registered");
        self.logged_in(canonical)
    }

    /// Checks a password. Unknown user and wrong password give the same
    /// answer after the same work (a dummy hash is verified); repeated
    /// failures wait longer before the check (see `login_throttle`), and
    /// checks on one account take turns (see `attempt_queue`), so the delay
    /// is computed after every earlier attempt has been counted.
    pub async fn login(
        &self,
        username: &Username,
        password: Password,
        ip: IpAddr,
    ) -> Result<LoggedIn, AuthError> {
        let canonical = username.canonical();
        let _turn = self.attempts.turn(&canonical, ip).await;
        let delay = lock(&self.throttle).delay_for(&canonical, ip, Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let phc: Option<Arc<str>> = self
            .known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&canonical)
            .map(|a| Arc::clone(&a.phc));
        let dummy = Arc::clone(&self.dummy);
        let ok = self
            .hashing(move || verify_login(phc.as_deref(), &dummy, password.expose().as_bytes()))
            .await?;
        let mut throttle = lock(&self.throttle);
        if !ok {
            throttle.record_failure(&canonical, ip, Instant::now());
            tracing::info!(
                %ip,
                failures_total = throttle.total_failures(),
                "login failed"
            );
            return Err(AuthFailure::LoginFailed.into());
        }
        throttle.record_success(&canonical);
        drop(throttle);
        self.logged_in(canonical)
    }

    /// Redeems a resume token (one use) and issues the next one.
    pub fn resume(&self, token: &ResumeToken) -> Result<LoggedIn, AuthError> {
        let user = lock(&self.tokens).redeem(token, now_ms());
        match user {
            Some(canonical) if self.display_name(&canonical).is_some() => self.logged_in(canonical),
            _ => Err(AuthFailure::ResumeFailed.into()),
        }
    }

    /// Revokes a token (the `#exit` path).
    pub fn revoke(&self, token: &ResumeToken) {
        lock(&self.tokens).revoke(token);
    }

    fn logged_in(&self, canonical: String) -> Result<LoggedIn, AuthError> {
        let username = self.display_name(&canonical).ok_or(AuthError::Internal)?;
        let expires = now_ms().saturating_add(
            u64::try_from(self.config.token_lifetime.as_millis()).unwrap_or(u64::MAX),
        );
        let token = lock(&self.tokens)
            .issue(&self.rng, &canonical, expires)
            .map_err(|_| AuthError::Internal)?;
        Ok(LoggedIn {
            username,
            canonical,
            token,
        })
    }

    /// Runs Argon2id work on the blocking pool at background priority (see
    /// the `background-cpu` crate), at most `hash_workers` at once.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = Arc::clone(&self.hash_permits)
            .acquire_owned()
            .await
            .map_err(|_| AuthError::Internal)?;
        background_cpu::spawn(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| AuthError::Internal)
    }

    /// Token lifetime in whole seconds, as told to clients.
    pub fn token_lifetime_secs(&self) -> u32 {
        u32::try_from(self.config.token_lifetime.as_secs()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login_throttle::MAX_DELAY;

    fn accounts(dir: &std::path::Path) -> Arc<Accounts> {
        let store = CredentialStore::open(dir.join("accounts.json.enc"), &[9; 32]).unwrap();
        Arc::new(Accounts::new(
            store,
            Vec::new(),
            AccountsConfig {
                password_hashing: PasswordParams::default(),
                hash_workers: 2,
                min_password_chars: 8,
                token_lifetime: Duration::from_secs(60),
            },
        ))
    }

    fn name(s: &str) -> Username {
        Username::new(s).unwrap()
    }

    fn pw(s: &str) -> Password {
        Password::new(s.to_owned()).unwrap()
    }

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, i])
    }

    /// Accounts with "alice" registered and enough failures on her account
    /// to put its delay at the cap.
    async fn alice_at_the_cap(dir: &std::path::Path) -> Arc<Accounts> {
        let accounts = accounts(dir);
        accounts
            .register(&name("alice"), pw("correct horse"))
            .await
            .unwrap();
        for _ in 0..10 {
            let r = accounts
                .login(&name("alice"), pw("wrong guess"), ip(1))
                .await;
            assert!(matches!(
                r,
                Err(AuthError::Failed(AuthFailure::LoginFailed))
            ));
        }
        accounts
    }

    /// Parallel guesses used to compute their delays on arrival, before
    /// the earlier ones were counted, and wait them out side by side: 60
    /// guesses at the 30 s cap were all checked in 32 s.
    #[tokio::test(start_paused = true)]
    async fn parallel_guesses_take_as_long_as_sequential_ones() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = alice_at_the_cap(dir.path()).await;
        const GUESSES: u32 = 8;
        let start = tokio::time::Instant::now();
        let guesses: Vec<_> = (0..GUESSES)
            .map(|i| {
                let accounts = Arc::clone(&accounts);
                tokio::spawn(async move {
                    let guess = pw(&format!("guess number {i}"));
                    accounts
                        .login(&name("alice"), guess, ip(2 + (i % 4) as u8))
                        .await
                })
            })
            .collect();
        for g in guesses {
            assert!(g.await.unwrap().is_err());
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= MAX_DELAY * GUESSES,
            "{GUESSES} parallel guesses took {elapsed:?}; sequential ones take {:?}",
            MAX_DELAY * GUESSES
        );
    }

    /// The owner of an account under attack still logs in, after at most
    /// one attempt per attacking address (plus its own delay).
    #[tokio::test(start_paused = true)]
    async fn the_owner_gets_in_behind_one_attempt_per_attacking_address() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = alice_at_the_cap(dir.path()).await;
        // Twenty guesses queued from two addresses.
        let guesses: Vec<_> = (0..20)
            .map(|i| {
                let accounts = Arc::clone(&accounts);
                tokio::spawn(async move {
                    let guess = pw(&format!("guess number {i}"));
                    accounts
                        .login(&name("alice"), guess, ip(2 + (i % 2) as u8))
                        .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        let start = tokio::time::Instant::now();
        let me = accounts
            .login(
                &name("alice"),
                pw("correct horse"),
                IpAddr::from([192, 0, 2, 7]),
            )
            .await;
        assert!(me.is_ok(), "the owner must get in");
        let waited = start.elapsed();
        assert!(
            waited <= MAX_DELAY * 3 + Duration::from_secs(1),
            "the owner waited {waited:?} behind twenty guesses from two addresses"
        );
        for g in guesses {
            let _ = g.await.unwrap();
        }
    }
}
