//! SIGHUP makes the real binary load a new TLS certificate for new
//! connections while the sessions already open carry on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tests::server_process::write_config;
use tests::test_certificate::write_private;
use tests::{Endpoint, ServerProcess, TestCertificate, TestClient, PASSWORD};

const EXE: &str = env!("CARGO_BIN_EXE_securechat-test-server");

/// Installs `cert` as `dir/cert.pem` + `dir/key.pem`, replacing by rename
/// as an operator's renewal tool would.
fn install(cert: &TestCertificate, dir: &Path) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (c_new, k_new) = (dir.join("cert.pem.new"), dir.join("key.pem.new"));
    std::fs::copy(&cert.cert, &c_new).unwrap();
    write_private(&k_new, &std::fs::read(&cert.key).unwrap());
    std::fs::rename(&k_new, &k).unwrap();
    std::fs::rename(&c_new, &c).unwrap();
    (c, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    write_config(&config, &dir.path().join("data"));
    let first = TestCertificate::generate();
    let (cert, key) = install(&first, dir.path());
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml = format!(
        "tls_cert = '{}'\ntls_key = '{}'\n{toml}",
        cert.display(),
        key.display()
    );
    std::fs::write(&config, toml).unwrap();
    let server = ServerProcess::start(Path::new(EXE), &config, &dir.path().join("log")).await;
    let with_ca = |ca: &Path| Endpoint {
        tls_ca: Some(ca.to_path_buf()),
        ..server.endpoint()
    };

    let mut alice = TestClient::connect(&with_ca(&first.cert), "Alice").await;
    alice.register("Alice", PASSWORD).await;

    let second = TestCertificate::generate();
    install(&second, dir.path());
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());

    // The reload is asynchronous: poll for the new certificate (failure
    // bound 10 s; nothing announces the reload to a client).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut bob = loop {
        match TestClient::try_connect(&with_ca(&second.cert), "Bob").await {
            Ok(c) => break c,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!(
                "the new certificate was not served after SIGHUP: {e}\n{}",
                server.log()
            ),
        }
    };
    bob.register("Bob", PASSWORD).await;
    // New connections no longer get the old certificate ...
    assert!(TestClient::try_connect(&with_ca(&first.cert), "Old")
        .await
        .is_err());
    // ... and Alice, connected under the old one, is still in the room.
    alice.expect_user_joined("Bob").await;
    alice.say("still here").await;
    bob.expect_room_message("Alice", "still here").await;
    assert!(server.terminate().await.success());
}
