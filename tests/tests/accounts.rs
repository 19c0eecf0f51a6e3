//! Accounts: registration rules, duplicate names (also under a race),
//! authenticating twice, accounts and tokens across restarts, and a
//! tampered accounts file.

use std::collections::BTreeSet;

use proto_core::message::{AuthFailure, ClientMessage, ErrorCode, GoodbyeReason};
use tests::{password, username, TestClient, TestServer, Transport, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_account_logs_in_again_under_any_case_of_its_name() {
    let server = TestServer::start(Transport::Plain).await;
    let mut alice = server.connect("Alice").await;
    let first = alice.register("Alice", PASSWORD).await;
    assert_eq!(first.username.as_str(), "Alice");
    assert!(
        first.history.is_empty(),
        "a new server has no history: {:?}",
        first.history
    );
    assert_eq!(
        first.history_batches, 1,
        "an empty history is one final batch"
    );
    alice.goodbye().await;

    let mut again = server.connect("alice").await;
    let info = again.login("alice", PASSWORD).await;
    assert_eq!(
        info.username.as_str(),
        "Alice",
        "AuthOk names the account as registered"
    );
    assert_ne!(info.token, first.token, "each login gets its own token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_shorter_than_the_minimum_is_refused_as_weak() {
    let server = TestServer::start(Transport::Plain).await;
    let mut client = server.connect("Alice").await;
    assert_eq!(
        client.try_register("Alice", "short12").await.err(),
        Some(AuthFailure::WeakPassword),
        "7 characters with min_password_chars = 8"
    );
    // Nothing was created: the name is still free on the same connection.
    client.register("Alice", "long enough").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_in_any_case_cannot_be_registered_again() {
    let server = TestServer::start(Transport::Plain).await;
    let mut alice = server.user("Alice").await;
    let _zoe = server.user("Zoë").await;
    alice.expect_user_joined("Zoë").await;
    for name in ["Alice", "alice", "ALICE", "aLiCe", "ZOË", "zoë"] {
        let mut client = server.connect(name).await;
        assert_eq!(
            client.try_register(name, PASSWORD).await.err(),
            Some(AuthFailure::NameTaken),
            "{name} differs from a registered name only in case"
        );
    }
    // The refused attempts did not disturb the owner.
    alice.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_registrations_of_one_name_have_exactly_one_winner() {
    let server = TestServer::start(Transport::Plain).await;
    let spellings = ["Racer", "racer", "RACER", "rAcEr"];
    let mut clients = Vec::new();
    for i in 0..20 {
        clients.push(server.connect(&format!("racer #{i}")).await);
    }
    // All connected first, then all Register messages go out at once.
    let attempts = clients.into_iter().enumerate().map(|(i, mut client)| {
        let name = spellings[i % spellings.len()];
        let secret = format!("password number {i}");
        tokio::spawn(async move {
            let result = client.try_register(name, &secret).await;
            (i, secret, result.map(|info| info.username), client)
        })
    });
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    let mut sessions = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        let (i, secret, result, client) = attempt.await.expect("registration task");
        match result {
            Ok(name) => winners.push((i, secret, name)),
            Err(AuthFailure::NameTaken) => losers.push(secret),
            Err(other) => panic!("racer #{i} got {other:?}, expected AuthOk or NameTaken"),
        }
        sessions.push(client);
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one registration of one name may win, got {}",
        winners.len()
    );
    assert_eq!(losers.len(), 19);
    let (i, secret, name) = winners.pop().expect("one winner");
    assert_eq!(name.as_str(), spellings[i % spellings.len()]);
    drop(sessions);

    // The account is the winner's: its password logs in, no loser's does.
    let mut check = server.connect("checker").await;
    for loser in losers.iter().take(3) {
        assert_eq!(
            check.try_login("racer", loser).await.err(),
            Some(AuthFailure::LoginFailed)
        );
    }
    check.login("RACER", &secret).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticating_again_on_a_logged_in_session_is_refused() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    let mut carol = server.connect("Carol").await;
    let token = carol.register("Carol", PASSWORD).await.token;
    for client in &mut c {
        client.expect_user_joined("Carol").await;
    }
    let attempts = [
        ClientMessage::Login {
            username: username("Bob"),
            password: password(PASSWORD),
        },
        ClientMessage::LoginStart {
            username: username("Bob"),
            request: Box::new([0; 96]),
        },
        ClientMessage::RegisterStart {
            username: username("Dave"),
            request: Box::new([0; 32]),
        },
        ClientMessage::Resume { token },
    ];
    for msg in &attempts {
        c[0].send(msg).await;
        c[0].expect_error(ErrorCode::AlreadyLoggedIn).await;
    }
    // Still Alice, and nobody was replaced or registered.
    c[0].say("I am still Alice").await;
    c[1].expect_room_message("Alice", "I am still Alice").await;
    carol.expect_room_message("Alice", "I am still Alice").await;
    carol.sync().await;
    let expected: BTreeSet<String> = ["Alice", "Bob", "Carol"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(c[1].who_is_online().await, expected);
    let mut dave = server.connect("Dave").await;
    dave.register("Dave", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_survive_a_restart() {
    let mut server = TestServer::start(Transport::Plain).await;
    server.user("Alice").await.goodbye().await;
    server.user("Bob").await.goodbye().await;
    server.restart().await;

    let mut alice = server.connect("Alice").await;
    assert_eq!(
        alice.try_login("Alice", "wrong password").await.err(),
        Some(AuthFailure::LoginFailed)
    );
    alice.login("Alice", PASSWORD).await;
    let mut bob = server.connect("Bob").await;
    bob.login("bob", PASSWORD).await;
    alice.expect_user_joined("Bob").await;
    let mut copycat = server.connect("copycat").await;
    assert_eq!(
        copycat.try_register("ALICE", PASSWORD).await.err(),
        Some(AuthFailure::NameTaken)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_tokens_survive_a_graceful_restart() {
    let mut server = TestServer::start(Transport::Plain).await;
    let mut alice = server.connect("Alice").await;
    let token = alice.register("Alice", PASSWORD).await.token;
    let mut bob = server.user("Bob").await;
    alice.expect_user_joined("Bob").await;
    server.restart().await;
    alice.expect_goodbye(GoodbyeReason::ServerShutdown).await;
    bob.expect_goodbye(GoodbyeReason::ServerShutdown).await;

    let mut again = server.connect("Alice resumed").await;
    let info = again.resume(&token).await;
    assert_eq!(info.username.as_str(), "Alice");
    assert_ne!(info.token, token);
    again.goodbye().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_accounts_file_stops_the_server_and_is_left_unchanged() {
    let mut server = TestServer::start(Transport::Plain).await;
    server.user("Alice").await.goodbye().await;
    server.shutdown().await;

    let path = server.data_dir().join("accounts.json.enc");
    let original = std::fs::read(&path).expect("the accounts file exists after a registration");
    assert!(!original.is_empty());
    for position in [0, original.len() / 2, original.len() - 1] {
        let mut tampered = original.clone();
        tampered[position] ^= 0x01;
        std::fs::write(&path, &tampered).expect("tamper");
        match server.try_start_again().await {
            Ok(()) => panic!("the server started on an accounts file with byte {position} flipped"),
            Err(e) => assert!(!e.is_empty()),
        }
        assert_eq!(
            std::fs::read(&path).expect("accounts file"),
            tampered,
            "the refused accounts file was modified (byte {position} flipped)"
        );
    }
    // Truncated is refused too.
    std::fs::write(&path, &original[..original.len() / 2]).expect("truncate");
    assert!(
        server.try_start_again().await.is_err(),
        "started on a truncated accounts file"
    );

    // The untouched file still works: the refusal destroyed nothing.
    std::fs::write(&path, &original).expect("restore");
    server
        .try_start_again()
        .await
        .expect("start on the restored accounts file");
    let mut alice = TestClient::connect(&server.endpoint(), "Alice").await;
    alice.login("Alice", PASSWORD).await;
}
