//! The chat scenarios, each on its own fresh server over the given
//! transport. `tests/chat.rs` runs them over plain TCP and `tests/tls.rs`
//! over TLS through [`crate::chat_suite!`].
//!
//! "Nothing else arrived" is proven without sleeping: a client's `sync()`
//! (Ping, then the Pong must come next) shows the server sent it nothing
//! else in reply; a marker message sent after an action shows a third
//! party got nothing from that action, since one sender's messages are
//! handled in order.

use proto_core::message::{
    AuthFailure, ClientMessage, Conversation, ErrorCode, GoodbyeReason, LeaveReason, ResumeToken,
};

use crate::test_server::{TestServer, Transport};
use crate::values::{text, PASSWORD};

/// A room message reaches every other logged-in client, with the sender's
/// registered name, and never the sender itself; ids increase.
pub async fn broadcast_reaches_everyone_but_the_sender(transport: Transport) {
    let server = TestServer::start(transport).await;
    let mut c = server.group(&["Alice", "Bob", "Carol", "Dave"]).await;

    c[0].say("hello, everyone").await;
    let mut first_ids = Vec::new();
    for receiver in &mut c[1..] {
        let (id, timestamp_ms) = receiver
            .expect_room_message("Alice", "hello, everyone")
            .await;
        assert!(timestamp_ms > 0, "a room message carries a timestamp");
        first_ids.push(id);
    }
    assert!(
        first_ids.windows(2).all(|w| w[0] == w[1]),
        "every receiver sees the same message id: {first_ids:?}"
    );
    c[0].sync().await;

    c[2].say("hi Alice").await;
    for (i, receiver) in c.iter_mut().enumerate() {
        if i == 2 {
            continue;
        }
        let (id, _) = receiver.expect_room_message("Carol", "hi Alice").await;
        assert!(id > first_ids[0], "message ids increase");
    }
    c[2].sync().await;
}

/// A direct message reaches only its target: not a third party, not back
/// to the sender.
pub async fn direct_message_reaches_only_its_target(transport: Transport) {
    let server = TestServer::start(transport).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;

    c[0].dm("Bob", "just between us").await;
    c[0].say("marker after the DM").await;
    c[1].expect_direct_message("Alice", "Bob", "just between us")
        .await;
    c[1].expect_room_message("Alice", "marker after the DM")
        .await;
    c[2].expect_room_message("Alice", "marker after the DM")
        .await;
    c[0].sync().await;

    c[1].dm("Alice", "got it").await;
    c[0].expect_direct_message("Bob", "Alice", "got it").await;
    c[1].sync().await;
}

/// A direct message to a name nobody registered is an `UnknownRecipient`
/// error to the sender and reaches nobody.
pub async fn direct_message_to_an_unknown_user_is_refused(transport: Transport) {
    let server = TestServer::start(transport).await;
    let mut c = server.group(&["Alice", "Bob"]).await;

    c[0].dm("Nobody", "hello?").await;
    c[0].expect_error(ErrorCode::UnknownRecipient).await;
    c[0].say("marker").await;
    c[1].expect_room_message("Alice", "marker").await;
    c[0].sync().await;
}

/// Logging in announces the newcomer to the others (in a presence batch
/// to the rooms it is in, itself included); `WhoIsOnline` lists everyone.
pub async fn joins_are_announced_and_who_is_online_lists_everyone(transport: Transport) {
    let server = TestServer::start(transport).await;
    let mut alice = server.connect("Alice").await;
    let info = alice.register("Alice", PASSWORD).await;
    assert_eq!(info.username.as_str(), "Alice");
    assert!(info.token_lifetime_secs > 0);
    alice.expect_user_joined("Alice").await;
    assert_eq!(alice.who_is_online().await, names(&["Alice"]));

    let mut bob = server.connect("Bob").await;
    bob.register("Bob", PASSWORD).await;
    assert_eq!(bob.who_is_online().await, names(&["Alice", "Bob"]));
    alice.expect_user_joined("Bob").await;

    let mut carol = server.connect("Carol").await;
    carol.register("Carol", PASSWORD).await;
    assert_eq!(
        carol.who_is_online().await,
        names(&["Alice", "Bob", "Carol"])
    );
    alice.expect_user_joined("Carol").await;
    bob.expect_user_joined("Carol").await;

    assert_eq!(
        alice.who_is_online().await,
        names(&["Alice", "Bob", "Carol"])
    );
    bob.goodbye().await;
    alice.expect_user_left("Bob", LeaveReason::Exit).await;
    carol.expect_user_left("Bob", LeaveReason::Exit).await;
    assert_eq!(carol.who_is_online().await, names(&["Alice", "Carol"]));
}

/// `#exit`: the client's Goodbye is answered with Goodbye{ClientRequest}
/// and the others see UserLeft{Exit}.
pub async fn exit_is_announced_to_the_others_as_exit(transport: Transport) {
    let server = TestServer::start(transport).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;
    let bob = c.remove(1);
    bob.goodbye().await;
    for other in &mut c {
        other.expect_user_left("Bob", LeaveReason::Exit).await;
    }
    c[0].say("still here").await;
    c[1].expect_room_message("Alice", "still here").await;
}

/// A connection that ends without a goodbye is announced as Dropped.
pub async fn a_dropped_connection_is_announced_as_dropped(transport: Transport) {
    let server = TestServer::start(transport).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;
    c.remove(1).drop_connection();
    for other in &mut c {
        other.expect_user_left("Bob", LeaveReason::Dropped).await;
    }
    c[1].say("anyone?").await;
    c[0].expect_room_message("Carol", "anyone?").await;
}

/// Shutdown: every client gets Goodbye{ServerShutdown} as its next message
/// (no UserLeft storm first), the connections close, `shutdown` returns
/// within a few seconds and the port stops accepting sessions.
pub async fn server_shutdown_says_goodbye_to_everyone(transport: Transport) {
    let mut server = TestServer::start(transport).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;
    let endpoint = server.endpoint();
    let clients = async {
        for client in &mut c {
            client.expect_goodbye(GoodbyeReason::ServerShutdown).await;
        }
    };
    tokio::join!(server.shutdown(), clients);
    assert!(
        crate::TestClient::try_connect(&endpoint, "late")
            .await
            .is_err(),
        "a server that has shut down still completed a handshake"
    );
}

/// History is replayed at login: room first, then direct conversations,
/// each oldest first.
pub async fn history_is_replayed_after_reconnect(transport: Transport) {
    let server = TestServer::start(transport).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;
    c[0].say("one").await;
    c[1].expect_room_message("Alice", "one").await;
    c[2].expect_room_message("Alice", "one").await;
    c[1].say("two").await;
    c[0].expect_room_message("Bob", "two").await;
    c[2].expect_room_message("Bob", "two").await;
    c[0].dm("Carol", "psst").await;
    c[2].expect_direct_message("Alice", "Carol", "psst").await;
    c[2].dm("Alice", "what?").await;
    c[0].expect_direct_message("Carol", "Alice", "what?").await;
    c[0].dm("Bob", "not for Carol").await;
    c[1].expect_direct_message("Alice", "Bob", "not for Carol")
        .await;

    c.remove(2).goodbye().await;
    for other in &mut c {
        other.expect_user_left("Carol", LeaveReason::Exit).await;
    }
    let mut carol = server.connect("Carol again").await;
    let info = carol.login("Carol", PASSWORD).await;
    for other in &mut c {
        other.expect_user_joined("Carol").await;
    }

    let seen: Vec<(Conversation, String, String)> = info
        .history
        .iter()
        .map(|e| {
            (
                e.conversation.clone(),
                e.from.as_str().to_owned(),
                e.text.as_str().to_owned(),
            )
        })
        .collect();
    let alice = Conversation::Direct {
        peer: crate::username("Alice"),
    };
    let general = Conversation::Room {
        room: crate::room("#general"),
    };
    assert_eq!(
        seen,
        vec![
            (general.clone(), "Alice".into(), "one".into()),
            (general, "Bob".into(), "two".into()),
            (alice.clone(), "Alice".into(), "psst".into()),
            (alice, "Carol".into(), "what?".into()),
        ],
        "Carol's replayed history: the room, then her conversation with Alice, oldest first"
    );
    assert!(
        info.history[..2].windows(2).all(|w| w[0].id < w[1].id)
            && info.history[2..].windows(2).all(|w| w[0].id < w[1].id),
        "each conversation's ids increase (oldest first)"
    );
}

/// A second login of an online user takes over: the old connection gets
/// Goodbye{Replaced} and closes, the others see no leave or join, and
/// messages now reach the new connection.
pub async fn a_second_login_replaces_the_first(transport: Transport) {
    let server = TestServer::start(transport).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    let mut alice2 = server.connect("Alice (second)").await;
    let info = alice2.login("alice", PASSWORD).await;
    assert_eq!(
        info.username.as_str(),
        "Alice",
        "AuthOk names the registered form"
    );
    assert_eq!(alice2.who_is_online().await, names(&["Alice", "Bob"]));
    c[0].expect_goodbye(GoodbyeReason::Replaced).await;

    alice2.say("I moved").await;
    c[1].expect_room_message("Alice", "I moved").await;
    assert!(
        c[1].presence_of("Alice").iter().all(Option::is_none),
        "a replaced device is not a leave"
    );
    c[1].dm("Alice", "welcome back").await;
    alice2
        .expect_direct_message("Bob", "Alice", "welcome back")
        .await;
}

/// A resume token logs in once, is replaced by a new one each time, takes
/// over an online session like a login, and dies with the session's
/// Goodbye.
pub async fn resume_token_works_once_is_rotated_and_is_revoked_by_goodbye(transport: Transport) {
    let server = TestServer::start(transport).await;
    let mut alice = server.connect("Alice").await;
    let first = alice.register("Alice", PASSWORD).await.token;
    let mut bob = server.user("Bob").await;
    alice.expect_user_joined("Bob").await;

    alice.drop_connection();
    bob.expect_user_left("Alice", LeaveReason::Dropped).await;

    let mut a2 = server.connect("Alice (resumed)").await;
    let info = a2.resume(&first).await;
    assert_eq!(info.username.as_str(), "Alice");
    assert_eq!(a2.who_is_online().await, names(&["Alice", "Bob"]));
    let second = info.token;
    assert_ne!(second, first, "Resume must issue a new token");
    bob.expect_user_joined("Alice").await;

    let mut replay = server.connect("replayed token").await;
    assert_eq!(
        replay.try_resume(&first).await.err(),
        Some(AuthFailure::ResumeFailed),
        "a used token must not log in again"
    );

    // The rotated token takes over the online session, like a login.
    let mut a3 = server.connect("Alice (resumed again)").await;
    let third = a3.resume(&second).await.token;
    assert_ne!(third, second);
    a2.expect_goodbye(GoodbyeReason::Replaced).await;
    a3.say("still me").await;
    bob.expect_room_message("Alice", "still me").await;

    a3.goodbye().await;
    bob.expect_user_left("Alice", LeaveReason::Exit).await;
    let mut after = server.connect("after goodbye").await;
    assert_eq!(
        after.try_resume(&third).await.err(),
        Some(AuthFailure::ResumeFailed),
        "Goodbye must revoke the session's token"
    );
    let mut random = server.connect("made-up token").await;
    assert_eq!(
        random
            .try_resume(&ResumeToken::from_bytes([0x42; 32]))
            .await
            .err(),
        Some(AuthFailure::ResumeFailed)
    );
}

/// Before login, chat is refused with NotLoggedIn and reaches nobody; the
/// connection can still log in afterwards.
pub async fn chat_before_login_is_refused(transport: Transport) {
    let server = TestServer::start(transport).await;
    let mut bob = server.user("Bob").await;
    let mut stranger = server.connect("stranger").await;

    stranger
        .send(&ClientMessage::RoomMessage {
            room: crate::room("#general"),
            text: text("let me in"),
        })
        .await;
    stranger.expect_error(ErrorCode::NotLoggedIn).await;
    stranger.dm("Bob", "psst").await;
    stranger.expect_error(ErrorCode::NotLoggedIn).await;

    stranger.register("Xavier", PASSWORD).await;
    bob.expect_user_joined("Xavier").await;
    stranger.say("now I may").await;
    bob.expect_room_message("Xavier", "now I may").await;
}

/// Unknown user and wrong password get the same LoginFailed; the same
/// connection may try again and succeed.
pub async fn wrong_password_and_unknown_user_get_the_same_answer(transport: Transport) {
    let server = TestServer::start(transport).await;
    server.user("Alice").await.goodbye().await;

    let mut client = server.connect("guesser").await;
    assert_eq!(
        client.try_login("Alice", "not the password").await.err(),
        Some(AuthFailure::LoginFailed)
    );
    assert_eq!(
        client.try_login("Mallory", PASSWORD).await.err(),
        Some(AuthFailure::LoginFailed)
    );
    let info = client.login("Alice", PASSWORD).await;
    assert_eq!(info.username.as_str(), "Alice");
}

fn names(list: &[&str]) -> std::collections::BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}
