//! The real `securechat-server` binary: killed with SIGKILL in the middle
//! of registrations and chat, stopped with SIGTERM, refusing a tampered
//! accounts file, and its `fingerprint` command.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use net::LinkEvent;
use proto_core::login::{ExchangeStep, LoginReply, PasswordExchange};
use proto_core::message::{AuthFailure, ClientMessage, GoodbyeReason, ServerMessage};
use proto_core::opaque::Stretch;
use rand_core::OsRng;
use tests::server_process::{run_to_exit, write_config_with};
use tests::{
    password, text, username, Endpoint, ServerProcess, TestClient, PASSWORD, RECV_TIMEOUT,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

const EXE: &str = env!("CARGO_BIN_EXE_securechat-test-server");

/// A temporary directory with `data/`, `server.toml` and log files.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self::with_top_level("")
    }
    /// With more top-level settings in the config file.
    fn with_top_level(settings: &str) -> Self {
        let ws = Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        write_config_with(&ws.config(), &ws.data_dir(), settings);
        ws
    }
    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("server.toml")
    }
    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    async fn start(&self, log: &str) -> ServerProcess {
        ServerProcess::start(Path::new(EXE), &self.config(), &self.log(log)).await
    }
}

/// What one crash-test client saw.
#[derive(Debug)]
enum Outcome {
    /// AuthOk arrived: the registration was acknowledged.
    Acknowledged,
    /// The server died first.
    NotAcknowledged,
    /// The server answered the registration with a refusal.
    Refused(AuthFailure),
}

/// Registers `crashNN`, reports the AuthOk on `acks`, then chats until the
/// server goes away. Never panics: the server dying is the point.
async fn register_and_chat(
    endpoint: Endpoint,
    i: usize,
    acks: mpsc::UnboundedSender<(String, String)>,
) -> Outcome {
    let name = format!("crash{i:02}");
    let secret = format!("crash password {i:02}");
    let Ok(mut client) = TestClient::try_connect(&endpoint, &name).await else {
        return Outcome::NotAcknowledged;
    };
    let binding = client.session().channel_binding().clone();
    let stretch = Stretch::RECOMMENDED.argon2id().expect("valid costs");
    let Ok((mut exchange, first)) = PasswordExchange::register(
        &mut OsRng,
        username(&name),
        password(&secret),
        stretch,
        binding,
    ) else {
        return Outcome::NotAcknowledged;
    };
    if client.try_send(&first).await.is_err() {
        return Outcome::NotAcknowledged;
    }
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        let Some(Ok(LinkEvent::Message(msg))) = client.next_event_until(deadline).await else {
            return Outcome::NotAcknowledged;
        };
        match exchange.handle(&mut OsRng, msg) {
            ExchangeStep::Done(LoginReply::Accepted { .. }, _) => {
                let _ = acks.send((name.clone(), secret.clone()));
                break;
            }
            ExchangeStep::Done(LoginReply::Refused(reason), _) => return Outcome::Refused(reason),
            ExchangeStep::Done(..) => return Outcome::NotAcknowledged,
            ExchangeStep::Refused | ExchangeStep::LegacyRefused => {
                return Outcome::Refused(AuthFailure::LoginFailed)
            }
            ExchangeStep::Send(next) => {
                if client.try_send(&next).await.is_err() {
                    return Outcome::NotAcknowledged;
                }
            }
            ExchangeStep::Unexpected(_) => {}
        }
    }
    // Chat (one message per 50 ms at most, as the workload), reading
    // everything, until the connection dies.
    let mut said = 0;
    loop {
        if said < 100 {
            let msg = ClientMessage::RoomMessage {
                room: tests::room("#general"),
                text: text(&format!("{name} says {said}")),
            };
            if client.try_send(&msg).await.is_err() {
                break;
            }
            said += 1;
        }
        let pace = Instant::now() + Duration::from_millis(50);
        loop {
            match client.next_event_until(pace).await {
                None => break,
                Some(Ok(LinkEvent::Message(ServerMessage::Ping { nonce }))) => {
                    let _ = client.try_send(&ClientMessage::Pong { nonce }).await;
                }
                Some(Ok(LinkEvent::Message(_))) => {}
                Some(Ok(LinkEvent::Closed { .. })) | Some(Err(_)) => return Outcome::Acknowledged,
            }
        }
    }
    Outcome::Acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_acknowledged_before_a_kill_9_all_log_in_after_it() {
    const CLIENTS: usize = 50;
    const KILL_AFTER: usize = 20;
    let ws = Workspace::new();
    let server = ws.start("first.log").await;
    let fingerprint = server.fingerprint;
    let endpoint = server.endpoint();

    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(register_and_chat(endpoint.clone(), i, ack_tx.clone())))
        .collect();
    drop(ack_tx);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < KILL_AFTER {
        match tokio::time::timeout(RECV_TIMEOUT, ack_rx.recv()).await {
            Ok(Some(ack)) => acknowledged.push(ack),
            Ok(None) => panic!(
                "every client finished with only {} registrations acknowledged; server log:\n{}",
                acknowledged.len(),
                server.log()
            ),
            Err(_) => panic!(
                "registrations stalled at {} acknowledged; server log:\n{}",
                acknowledged.len(),
                server.log()
            ),
        }
    }
    let before_kill = acknowledged.len();
    server.kill9().await;

    let mut outcomes = Vec::new();
    for task in tasks {
        let outcome = tokio::time::timeout(RECV_TIMEOUT * 3, task)
            .await
            .expect("a client did not notice the server's death")
            .expect("client task");
        outcomes.push(outcome);
    }
    while let Some(ack) = ack_rx.recv().await {
        acknowledged.push(ack);
    }
    let refused: Vec<AuthFailure> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Refused(reason) => Some(*reason),
            _ => None,
        })
        .collect();
    assert!(
        refused.is_empty(),
        "registrations of fresh names refused: {refused:?}"
    );
    let acked_count = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Acknowledged))
        .count();
    assert_eq!(acked_count, acknowledged.len());
    eprintln!(
        "kill -9 after {before_kill} acknowledged registrations; {} acknowledged in all, \
         {} of {CLIENTS} never acknowledged",
        acknowledged.len(),
        CLIENTS - acknowledged.len()
    );

    // Same data directory, new process: same identity, every acknowledged
    // account logs in, and the stores are readable.
    let server = ws.start("second.log").await;
    assert_eq!(
        server.fingerprint, fingerprint,
        "the identity changed across a crash"
    );
    let endpoint = server.endpoint();
    for (name, secret) in &acknowledged {
        let mut client = TestClient::connect(&endpoint, name).await;
        match client.try_login(name, secret).await {
            Ok(info) => assert_eq!(info.username.as_str(), name),
            Err(reason) => panic!(
                "{name} got AuthOk before the kill -9 but cannot log in after it: {reason:?} \
                 ({} acknowledged in all); server log:\n{}",
                acknowledged.len(),
                server.log()
            ),
        }
        client.goodbye().await;
    }

    // The server works normally on the recovered data.
    let mut alice = TestClient::connect(&endpoint, "Alice").await;
    alice.register("Alice", PASSWORD).await;
    let (name, secret) = &acknowledged[0];
    let mut survivor = TestClient::connect(&endpoint, name).await;
    survivor.login(name, secret).await;
    assert!(
        alice.who_is_online().await.contains(name.as_str()),
        "the survivor is online"
    );
    survivor.say("we made it").await;
    alice.expect_room_message(name, "we made it").await;

    let status = server.terminate().await;
    assert!(status.success(), "SIGTERM after recovery: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_says_goodbye_to_everyone_and_exits_with_success() {
    let ws = Workspace::new();
    let server = ws.start("server.log").await;
    let endpoint = server.endpoint();
    let mut alice = TestClient::connect(&endpoint, "Alice").await;
    alice.register("Alice", PASSWORD).await;
    let mut bob = TestClient::connect(&endpoint, "Bob").await;
    bob.register("Bob", PASSWORD).await;
    alice.expect_user_joined("Bob").await;
    let mut lurker = TestClient::connect(&endpoint, "not logged in").await;

    let (status, (), (), ()) = tokio::join!(
        server.terminate(),
        alice.expect_goodbye(GoodbyeReason::ServerShutdown),
        bob.expect_goodbye(GoodbyeReason::ServerShutdown),
        async {
            lurker.expect_cut_off(GoodbyeReason::ServerShutdown).await;
        },
    );
    assert!(
        status.success(),
        "SIGTERM must be a clean exit, got {status}"
    );
    assert!(
        TestClient::try_connect(&endpoint, "late").await.is_err(),
        "the port still accepts sessions after the process exited"
    );

    // A graceful stop keeps everything: the accounts log in again.
    let server = ws.start("again.log").await;
    let mut alice = TestClient::connect(&server.endpoint(), "Alice").await;
    alice.login("Alice", PASSWORD).await;
    alice.goodbye().await;
    assert!(server.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_a_tampered_accounts_file_naming_it() {
    let ws = Workspace::new();
    let server = ws.start("first.log").await;
    let mut alice = TestClient::connect(&server.endpoint(), "Alice").await;
    alice.register("Alice", PASSWORD).await;
    alice.goodbye().await;
    assert!(server.terminate().await.success());

    let path = ws.data_dir().join("accounts.json.enc");
    let mut bytes = std::fs::read(&path).expect("accounts file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x80;
    std::fs::write(&path, &bytes).expect("tamper");

    match ServerProcess::try_start(Path::new(EXE), &ws.config(), &ws.log("second.log")).await {
        Ok(_) => panic!("the server started on a tampered accounts file"),
        Err(failure) => {
            assert!(
                !failure.status.success(),
                "refusing to start must exit non-zero"
            );
            assert!(
                failure.stderr.contains("accounts.json.enc"),
                "the error must name the file; stderr:\n{}",
                failure.stderr
            );
        }
    }
    assert_eq!(
        std::fs::read(&path).expect("accounts file"),
        bytes,
        "the refused accounts file was modified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fingerprint_command_prints_the_servers_fingerprint() {
    let ws = Workspace::new();
    let server = ws.start("server.log").await;
    let fingerprint = server.fingerprint;
    server.kill9().await;

    let data_dir = ws.data_dir();
    let (status, stdout, stderr) = run_to_exit(
        Path::new(EXE),
        &[
            OsStr::new("fingerprint"),
            OsStr::new("--data-dir"),
            data_dir.as_os_str(),
        ],
    )
    .await;
    assert!(
        status.success(),
        "fingerprint exited with {status}; stderr:\n{stderr}"
    );
    assert!(
        stdout.contains(&fingerprint.to_string()),
        "`fingerprint` printed {stdout:?}, the server listened with {fingerprint}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_the_listening_line_is_still_a_clean_exit() {
    // A supervisor may stop the server as soon as it says it listens.
    let ws = Workspace::new();
    for attempt in 0..5 {
        let server = ws.start(&format!("attempt{attempt}.log")).await;
        let status = server.terminate().await;
        assert!(
            status.success(),
            "attempt {attempt}: SIGTERM right after the listening line must be a graceful exit 0, got {status}"
        );
        // Logged to a file: no terminal colour codes in it.
        let log = std::fs::read_to_string(ws.log(&format!("attempt{attempt}.log"))).unwrap();
        assert!(log.contains("listening"), "{log}");
        assert!(
            !log.contains('\u{1b}'),
            "escape sequences in a log file: {log:?}"
        );
    }
}

/// What the watcher of one storm saw and what the senders were told.
#[derive(Default)]
struct StormRecord {
    /// Room messages the watcher displayed: id → (from, text).
    seen: std::collections::BTreeMap<u64, (String, String)>,
    /// `Stored` acknowledgements the senders got: id → (from, text).
    acked: std::collections::BTreeMap<u64, (String, String)>,
}

/// Sends keyed room messages as fast as the connection takes them,
/// reading between batches, until the server dies; reports each `Stored`.
async fn storm_sender(
    mut client: TestClient,
    name: String,
    acks: mpsc::UnboundedSender<(u64, String, String)>,
) {
    let mut texts = std::collections::HashMap::new();
    let mut next: u64 = 0;
    loop {
        for _ in 0..16 {
            let words = format!("{name} storm {next}");
            let msg = ClientMessage::SendRoom {
                client_id: next,
                room: tests::room("#general"),
                text: text(&words),
            };
            texts.insert(next, words);
            next += 1;
            if client.try_send(&msg).await.is_err() {
                return;
            }
        }
        let pace = Instant::now() + Duration::from_millis(2);
        loop {
            match client.next_event_until(pace).await {
                None => break,
                Some(Ok(LinkEvent::Message(ServerMessage::Stored { client_id, id, .. }))) => {
                    if let Some(words) = texts.remove(&client_id) {
                        let _ = acks.send((id, name.clone(), words));
                    }
                }
                Some(Ok(LinkEvent::Message(ServerMessage::Ping { nonce }))) => {
                    let _ = client.try_send(&ClientMessage::Pong { nonce }).await;
                }
                Some(Ok(LinkEvent::Message(_))) => {}
                Some(Ok(LinkEvent::Closed { .. })) | Some(Err(_)) => return,
            }
        }
    }
}

/// Records every room message until the connection dies.
async fn storm_watcher(mut client: TestClient, seen: mpsc::UnboundedSender<(u64, String, String)>) {
    loop {
        match client.next_event_until(Instant::now() + RECV_TIMEOUT).await {
            Some(Ok(LinkEvent::Message(ServerMessage::RoomMessage { id, from, text, .. }))) => {
                let _ = seen.send((id, from.as_str().to_owned(), text.as_str().to_owned()));
            }
            Some(Ok(LinkEvent::Message(ServerMessage::Ping { nonce }))) => {
                let _ = client.try_send(&ClientMessage::Pong { nonce }).await;
            }
            Some(Ok(LinkEvent::Message(_))) => {}
            _ => return,
        }
    }
}

/// One storm: three senders as fast as they can, a watcher, kill -9 after
/// `kill_after`; then the history a fresh login replays.
async fn storm_then_kill(ws: &Workspace, trial: usize, kill_after: Duration) -> StormRecord {
    let server = ws.start(&format!("storm{trial}.log")).await;
    let endpoint = server.endpoint();
    let watcher_name = format!("watcher{trial}");
    let mut watcher = TestClient::connect(&endpoint, &watcher_name).await;
    watcher.register(&watcher_name, PASSWORD).await;
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let mut tasks = vec![tokio::spawn(storm_watcher(watcher, seen_tx))];
    for s in 0..3 {
        let name = format!("sender{trial}x{s}");
        let mut client = TestClient::connect(&endpoint, &name).await;
        client.register(&name, PASSWORD).await;
        tasks.push(tokio::spawn(storm_sender(client, name, ack_tx.clone())));
    }
    drop(ack_tx);
    tokio::time::sleep(kill_after).await;
    server.kill9().await;
    for task in tasks {
        tokio::time::timeout(RECV_TIMEOUT * 3, task)
            .await
            .expect("a storm client did not notice the server's death")
            .expect("storm client task");
    }
    let mut record = StormRecord::default();
    while let Some((id, from, words)) = seen_rx.recv().await {
        record.seen.insert(id, (from, words));
    }
    while let Some((id, from, words)) = ack_rx.recv().await {
        record.acked.insert(id, (from, words));
    }
    record
}

/// Under a fast chat storm, kill -9 at varying moments: every message a
/// recipient displayed, and every message whose sender got `Stored`, is in
/// the history replayed after the restart ("stored, then delivered").
/// The attack trials that found the bug (delivery first, the writer
/// lagging) lost seen messages in 2 of 20 release-build storms; this test
/// did not reproduce that on the old order here, so it guards the
/// property, and `delivery::a_message_that_cannot_be_stored_is_delivered_to_nobody`
/// guards the order deterministically. `CRASH_TRIALS` sets the number of
/// trials (default 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_seen_or_acknowledged_before_a_kill_9_are_in_history_after_it() {
    let trials: usize = std::env::var("CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let ws = Workspace::with_top_level("history_replay = 1000000");
    let mut total_seen = 0;
    for trial in 0..trials {
        // From 150 to 650 ms into the storm, spread over the trials.
        let kill_after = Duration::from_millis(150 + (trial as u64 * 137) % 500);
        let record = storm_then_kill(&ws, trial, kill_after).await;
        assert!(
            !record.seen.is_empty(),
            "trial {trial}: the storm delivered nothing"
        );

        let server = ws.start(&format!("after{trial}.log")).await;
        let name = format!("watcher{trial}");
        let mut watcher = TestClient::connect(&server.endpoint(), &name).await;
        let info = watcher.login(&name, PASSWORD).await;
        let history: std::collections::BTreeMap<u64, (String, String)> = info
            .history
            .iter()
            .map(|e| {
                (
                    e.id,
                    (e.from.as_str().to_owned(), e.text.as_str().to_owned()),
                )
            })
            .collect();
        let lost_seen: Vec<_> = record
            .seen
            .keys()
            .filter(|id| !history.contains_key(id))
            .collect();
        assert!(
            lost_seen.is_empty(),
            "trial {trial} (kill after {kill_after:?}): {} of {} messages the watcher saw are \
             not in history after the restart, e.g. {:?}",
            lost_seen.len(),
            record.seen.len(),
            &lost_seen[..lost_seen.len().min(5)]
        );
        for (id, what) in record.seen.iter().chain(&record.acked) {
            assert_eq!(
                history.get(id),
                Some(what),
                "trial {trial}: message {id} differs"
            );
        }
        total_seen += record.seen.len();
        watcher.goodbye().await;
        server.kill9().await;
    }
    eprintln!("{trials} storms, {total_seen} messages seen before the kills, none lost");
}
