//! `securechat-cli` as a script uses it, against a real in-process server.

use std::process::Stdio;

use proto_core::message::LeaveReason;
use tests::{TestServer, Transport, PASSWORD, RECV_TIMEOUT};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn cli(server: &TestServer, known: &std::path::Path, user: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_securechat-cli"));
    c.arg("--server")
        .arg(server.addr().to_string())
        .arg("--user")
        .arg(user)
        .arg("--fingerprint")
        .arg(server.fingerprint().to_string())
        .arg("--known-servers")
        .arg(known)
        .env("SECURECHAT_PASSWORD", PASSWORD)
        .kill_on_drop(true);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_delivers_one_message_and_leaves() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let mut bob = server.user("Bob").await;

    let out = cli(&server, &known, "Alice")
        .args(["--register", "--send", "hello from a script ☃"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bob.expect_user_joined("Alice").await;
    bob.expect_room_message("Alice", "hello from a script ☃")
        .await;
    bob.expect_user_left("Alice", LeaveReason::Exit).await;

    let out = cli(&server, &known, "Alice")
        .args(["--send", "psst", "--to", "bob"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    bob.expect_user_joined("Alice").await;
    bob.expect_direct_message("Alice", "Bob", "psst").await;

    // A wrong password fails with a message and a non-zero exit.
    let out = cli(&server, &known, "Alice")
        .env("SECURECHAT_PASSWORD", "not the password")
        .args(["--send", "x"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrong username or password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_prints_received_messages_and_stdin_lines_are_sent() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let mut bob = server.user("Bob").await;

    let mut child = cli(&server, &known, "Carol")
        .args(["--register", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_json = async || -> serde_json::Value {
        let line = tokio::time::timeout(RECV_TIMEOUT, lines.next_line())
            .await
            .expect("no output from the cli")
            .unwrap()
            .expect("cli output ended");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
    };
    while next_json().await["type"] != "history_done" {}
    bob.expect_user_joined("Carol").await;

    bob.say("hi carol, 你好").await;
    let msg = loop {
        let v = next_json().await;
        if v["type"] == "room" {
            break v;
        }
    };
    assert_eq!(msg["from"], "Bob");
    assert_eq!(msg["text"], "hi carol, 你好");
    assert_eq!(msg["history"], false);

    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"/msg Bob from stdin\n").await.unwrap();
    bob.expect_direct_message("Carol", "Bob", "from stdin")
        .await;
    drop(stdin); // end of input: the cli says goodbye
    bob.expect_user_left("Carol", LeaveReason::Exit).await;
    let status = tokio::time::timeout(RECV_TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
