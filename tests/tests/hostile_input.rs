//! Garbage, oversized frames and broken records end only the offender's
//! connection; everyone else keeps chatting (SECURITY.md M1, M3).

use std::time::Duration;

use proto_core::message::{GoodbyeReason, LeaveReason};
use tests::test_client::{raw_tcp, send_raw_and_expect_close};
use tests::{test_limits, ServerOptions, TestClient, TestServer, Transport};

/// A handshake deadline far beyond the test's failure bound: a connection
/// that closes within the bound was closed for its input, not timed out.
fn patient_server() -> ServerOptions {
    ServerOptions::new(Transport::Plain).limits(server::ServerLimits {
        handshake_timeout: Duration::from_secs(120),
        auth_timeout: Duration::from_secs(120),
        ..test_limits()
    })
}

/// Deterministic noise (xorshift), so a failure can be replayed.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Alice and Bob still chat, and nobody was announced meanwhile.
async fn still_chatting(c: &mut [TestClient], words: &str) {
    c[0].say(words).await;
    for other in &mut c[1..] {
        other.expect_room_message("Alice", words).await;
    }
    c[0].sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_the_handshake_closes_only_that_connection() {
    let server = TestServer::start_with(patient_server()).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;

    let mut http = b"GET / HTTP/1.1\r\nHost: securechat\r\n\r\n".to_vec();
    http.extend(noise(4096, 1));
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("an HTTP request and noise", http),
        ("pure noise", noise(16 * 1024, 2)),
        ("an encrypted record before any handshake", {
            let mut v = vec![0x17, 0, 0, 0, 64];
            v.extend(noise(64, 3));
            v
        }),
        ("a ClientHello of the wrong length", {
            let mut v = vec![0x01, 0, 0, 0, 16];
            v.extend(noise(16, 4));
            v
        }),
    ];
    for (what, bytes) in inputs {
        let mut raw = raw_tcp(server.addr()).await;
        send_raw_and_expect_close(&mut raw, &bytes).await;
        still_chatting(&mut c, &format!("after {what}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_length_header_is_refused_without_waiting_for_the_body() {
    let server = TestServer::start_with(patient_server()).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;
    for frame_type in [0x01u8, 0x17, 0x15] {
        let mut raw = raw_tcp(server.addr()).await;
        send_raw_and_expect_close(&mut raw, &[frame_type, 0xFF, 0xFF, 0xFF, 0xFF]).await;
        let mut raw = raw_tcp(server.addr()).await;
        // Just over the 64 KiB frame limit.
        send_raw_and_expect_close(&mut raw, &[frame_type, 0x00, 0x01, 0x00, 0x01]).await;
        still_chatting(
            &mut c,
            &format!("after a huge frame of type {frame_type:#04x}"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_a_valid_handshake_ends_only_the_offenders_session() {
    let server = TestServer::start_with(patient_server()).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    let forged_record = {
        let mut v = vec![0x17, 0, 0, 0, 96];
        v.extend(noise(96, 5));
        v
    };
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("a forged record", forged_record),
        ("a huge length header", vec![0x17, 0xFF, 0xFF, 0xFF, 0xFF]),
        ("a second ClientHello", {
            let mut v = vec![0x01, 0, 0, 0, 32];
            v.extend(noise(32, 6));
            v
        }),
        ("noise", noise(2048, 7)),
    ];
    for (i, (what, bytes)) in inputs.into_iter().enumerate() {
        let name = format!("Mallory{i}");
        let mut mallory = server.user(&name).await;
        for other in &mut c {
            other.expect_user_joined(&name).await;
        }
        mallory.inject_raw(&bytes).await;
        mallory
            .expect_cut_off(GoodbyeReason::ProtocolViolation)
            .await;
        for other in &mut c {
            other
                .expect_user_left(&name, LeaveReason::Disconnected)
                .await;
        }
        still_chatting(&mut c, &format!("after {what}")).await;
    }

    // Before login, too: closed, and nobody hears of it.
    let mut stranger = server.connect("stranger").await;
    stranger.inject_raw(&noise(512, 8)).await;
    stranger
        .expect_cut_off(GoodbyeReason::ProtocolViolation)
        .await;
    still_chatting(&mut c, "after the stranger").await;
}

/// A client that finds a record from the server tampered with ends its
/// session with `bad_record_mac`. That is the path's fault, not the
/// client's: the others see it leave as `Dropped`, and the server does not
/// log it as a protocol violation by the client (it used to tell the room
/// the client "was disconnected by the server").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_detects_tampering_is_not_blamed_for_it() {
    let server = TestServer::start_with(patient_server()).await;
    let mut bob = server.user("Bob").await;
    let proxy = tests::TamperingProxy::start(server.addr(), None).await;
    let endpoint = tests::Endpoint {
        addr: proxy.addr,
        ..server.endpoint()
    };
    let mut alice = TestClient::connect(&endpoint, "Alice").await;
    alice.register("Alice", tests::PASSWORD).await;
    bob.expect_user_joined("Alice").await;
    alice.sync().await;

    proxy
        .flip_next
        .store(true, std::sync::atomic::Ordering::Relaxed);
    bob.say("this record is damaged on its way to Alice").await;
    let (_, end) = alice.read_until_end().await;
    assert!(
        matches!(
            end,
            tests::SessionEnd::Error(net::NetError::Protocol(proto_core::Error::PeerMisbehaved(
                proto_core::PeerMisbehaved::BadRecordMac
            )))
        ),
        "Alice should detect the tampering, got {end:?}"
    );
    bob.expect_user_left("Alice", LeaveReason::Dropped).await;
    bob.sync().await;
}
