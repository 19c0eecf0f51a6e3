//! Passwords over OPAQUE, end to end: the migration of a data directory
//! made by the release before OPAQUE, password changes and the other
//! devices' tokens, the login bound to its connection, and the version-1
//! registration refused.

use std::fs;
use std::path::{Path, PathBuf};

use proto_core::login::{ExchangeStep, PasswordExchange};
use proto_core::message::{AuthFailure, ClientMessage, ErrorCode, ServerMessage};
use proto_core::opaque::Stretch;
use rand_core::OsRng;
use server::storage::{Credential, CredentialStore};
use tests::fixtures::{self, copy_private, LEGACY_ACCOUNTS};
use tests::server_process::{write_config, ServerProcess};
use tests::{password, username, TestClient, TestServer, Transport, PASSWORD};

const EXE: &str = env!("CARGO_BIN_EXE_securechat-test-server");

/// A private copy of the pre-OPAQUE fixture under `into`.
fn legacy_data_dir(into: &Path) -> PathBuf {
    let data = into.join("data");
    copy_private(&fixtures::legacy_data_dir(), &data);
    data
}

fn open_store(data: &Path) -> CredentialStore {
    let key: [u8; 32] = fs::read(data.join("storage.key"))
        .unwrap()
        .try_into()
        .unwrap();
    CredentialStore::open(data.join("accounts.json.enc"), &key).unwrap()
}

/// Every file under `dir`, read raw.
fn every_byte(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            every_byte(&path, out);
        } else {
            out.push((path.clone(), fs::read(&path).unwrap()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_made_before_opaque_logs_in_and_keeps_no_password_hash() {
    let dir = tempfile::tempdir().unwrap();
    let data = legacy_data_dir(dir.path());
    assert_eq!(open_store(&data).legacy_count(), 3);
    let config = dir.path().join("config.toml");
    write_config(&config, &data);
    let server = ServerProcess::start(Path::new(EXE), &config, &dir.path().join("log")).await;
    assert!(
        server.log().contains("accounts=3"),
        "the start must say how many legacy records remain:\n{}",
        server.log()
    );
    let endpoint = server.endpoint();

    // A new client: OPAQUE first, told to use the old login once, then in.
    let (name, secret) = LEGACY_ACCOUNTS[0];
    let mut alice = TestClient::connect(&endpoint, name).await;
    let info = alice.login(name, secret).await;
    let texts: Vec<&str> = info.history.iter().map(|e| e.text.as_str()).collect();
    assert!(
        texts.contains(&"hello from Bob before OPAQUE"),
        "history survives: {texts:?}"
    );
    alice.goodbye().await;
    // A client of the previous release sends the version-1 login itself.
    let (name, secret) = LEGACY_ACCOUNTS[1];
    let mut bob = TestClient::connect(&endpoint, name).await;
    bob.try_legacy_login(name, secret).await.unwrap();
    bob.goodbye().await;
    // A wrong password migrates nothing.
    let (name, _) = LEGACY_ACCOUNTS[2];
    let mut carol = TestClient::connect(&endpoint, name).await;
    assert_eq!(
        carol.try_login(name, "not her password").await.err(),
        Some(AuthFailure::LoginFailed)
    );
    drop(carol);
    server.terminate().await;

    let store = open_store(&data);
    assert_eq!(store.legacy_count(), 1, "only carol is left to migrate");
    for (name, _) in &LEGACY_ACCOUNTS[..2] {
        let canonical = username(name).canonical();
        assert!(
            matches!(
                store.get(&canonical).unwrap().credential,
                Credential::Opaque(_)
            ),
            "{name} still has a hash"
        );
    }
    // No password anywhere on disk, in any file, in clear.
    let mut files = Vec::new();
    every_byte(&data, &mut files);
    for (path, bytes) in &files {
        for (_, secret) in LEGACY_ACCOUNTS {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a password",
                path.display()
            );
        }
    }

    // After the restart: the migrated accounts log in over OPAQUE only.
    let server = ServerProcess::start(Path::new(EXE), &config, &dir.path().join("log2")).await;
    assert!(server.log().contains("accounts=1"), "{}", server.log());
    let (name, secret) = LEGACY_ACCOUNTS[0];
    let mut again = TestClient::connect(&server.endpoint(), name).await;
    let (_, export_key) = again.try_login_with_key(name, secret).await.unwrap();
    assert!(
        export_key.is_some(),
        "an OPAQUE login yields the export key"
    );
    again.goodbye().await;
    let mut old_way = TestClient::connect(&server.endpoint(), name).await;
    assert_eq!(
        old_way.try_legacy_login(name, secret).await.err(),
        Some(AuthFailure::LoginFailed),
        "the version-1 login no longer reaches a migrated account"
    );
    drop(old_way);
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_revokes_every_other_devices_token() {
    let server = TestServer::start(Transport::Plain).await;
    let mut laptop = server.connect("laptop").await;
    laptop.set_device(1, "laptop").await;
    laptop.register("Dana", PASSWORD).await;
    let mut phone = server.connect("phone").await;
    phone.set_device(2, "phone").await;
    let phone_token = phone.login("Dana", PASSWORD).await.token;
    drop(phone);
    // The phone (gone) keeps its token.
    let mut laptop = server.connect("laptop").await;
    laptop.set_device(1, "laptop").await;
    laptop.login("Dana", PASSWORD).await;

    // The wrong current password: refused on the client, nothing changes.
    assert_eq!(
        laptop
            .try_change_password("Dana", "not the password", "a brand new one")
            .await
            .err(),
        Some(None)
    );
    // The right one.
    let new_token = laptop
        .try_change_password("Dana", PASSWORD, "a brand new one")
        .await
        .expect("the password changes");
    // The phone's token is revoked; the old password is gone.
    let mut phone = server.connect("phone").await;
    phone.set_device(2, "phone").await;
    assert_eq!(
        phone.try_resume(&phone_token).await.err(),
        Some(AuthFailure::ResumeFailed)
    );
    assert_eq!(
        phone.try_login("Dana", PASSWORD).await.err(),
        Some(AuthFailure::LoginFailed)
    );
    phone.login("Dana", "a brand new one").await;
    // This session's new token works (once the phone has left again).
    phone.goodbye().await;
    let mut later = server.connect("later").await;
    later.resume(&new_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_needs_a_login_first() {
    let server = TestServer::start(Transport::Plain).await;
    let mut stranger = server.connect("stranger").await;
    stranger
        .send(&ClientMessage::ChangePasswordStart {
            request: Box::new([0; 96]),
            registration_request: Box::new([0; 32]),
        })
        .await;
    stranger.expect_error(ErrorCode::NotLoggedIn).await;
}

/// An impostor in the middle (a client that accepted the wrong key, say)
/// relays the victim's OPAQUE messages over its own connection to the
/// real server. Both connections have their own binding, so the victim's
/// client refuses the server's answer and never sends its proof, and the
/// impostor cannot make one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_relayed_into_another_connection_fails() {
    let server = TestServer::start(Transport::Plain).await;
    server.user("Erin").await;
    let mut victim = server.connect("victim").await;
    let mut impostor = server.connect("impostor").await;
    let stretch = Stretch::RECOMMENDED.argon2id().unwrap();
    let (mut exchange, first) = PasswordExchange::login(
        &mut OsRng,
        username("Erin"),
        password(PASSWORD),
        stretch,
        victim.session().channel_binding().clone(),
    )
    .unwrap();
    impostor.send(&first).await;
    let answer = impostor.recv().await;
    assert!(matches!(answer, ServerMessage::LoginResponse { .. }));
    assert!(
        matches!(exchange.handle(&mut OsRng, answer), ExchangeStep::Refused),
        "the victim's client must refuse an answer bound to another connection"
    );
    // The impostor has no proof to send; a made-up one is refused.
    impostor
        .send(&ClientMessage::LoginFinish {
            finalization: Box::new([7; 64]),
        })
        .await;
    assert_eq!(
        impostor.recv().await,
        ServerMessage::AuthFailed {
            reason: AuthFailure::LoginFailed
        }
    );
    // The same password over the victim's own connection works.
    victim.login("Erin", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_1_registration_with_a_password_is_refused() {
    let server = TestServer::start(Transport::Plain).await;
    let mut old = server.connect("old client").await;
    old.send(&ClientMessage::Register {
        username: username("Fay"),
        password: password(PASSWORD),
    })
    .await;
    old.expect_error(ErrorCode::Unsupported).await;
    // Nothing was registered: the name is free for an OPAQUE registration.
    old.register("Fay", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_answers_look_alike() {
    let server = TestServer::start(Transport::Plain).await;
    server.user("Gil").await;
    for name in ["Gil", "nobody-here"] {
        let mut c = server.connect("probe").await;
        let stretch = Stretch::RECOMMENDED.argon2id().unwrap();
        let (mut exchange, first) = PasswordExchange::login(
            &mut OsRng,
            username(name),
            password("not the password"),
            stretch,
            c.session().channel_binding().clone(),
        )
        .unwrap();
        c.send(&first).await;
        // Both get a KE2 (not an error, not LegacyLoginRequired), which the
        // client finds does not verify with this password.
        let answer = c.recv().await;
        assert!(
            matches!(answer, ServerMessage::LoginResponse { .. }),
            "{name}: {answer:?}"
        );
        assert!(matches!(
            exchange.handle(&mut OsRng, answer),
            ExchangeStep::Refused
        ));
        // A guessed proof gets the one answer for both.
        c.send(&ClientMessage::LoginFinish {
            finalization: Box::new([9; 64]),
        })
        .await;
        assert_eq!(
            c.recv().await,
            ServerMessage::AuthFailed {
                reason: AuthFailure::LoginFailed
            },
            "{name}"
        );
    }
}
