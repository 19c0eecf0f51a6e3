use super::*;
use crate::login_throttle::MAX_DELAY;
use crate::storage::hash_password;
use proto_core::opaque::{Argon2id, ClientLoginState, ClientRegistrationState};

/// The client's stretching, cheap: these tests are about the server.
fn ksf() -> Argon2id {
    Stretch::CHEAPEST.argon2id().unwrap()
}

fn accounts_in(dir: &std::path::Path) -> Arc<Accounts> {
    let store = CredentialStore::open(dir.join("accounts.json.enc"), &[9; 32]).unwrap();
    Arc::new(Accounts::new(
        store,
        Vec::new(),
        ServerKeys::generate(&mut OsRng),
        AccountsConfig {
            password_hashing: crate::storage::password::TEST_PASSWORD_HASHING,
            hash_workers: 2,
            token_lifetime: Duration::from_secs(60),
        },
    ))
}

fn name(s: &str) -> Username {
    Username::new(s).unwrap()
}

fn ip(i: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, i])
}

fn binding() -> ChannelBinding {
    ChannelBinding::from_bytes([42; 32])
}

fn pending_of(answer: AuthAnswer) -> (ServerMessage, Option<Pending>) {
    match answer {
        AuthAnswer::Continue { reply, pending } => (reply, pending),
        other => panic!("expected a reply to send, got {other:?}"),
    }
}

async fn register(accounts: &Accounts, user: &str, password: &str) -> Result<LoggedIn, AuthError> {
    let (client, request) =
        ClientRegistrationState::<Argon2id>::start(&mut OsRng, password.as_bytes()).unwrap();
    let (reply, pending) = pending_of(accounts.register_start(&name(user), &request)?);
    let ServerMessage::RegisterResponse { response } = reply else {
        panic!("expected RegisterResponse, got {reply:?}");
    };
    let canonical = name(user).canonical();
    let (upload, _) = client
        .finish(
            &mut OsRng,
            password.as_bytes(),
            &response,
            &canonical,
            &ksf(),
        )
        .unwrap();
    match accounts.register_finish(pending, &upload, 1).await? {
        AuthAnswer::LoggedIn(me) => Ok(me),
        other => panic!("expected a login, got {other:?}"),
    }
}

/// A whole OPAQUE login as a client would run it. A client whose
/// password is wrong cannot produce a valid finish; it sends garbage (as
/// an attacker who guessed wrong would, or nothing at all).
async fn login(
    accounts: &Accounts,
    user: &str,
    password: &str,
    from: IpAddr,
) -> Result<LoggedIn, AuthError> {
    let (client, request) =
        ClientLoginState::<Argon2id>::start(&mut OsRng, password.as_bytes()).unwrap();
    let (reply, pending) = pending_of(
        accounts
            .login_start(&name(user), &request, from, &binding())
            .await?,
    );
    let ServerMessage::LoginResponse { response } = reply else {
        panic!("expected LoginResponse, got {reply:?}");
    };
    let canonical = name(user).canonical();
    let finalization = match client.finish(
        &mut OsRng,
        password.as_bytes(),
        &response,
        &canonical,
        &binding(),
        &ksf(),
    ) {
        Ok((finalization, _)) => finalization,
        Err(_) => [0u8; CREDENTIAL_FINALIZATION_LEN],
    };
    match accounts.login_finish(pending, &finalization, &binding(), 1)? {
        AuthAnswer::LoggedIn(me) => Ok(me),
        other => panic!("expected a login, got {other:?}"),
    }
}

const LOGIN_FAILED: Result<(), AuthError> = Err(AuthError::Failed(AuthFailure::LoginFailed));

fn outcome<T>(r: Result<T, AuthError>) -> Result<(), AuthError> {
    r.map(|_| ())
}

#[tokio::test]
async fn register_then_login_and_a_second_registration_of_the_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = accounts_in(dir.path());
    let me = register(&accounts, "Alice", "correct horse").await.unwrap();
    assert_eq!(me.username.as_str(), "Alice");
    assert_eq!(
        outcome(register(&accounts, "ALICE", "another one").await),
        Err(AuthError::Failed(AuthFailure::NameTaken))
    );
    let me = login(&accounts, "alice", "correct horse", ip(1))
        .await
        .unwrap();
    assert_eq!(me.canonical, "alice");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = accounts_in(dir.path());
    register(&accounts, "alice", "correct horse").await.unwrap();
    assert_eq!(
        outcome(login(&accounts, "alice", "wrong horse", ip(1)).await),
        LOGIN_FAILED
    );
    assert_eq!(
        outcome(login(&accounts, "nobody", "correct horse", ip(1)).await),
        LOGIN_FAILED
    );
}

#[tokio::test]
async fn a_finish_without_its_start_is_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = accounts_in(dir.path());
    assert_eq!(
        outcome(accounts.login_finish(None, &[0; CREDENTIAL_FINALIZATION_LEN], &binding(), 1)),
        Err(AuthError::OutOfOrder)
    );
    assert_eq!(
        outcome(
            accounts
                .register_finish(None, &[0; REGISTRATION_UPLOAD_LEN], 1)
                .await
        ),
        Err(AuthError::OutOfOrder)
    );
}

#[tokio::test]
async fn a_malformed_request_is_refused_as_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = accounts_in(dir.path());
    assert_eq!(
        outcome(accounts.register_start(&name("alice"), &[0xff; REGISTRATION_REQUEST_LEN])),
        Err(AuthError::Malformed)
    );
    assert_eq!(
        outcome(
            accounts
                .login_start(
                    &name("alice"),
                    &[0xff; CREDENTIAL_REQUEST_LEN],
                    ip(1),
                    &binding()
                )
                .await
        ),
        Err(AuthError::Malformed)
    );
}

/// Accounts with "alice" registered and enough failures on her account
/// to put its delay at the cap: each answered start without a finish
/// counts, as the answer let the client test one guess offline.
async fn alice_at_the_cap(dir: &std::path::Path) -> Arc<Accounts> {
    let accounts = accounts_in(dir);
    register(&accounts, "alice", "correct horse").await.unwrap();
    for _ in 0..10 {
        let (_, request) = ClientLoginState::<Argon2id>::start(&mut OsRng, b"guess").unwrap();
        let answer = accounts
            .login_start(&name("alice"), &request, ip(1), &binding())
            .await
            .unwrap();
        // The client tests its guess offline and never finishes.
        drop(answer);
    }
    accounts
}

#[tokio::test(start_paused = true)]
async fn answered_starts_without_a_finish_are_counted_as_failures() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = alice_at_the_cap(dir.path()).await;
    let start = tokio::time::Instant::now();
    login(&accounts, "alice", "correct horse", ip(9))
        .await
        .unwrap();
    assert!(
        start.elapsed() >= MAX_DELAY,
        "ten unfinished logins must slow the next attempt, it waited {:?}",
        start.elapsed()
    );
    // The success cleared the account's count.
    let start = tokio::time::Instant::now();
    login(&accounts, "alice", "correct horse", ip(9))
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// Parallel guesses used to compute their delays on arrival, before the
/// earlier ones were counted, and wait them out side by side.
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
                let guess = format!("guess number {i}");
                login(&accounts, "alice", &guess, ip(2 + (i % 4) as u8)).await
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

/// The owner of an account under attack still logs in, after at most one
/// attempt per attacking address (plus its own delay).
#[tokio::test(start_paused = true)]
async fn the_owner_gets_in_behind_one_attempt_per_attacking_address() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = alice_at_the_cap(dir.path()).await;
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let accounts = Arc::clone(&accounts);
            tokio::spawn(async move {
                let guess = format!("guess number {i}");
                login(&accounts, "alice", &guess, ip(2 + (i % 2) as u8)).await
            })
        })
        .collect();
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let me = login(
        &accounts,
        "alice",
        "correct horse",
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

/// A store as the release before OPAQUE left it: an Argon2id hash.
fn legacy_accounts(dir: &std::path::Path, user: &str, password: &str) -> Arc<Accounts> {
    let path = dir.join("accounts.json.enc");
    let mut store = CredentialStore::open(&path, &[9; 32]).unwrap();
    let phc = hash_password(password.as_bytes()).unwrap().into_string();
    store
        .register(&name(user).canonical(), user, Credential::LegacyPhc(phc))
        .unwrap();
    drop(store);
    accounts_in(dir)
}

async fn legacy_login(accounts: &Accounts, user: &str, password: &str) -> Result<(), AuthError> {
    outcome(
        accounts
            .legacy_login(
                &name(user),
                Password::new(password.to_owned()).unwrap(),
                ip(1),
                1,
            )
            .await,
    )
}

#[tokio::test]
async fn a_legacy_account_is_asked_for_the_old_login_then_migrated_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = legacy_accounts(dir.path(), "Carol", "old password");
    assert_eq!(accounts.legacy_count(), 1);
    let (_, request) = ClientLoginState::<Argon2id>::start(&mut OsRng, b"x").unwrap();
    let (reply, pending) = pending_of(
        accounts
            .login_start(&name("carol"), &request, ip(1), &binding())
            .await
            .unwrap(),
    );
    assert_eq!(reply, ServerMessage::LegacyLoginRequired);
    assert!(pending.is_none());
    // A wrong password migrates nothing.
    assert_eq!(
        legacy_login(&accounts, "carol", "wrong").await,
        LOGIN_FAILED
    );
    assert_eq!(accounts.legacy_count(), 1);
    legacy_login(&accounts, "carol", "old password")
        .await
        .unwrap();
    assert_eq!(accounts.legacy_count(), 0);
    // The store on disk holds the OPAQUE record, no hash.
    let reopened = CredentialStore::open(dir.path().join("accounts.json.enc"), &[9; 32]).unwrap();
    assert!(matches!(
        reopened.get("carol").unwrap().credential,
        Credential::Opaque(_)
    ));
    assert_eq!(reopened.legacy_count(), 0);
    // The old way is closed now; OPAQUE with the client's real stretching works.
    assert_eq!(
        legacy_login(&accounts, "carol", "old password").await,
        LOGIN_FAILED
    );
    let (client, request) =
        ClientLoginState::<Argon2id>::start(&mut OsRng, b"old password").unwrap();
    let (reply, pending) = pending_of(
        accounts
            .login_start(&name("carol"), &request, ip(1), &binding())
            .await
            .unwrap(),
    );
    let ServerMessage::LoginResponse { response } = reply else {
        panic!("{reply:?}");
    };
    let (finalization, _) = client
        .finish(
            &mut OsRng,
            b"old password",
            &response,
            "carol",
            &binding(),
            &Stretch::RECOMMENDED.argon2id().unwrap(),
        )
        .unwrap();
    assert!(matches!(
        accounts.login_finish(pending, &finalization, &binding(), 1),
        Ok(AuthAnswer::LoggedIn(_))
    ));
}

#[tokio::test]
async fn the_old_login_and_registration_cannot_reach_an_opaque_account() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = accounts_in(dir.path());
    register(&accounts, "alice", "correct horse").await.unwrap();
    assert_eq!(
        legacy_login(&accounts, "alice", "correct horse").await,
        LOGIN_FAILED
    );
    assert_eq!(
        legacy_login(&accounts, "nobody", "correct horse").await,
        LOGIN_FAILED
    );
    assert_eq!(
        outcome(accounts.register_with_password()),
        Err(AuthError::Unsupported(Unsupported::PasswordRegistration))
    );
}

async fn change_password(
    accounts: &Accounts,
    user: &str,
    old: &str,
    new: &str,
) -> Result<AuthAnswer, AuthError> {
    let canonical = name(user).canonical();
    let (login, request) = ClientLoginState::<Argon2id>::start(&mut OsRng, old.as_bytes()).unwrap();
    let (registration, registration_request) =
        ClientRegistrationState::<Argon2id>::start(&mut OsRng, new.as_bytes()).unwrap();
    let (reply, pending) = pending_of(
        accounts
            .change_password_start(
                &canonical,
                &request,
                &registration_request,
                ip(1),
                &binding(),
            )
            .await?,
    );
    let ServerMessage::ChangePasswordResponse {
        response,
        registration_response,
    } = reply
    else {
        panic!("{reply:?}");
    };
    let finalization = match login.finish(
        &mut OsRng,
        old.as_bytes(),
        &response,
        &canonical,
        &binding(),
        &ksf(),
    ) {
        Ok((f, _)) => f,
        Err(_) => [0; CREDENTIAL_FINALIZATION_LEN],
    };
    let (upload, _) = registration
        .finish(
            &mut OsRng,
            new.as_bytes(),
            &registration_response,
            &canonical,
            &ksf(),
        )
        .unwrap();
    accounts
        .change_password_finish(pending, &finalization, &upload, &binding(), 1)
        .await
}

#[tokio::test]
async fn a_password_change_needs_the_old_password_and_revokes_every_token() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = accounts_in(dir.path());
    let laptop = register(&accounts, "alice", "correct horse").await.unwrap();
    let phone = login(&accounts, "alice", "correct horse", ip(2))
        .await
        .unwrap();
    assert_eq!(
        outcome(change_password(&accounts, "alice", "not the old one", "new battery").await),
        LOGIN_FAILED
    );
    // Nothing changed: the old password and the tokens still work.
    let phone_token = match accounts.resume(&phone.token).unwrap() {
        AuthAnswer::LoggedIn(me) => me.token,
        other => panic!("{other:?}"),
    };
    let answer = change_password(&accounts, "alice", "correct horse", "new battery")
        .await
        .unwrap();
    let AuthAnswer::PasswordChanged {
        reply: ServerMessage::PasswordChanged { resume_token, .. },
    } = answer
    else {
        panic!("{answer:?}");
    };
    for old in [&laptop.token, &phone_token] {
        assert_eq!(
            outcome(accounts.resume(old)),
            Err(AuthError::Failed(AuthFailure::ResumeFailed))
        );
    }
    accounts.resume(&resume_token).unwrap();
    assert_eq!(
        outcome(login(&accounts, "alice", "correct horse", ip(1)).await),
        LOGIN_FAILED
    );
    login(&accounts, "alice", "new battery", ip(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_legacy_account_cannot_change_its_password_before_its_first_login() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = legacy_accounts(dir.path(), "carol", "old password");
    assert_eq!(
        outcome(change_password(&accounts, "carol", "old password", "new one!").await),
        Err(AuthError::Unsupported(Unsupported::LegacyPasswordChange))
    );
}

/// The service over another backend: the memory one answers as the file does.
#[tokio::test]
async fn the_service_runs_on_the_memory_backend_alike() {
    let accounts = Accounts::new(
        crate::storage::memory::MemoryAccounts::new(),
        Vec::new(),
        ServerKeys::generate(&mut OsRng),
        AccountsConfig {
            password_hashing: crate::storage::password::TEST_PASSWORD_HASHING,
            hash_workers: 2,
            token_lifetime: Duration::from_secs(60),
        },
    );
    register(&accounts, "Alice", "correct horse").await.unwrap();
    assert_eq!(
        outcome(register(&accounts, "ALICE", "another one").await),
        Err(AuthError::Failed(AuthFailure::NameTaken))
    );
    login(&accounts, "alice", "correct horse", ip(1))
        .await
        .unwrap();
    accounts.set_disabled("alice", true).await.unwrap();
    assert_eq!(
        outcome(login(&accounts, "alice", "correct horse", ip(1)).await),
        Err(AuthError::Failed(AuthFailure::AccountDisabled))
    );
}
