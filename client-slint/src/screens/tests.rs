use std::sync::Arc;

use client_core::cause::auth_failure_text;
use client_core::{
    AuthFailure, ClientEvent, CloseCause, ConnectionState, FatalCause, Fingerprint, GoodbyeReason,
    RetryCause, ServerAddress,
};
use tokio::sync::oneshot;

use super::*;

fn started() -> Screens {
    let mut screens = Screens::new();
    screens.started("localhost:7878", false);
    screens
}

fn server() -> ServerAddress {
    "localhost:7878".parse().unwrap()
}

#[test]
fn login_switches_to_the_chat_page() {
    let mut screens = started();
    assert!(screens.busy());
    assert!(screens.progress().contains("Connecting to localhost:7878"));
    screens.handle_event(&ClientEvent::State(ConnectionState::Connected));
    screens.handle_event(&ClientEvent::LoggedIn {
        username: "Zoë".into(),
    });
    assert_eq!(screens.page(), Page::Chat);
    assert_eq!(screens.error(), "");
}

#[test]
fn the_spinner_turns_from_the_click_until_logged_in() {
    let mut screens = Screens::new();
    assert!(!screens.logging_in());
    screens.started("localhost:7878", false);
    assert!(screens.logging_in());
    screens.handle_event(&ClientEvent::State(ConnectionState::Connected));
    assert_eq!(screens.progress(), "Logging in…");
    assert!(
        screens.logging_in(),
        "Argon2id and the server are still to come"
    );
    screens.handle_event(&ClientEvent::LoggedIn {
        username: "Zoë".into(),
    });
    assert!(!screens.logging_in());
}

#[test]
fn registering_says_so_while_the_account_is_created() {
    let mut screens = Screens::new();
    screens.started("localhost:7878", true);
    screens.handle_event(&ClientEvent::State(ConnectionState::Connected));
    assert_eq!(screens.progress(), "Creating account…");
    assert!(screens.logging_in());
}

#[test]
fn the_spinner_stops_when_the_login_is_refused() {
    let mut screens = started();
    screens.handle_event(&ClientEvent::AuthFailed {
        reason: AuthFailure::LoginFailed,
    });
    assert!(!screens.logging_in(), "stopped before Closed arrives");
    screens.handle_event(&ClientEvent::Closed {
        cause: FatalCause::AuthFailed(AuthFailure::LoginFailed).into(),
    });
    assert!(!screens.logging_in());
}

#[test]
fn the_spinner_stops_while_the_fingerprint_question_waits() {
    let mut screens = started();
    let (reply, _answer) = oneshot::channel();
    screens.handle_event(&ClientEvent::TrustQuestion {
        server: server(),
        fingerprint: Fingerprint([7; 32]),
        reply,
    });
    assert!(!screens.logging_in(), "waiting for the user, not for work");
    screens.trust_answered(true);
    assert!(screens.logging_in());
    assert_eq!(screens.progress(), "Connecting…");
}

#[test]
fn a_refused_login_is_shown_in_place() {
    let mut screens = started();
    screens.handle_event(&ClientEvent::AuthFailed {
        reason: AuthFailure::LoginFailed,
    });
    screens.handle_event(&ClientEvent::Closed {
        cause: FatalCause::AuthFailed(AuthFailure::LoginFailed).into(),
    });
    assert_eq!(screens.page(), Page::Login);
    assert_eq!(
        screens.error(),
        auth_failure_text(AuthFailure::LoginFailed),
        "the refusal, once"
    );
    assert!(!screens.busy(), "the form can be used again");
}

#[test]
fn an_unreachable_server_is_shown_in_place() {
    let mut screens = started();
    let cause = CloseCause::ConnectionFailed(RetryCause::Unreachable {
        server: server(),
        error: Arc::new(std::io::ErrorKind::ConnectionRefused.into()),
    });
    screens.handle_event(&ClientEvent::Closed {
        cause: cause.clone(),
    });
    assert_eq!(screens.error(), capitalized(&cause.to_string()));
    assert_eq!(screens.page(), Page::Login);
}

#[test]
fn the_trust_question_shows_the_fingerprint_until_answered() {
    let mut screens = started();
    let (reply, _answer) = oneshot::channel();
    let fingerprint = Fingerprint([7; 32]);
    screens.handle_event(&ClientEvent::TrustQuestion {
        server: server(),
        fingerprint,
        reply,
    });
    let prompt = screens.trust_prompt().expect("prompt");
    assert_eq!(prompt.fingerprint, fingerprint.to_string());
    assert_eq!(prompt.server, "localhost:7878");
    screens.trust_answered(false);
    assert!(screens.trust_prompt().is_none());
    screens.handle_event(&ClientEvent::Closed {
        cause: FatalCause::ServerKeyDeclined.into(),
    });
    assert_eq!(screens.error(), "Server not trusted: nothing was sent");
}

#[test]
fn a_changed_key_is_a_prominent_warning_and_stops() {
    let mut screens = started();
    let (pinned, presented) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
    screens.handle_event(&ClientEvent::KeyChanged {
        server: server(),
        pinned,
        presented,
        known_servers: "/tmp/known".into(),
    });
    screens.handle_event(&ClientEvent::Closed {
        cause: FatalCause::ServerKeyChanged { pinned, presented }.into(),
    });
    let warning = screens.key_warning().expect("a warning");
    assert!(warning.contains("HAS CHANGED"), "{warning}");
    assert!(warning.contains(&pinned.to_string()) && warning.contains(&presented.to_string()));
    assert!(screens.error().contains("identity key has changed"));
    assert!(!screens.busy());
    screens.key_warning_dismissed();
    assert_eq!(screens.key_warning(), None);
}

#[test]
fn losing_a_logged_in_session_returns_to_the_login_page_with_the_reason() {
    let mut screens = started();
    screens.handle_event(&ClientEvent::LoggedIn {
        username: "a".into(),
    });
    let cause = CloseCause::ClosedByServer(GoodbyeReason::Replaced);
    screens.handle_event(&ClientEvent::Closed {
        cause: cause.clone(),
    });
    assert_eq!(screens.page(), Page::Login);
    assert_eq!(screens.error(), format!("Disconnected: {cause}"));
}

#[test]
fn quitting_waits_for_closed_then_exits() {
    let mut screens = started();
    screens.handle_event(&ClientEvent::LoggedIn {
        username: "a".into(),
    });
    assert!(screens.quit_requested(), "a goodbye is under way");
    assert_eq!(
        screens.handle_event(&ClientEvent::Closed {
            cause: CloseCause::Left
        }),
        Effect::Exit
    );
    let mut idle = Screens::new();
    assert!(!idle.quit_requested(), "nothing to say goodbye to");
}
