//! Roles, moderation and server administration end to end: every action
//! tried by a user who may and one who may not, what each member sees, and
//! the audit log on disk.

use proto_core::message::{
    AuthFailure, ClientMessage, ErrorCode, GoodbyeReason, Reason, RoomChange, RoomLeaveReason,
    RoomRole, ServerMessage, Topic,
};
use server::storage::AuditLog;
use tests::{room, text, username, ServerOptions, TestClient, TestServer, Transport, PASSWORD};

/// The room and its people: Olga owns #den, Mo moderates it, Ann and Bob
/// are members, Eve is not in it.
struct Den {
    server: TestServer,
    olga: TestClient,
    mo: TestClient,
    ann: TestClient,
    bob: TestClient,
    eve: TestClient,
}

impl Den {
    async fn new(options: ServerOptions) -> Self {
        let server = TestServer::start_with(options).await;
        let mut c = server.group(&["Olga", "Mo", "Ann", "Bob", "Eve"]).await;
        let mut eve = c.pop().unwrap();
        let mut bob = c.pop().unwrap();
        let mut ann = c.pop().unwrap();
        let mut mo = c.pop().unwrap();
        let mut olga = c.pop().unwrap();
        olga.create_room("#den", false, "").await.unwrap();
        let mut inside: Vec<&mut TestClient> = vec![&mut olga];
        for (client, name) in [(&mut mo, "Mo"), (&mut ann, "Ann"), (&mut bob, "Bob")] {
            client.join_room("#den").await.unwrap();
            for member in inside.iter_mut() {
                member.expect_member_joined("#den", name).await;
            }
            inside.push(client);
        }
        let op = ClientMessage::SetRole {
            room: room("#den"),
            user: username("Mo"),
            role: RoomRole::Moderator,
        };
        olga.moderate(op).await.unwrap();
        for member in [&mut mo, &mut ann, &mut bob] {
            member.expect_room_changed("#den", "Olga").await;
        }
        eve.sync().await;
        Self {
            server,
            olga,
            mo,
            ann,
            bob,
            eve,
        }
    }
}

/// Each of `members` sees `actor`'s change to #den; returns it.
async fn see(members: &mut [&mut TestClient], actor: &str) -> RoomChange {
    let mut seen = Vec::new();
    for member in members.iter_mut() {
        seen.push(member.expect_room_changed("#den", actor).await);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    seen.pop().expect("someone to see it")
}

fn changed(answer: ServerMessage) -> RoomChange {
    match answer {
        ServerMessage::RoomChanged { change, .. } => change,
        other => panic!("expected RoomChanged, got {other:?}"),
    }
}

fn reason(s: &str) -> Reason {
    Reason::new(s).unwrap()
}

async fn post(client: &mut TestClient, id: u64, words: &str) -> Result<(), ErrorCode> {
    client
        .send(&ClientMessage::SendRoom {
            client_id: id,
            room: room("#den"),
            text: text(words),
        })
        .await;
    match client.recv().await {
        ServerMessage::Stored { .. } => Ok(()),
        ServerMessage::SendFailed { code, .. } => Err(code),
        other => panic!("expected Stored or SendFailed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_appoints_and_moderators_set_topic_and_mode() {
    let mut den = Den::new(ServerOptions::new(Transport::Plain)).await;
    let op_bob = || ClientMessage::SetRole {
        room: room("#den"),
        user: username("Bob"),
        role: RoomRole::Moderator,
    };
    assert_eq!(
        den.ann.moderate(op_bob()).await.err(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        den.mo.moderate(op_bob()).await.err(),
        Some(ErrorCode::Forbidden)
    );

    let topic = |t: &str| ClientMessage::SetTopic {
        room: room("#den"),
        topic: Topic::new(t).unwrap(),
    };
    assert_eq!(
        den.ann.moderate(topic("mine now")).await.err(),
        Some(ErrorCode::Forbidden)
    );
    let change = changed(den.mo.moderate(topic("be kind")).await.unwrap());
    assert_eq!(
        change,
        RoomChange::Topic {
            topic: Topic::new("be kind").unwrap()
        }
    );
    assert_eq!(
        see(&mut [&mut den.olga, &mut den.ann, &mut den.bob], "Mo").await,
        change
    );

    let closed = || ClientMessage::SetInviteOnly {
        room: room("#den"),
        invite_only: true,
    };
    assert_eq!(
        den.bob.moderate(closed()).await.err(),
        Some(ErrorCode::Forbidden)
    );
    den.mo.moderate(closed()).await.unwrap();
    see(&mut [&mut den.olga, &mut den.ann, &mut den.bob], "Mo").await;
    // Now Eve cannot join, nor see it listed.
    assert_eq!(
        den.eve.join_room("#den").await.err(),
        Some(ErrorCode::Forbidden)
    );
    assert!(den.eve.list_rooms("den").await.is_empty());
    // The topic reaches a member at login too.
    let mut ann2 = den.server.connect("Ann").await;
    let info = ann2.login("Ann", PASSWORD).await;
    let den_info = info
        .rooms
        .iter()
        .find(|r| r.room.as_str() == "#den")
        .unwrap();
    assert_eq!(
        (den_info.topic.as_str(), den_info.invite_only),
        ("be kind", true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_kicks_a_member_who_is_told_why_and_hears_no_more() {
    let mut den = Den::new(ServerOptions::new(Transport::Plain)).await;
    let kick = |who: &str| ClientMessage::Kick {
        room: room("#den"),
        user: username(who),
        reason: reason("spamming links"),
    };
    assert_eq!(
        den.ann.moderate(kick("Bob")).await.err(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        den.mo.moderate(kick("Olga")).await.err(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        den.eve.moderate(kick("Bob")).await.err(),
        Some(ErrorCode::NotAMember)
    );
    let change = changed(den.mo.moderate(kick("Bob")).await.unwrap());
    assert_eq!(
        change,
        RoomChange::Kicked {
            user: username("Bob"),
            reason: reason("spamming links")
        }
    );
    assert_eq!(
        see(&mut [&mut den.olga, &mut den.ann, &mut den.bob], "Mo").await,
        change,
        "Bob sees who and why too"
    );
    den.bob
        .expect_room_left("#den", RoomLeaveReason::Kicked)
        .await;
    // Out: cannot post, hears nothing.
    assert_eq!(
        post(&mut den.bob, 1, "hello?").await,
        Err(ErrorCode::NotAMember)
    );
    post(&mut den.ann, 2, "after the kick").await.unwrap();
    for c in [&mut den.olga, &mut den.mo] {
        c.expect_room_message_in("#den", "Ann", "after the kick")
            .await;
    }
    den.bob.sync().await;
    // A public room takes a kicked member back.
    den.bob.join_room("#den").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_keeps_a_user_out_and_hides_the_room_until_lifted_or_over() {
    let mut den = Den::new(ServerOptions::new(Transport::Plain)).await;
    let ban = |who: &str, minutes| ClientMessage::Ban {
        room: room("#den"),
        user: username(who),
        reason: Reason::empty(),
        minutes,
    };
    assert_eq!(
        den.ann.moderate(ban("Bob", 0)).await.err(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        den.mo.moderate(ban("Olga", 0)).await.err(),
        Some(ErrorCode::Forbidden)
    );
    let change = changed(den.mo.moderate(ban("Bob", 0)).await.unwrap());
    assert!(matches!(change, RoomChange::Banned { until_ms: 0, .. }));
    see(&mut [&mut den.olga, &mut den.ann, &mut den.bob], "Mo").await;
    den.bob
        .expect_room_left("#den", RoomLeaveReason::Banned)
        .await;
    assert_eq!(
        den.bob.join_room("#den").await.err(),
        Some(ErrorCode::Forbidden)
    );
    assert!(den
        .bob
        .list_rooms("")
        .await
        .iter()
        .all(|r| r.room.as_str() != "#den"));
    post(&mut den.ann, 1, "bob cannot read this").await.unwrap();
    den.olga
        .expect_room_message_in("#den", "Ann", "bob cannot read this")
        .await;
    den.mo
        .expect_room_message_in("#den", "Ann", "bob cannot read this")
        .await;
    den.bob.sync().await;
    // Even at his next login, nothing of #den.
    let mut bob2 = den.server.connect("Bob").await;
    let info = bob2.login("Bob", PASSWORD).await;
    assert!(!info.room_names().contains(&"#den".to_owned()));
    assert!(info
        .history
        .iter()
        .all(|e| e.text.as_str() != "bob cannot read this"));

    let unban = || ClientMessage::Unban {
        room: room("#den"),
        user: username("Bob"),
    };
    assert_eq!(
        den.ann.moderate(unban()).await.err(),
        Some(ErrorCode::Forbidden)
    );
    den.mo.moderate(unban()).await.unwrap();
    see(&mut [&mut den.olga, &mut den.ann], "Mo").await;
    bob2.join_room("#den").await.unwrap();
    for c in [&mut den.olga, &mut den.mo, &mut den.ann] {
        c.expect_member_joined("#den", "Bob").await;
    }

    // A timed ban says until when.
    let change = changed(den.olga.moderate(ban("Eve", 30)).await.unwrap());
    let RoomChange::Banned { until_ms, .. } = change else {
        panic!("a ban")
    };
    let now = server::clock::now_ms();
    assert!(until_ms > now + 29 * 60_000 && until_ms <= now + 30 * 60_000 + 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_member_cannot_post_until_unmuted() {
    let mut den = Den::new(ServerOptions::new(Transport::Plain)).await;
    let mute = |muted| ClientMessage::Mute {
        room: room("#den"),
        user: username("Bob"),
        muted,
    };
    assert_eq!(
        den.ann.moderate(mute(true)).await.err(),
        Some(ErrorCode::Forbidden)
    );
    den.mo.moderate(mute(true)).await.unwrap();
    see(&mut [&mut den.olga, &mut den.ann, &mut den.bob], "Mo").await;
    assert_eq!(
        post(&mut den.bob, 1, "let me speak").await,
        Err(ErrorCode::Forbidden)
    );
    den.ann.sync().await;
    den.mo.moderate(mute(false)).await.unwrap();
    see(&mut [&mut den.olga, &mut den.ann, &mut den.bob], "Mo").await;
    post(&mut den.bob, 2, "thanks").await.unwrap();
    den.ann
        .expect_room_message_in("#den", "Bob", "thanks")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_lets_one_user_into_an_invite_only_room_even_when_offline() {
    let mut den = Den::new(ServerOptions::new(Transport::Plain)).await;
    den.olga
        .moderate(ClientMessage::SetInviteOnly {
            room: room("#den"),
            invite_only: true,
        })
        .await
        .unwrap();
    see(&mut [&mut den.mo, &mut den.ann, &mut den.bob], "Olga").await;
    let invite = |who: &str| ClientMessage::Invite {
        room: room("#den"),
        user: username(who),
    };
    assert_eq!(
        den.ann.moderate(invite("Eve")).await.err(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        den.mo.moderate(invite("Nobody")).await.err(),
        Some(ErrorCode::UnknownRecipient)
    );
    den.mo.moderate(invite("Eve")).await.unwrap();
    see(&mut [&mut den.olga, &mut den.ann, &mut den.bob], "Mo").await;
    match den.eve.recv().await {
        ServerMessage::Invited { room, by, .. } => {
            assert_eq!((room.as_str(), by.as_str()), ("#den", "Mo"));
        }
        other => panic!("expected Invited, got {other:?}"),
    }
    den.eve.join_room("#den").await.unwrap();
    for c in [&mut den.olga, &mut den.mo, &mut den.ann, &mut den.bob] {
        c.expect_member_joined("#den", "Eve").await;
    }

    // Invited while offline: the greeting says so, and joining accepts.
    let fay = den.server.user("Fay").await;
    fay.goodbye().await;
    den.mo.moderate(invite("Fay")).await.unwrap();
    let mut fay = den.server.connect("Fay").await;
    let info = fay.login("Fay", PASSWORD).await;
    assert_eq!(info.invitations, [("#den".to_owned(), "Mo".to_owned())]);
    fay.join_room("#den").await.unwrap();
    let info = den
        .server
        .connect("Fay2")
        .await
        .register("Fay2", PASSWORD)
        .await;
    assert!(info.invitations.is_empty(), "nobody else is invited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_deletes_a_room_and_its_members_are_told() {
    let mut den = Den::new(ServerOptions::new(Transport::Plain)).await;
    post(&mut den.ann, 1, "soon gone").await.unwrap();
    for c in [&mut den.olga, &mut den.mo, &mut den.bob] {
        c.expect_room_message_in("#den", "Ann", "soon gone").await;
    }
    let delete = || ClientMessage::DeleteRoom { room: room("#den") };
    assert_eq!(
        den.mo.moderate(delete()).await.err(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        den.eve.moderate(delete()).await.err(),
        Some(ErrorCode::NotAMember)
    );
    den.olga.moderate(delete()).await.unwrap();
    for c in [&mut den.mo, &mut den.ann, &mut den.bob] {
        c.expect_room_left("#den", RoomLeaveReason::Deleted).await;
    }
    assert!(den.eve.list_rooms("den").await.is_empty());
    // The name is free; the new room has none of the old history.
    den.eve.create_room("#den", false, "").await.unwrap();
    let mut eve2 = den.server.connect("Eve").await;
    let info = eve2.login("Eve", PASSWORD).await;
    assert!(info.history.iter().all(|e| e.text.as_str() != "soon gone"));
    // Nobody deletes #general.
    let general = ClientMessage::DeleteRoom {
        room: room("#general"),
    };
    assert_eq!(
        den.olga.moderate(general).await.err(),
        Some(ErrorCode::Forbidden)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_disable_accounts_end_sessions_and_delete_any_room() {
    let options = ServerOptions::new(Transport::Plain).admins(&["root"]);
    let mut den = Den::new(options).await;
    let mut root = den.server.user("Root").await;
    let disable = |who: &str, disabled| ClientMessage::SetAccountDisabled {
        user: username(who),
        disabled,
    };
    assert_eq!(
        den.ann.moderate(disable("Bob", true)).await.err(),
        Some(ErrorCode::Forbidden)
    );
    den.bob.expect_user_joined("Root").await;
    assert_eq!(
        root.moderate(disable("Bob", true)).await.unwrap(),
        ServerMessage::Done
    );
    den.bob.expect_cut_off(GoodbyeReason::AccountDisabled).await;
    let mut bob = den.server.connect("Bob").await;
    assert_eq!(
        bob.try_login("Bob", PASSWORD).await.err(),
        Some(AuthFailure::AccountDisabled)
    );
    root.moderate(disable("Bob", false)).await.unwrap();
    let mut bob = den.server.connect("Bob").await;
    bob.login("Bob", PASSWORD).await;

    let end = |who: &str| ClientMessage::EndSessions {
        user: username(who),
    };
    assert_eq!(
        den.eve.moderate(end("Ann")).await.err(),
        Some(ErrorCode::Forbidden)
    );
    let ann_token = {
        let mut ann2 = den.server.connect("Ann").await;
        ann2.login("Ann", PASSWORD).await.token
    };
    root.moderate(end("Ann")).await.unwrap();
    let mut again = den.server.connect("Ann").await;
    assert_eq!(
        again.try_resume(&ann_token).await.err(),
        Some(AuthFailure::ResumeFailed),
        "its tokens are revoked"
    );

    // Any room but #general.
    let delete = |name: &str| ClientMessage::DeleteRoom { room: room(name) };
    root.moderate(delete("#den")).await.unwrap();
    assert_eq!(
        root.moderate(delete("#general")).await.err(),
        Some(ErrorCode::Forbidden)
    );

    // Everything is in the audit log, sealed.
    let key: [u8; 32] = std::fs::read(den.server.data_dir().join("storage.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let audit = AuditLog::read_all(&den.server.data_dir().join("audit.log"), &key).unwrap();
    let actions: Vec<(&str, &str, Option<&str>)> = audit
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_deref()))
        .collect();
    assert_eq!(
        actions,
        [
            ("olga", "role", Some("mo")),
            ("root", "disable_account", Some("bob")),
            ("root", "enable_account", Some("bob")),
            ("root", "end_sessions", Some("ann")),
            ("root", "delete_room", None),
        ]
    );
    let raw = std::fs::read(den.server.data_dir().join("audit.log")).unwrap();
    assert!(!raw.windows(8).any(|w| w == b"end_sess"));
}
