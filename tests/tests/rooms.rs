//! Rooms end to end against the real server: create, join, leave, list;
//! who receives a room's messages; invite-only rooms; what survives a
//! restart; the upgrade of a data directory from before rooms. Every
//! request is tried by a user who may and one who may not.

use proto_core::message::{ClientMessage, Conversation, ErrorCode, RoomRole, ServerMessage};
use tests::fixtures::{self, LEGACY_ACCOUNTS};
use tests::{room, text, ServerOptions, TestClient, TestServer, Transport};

fn names(rooms: &[proto_core::message::RoomSummary]) -> Vec<&str> {
    rooms.iter().map(|r| r.room.as_str()).collect()
}

/// `SendRoom` to `in_room`, answered by `Stored` or `SendFailed`.
async fn send_room(
    client: &mut TestClient,
    client_id: u64,
    in_room: &str,
    words: &str,
) -> Result<u64, ErrorCode> {
    client
        .send(&ClientMessage::SendRoom {
            client_id,
            room: room(in_room),
            text: text(words),
        })
        .await;
    match client.recv().await {
        ServerMessage::Stored {
            client_id: c, id, ..
        } if c == client_id => Ok(id),
        ServerMessage::SendFailed {
            client_id: c, code, ..
        } if c == client_id => Err(code),
        other => panic!("expected Stored or SendFailed for {client_id}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_account_starts_in_general() {
    let server = TestServer::start(Transport::Plain).await;
    let mut alice = server.connect("alice").await;
    let info = alice.register("alice", tests::PASSWORD).await;
    assert_eq!(info.room_names(), ["#general"]);
    assert_eq!(info.rooms[0].role, RoomRole::Member);
    let mut bob = server.user("bob").await;
    alice.expect_user_joined("bob").await;
    // A new account joins #general like anyone joining a room: its members
    // online are told.
    alice.expect_member_joined("#general", "bob").await;
    bob.say("hello general").await;
    alice
        .expect_room_message_in("#general", "bob", "hello general")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_is_created_joined_and_left_and_only_its_members_hear_it() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;
    let [alice, bob, carol] = &mut c[..] else {
        unreachable!()
    };

    // Create: allowed once; the same name in another case is taken.
    let rust = alice
        .create_room("#Rust", false, "crabs and borrows")
        .await
        .unwrap();
    assert_eq!(
        (rust.room.as_str(), rust.role, rust.members),
        ("#Rust", RoomRole::Owner, 1)
    );
    assert_eq!(
        bob.create_room("#rUST", false, "").await.err(),
        Some(ErrorCode::RoomExists)
    );

    // Listed to everyone, searchable by name and topic.
    assert_eq!(names(&bob.list_rooms("").await), ["#general", "#Rust"]);
    assert_eq!(names(&bob.list_rooms("BORROW").await), ["#Rust"]);
    assert!(bob.list_rooms("nothing like it").await.is_empty());

    // Join: the owner sees it; a second join changes nothing and tells nobody.
    let joined = bob.join_room("#rust").await.unwrap();
    assert_eq!((joined.role, joined.members), (RoomRole::Member, 2));
    alice.expect_member_joined("#Rust", "Bob").await;
    assert_eq!(bob.join_room("#RUST").await.unwrap().members, 2);
    assert_eq!(
        bob.join_room("#nowhere").await.err(),
        Some(ErrorCode::NoSuchRoom)
    );

    // A member's message reaches the other members only, with the room's name.
    let id = send_room(bob, 1, "#rust", "borrowck says no")
        .await
        .unwrap();
    assert_eq!(
        alice
            .expect_room_message_in("#Rust", "Bob", "borrowck says no")
            .await,
        id
    );
    carol.sync().await;
    bob.sync().await;
    // A non-member cannot post there; nothing is stored or delivered.
    assert_eq!(
        send_room(carol, 2, "#rust", "let me in").await,
        Err(ErrorCode::NotAMember)
    );
    assert_eq!(
        send_room(carol, 3, "#nowhere", "hello?").await,
        Err(ErrorCode::NoSuchRoom)
    );
    alice.sync().await;

    // Leave: only a member can; the others are told; then the leaver is out.
    assert_eq!(
        carol.leave_room("#rust").await.err(),
        Some(ErrorCode::NotAMember)
    );
    assert_eq!(bob.leave_room("#rust").await.unwrap().as_str(), "#Rust");
    alice.expect_member_left("#Rust", "Bob").await;
    assert_eq!(
        send_room(bob, 4, "#rust", "still here?").await,
        Err(ErrorCode::NotAMember)
    );
    let id = send_room(alice, 5, "#rust", "alone now").await.unwrap();
    assert!(id > 0);
    bob.sync().await;
    carol.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_only_room_is_neither_listed_nor_joinable_by_others() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    let [alice, bob] = &mut c[..] else {
        unreachable!()
    };
    let secret = alice.create_room("#secret", true, "").await.unwrap();
    assert!(secret.invite_only);
    assert_eq!(names(&alice.list_rooms("").await), ["#general", "#secret"]);
    assert_eq!(names(&bob.list_rooms("").await), ["#general"]);
    assert_eq!(
        bob.join_room("#secret").await.err(),
        Some(ErrorCode::Forbidden)
    );
    // To a non-member it looks like no room at all.
    assert_eq!(
        send_room(bob, 1, "#secret", "hi").await,
        Err(ErrorCode::NoSuchRoom)
    );
    assert_eq!(
        bob.leave_room("#secret").await.err(),
        Some(ErrorCode::NoSuchRoom)
    );
    send_room(alice, 2, "#secret", "just me").await.unwrap();
    bob.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_memberships_and_room_history_survive_a_restart() {
    let mut server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    c[0].create_room("#Ops", false, "pager duty").await.unwrap();
    c[1].join_room("#ops").await.unwrap();
    c[0].expect_member_joined("#Ops", "Bob").await;
    send_room(&mut c[1], 1, "#ops", "disk is full")
        .await
        .unwrap();
    c[0].expect_room_message_in("#Ops", "Bob", "disk is full")
        .await;
    c[1].leave_room("#general").await.unwrap();
    drop(c);
    server.restart().await;

    let mut alice = server.connect("Alice").await;
    let info = alice.login("Alice", tests::PASSWORD).await;
    assert_eq!(info.room_names(), ["#general", "#Ops"]);
    assert_eq!(info.rooms[1].topic.as_str(), "pager duty");
    assert_eq!(info.rooms[1].role, RoomRole::Owner);
    let ops: Vec<&str> = info
        .history
        .iter()
        .filter(
            |e| matches!(&e.conversation, Conversation::Room { room } if room.as_str() == "#Ops"),
        )
        .map(|e| e.text.as_str())
        .collect();
    assert_eq!(ops, ["disk is full"]);
    let mut bob = server.connect("Bob").await;
    let info = bob.login("Bob", tests::PASSWORD).await;
    assert_eq!(
        info.room_names(),
        ["#Ops"],
        "Bob left #general before the restart"
    );
    assert!(info
        .history
        .iter()
        .all(|e| !matches!(&e.conversation, Conversation::Room { room } if room.as_str() == "#general")),
        "no history of a room one left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_from_before_rooms_becomes_general() {
    let mut options = ServerOptions::new(Transport::Plain);
    options.data_from = Some(fixtures::legacy_data_dir());
    let server = TestServer::start_with(options).await;
    assert!(server.data_dir().join("rooms.log").exists());
    let (name, secret) = LEGACY_ACCOUNTS[2];
    let mut carol = server.connect(name).await;
    let info = carol.login(name, secret).await;
    assert_eq!(
        info.room_names(),
        ["#general"],
        "every old account is in #general"
    );
    let general: Vec<&str> = info
        .history
        .iter()
        .filter(|e| matches!(&e.conversation, Conversation::Room { room } if room.as_str() == "#general"))
        .map(|e| e.text.as_str())
        .collect();
    assert!(
        general.contains(&"hello from Bob before OPAQUE"),
        "the old room's history is #general's: {general:?}"
    );
    // The other old accounts are members too: they hear carol there.
    let (bob_name, bob_secret) = LEGACY_ACCOUNTS[1];
    let mut bob = server.connect(bob_name).await;
    bob.login(bob_name, bob_secret).await;
    carol.expect_user_joined(bob_name).await;
    carol.say("after the upgrade").await;
    bob.expect_room_message_in("#general", name, "after the upgrade")
        .await;
}

/// A client of the protocol before rooms (version 1) is told at its first
/// bytes that this server speaks version 2, and the connection closes: it
/// neither hangs nor gets messages it cannot read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_client_is_told_the_server_speaks_version_2() {
    let server = TestServer::start(Transport::Plain).await;
    // A whole ClientHello, as this client makes it, with the version bytes
    // (the first two of the body, after the 5-byte header) set to 0x0001.
    let mut client = proto_core::ClientConnection::new(
        proto_core::ClientConfig::new(proto_core::ServerTrust::FirstUse),
        Box::new(rand_core::OsRng),
    );
    let mut hello = Vec::new();
    client.drain_transmit(&mut hello);
    assert_eq!(hello[5..7], [0x00, 0x02]);
    hello[5..7].copy_from_slice(&[0x00, 0x01]);
    let mut tcp = tests::test_client::raw_tcp(server.addr()).await;
    let reply = tests::test_client::send_raw_and_expect_close(&mut tcp, &hello).await;
    // A plaintext protocol_version alert carrying the server's version.
    assert_eq!(reply, [0x15, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x02]);
}

/// Scrolling back: pages of a room's history before an id, down to its
/// beginning; nobody outside the room pages it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_pages_back_through_a_long_history_and_an_outsider_cannot() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob"]).await;
    let [alice, bob] = &mut c[..] else {
        unreachable!()
    };
    alice.create_room("#log", false, "").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..35 {
        ids.push(
            send_room(alice, i, "#log", &format!("line {i}"))
                .await
                .unwrap(),
        );
    }
    let log = || Conversation::Room { room: room("#LOG") };
    let (newest, complete) = alice.history_page(log(), 0, 10).await.unwrap();
    let got: Vec<u64> = newest.iter().map(|e| e.id).collect();
    assert_eq!(got, ids[25..], "the newest ten, oldest first");
    assert!(!complete);
    assert!(newest
        .iter()
        .all(|e| e.conversation == Conversation::Room { room: room("#log") }));
    let mut before = got[0];
    let mut pages = 1;
    loop {
        let (page, complete) = alice.history_page(log(), before, 10).await.unwrap();
        pages += 1;
        if let Some(first) = page.first() {
            before = first.id;
        }
        if complete {
            assert_eq!(page.len(), 5);
            assert_eq!(page[0].text.as_str(), "line 0");
            break;
        }
    }
    assert_eq!(pages, 4);
    // Bob is not in #log: nothing.
    assert_eq!(
        bob.history_page(log(), 0, 10).await.err(),
        Some(ErrorCode::NoSuchRoom)
    );
    // A direct conversation pages for its two people.
    bob.dm("Alice", "just us").await;
    alice.expect_direct_message("Bob", "Alice", "just us").await;
    let dm = Conversation::Direct {
        peer: tests::username("bob"),
    };
    let (page, complete) = alice.history_page(dm, 0, 50).await.unwrap();
    assert_eq!((page.len(), complete), (1, true));
}

/// Read markers are the server's: one device's reading reaches the others,
/// and the next login counts what came since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_marker_follows_the_user_to_other_devices_and_counts_unread_at_login() {
    let server = TestServer::start(Transport::Plain).await;
    let mut bob = server.user("Bob").await;
    let mut laptop = server.connect("laptop").await;
    laptop.set_device(1, "laptop").await;
    laptop.register("Alice", tests::PASSWORD).await;
    bob.expect_user_joined("Alice").await;
    let mut phone = server.connect("phone").await;
    phone.set_device(2, "phone").await;
    phone.login("Alice", tests::PASSWORD).await;
    let id = send_room(&mut bob, 1, "#general", "read me").await.unwrap();
    laptop.expect_room_message("Bob", "read me").await;
    phone.expect_room_message("Bob", "read me").await;

    let general = || Conversation::Room {
        room: room("#general"),
    };
    laptop
        .send(&ClientMessage::MarkRead {
            conversation: general(),
            up_to_id: id,
        })
        .await;
    match phone.recv().await {
        ServerMessage::ReadMarker {
            conversation,
            up_to_id,
            ..
        } => assert_eq!((conversation, up_to_id), (general(), id)),
        other => panic!("expected the laptop's ReadMarker on the phone, got {other:?}"),
    }
    laptop.sync().await;
    // Backwards: nothing moves, nobody is told.
    laptop
        .send(&ClientMessage::MarkRead {
            conversation: general(),
            up_to_id: id - 1,
        })
        .await;
    phone.sync().await;

    for i in 2..5 {
        send_room(&mut bob, i, "#general", &format!("new {i}"))
            .await
            .unwrap();
    }
    let mut later = server.connect("laptop again").await;
    later.set_device(1, "laptop").await;
    let info = later.login("Alice", tests::PASSWORD).await;
    assert_eq!(
        info.read_markers,
        [(general(), id, 3)],
        "three from Bob since"
    );
}

/// A server whose rooms go quiet (no presence, joins or leaves told) past
/// 3 members, and three users: `#general` is at the limit, still told.
async fn at_the_quiet_limit(names: [&str; 3]) -> (TestServer, [TestClient; 3]) {
    let mut options = ServerOptions::new(Transport::Plain);
    options.limits.presence_room_max_members = 3;
    let server = TestServer::start_with(options).await;
    let clients = server.group(&names).await;
    let clients: [TestClient; 3] = clients.try_into().unwrap_or_else(|_| unreachable!());
    (server, clients)
}

/// A room over `presence_room_max_members` is not told who comes and goes
/// (its members ask, with `Members`); a small room the same users share
/// still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_room_is_not_told_presence_and_a_small_shared_room_still_is() {
    // Three in #general: at the limit, still told (the group waits for it).
    let (server, [mut watcher, mut ann, ben]) = at_the_quiet_limit(["Watcher", "Ann", "Ben"]).await;
    watcher.create_room("#den", false, "").await.unwrap();
    ann.join_room("#den").await.unwrap();
    watcher.expect_member_joined("#den", "Ann").await;

    // A fourth account: #general is over the limit from now on.
    let _cal = server.user("Cal").await;
    // Ben shares only #general with Watcher, Ann also #den. Ben's leave is
    // recorded before his goodbye is answered, so it would be told before
    // Ann's.
    ben.goodbye().await;
    ann.goodbye().await;
    watcher
        .expect_user_left("Ann", proto_core::message::LeaveReason::Exit)
        .await;
    watcher.sync().await;
    assert_eq!(
        watcher.presence_of("Ben"),
        [],
        "#general is quiet: Ben's leave"
    );
    assert_eq!(
        watcher.presence_of("Cal"),
        [],
        "#general is quiet: Cal's login"
    );

    // Asked, the large room says who of its members is online.
    let (total, members) = watcher.members("#general", 0).await.unwrap();
    assert_eq!(total, 4);
    let online: Vec<(String, bool)> = members.into_iter().map(|(u, _, o)| (u, o)).collect();
    assert_eq!(
        online,
        [
            ("Ann".to_owned(), false),
            ("Ben".to_owned(), false),
            ("Cal".to_owned(), true),
            ("Watcher".to_owned(), true),
        ]
    );
}

/// A room over `presence_room_max_members` is not told plain joins and
/// leaves either (nor `#general` each registration): at 19,000 members each
/// would be a write per member online. Moderation is still told to all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_room_is_not_told_joins_and_leaves_but_still_sees_moderation() {
    let (server, [mut owner, mut ann, mut ben]) = at_the_quiet_limit(["Owner", "Ann", "Ben"]).await;
    owner.create_room("#hall", false, "").await.unwrap();
    // Up to the limit a join is told.
    ann.join_room("#hall").await.unwrap();
    owner.expect_member_joined("#hall", "Ann").await;
    ben.join_room("#hall").await.unwrap();
    owner.expect_member_joined("#hall", "Ben").await;
    ann.expect_member_joined("#hall", "Ben").await;

    // Two more accounts: #general goes over the limit with the first,
    // and neither registration is told.
    let mut cal = server.user("Cal").await;
    let mut dan = server.user("Dan").await;
    for c in [&mut owner, &mut ann] {
        c.sync().await;
        let announced = c.announced_in_general();
        assert!(
            !announced.iter().any(|u| u == "Cal" || u == "Dan"),
            "#general announced {announced:?}"
        );
    }

    // #hall grows past the limit: the fourth member's join and a leave
    // from it are told to nobody (sync fails on any message but its Pong).
    cal.join_room("#hall").await.unwrap();
    dan.join_room("#hall").await.unwrap();
    cal.leave_room("#hall").await.unwrap();
    for c in [&mut owner, &mut ann, &mut ben, &mut dan] {
        c.sync().await;
    }
    // Asked, the room says who is in it.
    let (total, _) = ann.members("#hall", 0).await.unwrap();
    assert_eq!(total, 4, "Owner, Ann, Ben and Dan");

    // A kick in the large room is still told to every member, and a
    // member who may not kick is still refused.
    let kick = |who: &str| ClientMessage::Kick {
        room: room("#hall"),
        user: tests::username(who),
        reason: proto_core::message::Reason::new("testing").unwrap(),
    };
    assert_eq!(
        ann.moderate(kick("Dan")).await.err(),
        Some(ErrorCode::Forbidden)
    );
    owner.moderate(kick("Dan")).await.unwrap();
    for c in [&mut ann, &mut ben] {
        c.expect_room_changed("#hall", "Owner").await;
    }
    dan.expect_room_changed("#hall", "Owner").await;
    dan.expect_room_left("#hall", proto_core::message::RoomLeaveReason::Kicked)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_who_is_in_a_room_with_roles_and_presence_and_others_do_not() {
    let server = TestServer::start(Transport::Plain).await;
    let mut c = server.group(&["Alice", "Bob", "Carol"]).await;
    let [alice, bob, carol] = &mut c[..] else {
        unreachable!()
    };
    alice.create_room("#den", false, "").await.unwrap();
    bob.join_room("#den").await.unwrap();
    alice.expect_member_joined("#den", "Bob").await;
    alice
        .moderate(ClientMessage::SetRole {
            room: room("#den"),
            user: tests::username("Bob"),
            role: RoomRole::Moderator,
        })
        .await
        .unwrap();
    bob.expect_room_changed("#den", "Alice").await;

    // A member (any role) sees the members by name, with roles and who is
    // online.
    let expected = vec![
        ("Alice".to_owned(), RoomRole::Owner, true),
        ("Bob".to_owned(), RoomRole::Moderator, true),
    ];
    assert_eq!(bob.members("#DEN", 0).await, Ok((2, expected.clone())));
    assert_eq!(alice.members("#den", 0).await, Ok((2, expected)));
    // Past the end: the count and nobody.
    assert_eq!(alice.members("#den", 2).await, Ok((2, vec![])));

    // Someone who is not in the room learns nothing about its members.
    assert_eq!(carol.members("#den", 0).await, Err(ErrorCode::NotAMember));
    assert_eq!(
        carol.members("#nowhere", 0).await,
        Err(ErrorCode::NoSuchRoom)
    );

    // Presence follows the member's devices.
    alice.send(&ClientMessage::Goodbye).await;
    bob.expect_user_left("Alice", proto_core::message::LeaveReason::Exit)
        .await;
    assert_eq!(
        bob.members("#den", 0).await,
        Ok((
            2,
            vec![
                ("Alice".to_owned(), RoomRole::Owner, false),
                ("Bob".to_owned(), RoomRole::Moderator, true),
            ]
        ))
    );
}
