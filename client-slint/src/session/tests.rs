use client_core::{AuthFailure, ClientEvent, ConnectionState, Fingerprint, ServerAddress};
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
        message: "wrong username or password".into(),
    });
    session.handle_event(&ClientEvent::Closed {
        reason: "wrong username or password".into(),
    });
    assert_eq!(session.page(), Page::Login);
    assert_eq!(session.error(), "wrong username or password");
    assert!(!session.busy(), "the form can be used again");
}

#[test]
fn an_unreachable_server_is_shown_in_place() {
    let mut session = started();
    session.handle_event(&ClientEvent::Closed {
        reason: "server unreachable: localhost:7878: Connection refused".into(),
    });
    assert_eq!(
        session.error(),
        "Server unreachable: localhost:7878: Connection refused"
    );
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
        reason: "not trusted".into(),
    });
    assert_eq!(session.error(), "Server not trusted: nothing was sent");
}

#[test]
fn a_changed_key_is_a_prominent_warning_and_stops() {
    let mut session = started();
    session.handle_event(&ClientEvent::KeyChanged {
        server: server(),
        pinned: Fingerprint([1; 32]),
        presented: Fingerprint([2; 32]),
        known_servers: "/tmp/known".into(),
        warning: "WARNING: SERVER IDENTIFICATION HAS CHANGED!".into(),
    });
    session.handle_event(&ClientEvent::Closed {
        reason: "the server's key has CHANGED; refused".into(),
    });
    assert_eq!(
        session.key_warning(),
        Some("WARNING: SERVER IDENTIFICATION HAS CHANGED!")
    );
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
    session.handle_event(&ClientEvent::Closed {
        reason: "you logged in from somewhere else".into(),
    });
    assert_eq!(session.page(), Page::Login);
    assert_eq!(
        session.error(),
        "Disconnected: you logged in from somewhere else"
    );
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
            reason: "you left".into()
        }),
        Effect::Exit
    );
    let mut idle = Session::new();
    assert!(!idle.quit_requested(), "nothing to say goodbye to");
}
