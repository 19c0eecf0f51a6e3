//! Registration, login, password change and resume, in front of the
//! encrypted credential store: OPAQUE (RFC 9807, through
//! `proto_core::opaque`) so that no password reaches the server, the
//! one-time migration of accounts made before it, brute-force throttling,
//! and resume tokens.
//!
//! The accounts live in an [`AccountStore`] (the file backend's is
//! `storage::CredentialStore`), written on the blocking pool; a copy of
//! what logins read is kept in memory, so no login waits for storage.
//!
//! An OPAQUE exchange takes two client messages. The server's answer to the
//! first is a [`Pending`] the session keeps and hands back with the second;
//! nothing about it is stored.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use proto_core::message::{AuthFailure, Password, ResumeToken, ServerMessage, Username};
use proto_core::opaque::{
    OpaqueError, PasswordRecord, ServerKeys, ServerLoginState, Stretch,
    CREDENTIAL_FINALIZATION_LEN, CREDENTIAL_REQUEST_LEN, CREDENTIAL_RESPONSE_LEN,
    REGISTRATION_REQUEST_LEN, REGISTRATION_UPLOAD_LEN,
};
use proto_core::ChannelBinding;
use rand_core::OsRng;
use ring::rand::SystemRandom;
use tokio::sync::Semaphore;

use crate::attempt_queue::AttemptQueues;
use crate::clock::now_ms;
use crate::login_throttle::LoginThrottle;
use crate::resume_tokens::ResumeTokens;
use crate::storage::token_file::StoredToken;
use crate::storage::{
    dummy_phc, verify_login, AccountStore, Credential, PasswordParams, PhcString, RegisterError,
    StoreError,
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
    /// The device logged in (the client's id for it; 0 if it named none).
    pub device: u64,
}

/// Why an authentication step did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Told to the client as `AuthFailed { reason }`.
    #[error("authentication failed: {0:?}")]
    Failed(AuthFailure),
    /// An OPAQUE message that does not decode (bad point): `Error InvalidMessage`.
    #[error("malformed OPAQUE message")]
    Malformed,
    /// A finish without its start, or after another start.
    #[error("no matching exchange in progress")]
    OutOfOrder,
    /// A request the server no longer serves: `Error Unsupported`.
    #[error("unsupported: {0}")]
    Unsupported(Unsupported),
    /// The server could not complete it (disk, randomness): `Error Internal`.
    #[error("internal error during authentication")]
    Internal,
}

/// Which request is no longer served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// The version-1 `Register`, which carried the password.
    PasswordRegistration,
    /// A password change before the account's first OPAQUE login.
    LegacyPasswordChange,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unsupported::PasswordRegistration => "password registration",
            Unsupported::LegacyPasswordChange => "password change of a legacy account",
        })
    }
}

impl From<AuthFailure> for AuthError {
    fn from(f: AuthFailure) -> Self {
        AuthError::Failed(f)
    }
}

/// What the session does after an authentication step.
#[derive(Debug)]
pub enum AuthAnswer {
    /// Logged in (or registered): the chat phase begins.
    LoggedIn(LoggedIn),
    /// Send `reply`; keep `pending` for the client's next message.
    Continue {
        reply: ServerMessage,
        pending: Option<Pending>,
    },
    /// The password changed: send `reply` (`PasswordChanged`).
    PasswordChanged { reply: ServerMessage },
}

/// An OPAQUE exchange the server answered, waiting for the client's finish
/// on the same connection.
pub struct Pending(PendingKind);

enum PendingKind {
    Registration {
        username: Username,
    },
    Login {
        canonical: String,
        ip: IpAddr,
        state: ServerLoginState,
        /// False for an unknown user: the finish can never succeed.
        real: bool,
    },
    ChangePassword {
        canonical: String,
        ip: IpAddr,
        state: ServerLoginState,
    },
}

impl Pending {
    /// A pending registration of `username`, for the session policy's tests.
    #[cfg(test)]
    pub(crate) fn registration_for_tests(username: Username) -> Self {
        Pending(PendingKind::Registration { username })
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.0 {
            PendingKind::Registration { .. } => "Pending(Registration)",
            PendingKind::Login { .. } => "Pending(Login)",
            PendingKind::ChangePassword { .. } => "Pending(ChangePassword)",
        })
    }
}

struct KnownAccount {
    display: Username,
    credential: Arc<Credential>,
    disabled: bool,
}

/// Settings of [`Accounts`].
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Argon2id costs of the unknown-user dummy that a version-1 `Login`
    /// verifies (so it costs what a legacy account costs).
    pub password_hashing: PasswordParams,
    /// Expensive account work (OPAQUE answers, legacy Argon2id checks) at once.
    pub hash_workers: usize,
    pub token_lifetime: Duration,
}

/// The store, boxed once; written only on the blocking pool.
type Store = Arc<Mutex<Box<dyn AccountStore>>>;

/// The account service shared by every connection.
pub struct Accounts {
    /// Written only on the blocking pool (each write fsyncs).
    store: Store,
    /// Read from async code: never waits for the disk.
    known: RwLock<HashMap<String, KnownAccount>>,
    keys: Arc<ServerKeys>,
    hash_permits: Arc<Semaphore>,
    /// One attempt at a time per account (parallel guesses queue).
    attempts: AttemptQueues,
    throttle: Mutex<LoginThrottle>,
    tokens: Mutex<ResumeTokens>,
    rng: SystemRandom,
    /// Verified for a version-1 login of an account without a legacy hash.
    dummy: Arc<PhcString>,
    config: AccountsConfig,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn opaque_error(e: OpaqueError) -> AuthError {
    match e {
        OpaqueError::Malformed => AuthError::Malformed,
        OpaqueError::Stretch => AuthError::Internal,
        OpaqueError::AuthenticationFailed | OpaqueError::Reflected => {
            AuthFailure::LoginFailed.into()
        }
    }
}

impl Accounts {
    /// Wraps an opened store and the server's OPAQUE keys; `tokens` is the
    /// snapshot from the last graceful stop.
    pub fn new(
        store: impl AccountStore + 'static,
        tokens: Vec<StoredToken>,
        keys: ServerKeys,
        config: AccountsConfig,
    ) -> Self {
        let mut known = HashMap::new();
        for account in store.accounts() {
            // An entry that no longer parses (rules tightened) can't log in.
            if let Ok(display) = Username::new(&account.username) {
                known.insert(
                    account.canonical,
                    KnownAccount {
                        display,
                        credential: Arc::new(account.credential),
                        disabled: account.disabled,
                    },
                );
            }
        }
        let store: Box<dyn AccountStore> = Box::new(store);
        let dummy = Arc::new(dummy_phc(config.password_hashing));
        Self {
            store: Arc::new(Mutex::new(store)),
            known: RwLock::new(known),
            keys: Arc::new(keys),
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

    /// Accounts still holding a pre-OPAQUE Argon2id hash.
    pub fn legacy_count(&self) -> usize {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|a| a.credential.is_legacy())
            .count()
    }

    /// The registered display name of `canonical`, if the account exists.
    pub fn display_name(&self, canonical: &str) -> Option<Username> {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(canonical)
            .map(|a| a.display.clone())
    }

    fn credential(&self, canonical: &str) -> Option<Arc<Credential>> {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(canonical)
            .map(|a| Arc::clone(&a.credential))
    }

    /// The key of a resumed handshake, by the id its ResumeHello names:
    /// a live resume token's (see [`ResumeTokens::resumption_key`]).
    pub fn resumption_key(&self, id: &[u8; 32]) -> Option<proto_core::ResumptionPsk> {
        lock(&self.tokens).resumption_key(id, now_ms())
    }

    /// Live resume tokens, for the snapshot written at shutdown.
    pub fn token_snapshot(&self) -> Vec<StoredToken> {
        lock(&self.tokens).snapshot(now_ms())
    }

    // ------------------------------------------------------ registration

    /// The version-1 `Register`: refused, it carried the password.
    pub fn register_with_password(&self) -> Result<AuthAnswer, AuthError> {
        Err(AuthError::Unsupported(Unsupported::PasswordRegistration))
    }

    /// `RegisterStart`: evaluates the blinded password under the name's
    /// OPRF key. Nothing is stored until the finish.
    pub fn register_start(
        &self,
        username: &Username,
        request: &[u8; REGISTRATION_REQUEST_LEN],
    ) -> Result<AuthAnswer, AuthError> {
        let canonical = username.canonical();
        if self.display_name(&canonical).is_some() {
            return Err(AuthFailure::NameTaken.into());
        }
        let response = self
            .keys
            .registration_response(request, &canonical)
            .map_err(opaque_error)?;
        Ok(AuthAnswer::Continue {
            reply: ServerMessage::RegisterResponse {
                response: Box::new(response),
            },
            pending: Some(Pending(PendingKind::Registration {
                username: username.clone(),
            })),
        })
    }

    /// `RegisterFinish`: stores the record and logs the account in. Exactly
    /// one of any number of concurrent registrations of a name (in any
    /// letter case) succeeds.
    pub async fn register_finish(
        &self,
        pending: Option<Pending>,
        upload: &[u8; REGISTRATION_UPLOAD_LEN],
        device: u64,
    ) -> Result<AuthAnswer, AuthError> {
        let Some(Pending(PendingKind::Registration { username })) = pending else {
            return Err(AuthError::OutOfOrder);
        };
        let record = PasswordRecord::from_upload(upload).map_err(opaque_error)?;
        let canonical = username.canonical();
        let credential = Credential::Opaque(record);
        let store = Arc::clone(&self.store);
        let (c, d, cred) = (
            canonical.clone(),
            username.as_str().to_owned(),
            credential.clone(),
        );
        let stored = tokio::task::spawn_blocking(move || lock(&store).register(&c, &d, cred))
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
        self.remember(&canonical, username, credential);
        tracing::info!(user = %canonical, "account registered");
        self.logged_in(canonical, device).map(AuthAnswer::LoggedIn)
    }

    fn remember(&self, canonical: &str, display: Username, credential: Credential) {
        self.known
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                canonical.to_owned(),
                KnownAccount {
                    display,
                    credential: Arc::new(credential),
                    disabled: false,
                },
            );
    }

    // ------------------------------------------------------------- login

    /// `LoginStart`: answers with KE2, from a fake record for an unknown
    /// user (same bytes, same work). The answer lets the client test one
    /// password guess offline, so it is counted as a failed attempt now;
    /// a valid finish takes that back. Attempts on one account take turns
    /// (see `attempt_queue`) and wait out the throttle's delay first (see
    /// `login_throttle`), so N parallel guesses take as long as N
    /// sequential ones.
    pub async fn login_start(
        &self,
        username: &Username,
        request: &[u8; CREDENTIAL_REQUEST_LEN],
        ip: IpAddr,
        binding: &ChannelBinding,
    ) -> Result<AuthAnswer, AuthError> {
        let canonical = username.canonical();
        let _turn = self.attempts.turn(&canonical, ip).await;
        self.wait_out_throttle(&canonical, ip).await;
        let record = match self.credential(&canonical).as_deref() {
            Some(Credential::LegacyPhc(_)) => {
                return Ok(AuthAnswer::Continue {
                    reply: ServerMessage::LegacyLoginRequired,
                    pending: None,
                })
            }
            Some(Credential::Opaque(record)) => Some(record.clone()),
            None => None,
        };
        let real = record.is_some();
        let (state, response) = self
            .answer_credential_request(&canonical, record, request, ip, binding)
            .await?;
        Ok(AuthAnswer::Continue {
            reply: ServerMessage::LoginResponse {
                response: Box::new(response),
            },
            pending: Some(Pending(PendingKind::Login {
                canonical,
                ip,
                state,
                real,
            })),
        })
    }

    /// `LoginFinish`: checks KE3. A failure was already counted.
    pub fn login_finish(
        &self,
        pending: Option<Pending>,
        finalization: &[u8; CREDENTIAL_FINALIZATION_LEN],
        binding: &ChannelBinding,
        device: u64,
    ) -> Result<AuthAnswer, AuthError> {
        let Some(Pending(PendingKind::Login {
            canonical,
            ip,
            state,
            real,
        })) = pending
        else {
            return Err(AuthError::OutOfOrder);
        };
        self.check_proof(state, real, finalization, &canonical, ip, binding)?;
        self.logged_in(canonical, device).map(AuthAnswer::LoggedIn)
    }

    /// The version-1 `Login`, with the password: served only for accounts
    /// that still hold an Argon2id hash. A success replaces the hash with
    /// an OPAQUE record made from the password at once (the one time the
    /// server sees it), so the account never logs in this way again. Any
    /// other account answers `LoginFailed` after the same work (a dummy
    /// hash is verified), throttled and queued like every attempt.
    pub async fn legacy_login(
        &self,
        username: &Username,
        password: Password,
        ip: IpAddr,
        device: u64,
    ) -> Result<AuthAnswer, AuthError> {
        let canonical = username.canonical();
        let _turn = self.attempts.turn(&canonical, ip).await;
        self.wait_out_throttle(&canonical, ip).await;
        let credential = self.credential(&canonical);
        let phc: Option<String> = match credential.as_deref() {
            Some(Credential::LegacyPhc(phc)) => Some(phc.clone()),
            _ => None,
        };
        let dummy = Arc::clone(&self.dummy);
        let keys = Arc::clone(&self.keys);
        let name = canonical.clone();
        let migrated = self
            .offloaded(move || {
                if !verify_login(phc.as_deref(), &dummy, password.expose().as_bytes()) {
                    return Ok(None);
                }
                let stretch = Stretch::RECOMMENDED.argon2id()?;
                keys.register_with_password(
                    &mut OsRng,
                    password.expose().as_bytes(),
                    &name,
                    &stretch,
                )
                .map(Some)
            })
            .await?
            .map_err(|_| AuthError::Internal)?;
        let Some(record) = migrated else {
            lock(&self.throttle).record_failure(&canonical, ip, Instant::now());
            self.log_failure(ip);
            return Err(AuthFailure::LoginFailed.into());
        };
        lock(&self.throttle).record_success(&canonical);
        self.replace_credential(&canonical, Credential::Opaque(record))
            .await?;
        tracing::info!(
            user = %canonical,
            legacy_left = self.legacy_count(),
            "account migrated to OPAQUE; its Argon2id hash is deleted"
        );
        self.logged_in(canonical, device).map(AuthAnswer::LoggedIn)
    }

    /// KE2 for a credential request (a login, or the old password of a
    /// change), off the event loop. The answer lets the client test one
    /// guess offline, so it is counted as a failed attempt before it is
    /// sent; [`check_proof`](Self::check_proof) takes that back.
    async fn answer_credential_request(
        &self,
        canonical: &str,
        record: Option<PasswordRecord>,
        request: &[u8; CREDENTIAL_REQUEST_LEN],
        ip: IpAddr,
        binding: &ChannelBinding,
    ) -> Result<(ServerLoginState, [u8; CREDENTIAL_RESPONSE_LEN]), AuthError> {
        let (keys, request, binding, name) = (
            Arc::clone(&self.keys),
            *request,
            binding.clone(),
            canonical.to_owned(),
        );
        let answer = self
            .offloaded(move || {
                keys.login_start(&mut OsRng, record.as_ref(), &request, &name, &binding)
            })
            .await?
            .map_err(opaque_error)?;
        lock(&self.throttle).record_failure(canonical, ip, Instant::now());
        Ok(answer)
    }

    /// Checks KE3 against the state its KE2 left (`real`: the record was
    /// the account's, not a fake one). Success takes back the failure
    /// counted when KE2 was sent.
    fn check_proof(
        &self,
        state: ServerLoginState,
        real: bool,
        finalization: &[u8; CREDENTIAL_FINALIZATION_LEN],
        canonical: &str,
        ip: IpAddr,
        binding: &ChannelBinding,
    ) -> Result<(), AuthError> {
        let verified = state.finish(finalization, canonical, binding).is_ok();
        if !(verified && real) {
            self.log_failure(ip);
            return Err(AuthFailure::LoginFailed.into());
        }
        lock(&self.throttle).record_finished_login(canonical, ip);
        Ok(())
    }

    async fn wait_out_throttle(&self, canonical: &str, ip: IpAddr) {
        let delay = lock(&self.throttle).delay_for(canonical, ip, Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    fn log_failure(&self, ip: IpAddr) {
        tracing::info!(
            %ip,
            failures_total = lock(&self.throttle).total_failures(),
            "login failed"
        );
    }

    async fn replace_credential(
        &self,
        canonical: &str,
        credential: Credential,
    ) -> Result<(), AuthError> {
        let cred = credential.clone();
        self.change_account(
            canonical,
            "a new credential could not be stored",
            move |store, c| store.replace_credential(c, cred),
            |account| account.credential = Arc::new(credential),
        )
        .await
    }

    /// Changes `canonical`'s account in the store (on the blocking pool: it
    /// fsyncs), then, once that is durable, in memory.
    async fn change_account(
        &self,
        canonical: &str,
        failure: &'static str,
        on_disk: impl FnOnce(&mut dyn AccountStore, &str) -> Result<(), StoreError> + Send + 'static,
        in_memory: impl FnOnce(&mut KnownAccount),
    ) -> Result<(), AuthError> {
        let store = Arc::clone(&self.store);
        let c = canonical.to_owned();
        let written = tokio::task::spawn_blocking(move || on_disk(&mut **lock(&store), &c))
            .await
            .map_err(|_| AuthError::Internal)?;
        if let Err(e) = written {
            tracing::error!(error = %e, "{failure}");
            return Err(AuthError::Internal);
        }
        if let Some(account) = self
            .known
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(canonical)
        {
            in_memory(account);
        }
        Ok(())
    }

    // --------------------------------------------------- password change

    /// `ChangePasswordStart` from the logged-in `canonical`: KE2 for the old
    /// password (counted and throttled like a login) and the registration
    /// response for the new one.
    pub async fn change_password_start(
        &self,
        canonical: &str,
        request: &[u8; CREDENTIAL_REQUEST_LEN],
        registration_request: &[u8; REGISTRATION_REQUEST_LEN],
        ip: IpAddr,
        binding: &ChannelBinding,
    ) -> Result<AuthAnswer, AuthError> {
        let _turn = self.attempts.turn(canonical, ip).await;
        self.wait_out_throttle(canonical, ip).await;
        let record = match self.credential(canonical).as_deref() {
            Some(Credential::Opaque(record)) => record.clone(),
            Some(Credential::LegacyPhc(_)) => {
                return Err(AuthError::Unsupported(Unsupported::LegacyPasswordChange))
            }
            None => return Err(AuthError::Internal),
        };
        let registration_response = self
            .keys
            .registration_response(registration_request, canonical)
            .map_err(opaque_error)?;
        let (state, response) = self
            .answer_credential_request(canonical, Some(record), request, ip, binding)
            .await?;
        Ok(AuthAnswer::Continue {
            reply: ServerMessage::ChangePasswordResponse {
                response: Box::new(response),
                registration_response: Box::new(registration_response),
            },
            pending: Some(Pending(PendingKind::ChangePassword {
                canonical: canonical.to_owned(),
                ip,
                state,
            })),
        })
    }

    /// `ChangePasswordFinish`: the old password's KE3 must verify; then the
    /// new record replaces the old one and every resume token of the
    /// account is revoked (the other devices log in again with the new
    /// password). This session gets a new token.
    pub async fn change_password_finish(
        &self,
        pending: Option<Pending>,
        finalization: &[u8; CREDENTIAL_FINALIZATION_LEN],
        upload: &[u8; REGISTRATION_UPLOAD_LEN],
        binding: &ChannelBinding,
        device: u64,
    ) -> Result<AuthAnswer, AuthError> {
        let Some(Pending(PendingKind::ChangePassword {
            canonical,
            ip,
            state,
        })) = pending
        else {
            return Err(AuthError::OutOfOrder);
        };
        self.check_proof(state, true, finalization, &canonical, ip, binding)?;
        let record = PasswordRecord::from_upload(upload).map_err(opaque_error)?;
        self.replace_credential(&canonical, Credential::Opaque(record))
            .await?;
        lock(&self.tokens).revoke_all(&canonical);
        tracing::info!(user = %canonical, "password changed; resume tokens revoked");
        let me = self.logged_in(canonical, device)?;
        Ok(AuthAnswer::PasswordChanged {
            reply: ServerMessage::PasswordChanged {
                resume_token: me.token,
                token_lifetime_secs: self.token_lifetime_secs(),
            },
        })
    }

    // ------------------------------------------------------------ tokens

    /// Redeems a resume token (one use) and issues the next one, for the
    /// device the token was issued to.
    pub fn resume(&self, token: &ResumeToken) -> Result<AuthAnswer, AuthError> {
        let user = lock(&self.tokens).redeem(token, now_ms());
        match user {
            Some((canonical, device)) if self.display_name(&canonical).is_some() => {
                self.logged_in(canonical, device).map(AuthAnswer::LoggedIn)
            }
            _ => Err(AuthFailure::ResumeFailed.into()),
        }
    }

    /// Revokes a token (the `#exit` path).
    pub fn revoke(&self, token: &ResumeToken) {
        lock(&self.tokens).revoke(token);
    }

    /// Disables or re-enables an account (an administrator's request):
    /// persisted before it takes effect; disabling also revokes every
    /// resume token of the account. The caller ends its sessions.
    pub async fn set_disabled(&self, canonical: &str, disabled: bool) -> Result<(), AuthError> {
        self.change_account(
            canonical,
            "an account could not be disabled or enabled",
            move |store, c| store.set_disabled(c, disabled),
            |account| account.disabled = disabled,
        )
        .await?;
        if disabled {
            self.revoke_all_tokens(canonical);
        }
        Ok(())
    }

    /// Whether an administrator disabled `canonical`.
    pub fn is_disabled(&self, canonical: &str) -> bool {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(canonical)
            .is_some_and(|a| a.disabled)
    }

    /// Revokes every resume token of `canonical` (its devices must log in
    /// with the password again).
    pub fn revoke_all_tokens(&self, canonical: &str) {
        lock(&self.tokens).revoke_all(canonical);
    }

    /// Every login ends here, after its proof: a disabled account is told
    /// so (only someone who proved the password learns it).
    /// Revokes the resume token of one device of `canonical`.
    pub fn revoke_device_token(&self, canonical: &str, device: u64) {
        lock(&self.tokens).revoke_device(canonical, device);
    }

    fn logged_in(&self, canonical: String, device: u64) -> Result<LoggedIn, AuthError> {
        if self.is_disabled(&canonical) {
            return Err(AuthFailure::AccountDisabled.into());
        }
        let username = self.display_name(&canonical).ok_or(AuthError::Internal)?;
        let expires = now_ms().saturating_add(
            u64::try_from(self.config.token_lifetime.as_millis()).unwrap_or(u64::MAX),
        );
        let token = lock(&self.tokens)
            .issue(&self.rng, &canonical, device, expires)
            .map_err(|_| AuthError::Internal)?;
        Ok(LoggedIn {
            username,
            canonical,
            token,
            device,
        })
    }

    /// Runs expensive account work (OPAQUE answers, Argon2id) on the
    /// blocking pool at background priority (see the `background-cpu`
    /// crate), at most `hash_workers` at once.
    async fn offloaded<T: Send + 'static>(
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

/// The tests make their stores with the file backend.
#[cfg(test)]
use crate::storage::CredentialStore;

#[cfg(test)]
mod tests;
