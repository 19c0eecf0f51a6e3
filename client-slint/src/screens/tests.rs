use std::sync::Arc;

use client_core::cause::auth_failure_text;
use client_core::{
    AuthFailure, ClientEvent, CloseCause, ConnectionState, FatalCause, Fingerprint, GoodbyeReason,
    RetryCause, ServerAddress,
};
use tokio::sync::oneshot;

use super::*;

fn started() -> Session {
    let mut session = Session::new();
    session.started("localhost:7878");
    session
}

fn server() -> ServerAddress {
    "localhost:7878".parse().unwrap()
}

#[test]
fn login_switches_to_the_chat_page() {
    let mut session = started();
    assert!(session.busy());
    assert!(session.progress().contains("Connecting to localhost:7878"));
    session.handle_event(&ClientEvent::State(ConnectionState::Connected));
    session.handle_event(&ClientEvent::LoggedIn {
        username: "Zoë".into(),
    });
    assert_eq!(session.page(), Page::Chat);
    assert_eq!(session.error(), "");
}

#[test]
fn a_refused_login_is_shown_in_place() {
    let mut session = started();
    session.handle_event(&ClientEvent::AuthFailed {
        reason: AuthFailure::LoginFailed,
    });
    session.handle_event(&ClientEvent::Closed {
        cause: FatalCause::AuthFailed(AuthFailure::LoginFailed).into(),
    });
    assert_eq!(session.page(), Page::Login);
    assert_eq!(
        session.error(),
        auth_failure_text(AuthFailure::LoginFailed),
        "the refusal, once"
    );
    assert!(!session.busy(), "the form can be used again");
}

#[test]
fn an_unreachable_server_is_shown_in_place() {
    let mut session = started();
    let cause = CloseCause::ConnectionFailed(RetryCause::Unreachable {
        server: server(),
        error: Arc::new(std::io::ErrorKind::ConnectionRefused.into()),
    });
    session.handle_event(&ClientEvent::Closed {
        cause: cause.clone(),
    });
    assert_eq!(session.error(), capitalized(&cause.to_string()));
    assert_eq!(session.page(), Page::Login);
}

#[test]
fn the_trust_question_shows_the_fingerprint_until_answered() {
    let mut session = started();
    let (reply, _answer) = oneshot::channel();
    let fingerprint = Fingerprint([7; 32]);
    session.handle_event(&ClientEvent::TrustQuestion {
        server: server(),
        fingerprint,
        reply,
    });
    let prompt = session.trust_prompt().expect("prompt");
    assert_eq!(prompt.fingerprint, fingerprint.to_string());
    assert_eq!(prompt.server, "localhost:7878");
    session.trust_answered(false);
    assert!(session.trust_prompt().is_none());
    session.handle_event(&ClientEvent::Closed {
        cause: FatalCause::ServerKeyDeclined.into(),
    });
    assert_eq!(session.error(), "Server not trusted: nothing was sent");
}

#[test]
fn a_changed_key_is_a_prominent_warning_and_stops() {
    let mut session = started();
    let (pinned, presented) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
    session.handle_event(&ClientEvent::KeyChanged {
        server: server(),
        pinned,
        presented,
        known_servers: "/tmp/known".into(),
    });
    session.handle_event(&ClientEvent::Closed {
        cause: FatalCause::ServerKeyChanged { pinned, presented }.into(),
    });
    let warning = session.key_warning().expect("a warning");
    assert!(warning.contains("HAS CHANGED"), "{warning}");
    assert!(warning.contains(&pinned.to_string()) && warning.contains(&presented.to_string()));
    assert!(session.error().contains("identity key has changed"));
    assert!(!session.busy());
    session.key_warning_dismissed();
    assert_eq!(session.key_warning(), None);
}

#[test]
fn losing_a_logged_in_session_returns_to_the_login_page_with_the_reason() {
    let mut session = started();
    session.handle_event(&ClientEvent::LoggedIn {
        username: "a".into(),
    });
    let cause = CloseCause::ClosedByServer(GoodbyeReason::Replaced);
    session.handle_event(&ClientEvent::Closed {
        cause: cause.clone(),
    });
    assert_eq!(session.page(), Page::Login);
    assert_eq!(session.error(), format!("Disconnected: {cause}"));
}

#[test]
fn quitting_waits_for_closed_then_exits() {
    let mut session = started();
    session.handle_event(&ClientEvent::LoggedIn {
        username: "a".into(),
    });
    assert!(session.quit_requested(), "a goodbye is under way");
    assert_eq!(
        session.handle_event(&ClientEvent::Closed {
            cause: CloseCause::Left
        }),
        Effect::Exit
    );
    let mut idle = Session::new();
    assert!(!idle.quit_requested(), "nothing to say goodbye to");
}
