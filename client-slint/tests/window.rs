//! The real window on Slint's headless testing backend, with a fake client:
//! what the user sees and what their clicks and keys send.

use std::cell::RefCell;
use std::rc::Rc;

use client_core::{
    AuthRequest, ChatLine, ClientEvent, ClientOptions, ConnectionState, Fingerprint,
    PasswordChangeError,
};
use client_slint::app::{App, Settings};
use client_slint::backend::{ChatBackend, Connector, Deliver};
use client_slint::model::ConversationId;
use client_slint::screen_probe;
use client_slint::ui::{AppState, ChatAdapter, DialogAdapter, LoginAdapter, Page, RowKind};
use i_slint_backend_testing::ElementHandle;
use slint::platform::{Key, WindowEvent};
use slint::{ComponentHandle, Model};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

/// Records what the window asked of the client and hands it events.
#[derive(Default)]
struct Fake {
    calls: RefCell<Vec<String>>,
    options: RefCell<Vec<ClientOptions>>,
    deliver: RefCell<Option<Deliver>>,
}

impl Fake {
    fn send(&self, events: Vec<ClientEvent>) {
        let deliver = self.deliver.borrow();
        assert!((deliver.as_ref().expect("a client was started"))(events));
    }

    /// What the window asked of the client, but the side panel's own
    /// requests (`/who` for a direct conversation's panel, `/names` for the room shown)
    /// and read markers.
    fn calls(&self) -> Vec<String> {
        self.all_calls()
            .into_iter()
            .filter(|c| {
                !c.ends_with(" /names") && !c.ends_with(" /who") && !c.starts_with("mark-read ")
            })
            .collect()
    }

    /// The read markers the window sent, in order.
    fn marks(&self) -> Vec<String> {
        self.all_calls()
            .into_iter()
            .filter(|c| c.starts_with("mark-read "))
            .collect()
    }

    fn all_calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

struct FakeBackend(Rc<Fake>);

impl ChatBackend for FakeBackend {
    fn submit(&self, line: &str, room: &str) {
        self.0
            .calls
            .borrow_mut()
            .push(format!("submit {room} {line}"));
    }
    fn send_direct(&self, to: &str, text: &str) {
        self.0
            .calls
            .borrow_mut()
            .push(format!("direct {to} {text}"));
    }
    fn mark_read(&self, conversation: &ConversationId, up_to_id: u64) {
        self.0
            .calls
            .borrow_mut()
            .push(format!("mark-read {conversation:?} {up_to_id}"));
    }
    fn change_password(&self, current: Zeroizing<String>, new: Zeroizing<String>) {
        self.0
            .calls
            .borrow_mut()
            .push(format!("change-password {} -> {}", *current, *new));
    }
    fn quit(&self) {
        self.0.calls.borrow_mut().push("quit".into());
    }
}

struct FakeConnector(Rc<Fake>);

impl Connector for FakeConnector {
    fn connect(&self, options: ClientOptions, deliver: Deliver) -> Box<dyn ChatBackend> {
        self.0.options.borrow_mut().push(options);
        *self.0.deliver.borrow_mut() = Some(deliver);
        Box::new(FakeBackend(self.0.clone()))
    }
}

fn open(settings: Settings) -> (App, Rc<Fake>) {
    i_slint_backend_testing::init_no_event_loop();
    let fake = Rc::new(Fake::default());
    let app = App::new(Box::new(FakeConnector(fake.clone())), settings).unwrap();
    app.window()
        .window()
        .set_size(slint::LogicalSize::new(1000.0, 680.0));
    app.window().show().unwrap();
    (app, fake)
}

fn element(app: &App, label: &str) -> ElementHandle {
    let found: Vec<_> = ElementHandle::find_by_accessible_label(app.window(), label).collect();
    assert!(!found.is_empty(), "no element labelled {label:?}");
    found.into_iter().next().unwrap()
}

fn has_element(app: &App, label: &str) -> bool {
    ElementHandle::find_by_accessible_label(app.window(), label)
        .next()
        .is_some()
}

fn click(app: &App, label: &str) {
    element(app, label).invoke_accessible_default_action();
}

fn key(
    app: &App,
    event: fn(slint::SharedString) -> WindowEvent,
    key: impl Into<slint::SharedString>,
) {
    app.window().window().dispatch_event(event(key.into()));
}

/// Types into the focused widget, key by key.
fn type_text(app: &App, text: &str) {
    for c in text.chars() {
        key(app, press, c.to_string());
        key(app, release, c.to_string());
    }
}

fn press(text: slint::SharedString) -> WindowEvent {
    WindowEvent::KeyPressed { text }
}

fn release(text: slint::SharedString) -> WindowEvent {
    WindowEvent::KeyReleased { text }
}

fn line(id: u64, from: &str, to: Option<&str>, text: &str, history: bool) -> ChatLine {
    ChatLine {
        id,
        timestamp_ms: 1_700_000_000_000 + id,
        from: from.into(),
        room: to.is_none().then(|| "#general".into()),
        to: to.map(Into::into),
        text: text.into(),
        history,
        own: from == "Zoë",
        client_id: None,
    }
}

/// Fills the form, clicks "Log in" and lets the fake log in.
fn logged_in() -> (App, Rc<Fake>) {
    let (app, fake) = open(Settings::default());
    element(&app, "server").set_accessible_value("127.0.0.1:7000");
    element(&app, "user name").set_accessible_value("Zoë");
    element(&app, "password").set_accessible_value("correct horse");
    click(&app, "Log in");
    fake.send(vec![
        ClientEvent::State(ConnectionState::Connected),
        ClientEvent::LoggedIn {
            username: "Zoë".into(),
        },
        ClientEvent::Online {
            users: vec!["Zoë".into(), "李雷".into()],
        },
    ]);
    (app, fake)
}

#[test]
fn login_form_starts_a_client_with_what_was_typed() {
    let (app, fake) = open(Settings::default());
    assert_eq!(app.window().global::<AppState>().get_page(), Page::Login);
    element(&app, "server").set_accessible_value("127.0.0.1:7000");
    element(&app, "user name").set_accessible_value("Zoë");
    element(&app, "password").set_accessible_value("correct horse");
    click(&app, "Register");
    let options = fake.options.borrow();
    assert_eq!(options.len(), 1);
    assert_eq!(options[0].server.to_string(), "127.0.0.1:7000");
    match &options[0].auth {
        AuthRequest::Register { username, password } => {
            assert_eq!(username, "Zoë");
            assert_eq!(password.as_str(), "correct horse");
        }
        other => panic!("expected a registration, got {other:?}"),
    }
    assert!(app.window().global::<LoginAdapter>().get_busy());
}

#[test]
fn an_incomplete_form_is_refused_in_place() {
    let (app, fake) = open(Settings::default());
    element(&app, "user name").set_accessible_value("Zoë");
    click(&app, "Log in");
    assert!(fake.options.borrow().is_empty());
    assert!(has_element(&app, "Enter a password"));
    element(&app, "server").set_accessible_value("bad address:x");
    click(&app, "Log in");
    assert!(app
        .window()
        .global::<LoginAdapter>()
        .get_error()
        .starts_with("Invalid server address"));
}

#[test]
fn server_errors_show_on_the_login_screen() {
    let (app, fake) = open(Settings::default());
    element(&app, "user name").set_accessible_value("Zoë");
    element(&app, "password").set_accessible_value("nope");
    click(&app, "Log in");
    fake.send(vec![
        ClientEvent::AuthFailed {
            reason: client_core::AuthFailure::LoginFailed,
        },
        ClientEvent::Closed {
            cause: client_core::FatalCause::AuthFailed(client_core::AuthFailure::LoginFailed)
                .into(),
        },
    ]);
    assert!(has_element(&app, "wrong username or password"));
    assert!(!app.window().global::<LoginAdapter>().get_busy());
    // And again, for a server that is not there.
    click(&app, "Log in");
    fake.send(vec![ClientEvent::Closed {
        cause: client_core::RetryCause::Unreachable {
            server: "127.0.0.1:7000".parse().unwrap(),
            error: std::sync::Arc::new(std::io::Error::other("Connection refused")),
        }
        .into(),
    }]);
    assert!(has_element(
        &app,
        "Server unreachable: 127.0.0.1:7000: Connection refused"
    ));
}

#[test]
fn logging_in_shows_history_marked_earlier_then_live_messages() {
    let (app, fake) = logged_in();
    assert_eq!(app.window().global::<AppState>().get_page(), Page::Chat);
    assert_eq!(
        app.window().global::<LoginAdapter>().get_password(),
        "",
        "the password is not kept on screen"
    );
    fake.send(vec![
        ClientEvent::Room(line(1, "李雷", None, "早上好", true)),
        ClientEvent::HistoryDone,
        ClientEvent::Room(line(2, "Zoë", None, "Grüße 👋", false)),
    ]);
    let rows: Vec<_> = app
        .window()
        .global::<ChatAdapter>()
        .get_rows()
        .iter()
        .collect();
    let kinds: Vec<_> = rows.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RowKind::Earlier,
            RowKind::Day,
            RowKind::Message,
            RowKind::Message
        ]
    );
    assert!(rows[2].history && !rows[2].own);
    assert!(!rows[3].history && rows[3].own);
    assert!(has_element(
        &app,
        &format!("李雷 at {}: 早上好", rows[2].time)
    ));
    let users: Vec<_> = app
        .window()
        .global::<ChatAdapter>()
        .get_users()
        .iter()
        .map(|u| (u.name.to_string(), u.is_me))
        .collect();
    assert_eq!(
        users,
        [("Zoë".to_owned(), true), ("李雷".to_owned(), false)]
    );
}

#[test]
fn enter_sends_and_shift_enter_makes_a_new_line() {
    let (app, fake) = logged_in();
    let input = element(&app, "message");
    type_text(&app, "first line");
    key(&app, press, Key::Shift);
    key(&app, press, Key::Return);
    key(&app, release, Key::Return);
    key(&app, release, Key::Shift);
    assert!(fake.calls().is_empty(), "Shift+Enter does not send");
    assert_eq!(input.accessible_value().unwrap(), "first line\n");
    type_text(&app, "x");
    key(&app, press, Key::Return);
    key(&app, release, Key::Return);
    assert_eq!(fake.calls(), ["submit #general first line\nx"]);
    assert_eq!(
        input.accessible_value().unwrap(),
        "",
        "the box is cleared after sending"
    );
}

#[test]
fn direct_messages_get_their_own_conversation_with_an_unread_count() {
    let (app, fake) = logged_in();
    fake.send(vec![
        ClientEvent::HistoryDone,
        ClientEvent::Direct(line(5, "李雷", Some("Zoë"), "私信", false)),
    ]);
    let conversations = app.window().global::<ChatAdapter>().get_conversations();
    let unread: Vec<_> = conversations
        .iter()
        .map(|c| (c.title.to_string(), c.unread))
        .collect();
    assert_eq!(unread, [("general".to_owned(), 0), ("李雷".to_owned(), 1)]);
    click(&app, "李雷 (1 unread)");
    let chat = app.window().global::<ChatAdapter>();
    assert_eq!(chat.get_title(), "李雷");
    assert!(!chat.get_room_open());
    let kinds: Vec<_> = chat.get_rows().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RowKind::Marker, RowKind::Day, RowKind::Message]);
    // Text typed here goes to 李雷.
    element(&app, "message").set_accessible_value("回复");
    click(&app, "Send");
    assert_eq!(fake.calls(), ["direct 李雷 回复"]);
}

#[test]
fn opening_a_conversation_tells_the_server_it_was_read_once() {
    let (app, fake) = logged_in();
    fake.send(vec![
        ClientEvent::HistoryDone,
        ClientEvent::Direct(line(5, "李雷", Some("Zoë"), "私信", false)),
        ClientEvent::Direct(line(6, "李雷", Some("Zoë"), "还有", false)),
    ]);
    assert!(fake.marks().is_empty(), "not shown yet");
    click(&app, "李雷 (2 unread)");
    assert_eq!(fake.marks(), ["mark-read Direct(\"李雷\") 6"]);
    click(&app, "general");
    click(&app, "李雷");
    assert_eq!(fake.marks().len(), 1, "nothing new: no second marker");
}

#[test]
fn clicking_someone_online_opens_a_direct_conversation() {
    let (app, _fake) = logged_in();
    click(&app, "李雷");
    assert_eq!(app.window().global::<ChatAdapter>().get_title(), "李雷");
}

#[test]
fn the_trust_question_shows_the_fingerprint_and_answers_the_client() {
    let (app, fake) = open(Settings::default());
    element(&app, "user name").set_accessible_value("Zoë");
    element(&app, "password").set_accessible_value("pw");
    click(&app, "Log in");
    let (reply, mut answer) = oneshot::channel();
    let fingerprint = Fingerprint([42; 32]);
    fake.send(vec![ClientEvent::TrustQuestion {
        server: "localhost:7878".parse().unwrap(),
        fingerprint,
        reply,
    }]);
    let dialogs = app.window().global::<DialogAdapter>();
    assert!(dialogs.get_trust_visible());
    assert_eq!(
        dialogs.get_trust_fingerprint(),
        fingerprint.to_string().as_str()
    );
    assert!(has_element(&app, "fingerprint"));
    click(&app, "Trust");
    assert_eq!(answer.try_recv(), Ok(true));
    assert!(!dialogs.get_trust_visible());
}

#[test]
fn a_changed_key_is_shown_prominently() {
    let (app, fake) = open(Settings::default());
    element(&app, "user name").set_accessible_value("Zoë");
    element(&app, "password").set_accessible_value("pw");
    click(&app, "Log in");
    fake.send(vec![
        ClientEvent::KeyChanged {
            server: "localhost:7878".parse().unwrap(),
            pinned: Fingerprint([1; 32]),
            presented: Fingerprint([2; 32]),
            known_servers: "/tmp/known_servers".into(),
        },
        ClientEvent::Closed {
            cause: client_core::FatalCause::ServerKeyChanged {
                pinned: Fingerprint([1; 32]),
                presented: Fingerprint([2; 32]),
            }
            .into(),
        },
    ]);
    assert!(has_element(&app, "key changed warning"));
    let warning = app
        .window()
        .global::<DialogAdapter>()
        .get_key_changed_warning();
    assert!(
        warning.contains("SERVER IDENTIFICATION HAS CHANGED!")
            && warning.contains(&Fingerprint([2; 32]).to_string()),
        "{warning}"
    );
    assert_eq!(app.window().global::<AppState>().get_page(), Page::Login);
    click(&app, "Close");
    assert!(!has_element(&app, "key changed warning"));
}

#[test]
fn closing_the_window_says_goodbye_first() {
    let (app, fake) = logged_in();
    app.window()
        .window()
        .dispatch_event(WindowEvent::CloseRequested);
    assert_eq!(fake.calls(), ["quit"]);
    let controller = app.controller();
    assert!(controller.borrow().screens().quitting());
    fake.send(vec![ClientEvent::Closed {
        cause: client_core::CloseCause::Left,
    }]);
    assert!(!controller.borrow().screens().quitting());
}

#[test]
fn quit_typed_in_the_box_leaves_like_the_close_button() {
    let (app, fake) = logged_in();
    element(&app, "message").set_accessible_value("/quit");
    click(&app, "Send");
    assert_eq!(fake.calls(), ["quit"]);
}

#[test]
fn scripted_messages_are_sent_after_the_history() {
    let settings = Settings {
        server: Some("127.0.0.1:7000".into()),
        username: Some("Zoë".into()),
        password: Some(zeroize::Zeroizing::new("pw".into())),
        connect: true,
        send_after_login: vec!["hello from the script".into()],
        ..Settings::default()
    };
    let (_app, fake) = open(settings);
    assert_eq!(fake.options.borrow().len(), 1, "--connect logs in at start");
    fake.send(vec![ClientEvent::LoggedIn {
        username: "Zoë".into(),
    }]);
    assert!(fake.calls().is_empty());
    fake.send(vec![ClientEvent::HistoryDone]);
    assert_eq!(fake.calls(), ["submit #general hello from the script"]);
}

#[test]
fn a_spinner_turns_and_the_buttons_wait_while_logging_in() {
    let (app, fake) = open(Settings::default());
    assert!(!has_element(&app, "logging in"));
    element(&app, "user name").set_accessible_value("Zoë");
    element(&app, "password").set_accessible_value("correct horse");
    click(&app, "Register");
    fake.send(vec![ClientEvent::State(ConnectionState::Connected)]);
    assert!(has_element(&app, "logging in"), "the spinner turns");
    assert!(has_element(&app, "Creating account…"));
    assert_eq!(element(&app, "Log in").accessible_enabled(), Some(false));
    assert_eq!(element(&app, "Register").accessible_enabled(), Some(false));
    assert!(screen_probe::describe(app.window()).contains("login working\n"));
    fake.send(vec![
        ClientEvent::AuthFailed {
            reason: client_core::AuthFailure::NameTaken,
        },
        ClientEvent::Closed {
            cause: client_core::FatalCause::AuthFailed(client_core::AuthFailure::NameTaken).into(),
        },
    ]);
    assert!(!has_element(&app, "logging in"), "stopped with the refusal");
    assert_eq!(element(&app, "Log in").accessible_enabled(), Some(true));
    assert!(!screen_probe::describe(app.window()).contains("login working"));
}

/// Opens the dialog from the chat header and fills it in.
fn password_dialog_filled(current: &str, new: &str, again: &str) -> (App, Rc<Fake>) {
    let (app, fake) = logged_in();
    assert!(!has_element(&app, "current password"));
    click(&app, "Change password");
    assert!(has_element(&app, "current password"));
    assert!(screen_probe::describe(app.window()).contains("dialog change-password open\n"));
    element(&app, "current password").set_accessible_value(current);
    element(&app, "new password").set_accessible_value(new);
    element(&app, "new password again").set_accessible_value(again);
    (app, fake)
}

fn password_fields(app: &App) -> [String; 3] {
    let dialogs = app.window().global::<DialogAdapter>();
    [
        dialogs.get_current_password().into(),
        dialogs.get_new_password().into(),
        dialogs.get_new_password_again().into(),
    ]
}

#[test]
fn changing_the_password_sends_it_waits_and_closes_on_success() {
    let (app, fake) = password_dialog_filled("old password", "new password", "new password");
    click(&app, "Change");
    assert_eq!(
        fake.calls(),
        ["change-password old password -> new password"]
    );
    assert_eq!(
        password_fields(&app),
        ["", "", ""],
        "no password stays in the window"
    );
    assert!(has_element(&app, "changing password"), "the spinner turns");
    assert!(has_element(&app, "Changing…"));
    assert_eq!(element(&app, "Change").accessible_enabled(), Some(false));
    assert_eq!(element(&app, "Cancel").accessible_enabled(), Some(false));
    assert!(screen_probe::describe(app.window()).contains("dialog change-password busy\n"));

    fake.send(vec![ClientEvent::PasswordChanged]);
    assert!(!has_element(&app, "current password"), "the dialog closed");
    assert!(!screen_probe::describe(app.window()).contains("dialog"));
    let rows = app.window().global::<ChatAdapter>().get_rows();
    assert!(
        rows.iter()
            .any(|r| r.kind == RowKind::Info && r.text.starts_with("Password changed")),
        "the notice is in the timeline"
    );
}

#[test]
fn a_failed_change_keeps_the_dialog_open_with_the_reason() {
    let (app, fake) = password_dialog_filled("wrong one", "new password", "new password");
    click(&app, "Change");
    fake.send(vec![ClientEvent::PasswordChangeFailed {
        reason: PasswordChangeError::WrongPassword,
    }]);
    assert!(has_element(&app, "The current password is wrong"));
    assert!(!has_element(&app, "changing password"));
    assert_eq!(element(&app, "Change").accessible_enabled(), Some(true));
    assert_eq!(password_fields(&app), ["", "", ""]);
    assert!(screen_probe::describe(app.window())
        .contains("dialog change-password error The current password is wrong\n"));
}

#[test]
fn different_new_passwords_are_refused_in_the_dialog_without_sending() {
    let (app, fake) = password_dialog_filled("old password", "new password", "new passw0rd");
    click(&app, "Change");
    assert!(fake.calls().is_empty());
    assert!(has_element(&app, "The new passwords do not match"));
    assert_eq!(
        password_fields(&app),
        ["old password", "", ""],
        "the new password is typed twice again"
    );
    // Too short: refused the same way.
    element(&app, "new password").set_accessible_value("short");
    element(&app, "new password again").set_accessible_value("short");
    click(&app, "Change");
    assert!(fake.calls().is_empty());
    assert!(has_element(
        &app,
        "The new password must have at least 8 characters"
    ));
}

#[test]
fn cancel_closes_the_password_dialog_and_forgets_what_was_typed() {
    let (app, fake) = password_dialog_filled("old password", "new password", "new");
    click(&app, "Cancel");
    assert!(fake.calls().is_empty());
    assert!(!has_element(&app, "current password"));
    assert_eq!(password_fields(&app), ["", "", ""]);
    click(&app, "Change password");
    assert!(
        !has_element(&app, "The new passwords do not match"),
        "opened afresh"
    );
}

#[test]
fn settings_never_show_a_password_when_printed() {
    let settings = Settings {
        password: Some(zeroize::Zeroizing::new("hunter2 secret".into())),
        change_password_after_login: Some((
            zeroize::Zeroizing::new("old secret one".into()),
            zeroize::Zeroizing::new("new secret two".into()),
        )),
        ..Settings::default()
    };
    let printed = format!("{settings:?}");
    for secret in ["hunter2 secret", "old secret one", "new secret two"] {
        assert!(!printed.contains(secret), "{printed}");
    }
}

#[test]
fn the_side_panel_lists_the_open_rooms_members_and_follows_presence() {
    let (app, fake) = logged_in();
    fake.send(vec![ClientEvent::HistoryDone]);
    // Before the members come: everyone online; the room's are asked once.
    assert_eq!(
        app.window().global::<ChatAdapter>().get_users_heading(),
        "ONLINE — 2"
    );
    let asked = |fake: &Fake| {
        fake.all_calls()
            .iter()
            .filter(|c| c.as_str() == "submit #general /names")
            .count()
    };
    assert_eq!(asked(&fake), 1);
    let who = |fake: &Fake| {
        fake.all_calls()
            .iter()
            .filter(|c| c.ends_with(" /who"))
            .count()
    };
    assert_eq!(
        who(&fake),
        0,
        "who is online: not asked while a room is shown"
    );
    let member = |name: &str, role: client_core::RoomRole, online: bool| client_core::MemberView {
        name: name.into(),
        role,
        online,
    };
    fake.send(vec![ClientEvent::Members {
        room: "#general".into(),
        members: vec![
            member("Zoë", client_core::RoomRole::Member, true),
            member("Ann", client_core::RoomRole::Owner, false),
            member("李雷", client_core::RoomRole::Moderator, true),
        ],
        total: 3,
    }]);
    let panel = |app: &App| -> Vec<(String, String, bool)> {
        app.window()
            .global::<ChatAdapter>()
            .get_users()
            .iter()
            .map(|u| (u.name.to_string(), u.role.to_string(), u.online))
            .collect()
    };
    assert_eq!(
        app.window().global::<ChatAdapter>().get_users_heading(),
        "MEMBERS — 3"
    );
    assert_eq!(
        panel(&app),
        [
            ("Ann".to_owned(), "owner".to_owned(), false),
            ("李雷".to_owned(), "moderator".to_owned(), true),
            ("Zoë".to_owned(), String::new(), true),
        ],
        "owner, moderators, the rest; online first"
    );
    // Presence and membership move it without asking again.
    fake.send(vec![
        ClientEvent::Joined {
            username: "Ann".into(),
        },
        ClientEvent::MemberJoined {
            room: "#general".into(),
            user: "Bob".into(),
        },
    ]);
    assert_eq!(panel(&app)[0], ("Ann".to_owned(), "owner".to_owned(), true));
    assert!(panel(&app).contains(&("Bob".to_owned(), String::new(), true)));
    assert_eq!(asked(&fake), 1, "kept current, not fetched again");
    // A direct conversation (clicking a member opens one) shows who is
    // online instead, asked for then: once per login.
    click(&app, "李雷 (moderator)");
    assert!(app
        .window()
        .global::<ChatAdapter>()
        .get_users_heading()
        .starts_with("ONLINE"));
    assert_eq!(who(&fake), 0, "the login's list came already");
    // Opened again, the room's members are asked again (a large room is
    // not told presence); the last list shows until the answer comes.
    click(&app, "general");
    assert_eq!(asked(&fake), 2, "asked again on opening");
    assert_eq!(panel(&app)[0], ("Ann".to_owned(), "owner".to_owned(), true));
    fake.send(vec![ClientEvent::Members {
        room: "#general".into(),
        members: vec![member("Ann", client_core::RoomRole::Owner, false)],
        total: 1,
    }]);
    assert_eq!(panel(&app), [("Ann".to_owned(), "owner".to_owned(), false)]);
    fake.send(vec![ClientEvent::HistoryDone]);
    assert_eq!(asked(&fake), 2, "once per opening");
}

/// Who is online (all of the server's users, 39 pages at 19,000) is asked
/// only when a direct conversation's panel shows it: once per login, and
/// again after a reconnect.
#[test]
fn who_is_online_is_asked_when_a_direct_conversation_is_shown_once_per_login() {
    let (app, fake) = open(Settings::default());
    element(&app, "server").set_accessible_value("127.0.0.1:7000");
    element(&app, "user name").set_accessible_value("Zoë");
    element(&app, "password").set_accessible_value("correct horse");
    click(&app, "Log in");
    let who = |fake: &Fake| {
        fake.all_calls()
            .iter()
            .filter(|c| c.ends_with(" /who"))
            .count()
    };
    let members = || ClientEvent::Members {
        room: "#general".into(),
        members: vec![client_core::MemberView {
            name: "李雷".into(),
            role: client_core::RoomRole::Moderator,
            online: true,
        }],
        total: 1,
    };
    fake.send(vec![
        ClientEvent::State(ConnectionState::Connected),
        ClientEvent::LoggedIn {
            username: "Zoë".into(),
        },
        ClientEvent::HistoryDone,
        members(),
    ]);
    assert_eq!(who(&fake), 0, "a room shows its members: nobody asks");
    click(&app, "李雷 (moderator)");
    assert_eq!(who(&fake), 1, "the direct conversation's panel asks");
    fake.send(vec![ClientEvent::HistoryDone]);
    assert_eq!(who(&fake), 1, "asked once, until the answer");
    fake.send(vec![ClientEvent::Online {
        users: vec!["Zoë".into(), "李雷".into()],
    }]);
    assert_eq!(
        app.window().global::<ChatAdapter>().get_users_heading(),
        "ONLINE — 2"
    );
    click(&app, "general");
    fake.send(vec![members()]);
    click(&app, "李雷 (moderator)");
    assert_eq!(who(&fake), 1, "not again in the same login");

    // After a reconnect the list is asked again.
    fake.send(vec![
        ClientEvent::State(ConnectionState::Reconnecting {
            in_secs: 1,
            attempt: 1,
        }),
        ClientEvent::State(ConnectionState::Connected),
        ClientEvent::HistoryDone,
    ]);
    assert_eq!(who(&fake), 2, "asked again after the reconnect");
}

#[test]
fn moderation_from_the_member_list_is_offered_only_to_those_who_may() {
    let (app, fake) = logged_in();
    fake.send(vec![ClientEvent::HistoryDone]);
    let member = |name: &str, role: client_core::RoomRole| client_core::MemberView {
        name: name.into(),
        role,
        online: true,
    };
    let members = |me: client_core::RoomRole| ClientEvent::Members {
        room: "#general".into(),
        members: vec![
            member("Zoë", me),
            member("Mo", client_core::RoomRole::Moderator),
            member("Bob", client_core::RoomRole::Member),
        ],
        total: 3,
    };
    // A plain member: no actions on anyone.
    fake.send(vec![members(client_core::RoomRole::Member)]);
    assert!(!has_element(&app, "Actions for Bob"));
    assert!(!has_element(&app, "Actions for Mo"));
    // A moderator: acts on members, not on another moderator.
    fake.send(vec![members(client_core::RoomRole::Moderator)]);
    assert!(!has_element(&app, "Actions for Mo"));
    click(&app, "Actions for Bob");
    assert!(
        !has_element(&app, "Make moderator Bob"),
        "appointing is the owner's"
    );
    click(&app, "Kick Bob");
    assert_eq!(fake.calls(), ["submit #general /kick Bob"]);
    // The owner: appoints and removes moderators too.
    fake.send(vec![members(client_core::RoomRole::Owner)]);
    click(&app, "Actions for Mo");
    click(&app, "Remove moderator Mo");
    click(&app, "Actions for Bob");
    click(&app, "Make moderator Bob");
    assert_eq!(
        fake.calls(),
        [
            "submit #general /kick Bob",
            "submit #general /deop Mo",
            "submit #general /op Bob"
        ]
    );
}

#[test]
fn rooms_are_browsed_joined_created_and_invitations_accepted() {
    let (app, fake) = logged_in();
    fake.send(vec![
        ClientEvent::HistoryDone,
        ClientEvent::Invited {
            room: "#den".into(),
            by: "Ann".into(),
            topic: String::new(),
        },
    ]);
    click(&app, "Browse rooms");
    assert_eq!(fake.calls(), ["submit #general /list"]);
    fake.send(vec![ClientEvent::RoomList {
        rooms: vec![
            client_core::RoomListing {
                name: "#general".into(),
                topic: String::new(),
                members: 3,
            },
            client_core::RoomListing {
                name: "#rust".into(),
                topic: "crabs".into(),
                members: 7,
            },
        ],
    }]);
    // A room the user is in is not offered again.
    assert!(!has_element(&app, "Join #general"));
    click(&app, "Join #rust");
    click(&app, "Accept #den");
    element(&app, "new room name").set_accessible_value("garden");
    click(&app, "Create room");
    assert_eq!(
        fake.calls(),
        [
            "submit #general /list",
            "submit #general /join #rust",
            "submit #general /join #den",
            "submit #general /join #garden"
        ]
    );
    // Joined: the invitation is gone; closing shows the members again.
    fake.send(vec![ClientEvent::RoomJoined(client_core::RoomView {
        name: "#den".into(),
        topic: String::new(),
        role: client_core::RoomRole::Member,
        members: 2,
        invite_only: true,
    })]);
    assert!(!has_element(&app, "Accept #den"));
    click(&app, "Close");
    assert!(!app.window().global::<ChatAdapter>().get_browsing());
}

#[test]
fn the_devices_page_lists_them_and_logs_another_one_out() {
    let (app, fake) = logged_in();
    fake.send(vec![ClientEvent::HistoryDone]);
    click(&app, "Devices");
    assert_eq!(fake.calls(), ["submit #general /devices"]);
    let device = |id: u64, name: &str, online: bool, current: bool| client_core::DeviceView {
        id,
        name: name.into(),
        last_seen_ms: 1_700_000_000_000,
        address: "127.0.0.1".into(),
        online,
        current,
    };
    fake.send(vec![ClientEvent::Devices {
        devices: vec![
            device(0xab, "old phone", false, false),
            device(0x01, "laptop", true, true),
        ],
    }]);
    let names: Vec<String> = app
        .window()
        .global::<ChatAdapter>()
        .get_devices()
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(names, ["laptop", "old phone"], "this device first");
    assert!(!has_element(&app, "Log out laptop"), "not this one");
    click(&app, "Log out old phone");
    assert_eq!(
        fake.calls(),
        [
            "submit #general /devices",
            "submit #general /logout-device 00000000000000ab",
            "submit #general /devices"
        ]
    );
    click(&app, "Close devices");
    assert!(!app.window().global::<ChatAdapter>().get_devices_open());
}

#[test]
fn scrolling_to_the_top_asks_for_older_messages_once_until_the_beginning() {
    let (app, fake) = logged_in();
    fake.send(vec![ClientEvent::HistoryDone]);
    let chat = app.window().global::<ChatAdapter>();
    chat.invoke_load_older();
    chat.invoke_load_older();
    assert_eq!(
        fake.calls(),
        ["submit #general /history 50"],
        "one request on its way at a time"
    );
    fake.send(vec![ClientEvent::HistoryPage {
        conversation: client_core::ConversationRef::Room("#general".into()),
        lines: vec![line(3, "李雷", None, "older", true)],
        complete: false,
    }]);
    chat.invoke_load_older();
    fake.send(vec![ClientEvent::HistoryPage {
        conversation: client_core::ConversationRef::Room("#general".into()),
        lines: vec![],
        complete: true,
    }]);
    chat.invoke_load_older();
    assert_eq!(
        fake.calls(),
        ["submit #general /history 50", "submit #general /history 50"],
        "nothing asked once the beginning is shown"
    );
}

#[test]
fn scrolling_to_the_top_of_a_direct_conversation_pages_it_until_the_beginning() {
    let (app, fake) = logged_in();
    fake.send(vec![
        ClientEvent::HistoryDone,
        ClientEvent::Direct(line(5, "李雷", Some("Zoë"), "私信", true)),
    ]);
    let chat = app.window().global::<ChatAdapter>();
    chat.invoke_select_conversation(1);
    assert_eq!(chat.get_title(), "李雷");
    chat.invoke_load_older();
    chat.invoke_load_older();
    assert_eq!(
        fake.calls(),
        ["submit #general /history 李雷 50"],
        "this conversation's page, one request on its way at a time"
    );
    let dm = || client_core::ConversationRef::Direct("李雷".into());
    fake.send(vec![ClientEvent::HistoryPage {
        conversation: dm(),
        lines: vec![
            line(2, "Zoë", Some("李雷"), "older", true),
            line(3, "李雷", Some("Zoë"), "older still", true),
        ],
        complete: false,
    }]);
    let messages = |chat: &ChatAdapter| {
        chat.get_rows()
            .iter()
            .filter(|r| r.kind == RowKind::Message)
            .count()
    };
    assert_eq!(messages(&chat), 3, "the page is shown above what was there");
    chat.invoke_load_older();
    fake.send(vec![ClientEvent::HistoryPage {
        conversation: dm(),
        lines: vec![],
        complete: true,
    }]);
    assert!(
        screen_probe::describe(app.window()).contains("notice info Beginning of the conversation"),
        "{}",
        screen_probe::describe(app.window())
    );
    chat.invoke_load_older();
    assert_eq!(
        fake.calls(),
        [
            "submit #general /history 李雷 50",
            "submit #general /history 李雷 50"
        ],
        "nothing asked once the beginning is shown"
    );
    // The room keeps its own paging: its first page is still to come.
    click(&app, "general");
    chat.invoke_load_older();
    assert_eq!(fake.calls().last().unwrap(), "submit #general /history 50");
}

#[test]
fn stdin_actions_type_and_open_conversations_as_the_user_would() {
    use client_slint::scripted_input::perform;
    let (app, fake) = logged_in();
    fake.send(vec![
        ClientEvent::HistoryDone,
        ClientEvent::Direct(line(5, "李雷", Some("Zoë"), "私信", false)),
    ]);
    perform(app.window(), "type /join #den").unwrap();
    perform(app.window(), "open 李雷").unwrap();
    let chat = app.window().global::<ChatAdapter>();
    assert_eq!(chat.get_title(), "李雷");
    perform(app.window(), "type 回复\n").unwrap();
    perform(app.window(), "open #general").unwrap();
    perform(app.window(), "type back in the room").unwrap();
    assert_eq!(
        fake.calls(),
        [
            "submit #general /join #den",
            "direct 李雷 回复",
            "submit #general back in the room"
        ]
    );
    let probe = screen_probe::describe(app.window());
    assert!(probe.contains("\ntitle "), "{probe}");
    assert!(perform(app.window(), "open nobody").is_err());
    assert!(perform(app.window(), "dance").is_err());
}
