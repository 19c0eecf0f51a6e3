//! History replay at login: across a restart, limited per conversation,
//! paginated, and direct messages to offline users.

use proto_core::message::{Conversation, ErrorCode, HistoryEntry, LeaveReason};
use tests::{username, ServerOptions, TestClient, TestServer, Transport, PASSWORD};

/// (conversation peer or room name, from, text) of each entry, in order.
fn summary(history: &[HistoryEntry]) -> Vec<(String, String, String)> {
    history
        .iter()
        .map(|e| {
            let conversation = match &e.conversation {
                Conversation::Room { room } => room.as_str().to_owned(),
                Conversation::Direct { peer } => peer.as_str().to_owned(),
            };
            (
                conversation,
                e.from.as_str().to_owned(),
                e.text.as_str().to_owned(),
            )
        })
        .collect()
}

fn entry(conversation: &str, from: &str, text: &str) -> (String, String, String) {
    (conversation.to_owned(), from.to_owned(), text.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_direct_conversations_survive_a_restart() {
    let mut server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    c[0].say("before the restart").await;
    c[1].expect_room_message("Alice", "before the restart")
        .await;
    c[1].dm("Alice", "a secret").await;
    c[0].expect_direct_message("Bob", "Alice", "a secret").await;
    c[0].sync().await;
    c[1].sync().await;
    server.restart().await;

    let mut alice = server.connect("Alice").await;
    let info = alice.login("Alice", PASSWORD).await;
    assert_eq!(
        summary(&info.history),
        vec![
            entry("#general", "Alice", "before the restart"),
            entry("Bob", "Bob", "a secret"),
        ]
    );
    let mut bob = server.connect("Bob").await;
    let info = bob.login("Bob", PASSWORD).await;
    assert_eq!(
        summary(&info.history),
        vec![
            entry("#general", "Alice", "before the restart"),
            entry("Alice", "Bob", "a secret"),
        ],
        "the peer of a direct conversation is the other participant"
    );
    alice.expect_user_joined("Bob").await;

    // New messages continue after the old ones.
    alice.say("after the restart").await;
    let (id, _) = bob.expect_room_message("Alice", "after the restart").await;
    assert!(
        info.history.iter().all(|e| e.id < id),
        "ids keep increasing across a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_newest_messages_of_each_conversation_are_replayed() {
    let server =
        TestServer::start_with(ServerOptions::new(Transport::Plain).history_replay(3)).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    for i in 0..6 {
        let words = format!("room {i}");
        c[0].say(&words).await;
        c[1].expect_room_message("Alice", &words).await;
        let words = format!("direct {i}");
        c[0].dm("Bob", &words).await;
        c[1].expect_direct_message("Alice", "Bob", &words).await;
    }
    c.remove(1).goodbye().await;
    c[0].expect_user_left("Bob", LeaveReason::Exit).await;

    let mut bob = server.connect("Bob").await;
    let info = bob.login("Bob", PASSWORD).await;
    assert_eq!(
        summary(&info.history),
        vec![
            entry("#general", "Alice", "room 3"),
            entry("#general", "Alice", "room 4"),
            entry("#general", "Alice", "room 5"),
            entry("Alice", "Alice", "direct 3"),
            entry("Alice", "Alice", "direct 4"),
            entry("Alice", "Alice", "direct 5"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_arrives_in_several_batches_oldest_first() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    let sent: Vec<String> = (0..40).map(|i| format!("line {i:02}")).collect();
    for words in &sent {
        c[0].say(words).await;
    }
    for words in &sent {
        c[1].expect_room_message("Alice", words).await;
    }
    let mut carol = server.connect("Carol").await;
    let info = carol.register("Carol", PASSWORD).await;
    let texts: Vec<&str> = info.history.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, sent, "all 40 room messages, oldest first");
    assert!(
        info.history_batches >= 3,
        "40 entries need at least 3 batches of at most 14, got {}",
        info.history_batches
    );
    assert!(info.history.windows(2).all(|w| w[0].id < w[1].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_to_an_offline_user_is_seen_at_their_next_login() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    c.remove(1).goodbye().await;
    c[0].expect_user_left("Bob", LeaveReason::Exit).await;

    c[0].dm("Bob", "read this when you are back").await;
    // Accepted without an error: Bob exists, he is only offline.
    c[0].sync().await;

    let mut bob = server.connect("Bob").await;
    let info = bob.login("Bob", PASSWORD).await;
    let direct: Vec<&HistoryEntry> = info
        .history
        .iter()
        .filter(|e| {
            e.conversation
                == Conversation::Direct {
                    peer: username("Alice"),
                }
        })
        .collect();
    assert_eq!(
        direct
            .iter()
            .map(|e| (e.from.as_str(), e.text.as_str()))
            .collect::<Vec<_>>(),
        vec![("Alice", "read this when you are back")]
    );
}

/// Pages `conversation` back from the newest, `limit` at a time, until the
/// server says it is complete: the texts, oldest first, and the pages.
async fn page_back(
    client: &mut TestClient,
    conversation: Conversation,
    limit: u16,
) -> (Vec<String>, usize) {
    let (mut texts, mut pages, mut before) = (Vec::new(), 0, 0);
    loop {
        let (page, complete) = client
            .history_page(conversation.clone(), before, limit)
            .await
            .expect("a page");
        pages += 1;
        assert!(page.len() <= usize::from(limit));
        assert!(page.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
        assert!(
            page.iter().all(|e| match (&e.conversation, &conversation) {
                (Conversation::Direct { peer: got }, Conversation::Direct { peer: asked }) =>
                    got.same_user(asked),
                (got, asked) => got == asked,
            }),
            "every entry is of the conversation asked for"
        );
        let mut older: Vec<String> = page.iter().map(|e| e.text.as_str().to_owned()).collect();
        older.append(&mut texts);
        texts = older;
        if complete {
            return (texts, pages);
        }
        before = page.first().expect("an incomplete page has entries").id;
    }
}

/// Scrolling back in a direct conversation: both people page it to its
/// beginning, each naming the other; a third user naming either of them
/// pages only their own (empty) conversation with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_conversation_pages_back_to_its_beginning_for_both_and_no_one_else() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;
    let mut sent = Vec::new();
    for i in 0..25 {
        let words = format!("dm {i:02}");
        if i % 2 == 0 {
            c[0].dm("Bob", &words).await;
            c[1].expect_direct_message("Alice", "Bob", &words).await;
        } else {
            c[1].dm("Alice", &words).await;
            c[0].expect_direct_message("Bob", "Alice", &words).await;
        }
        sent.push(words);
    }
    let with = |peer: &str| Conversation::Direct {
        peer: username(peer),
    };

    let (alice_sees, pages) = page_back(&mut c[0], with("bob"), 10).await;
    assert_eq!(alice_sees, sent, "Alice pages the whole conversation");
    assert_eq!(pages, 3, "25 messages, 10 a page");
    let (bob_sees, _) = page_back(&mut c[1], with("Alice"), 7).await;
    assert_eq!(bob_sees, sent, "and so does Bob");

    let carol = &mut c[2];
    for peer in ["Alice", "Bob"] {
        let (page, complete) = carol.history_page(with(peer), 0, 50).await.unwrap();
        assert!(
            page.is_empty() && complete,
            "Carol has no conversation with {peer}: {page:?}"
        );
    }
    // Before an id of theirs: still only her own.
    let (page, _) = carol
        .history_page(with("Alice"), u64::MAX, 50)
        .await
        .unwrap();
    assert!(page.is_empty());
    assert_eq!(
        carol.history_page(with("nobody"), 0, 50).await.err(),
        Some(ErrorCode::InvalidMessage),
        "no such user"
    );
}
