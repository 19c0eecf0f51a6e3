//! The client pins the server's fingerprint: a different server on the
//! same address is refused as "key changed" before anything is sent under
//! the session keys (SECURITY.md N4).

use net::NetError;
use tests::{ServerOptions, TestClient, TestServer, Transport, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_new_identity_on_the_same_address_is_reported_as_key_changed() {
    let mut original = TestServer::start(Transport::Plain).await;
    let pinned = original.endpoint();
    let mut alice = TestClient::connect(&pinned, "Alice").await;
    alice.register("Alice", PASSWORD).await;
    alice.goodbye().await;
    original.shutdown().await;

    // Another data directory, so another identity, on the same address.
    let impostor =
        TestServer::start_with(ServerOptions::new(Transport::Plain).listen(pinned.addr)).await;
    assert_eq!(impostor.addr(), pinned.addr);
    assert_ne!(impostor.fingerprint(), pinned.fingerprint);

    match TestClient::try_connect(&pinned, "Alice").await {
        Ok(_) => panic!("a client pinned to the old fingerprint connected to a new identity"),
        Err(NetError::Protocol(proto_core::Error::ServerKeyChanged {
            expected,
            presented,
        })) => {
            assert_eq!(expected, pinned.fingerprint);
            assert_eq!(presented, impostor.fingerprint());
        }
        Err(other) => panic!("expected ServerKeyChanged, got {other}"),
    }

    // Pinning the new fingerprint deliberately works; the account is not
    // there, since it is another server.
    let mut repinned = impostor.connect("Alice").await;
    assert_eq!(
        repinned.try_login("Alice", PASSWORD).await.err(),
        Some(proto_core::message::AuthFailure::LoginFailed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_persists_across_restarts_of_the_same_data_directory() {
    let mut server = TestServer::start(Transport::Plain).await;
    let before = server.endpoint();
    // restart() asserts the fingerprint is unchanged; a client pinned
    // before the restart connects after it.
    server.restart().await;
    let mut pinned = before.clone();
    pinned.addr = server.addr();
    let mut alice = TestClient::connect(&pinned, "Alice").await;
    alice.register("Alice", PASSWORD).await;
}
