//! The chat suite again over TLS 1.3 (a self-signed certificate the
//! clients trust as their CA), plus what only TLS has.

use tests::{TestClient, TestServer, Transport};

tests::chat_suite!(Transport::Tls);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_gets_no_session_from_a_tls_server() {
    let server = TestServer::start(Transport::Tls).await;
    let mut plain = server.endpoint();
    plain.tls_ca = None;
    assert!(
        TestClient::try_connect(&plain, "plain").await.is_err(),
        "a SecureChat handshake without TLS succeeded against a TLS server"
    );
    // The server is unharmed.
    let mut c = server.group(&["Alice", "Bob"]).await;
    c[0].say("still fine").await;
    c[1].expect_room_message("Alice", "still fine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_key_readable_by_others_stops_the_server_from_starting() {
    use std::os::unix::fs::PermissionsExt;
    let cert = tests::TestCertificate::generate();
    std::fs::set_permissions(&cert.key, std::fs::Permissions::from_mode(0o644))
        .expect("chmod 644 the key");
    let data = tempfile::tempdir().expect("temporary directory");
    let mut config = server::Config::new(data.path().join("data"));
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.tls = Some(server::TlsFiles {
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    });
    match server::start(config).await {
        Ok(_) => panic!("the server started with a TLS key readable by others"),
        Err(e) => assert!(
            e.to_string().contains("key.pem"),
            "the refusal should name the key file: {e}"
        ),
    }
}
