//! Limits, each on a server where only that limit is small: the message
//! rate, a slow consumer, idle and unauthenticated connections, and
//! connections per address and in total.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use net::{LinkEvent, NetError};
use proto_core::message::{ClientMessage, ErrorCode, GoodbyeReason, LeaveReason, ServerMessage};
use proto_core::AlertCode;
use tests::{
    test_limits, ServerOptions, TestClient, TestServer, Transport, PASSWORD, RECV_TIMEOUT,
};
use tokio::sync::watch;
use tokio::time::Instant;

fn server_with(limits: server::ServerLimits) -> ServerOptions {
    ServerOptions::new(Transport::Plain).limits(limits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_rate_limit_are_refused_and_not_delivered() {
    let limits = server::ServerLimits {
        messages_per_second: 1,
        message_burst: 3,
        ..test_limits()
    };
    let server = TestServer::start_with(server_with(limits)).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;

    // After each message a Ping: its Pong shows the message was handled,
    // and an Error before it says the message was refused.
    let mut delivered = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        let words = format!("burst {i}");
        c[0].say(&words).await;
        c[0].send(&ClientMessage::Ping { nonce: i }).await;
        match c[0].recv().await {
            ServerMessage::Pong { nonce } if nonce == i => delivered.push(words),
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            } => {
                refused += 1;
                assert_eq!(c[0].recv().await, ServerMessage::Pong { nonce: i });
            }
            other => panic!("expected Pong or Error RateLimited, got {other:?}"),
        }
    }
    assert!(
        refused >= 1,
        "10 messages at once with a burst of 3 and 1/s: none was refused"
    );
    assert!(
        delivered.len() >= 3,
        "the burst of 3 must be allowed, only {} were",
        delivered.len()
    );

    // Bob gets exactly the accepted ones; Carol's marker shows nothing
    // refused trails behind.
    c[2].say("marker").await;
    for words in &delivered {
        c[1].expect_room_message("Alice", words).await;
    }
    c[1].expect_room_message("Carol", "marker").await;
}

/// A receiver that reads every message of the flood in order.
async fn read_flood(
    mut client: TestClient,
    progress: watch::Sender<u64>,
    slow_left: Arc<AtomicBool>,
) -> TestClient {
    let mut next = 0u64;
    loop {
        let msg = client.recv().await;
        // Presence is set aside by `recv`: look at what came so far.
        let slow = client.presence_of("Slow");
        if slow.iter().any(Option::is_some) {
            assert!(
                slow.contains(&Some(LeaveReason::Disconnected)),
                "a slow consumer cut off by the server is announced as Disconnected: {slow:?}"
            );
            slow_left.store(true, Ordering::SeqCst);
        }
        match msg {
            ServerMessage::RoomMessage { from, text, .. } if from.as_str() == "Sender" => {
                if text.as_str() == "final" {
                    return client;
                }
                let index: u64 = text.as_str()[..8]
                    .parse()
                    .expect("flood messages start with their index");
                assert_eq!(
                    index,
                    next,
                    "{}: flood message lost or reordered",
                    client.label()
                );
                next += 1;
                progress.send_replace(next);
            }
            other => panic!("{}: unexpected {other:?} during the flood", client.label()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_while_the_others_keep_receiving() {
    let limits = server::ServerLimits {
        outbox_capacity: 16,
        write_timeout: Duration::from_secs(1),
        ..test_limits()
    };
    let server = TestServer::start_with(server_with(limits)).await;
    let mut c = server.group(&["Sender", "Reader1", "Reader2"]).await;
    // Slow's kernel takes little (a fixed 4 KiB receive buffer instead of
    // one autotuned up to tens of MiB); it logs in and never reads again.
    let mut endpoint = server.endpoint();
    endpoint.recv_buffer = Some(4096);
    let mut slow = TestClient::connect(&endpoint, "Slow").await;
    slow.register("Slow", PASSWORD).await;
    for other in &mut c {
        other.expect_user_joined("Slow").await;
    }
    let slow_left = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let mut progress = Vec::new();
    for reader in c.drain(1..) {
        let (tx, rx) = watch::channel(0u64);
        progress.push(rx);
        readers.push(tokio::spawn(read_flood(reader, tx, slow_left.clone())));
    }
    let mut sender = c.pop().expect("sender");

    // 4 KiB messages in windows of 8, each window read by both readers
    // before the next, so the readers' outboxes never hold more than 8.
    const WINDOW: u64 = 8;
    const MAX_MESSAGES: u64 = 20_000;
    let padding = "x".repeat(4096 - 9);
    let mut sent = 0u64;
    let mut after_cut = 0u64;
    while after_cut < 3 * WINDOW && sent < MAX_MESSAGES {
        for _ in 0..WINDOW {
            sender.say(&format!("{sent:08} {padding}")).await;
            sent += 1;
        }
        for rx in &mut progress {
            let reached = matches!(
                tokio::time::timeout(RECV_TIMEOUT, rx.wait_for(|&n| n >= sent)).await,
                Ok(Ok(_))
            );
            assert!(
                reached,
                "a reader stopped receiving at {} of {sent} while Slow was not reading",
                *rx.borrow()
            );
        }
        if slow_left.load(Ordering::SeqCst) {
            after_cut += WINDOW;
        }
    }
    assert!(
        slow_left.load(Ordering::SeqCst),
        "{sent} messages of 4 KiB and the client that never reads was not cut off"
    );
    eprintln!(
        "Slow was cut off within the first {} of {sent} messages",
        sent - after_cut
    );
    sender.say("final").await;
    let mut finished = Vec::new();
    for reader in readers {
        let mut reader = reader.await.expect("a reader failed");
        reader.sync().await;
        finished.push(reader);
    }
    sender
        .expect_user_left("Slow", LeaveReason::Disconnected)
        .await;
    sender.sync().await;

    // Slow finds a backlog of room messages, at most a Goodbye{SlowConsumer},
    // and the end of the session.
    let (seen, _end) = slow.read_until_end().await;
    for msg in &seen {
        match msg {
            ServerMessage::RoomMessage { .. }
            | ServerMessage::Ping { .. }
            | ServerMessage::Presence { .. } => {}
            ServerMessage::Goodbye {
                reason: GoodbyeReason::SlowConsumer,
            } => {}
            other => panic!("the slow consumer got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_disconnected_while_one_that_answers_pings_stays() {
    let limits = server::ServerLimits {
        idle_timeout: Duration::from_secs(2),
        ping_interval: Duration::from_secs(1),
        ..test_limits()
    };
    let server = TestServer::start_with(server_with(limits.clone())).await;
    let mut c = server.group(&["Active", "Idle"]).await;
    let mut idle = c.pop().expect("idle");
    let mut active = c.pop().expect("active");

    // Idle reads but never answers a Ping.
    let idle_side = async {
        let mut pings = 0;
        let deadline = Instant::now() + RECV_TIMEOUT;
        loop {
            match idle.next_event_until(deadline).await {
                Some(Ok(LinkEvent::Message(ServerMessage::Ping { .. }))) => pings += 1,
                // Its own presence (it is in #general): not an answer.
                Some(Ok(LinkEvent::Message(ServerMessage::Presence { .. }))) => {}
                Some(Ok(LinkEvent::Message(ServerMessage::Goodbye { reason }))) => {
                    assert_eq!(reason, GoodbyeReason::IdleTimeout);
                    idle.expect_closed().await;
                    break;
                }
                Some(Ok(LinkEvent::Message(other))) => panic!("Idle got {other:?}"),
                Some(Ok(LinkEvent::Closed { clean })) => {
                    panic!("Idle was closed (clean: {clean}) without Goodbye IdleTimeout")
                }
                Some(Err(e)) => panic!("Idle's session failed without Goodbye IdleTimeout: {e}"),
                None => panic!("Idle still connected {RECV_TIMEOUT:?} after it went quiet"),
            }
        }
        assert!(
            pings >= 1,
            "the server never pinged the idle client before giving up"
        );
    };
    // Active answers every Ping (the expect helpers do).
    let active_side = active.expect_user_left("Idle", LeaveReason::Disconnected);
    tokio::join!(idle_side, active_side);

    // Answering Pings keeps Active online: three Pings, each sent after
    // ping_interval of silence, span more than idle_timeout.
    let since = Instant::now();
    active.answer_pings(3).await;
    assert!(
        since.elapsed() >= limits.idle_timeout,
        "three Pings came within {:?}, less than the idle timeout",
        since.elapsed()
    );
    active.sync().await;
    assert_eq!(
        active.who_is_online().await,
        std::iter::once("Active".to_owned()).collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_logs_in_is_closed_after_the_auth_timeout() {
    let limits = server::ServerLimits {
        auth_timeout: Duration::from_secs(1),
        ..test_limits()
    };
    let server = TestServer::start_with(server_with(limits)).await;
    let mut alice = server.user("Alice").await;
    let mut lurker = server.connect("lurker").await;
    let (seen, _end) = lurker.read_until_end().await;
    assert!(
        seen.iter().all(|m| matches!(
            m,
            ServerMessage::Ping { .. } | ServerMessage::Goodbye { .. }
        )),
        "the lurker got {seen:?}"
    );
    // Nobody was announced and the logged-in client stays.
    alice.sync().await;
    let mut bob = server.user("Bob").await;
    alice.expect_user_joined("Bob").await;
    bob.sync().await;
}

/// A refused connection is told why (a plaintext alert) and closed.
fn assert_refused(result: Result<TestClient, NetError>, why: AlertCode, what: &str) {
    match result {
        Ok(_) => panic!("{what}: the handshake succeeded"),
        Err(NetError::Protocol(proto_core::Error::AlertReceived(code))) if code == why => {}
        Err(other) => panic!("{what}: expected the alert {why}, got {other}"),
    }
}

/// Connects until a handshake succeeds: a freed slot is released when the
/// server has finished closing, which no message announces.
async fn connect_when_a_slot_frees(server: &TestServer) -> TestClient {
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        match server.try_connect("newcomer").await {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no connection accepted after a slot was freed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_limit_are_refused_until_one_closes() {
    let limits = server::ServerLimits {
        max_connections_per_ip: 2,
        ..test_limits()
    };
    let server = TestServer::start_with(server_with(limits)).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    assert_refused(
        server.try_connect("third").await,
        AlertCode::RateLimited,
        "a third connection from 127.0.0.1",
    );
    assert_refused(
        server.try_connect("fourth").await,
        AlertCode::RateLimited,
        "a fourth connection from 127.0.0.1",
    );

    // The two admitted sessions are unaffected.
    c[0].say("we are two").await;
    c[1].expect_room_message("Alice", "we are two").await;

    c.remove(1).goodbye().await;
    c[0].expect_user_left("Bob", LeaveReason::Exit).await;
    let mut carol = connect_when_a_slot_frees(&server).await;
    carol.register("Carol", PASSWORD).await;
    c[0].expect_user_joined("Carol").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_total_limit_are_refused_until_one_closes() {
    let limits = server::ServerLimits {
        max_connections: 2,
        ..test_limits()
    };
    let server = TestServer::start_with(server_with(limits)).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    let refused = server.try_connect("third").await;
    if let Err(e) = &refused {
        // What a person sees: "server full", not a timeout or a rate limit.
        assert!(e.to_string().contains("server_full"), "{e}");
    }
    assert_refused(
        refused,
        AlertCode::ServerFull,
        "a third connection in total",
    );
    c[1].say("full house").await;
    c[0].expect_room_message("Bob", "full house").await;

    c.remove(0).goodbye().await;
    c[0].expect_user_left("Alice", LeaveReason::Exit).await;
    let mut carol = connect_when_a_slot_frees(&server).await;
    carol.register("Carol", PASSWORD).await;
    c[0].expect_user_joined("Carol").await;
}

/// A client that vanishes (no goodbye, no close_notify) leaves the others
/// told `Dropped`; the server closes its connection off the runtime (the
/// reaper), and the place it held in `max_connections` comes back once that
/// is done: none is lost, however many clients drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_give_their_places_back() {
    let limits = server::ServerLimits {
        max_connections: 3,
        ..test_limits()
    };
    let server = TestServer::start_with(server_with(limits)).await;
    let mut stayer = server.user("Stayer").await;
    for round in 0..4 {
        let names = [format!("Gone{round}a"), format!("Gone{round}b")];
        let mut pair = Vec::new();
        for name in &names {
            let mut c = connect_when_a_slot_frees(&server).await;
            c.register(name, PASSWORD).await;
            stayer.expect_user_joined(name).await;
            pair.push(c);
        }
        assert_refused(
            server.try_connect("fourth").await,
            AlertCode::ServerFull,
            "a fourth connection while three are open",
        );
        for c in pair {
            c.drop_connection();
        }
        for name in &names {
            stayer.expect_user_left(name, LeaveReason::Dropped).await;
        }
    }
    stayer.say("still here").await;
    let mut last = connect_when_a_slot_frees(&server).await;
    last.register("Last", PASSWORD).await;
    stayer.expect_user_joined("Last").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_faster_than_the_per_address_rate_are_refused() {
    let limits = server::ServerLimits {
        handshakes_per_ip_per_second: 1,
        handshake_burst_per_ip: 2,
        ..test_limits()
    };
    let server = TestServer::start_with(server_with(limits)).await;
    let mut admitted = vec![
        server.connect("first").await,
        server.connect("second").await,
    ];
    // One token comes back per second; six quick attempts cannot all get one.
    let mut refused = 0;
    for i in 0..6 {
        match server.try_connect(&format!("attempt {i}")).await {
            Ok(client) => admitted.push(client),
            Err(e) => {
                assert_refused(Err(e), AlertCode::RateLimited, "a handshake over the rate");
                refused += 1;
            }
        }
    }
    assert!(
        refused >= 1,
        "8 handshakes at once with a burst of 2 and 1/s were all admitted"
    );
    // The admitted connections work.
    admitted[0].register("Alice", PASSWORD).await;
    admitted[1].register("Bob", PASSWORD).await;
    admitted[0].expect_user_joined("Bob").await;
}

/// 17 addresses, each under every per-address limit, fill the pool of
/// connections not yet logged in with silent ones and keep reopening what
/// they lose. It used to refuse every newcomer until the oldest reached
/// the auth timeout; now a newcomer evicts the oldest and an honest login
/// gets in during the attack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_many_addresses_cannot_keep_an_honest_login_out() {
    const POOL: usize = 32;
    const ADDRESSES: u8 = 17;
    let limits = server::ServerLimits {
        max_unauthenticated: POOL,
        max_unauthenticated_per_ip: 2,
        auth_timeout: Duration::from_secs(600),
        ..test_limits()
    };
    let server = TestServer::start_with(server_with(limits)).await;
    let from = |i: usize| tests::Endpoint {
        source: Some(std::net::IpAddr::from([
            127,
            0,
            0,
            2 + (i % ADDRESSES as usize) as u8,
        ])),
        ..server.endpoint()
    };
    // Fill the pool: two silent, handshaken connections per address.
    let mut attackers = Vec::new();
    for i in 0..2 * ADDRESSES as usize {
        if let Ok(c) = TestClient::try_connect(&from(i), "attacker").await {
            attackers.push(c);
        }
    }
    assert!(attackers.len() >= POOL, "the attack did not fill the pool");
    // Keep reopening while the honest user logs in.
    let stop = Arc::new(AtomicBool::new(false));
    let reopener = {
        let (stop, endpoints): (_, Vec<_>) = (Arc::clone(&stop), (0..200).map(from).collect());
        tokio::spawn(async move {
            let mut held = Vec::new();
            for endpoint in endpoints {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = TestClient::try_connect(&endpoint, "reopened").await {
                    held.push(c);
                }
            }
            held
        })
    };
    let mut honest = server.connect("honest").await;
    honest.register("Honest", PASSWORD).await;
    stop.store(true, Ordering::Relaxed);
    let _held = reopener.await.unwrap();
    // The oldest silent connections were told the server is full and closed.
    let mut evicted = 0;
    for attacker in &mut attackers[..4] {
        let (seen, _end) = attacker.read_until_end().await;
        assert!(
            seen.iter().any(|m| matches!(
                m,
                ServerMessage::Error {
                    code: ErrorCode::ServerFull,
                    ..
                }
            )),
            "an evicted connection got {seen:?}"
        );
        evicted += 1;
    }
    assert_eq!(evicted, 4);
    // The honest session works.
    let mut other = server.user("Other").await;
    honest.expect_user_joined("Other").await;
    other.say("hello").await;
    honest.expect_room_message("Other", "hello").await;
}
