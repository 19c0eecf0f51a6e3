//! End to end: the real `securechat-gui` under Xvfb against a real server
//! (in this process), with two other clients (client-core) in other
//! scripts. The GUI registers, sees history, sends a message the others
//! receive, shows a join, new messages and an unread badge (read from its
//! `--screen-probe` file, written after each frame), is photographed, and
//! on SIGTERM says goodbye so the others see it leave.
//!
//! Needs Xvfb and ImageMagick (see CI-PACKAGES.txt); it fails, never skips,
//! when they are missing. The screenshots are written to
//! `target/gui-e2e/` (`screenshot.png`, and `rooms.png` of a room), and to
//! `docs/screenshot.png` and `docs/screenshot-rooms.png` as well when
//! `UPDATE_SCREENSHOT=1`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use client_core::{
    AuthRequest, ClientEvent, ClientHandle, ClientOptions, Fingerprint, KnownServers, LeaveReason,
};
use tests::{TestServer, Transport};
use tokio::sync::mpsc::UnboundedReceiver;
use zeroize::Zeroizing;

const GUI_USER: &str = "Zoë";
const GUI_MESSAGE: &str = "Hello from the GUI 👋 — 你好, مرحبا, Grüße";
/// Slow first frames (llvmpipe, font loading) on a loaded machine.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// Kills the process when dropped (test failure included).
struct Guard {
    name: &'static str,
    child: Child,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Guard {
    fn spawn(name: &'static str, command: &mut Command) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Self { name, child }
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.name);
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn require_tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{name} is missing: install the Debian packages in client-slint/CI-PACKAGES.txt"
    );
}

/// Fonts for every script the test sends (Debian: fonts-noto-cjk,
/// fonts-noto-core, fonts-noto-color-emoji). Without them the window would
/// show empty boxes and still "pass".
fn require_fonts() {
    for (pattern, package) in [
        (":lang=zh", "fonts-noto-cjk"),
        (":lang=ar", "fonts-noto-core"),
        ("Noto Color Emoji", "fonts-noto-color-emoji"),
    ] {
        let out = Command::new("fc-list")
            .arg(pattern)
            .output()
            .expect("run fc-list (fontconfig)");
        assert!(
            !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
            "no font for {pattern}: install {package} (see client-slint/CI-PACKAGES.txt)"
        );
    }
}

/// Starts Xvfb on a free display; returns it and the display name.
fn start_xvfb() -> (Guard, String) {
    let mut xvfb = Guard::spawn(
        "Xvfb",
        Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1000x680x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut line = String::new();
    BufReader::new(xvfb.child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("Xvfb prints its display");
    let number = line.trim();
    assert!(!number.is_empty(), "Xvfb did not start");
    (xvfb, format!(":{number}"))
}

struct Peer {
    handle: ClientHandle,
    events: UnboundedReceiver<ClientEvent>,
}

impl Peer {
    async fn register(port: u16, fingerprint: Fingerprint, dir: &Path, name: &str) -> Self {
        let auth = AuthRequest::Register {
            username: name.into(),
            password: Zeroizing::new(format!("{name} password 123")),
        };
        let mut options = ClientOptions::new(format!("127.0.0.1:{port}").parse().unwrap(), auth);
        options.fingerprint = Some(fingerprint);
        options.known_servers = KnownServers::at(dir.join(format!("known-{name}")));
        options.reconnect = false;
        let (handle, events) = client_core::spawn(options, &tokio::runtime::Handle::current());
        let mut peer = Self { handle, events };
        peer.wait_for(|e| matches!(e, ClientEvent::HistoryDone))
            .await;
        peer
    }

    /// Waits for an event matching `want`; fails on Closed or timeout.
    async fn wait_for(&mut self, want: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("timed out waiting for an event")
                .expect("client ended");
            if want(&event) {
                return event;
            }
            if let ClientEvent::Closed { cause } = event {
                panic!("client closed: {cause:?}");
            }
        }
    }
}

fn screenshot(display: &str, path: &Path) {
    let status = Command::new("import")
        .args(["-display", display, "-window", "root"])
        .arg(path)
        .status()
        .expect("run ImageMagick import");
    assert!(status.success(), "import failed");
    // A blank or failed window has a handful of colours; text has hundreds.
    let colours = Command::new("identify")
        .args(["-format", "%k"])
        .arg(path)
        .output()
        .expect("run ImageMagick identify");
    let count: u32 = String::from_utf8_lossy(&colours.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(count > 200, "the screenshot looks blank ({count} colours)");
}

/// Photographs `display` into `target/gui-e2e/FILE` (checked not blank),
/// and copies it to `docs/DOCS_FILE` when `UPDATE_SCREENSHOT=1`.
fn photograph(display: &str, file: &str, docs_file: &str) {
    let shots = workspace_root().join("target").join("gui-e2e");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(file);
    screenshot(display, &shot);
    if std::env::var_os("UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        std::fs::copy(&shot, workspace_root().join("docs").join(docs_file)).unwrap();
    }
}

/// Polls the GUI's screen probe until `shows` holds, and returns it; fails
/// with the last screen and the GUI's log after [`STEP_TIMEOUT`].
fn wait_for_screen(
    gui: &mut Guard,
    probe: &Path,
    log: &Path,
    shows: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        gui.assert_running();
        let screen = read_log(probe);
        if shows(&screen) {
            return screen;
        }
        assert!(
            Instant::now() < deadline,
            "the window never showed what was expected; it showed:\n{screen}\nlog:\n{}",
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// The GUI registering as [`GUI_USER`] on the server at `port` (pinned to
/// `fingerprint`), on `display`, its known servers in `dir`, its screen
/// written to `probe`, its standard output discarded.
fn registering_gui(
    display: &str,
    port: u16,
    fingerprint: Fingerprint,
    dir: &Path,
    probe: &Path,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_securechat-gui"));
    command
        .env("DISPLAY", display)
        .env("SECURECHAT_PASSWORD", "zoë's password 123")
        .env_remove("WAYLAND_DISPLAY")
        .args(["--server", &format!("127.0.0.1:{port}"), "--user", GUI_USER])
        .args([
            "--connect",
            "--register",
            "--fingerprint",
            &fingerprint.to_string(),
        ])
        .arg("--known-servers")
        .arg(dir.join("gui-known"))
        .arg("--screen-probe")
        .arg(probe)
        .stdout(Stdio::null());
    command
}

#[test]
fn gui_registers_sends_a_message_and_says_goodbye_under_xvfb() {
    require_tool("Xvfb");
    require_tool("import");
    require_tool("identify");
    require_fonts();
    let tmp = tempfile::tempdir().unwrap();
    let (_xvfb, display) = start_xvfb();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The server runs in this process (the library the binary wraps), so
    // the test needs no second build of it.
    let server = runtime.block_on(TestServer::start(Transport::Plain));
    let (port, fingerprint) = (server.addr().port(), server.fingerprint());
    let (mut lei, sara) = runtime.block_on(async {
        let lei = Peer::register(port, fingerprint, tmp.path(), "李雷").await;
        let sara = Peer::register(port, fingerprint, tmp.path(), "سارة").await;
        // History the GUI is shown at login, marked as earlier.
        lei.handle
            .send_room("#general", "早上好！今天的会议改到三点。");
        sara.handle
            .send_room("#general", "Grüße aus Köln — ça va? Ñandú, Øre, İstanbul");
        (lei, sara)
    });
    runtime.block_on(lei.wait_for(|e| matches!(e, ClientEvent::Room(l) if l.from == "سارة")));

    let gui_log = tmp.path().join("gui.log");
    let probe = tmp.path().join("screen");
    let mut gui = Guard::spawn(
        "securechat-gui",
        registering_gui(&display, port, fingerprint, tmp.path(), &probe)
            .args(["--send-after-login", GUI_MESSAGE])
            .stderr(std::fs::File::create(&gui_log).unwrap()),
    );

    // The GUI's message reaches the other client.
    let received = runtime.block_on(async {
        tokio::time::timeout(
            STEP_TIMEOUT,
            lei.wait_for(|e| matches!(e, ClientEvent::Room(l) if l.from == GUI_USER)),
        )
        .await
    });
    gui.assert_running();
    let Ok(ClientEvent::Room(line)) = received else {
        panic!("no message from the GUI; its log:\n{}", read_log(&gui_log));
    };
    assert_eq!(line.text, GUI_MESSAGE);

    // Someone joins (a right-to-left name in a notice), live traffic in
    // every script, and a direct message for an unread badge.
    let layla = runtime.block_on(Peer::register(port, fingerprint, tmp.path(), "ليلى"));
    lei.handle.send_room(
        "#general",
        "欢迎 Zoë！🎉 今晚一起吃饭吗？こんにちは 안녕하세요",
    );
    sara.handle
        .send_room("#general", "مرحبا بالجميع! كيف حالكم؟ 😀🔐");
    sara.handle.send_direct(GUI_USER, "رسالة خاصة لك 🌙");
    // On screen: Layla's join, then both new messages after it, and one
    // unread direct message from Sara.
    let screen = wait_for_screen(&mut gui, &probe, &gui_log, |screen| {
        let rows: Vec<&str> = screen
            .lines()
            .filter(|l| l.starts_with("row ") || l.starts_with("notice "))
            .collect();
        let Some(join) = rows
            .iter()
            .position(|r| r.starts_with("notice join") && r.contains("ليلى"))
        else {
            return false;
        };
        let after = &rows[join + 1..];
        after.contains(&"row message 李雷")
            && after.contains(&"row message سارة")
            && screen.lines().any(|l| l == "conversation سارة unread=1")
    });
    assert!(
        screen.contains("row message Zoë\n") || screen.contains("row message Zoë "),
        "the GUI's own message is not on screen:\n{screen}"
    );
    assert!(
        screen.contains("row message 李雷 history"),
        "the history from before the login is not marked as such:\n{screen}"
    );

    photograph(&display, "screenshot.png", "screenshot.png");

    // SIGTERM acts like the close button: goodbye first, then exit.
    let pid = gui.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let left = runtime.block_on(
        lei.wait_for(|e| matches!(e, ClientEvent::Left { username, .. } if username == GUI_USER)),
    );
    assert!(
        matches!(
            left,
            ClientEvent::Left {
                reason: LeaveReason::Exit,
                ..
            }
        ),
        "the GUI left without a goodbye: {left:?}"
    );
    let status = gui
        .wait_exit(Duration::from_secs(10))
        .expect("the GUI exits after its goodbye");
    assert!(
        status.success(),
        "GUI exit status {status}; log:\n{}",
        read_log(&gui_log)
    );

    lei.handle.quit();
    sara.handle.quit();
    layla.handle.quit();
    runtime.block_on(async { drop(server) });
}

/// A server upgraded from the release before OPAQUE: the GUI logs in to an
/// account that still holds an Argon2id hash (the server asks for the old
/// login once and replaces the hash) and shows the history made before the
/// upgrade; then it changes the password through its dialog, and the
/// account logs in over OPAQUE with the new one only.
#[test]
fn gui_logs_in_to_an_account_made_before_opaque_and_changes_its_password() {
    use tests::fixtures::{legacy_data_dir, LEGACY_ACCOUNTS};
    use tests::{ServerOptions, TestClient};
    require_tool("Xvfb");
    let tmp = tempfile::tempdir().unwrap();
    let (_xvfb, display) = start_xvfb();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut options = ServerOptions::new(Transport::Plain);
    options.data_from = Some(legacy_data_dir());
    let server = runtime.block_on(TestServer::start_with(options));
    let (name, secret) = LEGACY_ACCOUNTS[0];
    let gui_log = tmp.path().join("gui.log");
    let probe = tmp.path().join("screen");
    let mut gui = Guard::spawn(
        "securechat-gui",
        Command::new(env!("CARGO_BIN_EXE_securechat-gui"))
            .env("DISPLAY", &display)
            .env("SECURECHAT_PASSWORD", secret)
            .env("SECURECHAT_NEW_PASSWORD", "a new password for the GUI")
            .env_remove("WAYLAND_DISPLAY")
            .args(["--server", &server.addr().to_string(), "--user", name])
            .args([
                "--connect",
                "--fingerprint",
                &server.fingerprint().to_string(),
            ])
            .arg("--change-password-after-login")
            .arg("--known-servers")
            .arg(tmp.path().join("gui-known"))
            .arg("--screen-probe")
            .arg(&probe)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&gui_log).unwrap()),
    );
    let screen = wait_for_screen(&mut gui, &probe, &gui_log, |screen| {
        screen.contains("page chat") && screen.contains("row message Bob history")
    });
    assert!(
        screen.contains("row message alice history"),
        "the history made before the upgrade is on screen:\n{screen}"
    );
    wait_for_screen(&mut gui, &probe, &gui_log, |screen| {
        screen.contains("notice info Password changed") && !screen.contains("dialog")
    });
    // The old password is gone; the new one logs in over OPAQUE (an export
    // key comes only from an OPAQUE login).
    runtime.block_on(async {
        let mut old = TestClient::connect(&server.endpoint(), "old").await;
        assert!(old.try_login(name, secret).await.is_err());
        let mut again = TestClient::connect(&server.endpoint(), "check").await;
        let (_, export_key) = again
            .try_login_with_key(name, "a new password for the GUI")
            .await
            .unwrap();
        assert!(export_key.is_some(), "the account is OPAQUE now");
    });
}

/// Rooms in the real window: 李雷 makes an invite-only room and invites
/// the GUI's user, who sees the invitation and accepts it (typed, through
/// `--stdin-actions`); the room is listed before the direct conversations
/// with its unread count, the owner's topic shows in the header, the GUI's
/// message reaches the member and not سارة (who is not one), and 李雷's
/// kick is shown with who did it as the room leaves the list.
#[test]
fn gui_accepts_an_invitation_chats_in_the_room_and_is_kicked_under_xvfb() {
    const ROOM: &str = "#garden";
    const TOPIC: &str = "Tomatoes, basil 🌿 and 番茄";
    const ROOM_MESSAGE: &str = "The basil is up! 🌱 بذور جديدة";
    require_tool("Xvfb");
    require_tool("import");
    require_tool("identify");
    require_fonts();
    let tmp = tempfile::tempdir().unwrap();
    let (_xvfb, display) = start_xvfb();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start(Transport::Plain));
    let (port, fingerprint) = (server.addr().port(), server.fingerprint());
    let (mut lei, mut sara) = runtime.block_on(async {
        let mut lei = Peer::register(port, fingerprint, tmp.path(), "李雷").await;
        let sara = Peer::register(port, fingerprint, tmp.path(), "سارة").await;
        lei.handle.join(ROOM);
        lei.wait_for(|e| matches!(e, ClientEvent::RoomJoined(r) if r.name == ROOM))
            .await;
        lei.handle.submit("/mode +i", ROOM);
        lei.wait_for(|e| matches!(e, ClientEvent::RoomChanged { room, .. } if room == ROOM))
            .await;
        (lei, sara)
    });

    let gui_log = tmp.path().join("gui.log");
    let probe = tmp.path().join("screen");
    let mut gui = Guard::spawn(
        "securechat-gui",
        registering_gui(&display, port, fingerprint, tmp.path(), &probe)
            .arg("--stdin-actions")
            .stdin(Stdio::piped())
            .stderr(std::fs::File::create(&gui_log).unwrap()),
    );
    let mut actions = gui.child.stdin.take().unwrap();
    let mut act = |line: &str| {
        use std::io::Write;
        writeln!(actions, "{line}").expect("the GUI reads its actions");
        actions.flush().unwrap();
    };

    // The invitation, shown where the user is.
    runtime.block_on(
        lei.wait_for(|e| matches!(e, ClientEvent::Joined { username } if username == GUI_USER)),
    );
    lei.handle.submit(&format!("/invite {GUI_USER}"), ROOM);
    wait_for_screen(&mut gui, &probe, &gui_log, |screen| {
        screen.lines().any(|l| {
            l.starts_with("notice info 李雷 invited you to #garden") && l.contains("/join #garden")
        })
    });
    act(&format!("type /join {ROOM}"));
    runtime.block_on(lei.wait_for(|e| {
        matches!(e, ClientEvent::MemberJoined { room, user } if room == ROOM && user == GUI_USER)
    }));

    // News while the user looks elsewhere: the room, then the direct
    // conversation, each with its unread count.
    lei.handle.send_room(ROOM, "谁来浇水？");
    lei.handle.send_room(ROOM, "Seedlings are in the shed");
    sara.handle.send_direct(GUI_USER, "هل انضممت إلى الحديقة؟");
    let screen = wait_for_screen(&mut gui, &probe, &gui_log, |screen| {
        let list: Vec<&str> = screen
            .lines()
            .filter(|l| l.starts_with("conversation "))
            .collect();
        let room = list.iter().position(|l| l.contains("garden unread=2"));
        let direct = list.iter().position(|l| *l == "conversation سارة unread=1");
        matches!((room, direct), (Some(r), Some(d)) if r < d)
    });
    assert!(
        !screen.contains("row message 李雷"),
        "the room's news is shown in #general:\n{screen}"
    );

    // Open the room: the owner's topic in the header.
    act(&format!("open {ROOM}"));
    wait_for_screen(&mut gui, &probe, &gui_log, |screen| {
        screen
            .lines()
            .any(|l| l.starts_with("title ") && l.contains("garden"))
            && screen
                .lines()
                .any(|l| l.contains("garden unread=0 selected"))
    });
    lei.handle.submit(&format!("/topic {TOPIC}"), ROOM);
    wait_for_screen(&mut gui, &probe, &gui_log, |screen| {
        screen.lines().any(|l| l == format!("topic {TOPIC}"))
    });

    // The GUI's message reaches the member, and not سارة: the GUI's next
    // message (to her) comes after it on the same connection, so had she
    // been sent the room's, it would have come first.
    act(&format!("type {ROOM_MESSAGE}"));
    let heard =
        runtime.block_on(lei.wait_for(|e| matches!(e, ClientEvent::Room(l) if l.from == GUI_USER)));
    let ClientEvent::Room(heard) = heard else {
        unreachable!()
    };
    assert_eq!(
        (heard.room.as_deref(), heard.text.as_str()),
        (Some(ROOM), ROOM_MESSAGE)
    );
    act("type /msg سارة نعم! 🌻");
    runtime.block_on(sara.wait_for(|e| {
        assert!(
            !matches!(e, ClientEvent::Room(l) if l.room.as_deref() == Some(ROOM)),
            "a non-member received the room's message: {e:?}"
        );
        matches!(e, ClientEvent::Direct(l) if l.from == GUI_USER)
    }));
    let screen = wait_for_screen(&mut gui, &probe, &gui_log, |screen| {
        screen.contains("row message Zoë status=") || screen.lines().any(|l| l == "row message Zoë")
    });
    assert!(
        screen.contains("notice info 李雷 set the topic"),
        "the topic change is not in the room:\n{screen}"
    );

    photograph(&display, "rooms.png", "screenshot-rooms.png");

    // Kicked: who did it and why, where the user lands; the room is gone.
    lei.handle
        .submit(&format!("/kick {GUI_USER} weeding time"), ROOM);
    let screen = wait_for_screen(&mut gui, &probe, &gui_log, |screen| {
        screen
            .lines()
            .any(|l| l == "notice info You were removed from #garden by 李雷 (weeding time)")
    });
    assert!(
        !screen
            .lines()
            .any(|l| l.starts_with("conversation") && l.contains("garden")),
        "the room is still listed:\n{screen}"
    );

    let pid = gui.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = gui
        .wait_exit(Duration::from_secs(10))
        .expect("the GUI exits after its goodbye");
    assert!(
        status.success(),
        "GUI exit status {status}; log:\n{}",
        read_log(&gui_log)
    );
    lei.handle.quit();
    sara.handle.quit();
    runtime.block_on(async { drop(server) });
}
