//! "Stored, then delivered": acknowledged sends (`SendRoom`/`SendDirect` →
//! `Stored`), resends after a reconnect that are stored and delivered once,
//! refusals that name the message (`SendFailed`), and a message that cannot
//! be stored reaching nobody.

use proto_core::message::{ClientMessage, ErrorCode, ServerMessage};
use tests::{text, username, TestServer, Transport, PASSWORD};

fn send_room(client_id: u64, words: &str) -> ClientMessage {
    ClientMessage::SendRoom {
        client_id,
        room: tests::room("#general"),
        text: text(words),
    }
}

fn send_direct(client_id: u64, to: &str, words: &str) -> ClientMessage {
    ClientMessage::SendDirect {
        client_id,
        to: username(to),
        text: text(words),
    }
}

/// `Stored` for `client_id`: (id, timestamp_ms).
async fn expect_stored(client: &mut tests::TestClient, client_id: u64) -> (u64, u64) {
    match client.recv().await {
        ServerMessage::Stored {
            client_id: got,
            id,
            timestamp_ms,
        } if got == client_id => (id, timestamp_ms),
        other => panic!("expected Stored for {client_id}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_message_is_acknowledged_with_the_id_its_recipients_see() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    c[0].send(&send_room(41, "hello room")).await;
    let (id, ts) = expect_stored(&mut c[0], 41).await;
    let (seen_id, seen_ts) = c[1].expect_room_message("Alice", "hello room").await;
    assert_eq!((seen_id, seen_ts), (id, ts));
    c[0].sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_after_a_reconnect_is_stored_and_delivered_once() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    c[0].send(&send_room(7, "only once")).await;
    let (id, _) = expect_stored(&mut c[0], 7).await;
    c[1].expect_room_message("Alice", "only once").await;
    c[0].send(&send_direct(8, "Bob", "private, once")).await;
    let (dm_id, _) = expect_stored(&mut c[0], 8).await;
    c[1].expect_direct_message("Alice", "Bob", "private, once")
        .await;

    // Alice's connection drops before she could know; she comes back on a
    // new connection and resends both with the same keys.
    let alice = c.remove(0);
    alice.drop_connection();
    let mut alice = server.connect("Alice").await;
    alice.login("Alice", PASSWORD).await;
    alice.send(&send_room(7, "only once")).await;
    assert_eq!(
        expect_stored(&mut alice, 7).await.0,
        id,
        "the first id again"
    );
    alice.send(&send_direct(8, "Bob", "private, once")).await;
    assert_eq!(expect_stored(&mut alice, 8).await.0, dm_id);
    // Bob got nothing new: the next thing he sees is Alice's next message.
    alice.send(&send_room(9, "new one")).await;
    expect_stored(&mut alice, 9).await;
    match c[0].recv().await {
        ServerMessage::RoomMessage { text, .. } => {
            assert_eq!(text.as_str(), "new one", "a resend was delivered again");
        }
        other => panic!("Bob got {other:?}"),
    }

    // History holds each message once.
    let mut carol = server.connect("Carol").await;
    let info = carol.register("Carol", PASSWORD).await;
    let texts: Vec<&str> = info.history.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["only once", "new one"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sends_name_the_message_and_reach_nobody() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    c[0].send(&send_direct(3, "Nobody", "hello?")).await;
    match c[0].recv().await {
        ServerMessage::SendFailed {
            client_id: 3,
            code: ErrorCode::UnknownRecipient,
            ..
        } => {}
        other => panic!("expected SendFailed for 3, got {other:?}"),
    }
    c[0].send(&send_direct(4, "alice", "note to self")).await;
    match c[0].recv().await {
        ServerMessage::SendFailed {
            client_id: 4,
            code: ErrorCode::InvalidMessage,
            ..
        } => {}
        other => panic!("expected SendFailed for 4, got {other:?}"),
    }
    c[1].sync().await;
}

/// If the history cannot be written, the message is delivered to nobody and
/// its sender is told; it used to reach every recipient anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_be_stored_is_delivered_to_nobody() {
    let server = TestServer::start(Transport::Plain).await;
    // The room's log cannot be opened as a file.
    let room_log = server.data_dir().join("chat_histories").join("room.log");
    std::fs::create_dir_all(&room_log).unwrap();
    let mut c = server.group(&["Alice", "Bob"]).await;
    c[0].send(&send_room(1, "lost words")).await;
    match c[0].recv().await {
        ServerMessage::SendFailed {
            client_id: 1,
            code: ErrorCode::Internal,
            ..
        } => {}
        other => panic!("expected SendFailed Internal, got {other:?}"),
    }
    // The version-1 form gets an Error; nobody receives either.
    c[0].say("lost too").await;
    c[0].expect_error(ErrorCode::Internal).await;
    c[1].sync().await;
}
