//! `securechat-cli` as a script uses it, and as a person at a terminal
//! leaves it, against a real in-process server.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use proto_core::message::LeaveReason;
use tests::{TestServer, Transport, PASSWORD, RECV_TIMEOUT};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const CLI: &str = env!("CARGO_BIN_EXE_securechat-cli");

/// The cli for `user` at `addr`, with nothing said about the server's key.
fn cli_at(addr: SocketAddr, known: &Path, user: &str) -> Command {
    let mut c = Command::new(CLI);
    c.arg("--server")
        .arg(addr.to_string())
        .arg("--user")
        .arg(user)
        .arg("--known-servers")
        .arg(known)
        .env("SECURECHAT_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// The cli for `user` on `server`, its key given with `--fingerprint`.
fn cli(server: &TestServer, known: &Path, user: &str) -> Command {
    let mut c = cli_at(server.addr(), known, user);
    c.arg("--fingerprint").arg(server.fingerprint().to_string());
    c
}

/// The cli's `--json` output, read event by event.
struct JsonEvents(tokio::io::Lines<BufReader<tokio::process::ChildStdout>>);

impl JsonEvents {
    fn of(child: &mut Child) -> Self {
        Self(BufReader::new(child.stdout.take().expect("stdout piped")).lines())
    }

    /// The next event of type `kind` (others are skipped); fails the test
    /// after `RECV_TIMEOUT` or at the end of the output.
    async fn next_of(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let line = tokio::time::timeout(RECV_TIMEOUT, self.0.next_line())
                .await
                .expect("no output from the cli")
                .unwrap()
                .expect("cli output ended");
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            if v["type"] == kind {
                return v;
            }
        }
    }
}

/// Reads `out` until a line contains `text`, then drains the rest in the
/// background (a closed pipe would kill the writer); fails the test after
/// `RECV_TIMEOUT` or at the end of the output.
async fn wait_for_line(out: impl AsyncRead + Unpin + Send + 'static, text: &str) {
    let mut lines = BufReader::new(out).lines();
    tokio::time::timeout(RECV_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(text) {
                return;
            }
        }
        panic!("the output ended before {text:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {text:?} within {RECV_TIMEOUT:?}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

/// The child's exit status; fails the test if it is still running after
/// `RECV_TIMEOUT` although nothing more will reach it.
async fn exits(child: &mut Child) -> ExitStatus {
    tokio::time::timeout(RECV_TIMEOUT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("the cli did not exit within {RECV_TIMEOUT:?}"))
        .unwrap()
}

async fn exit_code(command: &mut Command) -> i32 {
    let out = tokio::time::timeout(RECV_TIMEOUT, command.output())
        .await
        .expect("the cli did not exit")
        .unwrap();
    out.status.code().unwrap_or_else(|| {
        panic!(
            "killed by a signal: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
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
    assert_eq!(out.status.code(), Some(1));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_ends_the_cli_while_stdin_stays_open() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = cli(&server, &dir.path().join("known"), "Dana")
        .arg("--register")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(child.stdout.take().unwrap(), "-- end of history").await;
    // Held open to the end: the cli must not wait for more input.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"/quit\n").await.unwrap();
    assert_eq!(exits(&mut child).await.code(), Some(0));
    drop(stdin);
}

/// On a terminal, as in the bug report: `script` gives the cli a pseudo-
/// terminal as stdin and stdout, and returns its exit status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_ends_the_cli_on_a_terminal() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let command = [
        CLI,
        "--server",
        &server.addr().to_string(),
        "--user",
        "Fay",
        "--register",
        "--fingerprint",
        &server.fingerprint().to_string(),
        "--known-servers",
        known.to_str().unwrap(),
    ]
    .map(quote)
    .join(" ");
    let mut script = Command::new("script")
        .args([
            "--quiet",
            "--flush",
            "--return",
            "--command",
            &command,
            "/dev/null",
        ])
        .env("SECURECHAT_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script (util-linux) runs the cli on a pseudo-terminal");
    wait_for_line(script.stdout.take().unwrap(), "-- end of history").await;
    let mut terminal = script.stdin.take().unwrap();
    terminal.write_all(b"#exit\n").await.unwrap();
    assert_eq!(exits(&mut script).await.code(), Some(0));
    drop(terminal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exit_status_says_why_the_cli_could_not_chat() {
    let server = TestServer::start(Transport::Plain).await;
    let _bob = server.user("Bob").await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let nobody_listens = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let someone_else = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    let codes = [
        exit_code(cli(&server, &known, "Bob").env_remove("SECURECHAT_PASSWORD")).await,
        exit_code(cli(&server, &known, "Bob").env("SECURECHAT_PASSWORD", "not it")).await,
        exit_code(&mut cli_at(nobody_listens, &known, "Bob")).await,
        exit_code(cli_at(nobody_listens, &known, "Bob").args(["--send", "x"])).await,
        // Nothing pinned there and no terminal to ask on: the key is declined.
        exit_code(&mut cli_at(server.addr(), &dir.path().join("empty"), "Bob")).await,
        exit_code(cli_at(server.addr(), &known, "Bob").args(["--fingerprint", someone_else])).await,
        // The last byte of the ServerHello (its signature) flipped on the way.
        {
            let proxy = tests::TamperingProxy::start(server.addr(), Some(5 + 1634 - 1)).await;
            let mut c = cli_at(proxy.addr, &known, "Bob");
            c.arg("--fingerprint").arg(server.fingerprint().to_string());
            exit_code(&mut c).await
        },
    ];
    let cases = [
        "no password",
        "wrong password",
        "unreachable",
        "unreachable, --send",
        "declined key",
        "someone else's key",
        "bad server signature",
    ];
    assert_eq!(
        cases.into_iter().zip(codes).collect::<Vec<_>>(),
        cases
            .into_iter()
            .zip([2, 1, 3, 3, 4, 4, 4])
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_taken_over_by_the_same_device_exits_with_5() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = cli(&server, &dir.path().join("known"), "Gus")
        .arg("--register")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(child.stdout.take().unwrap(), "-- end of history").await;
    let stdin = child.stdin.take().unwrap();
    // Another device of Gus: both stay.
    let mut phone = server.connect("Gus's phone").await;
    phone.set_device(77, "phone").await;
    phone.login("Gus", PASSWORD).await;
    // The cli's own device (its id beside the known-servers file) logging
    // in elsewhere takes the session over.
    let id = std::fs::read_to_string(dir.path().join("known.device-cli")).unwrap();
    let mut same = server.connect("same device").await;
    same.set_device(u64::from_str_radix(id.trim(), 16).unwrap(), "cli again")
        .await;
    same.login("Gus", PASSWORD).await;
    assert_eq!(exits(&mut child).await.code(), Some(5));
    phone.sync().await;
    drop(stdin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_listed_with_the_name_given_and_logged_out_from_the_terminal() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let out = cli(&server, &known, "Hal")
        .args(["--register", "--device-name", "build box", "--send", "hi"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let mut phone = server.connect("Hal's phone").await;
    phone.set_device(0xabc, "phone").await;
    phone.login("Hal", PASSWORD).await;

    let mut child = cli(&server, &known, "Hal")
        .args(["--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = JsonEvents::of(&mut child);
    events.next_of("history_done").await;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"/devices\n").await.unwrap();
    let list = events.next_of("devices").await;
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{list}");
    let mine = devices.iter().find(|d| d["current"] == true).unwrap();
    assert_eq!(
        mine["name"], "build box",
        "the name is kept from the first run"
    );
    let other = devices.iter().find(|d| d["current"] == false).unwrap();
    assert_eq!(
        (other["name"].as_str(), other["id"].as_str()),
        (Some("phone"), Some("0000000000000abc"))
    );
    stdin.write_all(b"/logout-device abc\n").await.unwrap();
    phone
        .expect_cut_off(proto_core::message::GoodbyeReason::SessionEnded)
        .await;
    drop(stdin);
    assert!(exits(&mut child).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_password_replaces_it_and_the_old_one_stops_working() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let run = |args: &[&str], stdin: Option<&'static [u8]>| {
        let mut c = cli(&server, &known, "Hal");
        c.args(args);
        async move {
            if let Some(input) = stdin {
                c.stdin(Stdio::piped()).stdout(Stdio::piped());
                let mut child = c.spawn().unwrap();
                child.stdin.take().unwrap().write_all(input).await.unwrap();
                let out = tokio::time::timeout(RECV_TIMEOUT * 2, child.wait_with_output())
                    .await
                    .unwrap()
                    .unwrap();
                (
                    out.status,
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                )
            } else {
                let out = tokio::time::timeout(RECV_TIMEOUT * 2, c.output())
                    .await
                    .unwrap()
                    .unwrap();
                (
                    out.status,
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                )
            }
        }
    };
    let (status, _) = run(&["--register", "--send", "first"], None).await;
    assert!(status.success());
    // The wrong current password cannot even log in: exit 1, nothing changed.
    let wrong: &'static [u8] = b"not the password\na new password\n";
    let (status, out) = run(&["--change-password", "--password-stdin"], Some(wrong)).await;
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(!out.contains("password changed"), "{out}");
    // The right one (the first line of standard input is the current one).
    let right = format!("{PASSWORD}\na new password\n").into_bytes().leak();
    let (status, out) = run(&["--change-password", "--password-stdin"], Some(right)).await;
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("password changed"), "{out}");
    // SECURECHAT_PASSWORD still holds the old one: refused now.
    let (status, _) = run(&["--send", "with the old password"], None).await;
    assert_eq!(status.code(), Some(1));
    let new: &'static [u8] = b"a new password\n";
    let (status, out) = run(
        &["--password-stdin", "--send", "with the new one"],
        Some(new),
    )
    .await;
    assert_eq!(status.code(), Some(0), "{out}");
}

/// A server upgraded from the release before OPAQUE: the CLI logs in to an
/// account that still holds an Argon2id hash (the server asks for the old
/// login once and migrates it), then changes its password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_made_before_opaque_log_in_and_change_their_password_from_the_cli() {
    use tests::fixtures::{legacy_data_dir, LEGACY_ACCOUNTS};
    use tests::ServerOptions;
    let mut options = ServerOptions::new(Transport::Plain);
    options.data_from = Some(legacy_data_dir());
    let server = TestServer::start_with(options).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let (name, secret) = LEGACY_ACCOUNTS[0];
    let out = cli(&server, &known, name)
        .env("SECURECHAT_PASSWORD", secret)
        .args(["--send", "after the upgrade"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("hello from Bob before OPAQUE"),
        "the history made before the upgrade is there: {stdout}"
    );
    let new_password: &'static [u8] = b"correct-horse-battery\nan opaque password\n";
    let mut child = cli(&server, &known, name)
        .args(["--change-password", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(new_password)
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cli(&server, &known, name)
        .env("SECURECHAT_PASSWORD", "an opaque password")
        .args(["--send", "with the new password"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
}

/// Once an account has logged in with OPAQUE from this client, a server
/// that asks it for the password itself (the version-1 login, as an
/// impostor holding the key or a server restored from an old backup
/// would) is refused: exit 4, and the password is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_asking_an_opaque_account_for_its_password_the_old_way_is_refused() {
    use tests::fixtures::{legacy_data_dir, LEGACY_ACCOUNTS};
    use tests::ServerOptions;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = || {
        let mut o = ServerOptions::new(Transport::Plain);
        o.data_from = Some(legacy_data_dir());
        o.listen = format!("127.0.0.1:{port}").parse().unwrap();
        o
    };
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let (name, secret) = LEGACY_ACCOUNTS[1];
    let login = |server: &TestServer| {
        let mut c = cli(server, &known, name);
        c.env("SECURECHAT_PASSWORD", secret)
            .args(["--send", "hello"]);
        c
    };
    let mut upgraded = TestServer::start_with(options()).await;
    // The first login migrates the account; the second runs OPAQUE.
    for _ in 0..2 {
        let out = login(&upgraded).output().await.unwrap();
        assert!(out.status.success());
    }
    upgraded.shutdown().await;
    // The same address and key, but the account's old hash again.
    let rolled_back = TestServer::start_with(options()).await;
    let out = login(&rolled_back).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("pre-OPAQUE form"), "{stdout}");
    // Another account, never seen with OPAQUE here, still migrates.
    let (other, other_secret) = LEGACY_ACCOUNTS[2];
    let out = cli(&rolled_back, &known, other)
        .env("SECURECHAT_PASSWORD", other_secret)
        .args(["--send", "hello"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_mode_joins_or_creates_a_room_and_sends_there() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let mut bob = server.user("Bob").await;
    bob.create_room("#ops", false, "").await.unwrap();

    // An existing room: joined, then the message goes there.
    let out = cli(&server, &known, "Alice")
        .args(["--register", "--join", "ops", "--send", "deploy done"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    bob.expect_user_joined("Alice").await;
    bob.expect_member_joined("#ops", "Alice").await;
    bob.expect_room_message_in("#ops", "Alice", "deploy done")
        .await;
    bob.expect_user_left("Alice", LeaveReason::Exit).await;

    // A missing room: created (Alice owns it), and the message stored in it.
    let out = cli(&server, &known, "Alice")
        .args(["--join", "#Fresh", "--send", "first words", "--json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.contains(r#""type":"room_joined""#)
            && l.contains(r##""room":"#Fresh""##)
            && l.contains(r#""role":"owner""#)),
        "{stdout}"
    );
    bob.expect_user_joined("Alice").await;
    bob.expect_user_left("Alice", LeaveReason::Exit).await;
    let fresh = bob.join_room("#fresh").await.unwrap();
    assert_eq!((fresh.room.as_str(), fresh.members), ("#Fresh", 2));

    // --room names a room the user is not in: refused, exit 7, nothing sent.
    let carol = cli(&server, &known, "Carol")
        .args(["--register", "--room", "#ops", "--send", "hi ops"])
        .output()
        .await
        .unwrap();
    assert_eq!(carol.status.code(), Some(7));
    bob.expect_user_joined("Carol").await;
    bob.expect_user_left("Carol", LeaveReason::Exit).await;
    bob.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_room_commands_join_list_part_and_the_text_follows_the_current_room() {
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let mut bob = server.user("Bob").await;
    bob.create_room("#dev", false, "tabs vs spaces")
        .await
        .unwrap();

    let mut child = cli(&server, &known, "Carol")
        .args(["--register", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = JsonEvents::of(&mut child);
    events.next_of("history_done").await;
    bob.expect_user_joined("Carol").await;
    let mut stdin = child.stdin.take().unwrap();

    stdin.write_all(b"/join dev\n").await.unwrap();
    assert_eq!(events.next_of("room_joined").await["room"], "#dev");
    bob.expect_member_joined("#dev", "Carol").await;
    stdin.write_all(b"now in dev\n").await.unwrap();
    bob.expect_room_message_in("#dev", "Carol", "now in dev")
        .await;

    stdin.write_all(b"/list tabs\n").await.unwrap();
    let list = events.next_of("room_list").await;
    assert_eq!(list["rooms"][0]["room"], "#dev");
    assert_eq!(list["rooms"].as_array().unwrap().len(), 1);

    bob.say("in general").await;
    let heard = events.next_of("room").await;
    assert_eq!(
        (heard["room"].as_str(), heard["text"].as_str()),
        (Some("#general"), Some("in general"))
    );

    stdin.write_all(b"/part\n").await.unwrap();
    assert_eq!(events.next_of("room_left").await["room"], "#dev");
    bob.expect_member_left("#dev", "Carol").await;
    stdin.write_all(b"back in general\n").await.unwrap();
    bob.expect_room_message_in("#general", "Carol", "back in general")
        .await;
    drop(stdin);
    bob.expect_user_left("Carol", LeaveReason::Exit).await;
    assert!(exits(&mut child).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_moderates_from_the_terminal() {
    use proto_core::message::{RoomChange, RoomLeaveReason, RoomRole};
    let server = TestServer::start(Transport::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    let mut bob = server.user("Bob").await;

    let mut child = cli(&server, &known, "Carol")
        .args(["--register", "--json", "--join", "#den"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = JsonEvents::of(&mut child);
    assert_eq!(events.next_of("room_joined").await["room"], "#general");
    let den = events.next_of("room_joined").await;
    assert_eq!(
        (den["room"].as_str(), den["role"].as_str()),
        (Some("#den"), Some("owner"))
    );
    bob.expect_user_joined("Carol").await;
    bob.join_room("#den").await.unwrap();
    events.next_of("member_joined").await;
    let mut stdin = child.stdin.take().unwrap();

    stdin.write_all(b"/op Bob\n").await.unwrap();
    assert_eq!(
        bob.expect_room_changed("#den", "Carol").await,
        RoomChange::Role {
            user: tests::username("Bob"),
            role: RoomRole::Moderator
        }
    );
    let op = events.next_of("room_changed").await;
    assert_eq!(op["change"]["kind"], "role");
    assert_eq!(op["text"], "Carol made Bob a moderator");

    stdin.write_all(b"/topic deploys only\n").await.unwrap();
    assert!(matches!(
        bob.expect_room_changed("#den", "Carol").await,
        RoomChange::Topic { topic } if topic.as_str() == "deploys only"
    ));
    stdin.write_all(b"/mode +i\n").await.unwrap();
    assert_eq!(
        bob.expect_room_changed("#den", "Carol").await,
        RoomChange::InviteOnly { invite_only: true }
    );
    stdin
        .write_all(b"/kick Bob too many pings\n")
        .await
        .unwrap();
    assert!(matches!(
        bob.expect_room_changed("#den", "Carol").await,
        RoomChange::Kicked { user, reason } if user.as_str() == "Bob" && reason.as_str() == "too many pings"
    ));
    bob.expect_room_left("#den", RoomLeaveReason::Kicked).await;
    // A command the server refuses is shown, and nothing happens.
    stdin.write_all(b"/deleteroom #general\n").await.unwrap();
    let refusal = events.next_of("notice").await;
    assert_eq!(refusal["kind"], "error");
    assert!(refusal["text"]
        .as_str()
        .unwrap()
        .contains("#general cannot be deleted"));
    drop(stdin);
    assert!(exits(&mut child).await.success());
}

/// Scrolling back in a direct conversation: `/history NAME [N]` pages it
/// before the oldest message the login replayed, down to its beginning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_a_direct_conversation_back_to_its_beginning() {
    let server =
        TestServer::start_with(tests::ServerOptions::new(Transport::Plain).history_replay(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    server.user("Carol").await.goodbye().await;
    let mut bob = server.user("Bob").await;
    for i in 0..5 {
        bob.dm("Carol", &format!("note {i}")).await;
        bob.sync().await;
    }

    let mut child = cli(&server, &known, "Carol")
        .arg("--json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = JsonEvents::of(&mut child);
    events.next_of("history_done").await;
    let mut stdin = child.stdin.take().unwrap();
    let texts = |page: &serde_json::Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    };

    // The login replayed notes 3 and 4; before them, two at a time.
    stdin.write_all(b"/history bob 2\n").await.unwrap();
    let page = events.next_of("history_page").await;
    assert_eq!(page["conversation"]["direct"], "Bob");
    assert_eq!(texts(&page), ["note 1", "note 2"]);
    assert_eq!(page["complete"], false);
    assert_eq!(page["messages"][0]["to"], "Carol");
    stdin.write_all(b"/history Bob\n").await.unwrap();
    let page = events.next_of("history_page").await;
    assert_eq!(texts(&page), ["note 0"]);
    assert_eq!(page["complete"], true);
    drop(stdin);
    assert!(exits(&mut child).await.success());
}
