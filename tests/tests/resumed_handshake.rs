//! Resumed handshakes (docs/PROTOCOL.md §Resumed handshake): a client that
//! holds a live resume token comes back without the ffdhe3072 exchange,
//! keyed by its token; every other key is refused with `unknown_psk`, in
//! plaintext and at once, and a full handshake still works.

use net::NetError;
use proto_core::message::ResumeToken;
use proto_core::{AlertCode, Error as ProtoError};
use tests::{TestServer, Transport, PASSWORD};

fn is_unknown_psk<T>(result: &Result<T, NetError>) -> bool {
    matches!(
        result,
        Err(NetError::Protocol(ProtoError::AlertReceived(
            AlertCode::UnknownPsk
        )))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_token_comes_back_through_a_resumed_handshake_and_chats() {
    for transport in [Transport::Plain, Transport::Tls] {
        let server = TestServer::start(transport).await;
        let mut bob = server.user("Bob").await;
        let mut alice = server.connect("Alice").await;
        let token = alice.register("Alice", PASSWORD).await.token;
        alice.drop_connection();

        let mut alice = server
            .try_connect_resumed("Alice", &token)
            .await
            .expect("a resumed handshake with a live token");
        assert_eq!(server.resumed_handshakes(), 1);
        let info = alice.resume(&token).await;
        assert_eq!(info.username.as_str(), "Alice");
        alice.say("back without ffdhe").await;
        bob.expect_room_message("Alice", "back without ffdhe").await;
        // The token was redeemed: its key is gone, the new token's works.
        assert!(is_unknown_psk(
            &server.try_connect_resumed("again", &token).await
        ));
        assert!(server
            .try_connect_resumed("again", &info.token)
            .await
            .is_ok());
        assert_eq!(server.resumed_handshakes(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_revoked_and_logged_out_keys_are_refused_and_a_full_handshake_still_works() {
    let server = TestServer::start(Transport::Plain).await;
    // Never issued.
    let made_up = ResumeToken::from_bytes([0x5a; 32]);
    assert!(is_unknown_psk(
        &server.try_connect_resumed("stranger", &made_up).await
    ));
    // Revoked by `#exit`.
    let mut carol = server.connect("Carol").await;
    let token = carol.register("Carol", PASSWORD).await.token;
    carol.goodbye().await;
    assert!(is_unknown_psk(
        &server.try_connect_resumed("Carol", &token).await
    ));
    // Replaced: a device holds one token, and a later login of the same
    // device (these clients name none, so all are device 0) replaces it.
    let mut dave = server.connect("Dave").await;
    let token = dave.register("Dave", PASSWORD).await.token;
    let mut again = server.connect("Dave").await;
    again.login("Dave", PASSWORD).await;
    assert!(is_unknown_psk(
        &server.try_connect_resumed("Dave", &token).await
    ));
    assert_eq!(server.resumed_handshakes(), 0);
    // After all those refusals, a full handshake and the password work.
    let mut carol = server.connect("Carol").await;
    carol.login("Carol", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_survives_a_graceful_restart_with_its_token() {
    let mut server = TestServer::start(Transport::Plain).await;
    let mut erin = server.connect("Erin").await;
    let token = erin.register("Erin", PASSWORD).await.token;
    erin.drop_connection();
    server.restart().await;
    let mut erin = server
        .try_connect_resumed("Erin", &token)
        .await
        .expect("the token's key is back after the restart");
    erin.resume(&token).await;
    assert_eq!(server.resumed_handshakes(), 1);
}
