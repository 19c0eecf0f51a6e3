//! The shared client library (`client-core`, used by both the GUI and the
//! terminal client) against a real server: trust on first use, a changed
//! key, commands, and reconnecting after a server restart without losing
//! what was typed meanwhile.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use client_core::{
    AuthRequest, ClientEvent, ClientHandle, ClientOptions, CloseCause, ConnectionState,
    ConversationRef, FatalCause, KnownServers, LeaveReason, NoticeKind, RetryCause, ServerAddress,
};
use proto_core::ServerIdentity;
use tests::{ServerOptions, TestServer, Transport, PASSWORD, RECV_TIMEOUT};
use tokio::sync::mpsc::UnboundedReceiver;
use zeroize::Zeroizing;

type Events = UnboundedReceiver<ClientEvent>;

fn options(server: &TestServer, known: &Path, user: &str, register: bool) -> ClientOptions {
    let addr = server.addr();
    let address = ServerAddress {
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    let (username, password) = (user.to_owned(), Zeroizing::new(PASSWORD.to_owned()));
    let auth = if register {
        AuthRequest::Register { username, password }
    } else {
        AuthRequest::Login { username, password }
    };
    let mut o = ClientOptions::new(address, auth);
    o.known_servers = KnownServers::at(known.to_path_buf());
    o
}

fn start(options: ClientOptions) -> (ClientHandle, Events) {
    client_core::spawn(options, &tokio::runtime::Handle::current())
}

/// The next event `pick` accepts (others are skipped); fails the test
/// after `RECV_TIMEOUT` or if the client ends first.
async fn until<T>(
    events: &mut Events,
    what: &str,
    mut pick: impl FnMut(ClientEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT * 2;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("the client ended while waiting for {what}"));
        if let ClientEvent::Closed { cause } = &event {
            if what != "Closed" {
                panic!("the client closed ({cause:?}) while waiting for {what}");
            }
        }
        if let Some(t) = pick(event) {
            return t;
        }
    }
}

async fn logged_in(events: &mut Events) -> String {
    let name = until(events, "LoggedIn", |e| match e {
        ClientEvent::LoggedIn { username } => Some(username),
        _ => None,
    })
    .await;
    until(events, "HistoryDone", |e| {
        matches!(e, ClientEvent::HistoryDone).then_some(())
    })
    .await;
    name
}

async fn closed(events: &mut Events) -> CloseCause {
    until(events, "Closed", |e| match e {
        ClientEvent::Closed { cause } => Some(cause),
        _ => None,
    })
    .await
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A server on a fixed port (so it can restart at the same address) and
/// `user` logged in to it with its key pinned. Keep the directory (the
/// known-servers file) alive as long as the client.
async fn logged_in_to_a_restartable_server(
    user: &str,
) -> (TestServer, tempfile::TempDir, ClientHandle, Events) {
    let server =
        TestServer::start_with(ServerOptions::new(Transport::Plain).listen(free_port())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&server, &dir.path().join("known_servers"), user, true);
    o.fingerprint = Some(server.fingerprint());
    let (h, mut events) = start(o);
    logged_in(&mut events).await;
    (server, dir, h, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_use_asks_pins_the_answer_and_does_not_ask_again() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");

    let (_h, mut events) = start(options(&server, &known, "Ann", true));
    let (fingerprint, reply) = until(&mut events, "TrustQuestion", |e| match e {
        ClientEvent::TrustQuestion {
            fingerprint, reply, ..
        } => Some((fingerprint, reply)),
        _ => None,
    })
    .await;
    assert_eq!(fingerprint, server.fingerprint());
    reply.send(true).unwrap();
    assert_eq!(logged_in(&mut events).await, "Ann");
    let text = std::fs::read_to_string(&known).unwrap();
    assert!(text.contains(&server.fingerprint().to_string()), "{text}");

    // Pinned now: the next connection goes straight in.
    let (_h2, mut again) = start(options(&server, &known, "Ann", false));
    let first = until(&mut again, "LoggedIn or a question", |e| match e {
        ClientEvent::TrustQuestion { .. } => Some(false),
        ClientEvent::LoggedIn { .. } => Some(true),
        _ => None,
    })
    .await;
    assert!(first, "a pinned server was asked about again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_the_key_sends_nothing_and_pins_nothing() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let (_h, mut events) = start(options(&server, &known, "Ben", true));
    let reply = until(&mut events, "TrustQuestion", |e| match e {
        ClientEvent::TrustQuestion { reply, .. } => Some(reply),
        _ => None,
    })
    .await;
    reply.send(false).unwrap();
    let cause = closed(&mut events).await;
    assert!(
        matches!(cause, CloseCause::Fatal(FatalCause::ServerKeyDeclined)),
        "{cause:?}"
    );
    assert!(!known.exists());
    // Nothing was sent: the name is still free.
    let mut c = server.connect("check").await;
    c.register("Ben", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_key_is_refused_with_both_fingerprints_and_the_way_out() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known_path = dir.path().join("known_servers");
    let addr = server.addr();
    let address = ServerAddress {
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    let old = ServerIdentity::from_seed(&[9; 32])
        .public_key()
        .fingerprint();
    KnownServers::at(known_path.clone())
        .pin(&address, &old)
        .unwrap();

    let (_h, mut events) = start(options(&server, &known_path, "Cleo", true));
    let (pinned, presented, known_servers) = until(&mut events, "KeyChanged", |e| match e {
        ClientEvent::KeyChanged {
            pinned,
            presented,
            known_servers,
            ..
        } => Some((pinned, presented, known_servers)),
        ClientEvent::LoggedIn { .. } => panic!("logged in despite a changed key"),
        _ => None,
    })
    .await;
    assert_eq!(pinned, old);
    assert_eq!(presented, server.fingerprint());
    assert_eq!(known_servers, known_path);
    let warning =
        client_core::events::key_changed_warning(&address, &pinned, &presented, &known_servers);
    assert!(warning.contains("CHANGED"), "{warning}");
    assert!(warning.contains(&old.to_string()) && warning.contains(&presented.to_string()));
    assert!(
        warning.contains(&known_path.display().to_string()),
        "{warning}"
    );
    let cause = closed(&mut events).await;
    assert!(
        matches!(
            cause,
            CloseCause::Fatal(FatalCause::ServerKeyChanged { pinned: p, presented: q })
                if p == old && q == presented
        ),
        "{cause:?}"
    );
    // The pin was not replaced, and no account was created.
    assert_eq!(
        KnownServers::at(known_path).get(&address).unwrap(),
        Some(old)
    );
    let mut c = server.connect("check").await;
    c.register("Cleo", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_work_and_exit_is_seen_by_the_others() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let mut bob = server.user("Bob").await;

    let mut o = options(&server, &known, "Dana", true);
    o.fingerprint = Some(server.fingerprint());
    let (h, mut events) = start(o);
    logged_in(&mut events).await;
    bob.expect_user_joined("Dana").await;

    h.submit("/frobnicate now", "#general");
    let text = until(&mut events, "an error notice", |e| match e {
        ClientEvent::Notice {
            text,
            kind: NoticeKind::Error,
        } => Some(text),
        _ => None,
    })
    .await;
    assert!(text.contains("unknown command /frobnicate"), "{text}");
    h.submit("/msg Bob psst", "#general");
    bob.expect_direct_message("Dana", "Bob", "psst").await;
    h.submit("hello room", "#general");
    bob.expect_room_message("Dana", "hello room").await;
    // The unknown command reached nobody: the two real messages were next.
    h.submit("/who", "#general");
    let users = until(&mut events, "Online", |e| match e {
        ClientEvent::Online { users } => Some(users),
        _ => None,
    })
    .await;
    assert!(users.contains(&"Bob".to_owned()) && users.contains(&"Dana".to_owned()));

    h.submit("#exit", "#general");
    bob.expect_user_left("Dana", LeaveReason::Exit).await;
    let cause = closed(&mut events).await;
    assert!(matches!(cause, CloseCause::Left), "{cause:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_client_comes_back_and_sends_what_was_typed_meanwhile() {
    let (mut server, _dir, h, mut events) = logged_in_to_a_restartable_server("Eve").await;

    server.shutdown().await;
    let in_secs = until(&mut events, "Reconnecting", |e| match e {
        ClientEvent::State(ConnectionState::Reconnecting { in_secs, .. }) => Some(in_secs),
        _ => None,
    })
    .await;
    assert!((1..=60).contains(&in_secs));
    h.submit("typed while the server was down", "#general");
    // Shown at once, marked pending (no server id yet).
    let client_id = until(&mut events, "the pending own line", |e| match e {
        ClientEvent::Room(line) if line.own && line.id == 0 => line.client_id,
        _ => None,
    })
    .await;
    let text = until(&mut events, "a queued notice", |e| match e {
        ClientEvent::Notice {
            text,
            kind: NoticeKind::Info,
        } => Some(text),
        _ => None,
    })
    .await;
    assert!(text.contains("queued"), "{text}");

    server
        .try_start_again()
        .await
        .expect("restart on the same address");
    let mut frank = server.connect("frank").await;
    let info = frank.register("Frank", PASSWORD).await;
    // Eve comes back by herself (backoff, then resume) ...
    tokio::time::timeout(Duration::from_secs(90), logged_in(&mut events))
        .await
        .expect("the client did not reconnect");
    // ... through a resumed handshake: the token survived the restart, and
    // so did the key it gives (Frank's registration was a full one).
    assert_eq!(server.resumed_handshakes(), 1);
    // ... and what she typed offline arrives: in Frank's history if it beat
    // his login, else live.
    const TYPED: &str = "typed while the server was down";
    if !info.history.iter().any(|e| e.text.as_str() == TYPED) {
        match frank.recv().await {
            proto_core::message::ServerMessage::RoomMessage { from, text, .. } => {
                assert_eq!((from.as_str(), text.as_str()), ("Eve", TYPED));
            }
            other => panic!("unexpected {other:?} while waiting for Eve's message"),
        }
    }
    // The client learns it is stored, under the id Frank saw.
    until(&mut events, "its acknowledgement", |e| match e {
        ClientEvent::Delivery {
            client_id: c,
            delivery: client_core::Delivery::Stored { .. },
        } if c == client_id => Some(()),
        _ => None,
    })
    .await;
    h.quit();
    closed(&mut events).await;
    let mut grace = server.connect("grace").await;
    let info = grace.register("Grace", PASSWORD).await;
    let copies = info
        .history
        .iter()
        .filter(|e| e.text.as_str() == TYPED)
        .count();
    assert_eq!(copies, 1, "stored exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_server_lost_falls_back_to_the_password_without_alarming_the_user() {
    let (mut server, _dir, _h, mut events) = logged_in_to_a_restartable_server("Gus").await;

    server.shutdown().await;
    // As after a crash: the saved tokens are gone.
    std::fs::remove_file(server.data_dir().join("resume_tokens.enc")).unwrap();
    server
        .try_start_again()
        .await
        .expect("restart on the same address");
    let name = until(&mut events, "LoggedIn after the restart", |e| match e {
        ClientEvent::LoggedIn { username } => Some(username),
        ClientEvent::AuthFailed { reason } => {
            panic!("the user was shown a login failure ({reason:?}) for an expired token")
        }
        _ => None,
    })
    .await;
    assert_eq!(name, "Gus");
    // The server did not hold the token's key: a full handshake followed.
    assert_eq!(server.resumed_handshakes(), 0);
}

/// A full server says so: the user reads "server full", not a timeout, a
/// rate limit or a doubt about the server's identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_is_reported_as_full() {
    let limits = server::ServerLimits {
        max_connections: 1,
        ..tests::test_limits()
    };
    let server = TestServer::start_with(ServerOptions::new(Transport::Plain).limits(limits)).await;
    let _only_one = server.user("Ivan").await;
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&server, &dir.path().join("known_servers"), "Judy", true);
    o.fingerprint = Some(server.fingerprint());
    let (_h, mut events) = start(o);
    let cause = closed(&mut events).await;
    assert!(
        matches!(cause, CloseCause::ConnectionFailed(RetryCause::ServerFull)),
        "{cause:?}"
    );
}

/// The read markers `events` brings until the greeting's history is done.
async fn greeting_markers(events: &mut Events) -> Vec<(ConversationRef, u64, u32)> {
    let mut markers = Vec::new();
    until(events, "HistoryDone", |e| match e {
        ClientEvent::ReadMarker {
            conversation,
            up_to_id,
            unread,
        } => {
            markers.push((conversation, up_to_id, unread));
            None
        }
        ClientEvent::HistoryDone => Some(()),
        _ => None,
    })
    .await;
    markers
}

async fn next_marker(events: &mut Events) -> (ConversationRef, u64) {
    until(events, "ReadMarker", |e| match e {
        ClientEvent::ReadMarker {
            conversation,
            up_to_id,
            ..
        } => Some((conversation, up_to_id)),
        _ => None,
    })
    .await
}

/// `ClientHandle::mark_read_up_to` (what the GUI sends when it shows a
/// conversation) moves the user's marker for rooms and direct
/// conversations: their other devices follow and the next login counts
/// nothing unread; a room the user is not in is marked for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_read_reaches_the_other_devices_and_the_next_login_and_not_outside_rooms() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let mut bob = server.user("Bob").await;
    bob.create_room("#secret", true, "").await.unwrap();

    // Each session its own device: a second login of one device replaces it.
    let device = |id: u64, user: &str, register: bool| {
        let mut o = options(&server, &known, user, register);
        o.fingerprint = Some(server.fingerprint());
        o.device = Some(client_core::DeviceIdentity {
            id,
            name: proto_core::message::DeviceName::new(&format!("device {id}")).unwrap(),
        });
        o
    };
    let (laptop, mut laptop_events) = start(device(1, "Alice", true));
    logged_in(&mut laptop_events).await;
    let (_phone, mut phone_events) = start(device(2, "Alice", false));
    logged_in(&mut phone_events).await;

    bob.say_in("#general", "read me").await;
    bob.dm("Alice", "psst").await;
    bob.say_in("#secret", "not for Alice").await;
    let room_id = until(&mut laptop_events, "Bob's room message", |e| match e {
        ClientEvent::Room(line) if line.from == "Bob" => Some(line.id),
        _ => None,
    })
    .await;
    let direct_id = until(&mut laptop_events, "Bob's direct message", |e| match e {
        ClientEvent::Direct(line) if line.from == "Bob" => Some(line.id),
        _ => None,
    })
    .await;

    let general = || ConversationRef::Room(client_core::GENERAL_ROOM.to_owned());
    let with_bob = || ConversationRef::Direct("Bob".to_owned());
    // Not a member of #secret: the server drops it without a word.
    laptop.mark_read_up_to(ConversationRef::Room("#secret".into()), 1_000_000);
    laptop.mark_read_up_to(general(), room_id);
    laptop.mark_read_up_to(with_bob(), direct_id);
    assert_eq!(next_marker(&mut phone_events).await, (general(), room_id));
    assert_eq!(
        next_marker(&mut phone_events).await,
        (with_bob(), direct_id)
    );
    laptop.who();
    until(&mut laptop_events, "Online", |e| match e {
        ClientEvent::Online { .. } => Some(()),
        ClientEvent::Notice {
            kind: NoticeKind::Error,
            text,
        } => panic!("the server answered the markers: {text}"),
        _ => None,
    })
    .await;

    let (_later, mut later_events) = start(device(3, "Alice", false));
    until(&mut later_events, "LoggedIn", |e| {
        matches!(e, ClientEvent::LoggedIn { .. }).then_some(())
    })
    .await;
    let mut markers = greeting_markers(&mut later_events).await;
    markers.sort_by_key(|(_, id, _)| *id);
    assert_eq!(
        markers,
        [(general(), room_id, 0), (with_bob(), direct_id, 0)],
        "nothing unread, no marker in #secret"
    );

    let (_bob_again, mut bob_events) = start(device(4, "Bob", false));
    until(&mut bob_events, "LoggedIn", |e| {
        matches!(e, ClientEvent::LoggedIn { .. }).then_some(())
    })
    .await;
    assert!(
        greeting_markers(&mut bob_events).await.is_empty(),
        "Bob's markers are his own"
    );
}
