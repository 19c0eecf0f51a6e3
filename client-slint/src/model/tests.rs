use client_core::{ChatLine, ClientEvent, ConnectionState, Delivery, LeaveReason, NoticeKind};

use super::*;

const T0: u64 = 1_700_000_000_000;

fn room(id: u64, from: &str, text: &str) -> ClientEvent {
    ClientEvent::Room(ChatLine {
        id,
        timestamp_ms: T0 + id * 1000,
        from: from.into(),
        room: Some("#general".into()),
        to: None,
        text: text.into(),
        history: false,
        own: from == "me",
        client_id: None,
    })
}

fn history(event: ClientEvent) -> ClientEvent {
    match event {
        ClientEvent::Room(line) => ClientEvent::Room(ChatLine {
            history: true,
            ..line
        }),
        ClientEvent::Direct(line) => ClientEvent::Direct(ChatLine {
            history: true,
            ..line
        }),
        other => other,
    }
}

fn direct(id: u64, from: &str, to: &str, text: &str) -> ClientEvent {
    ClientEvent::Direct(ChatLine {
        id,
        timestamp_ms: T0 + id * 1000,
        from: from.into(),
        room: None,
        to: Some(to.into()),
        text: text.into(),
        history: false,
        own: from == "me",
        client_id: None,
    })
}

fn logged_in() -> ChatModel {
    let mut model = ChatModel::new();
    for event in [
        ClientEvent::State(ConnectionState::Connected),
        ClientEvent::LoggedIn {
            username: "me".into(),
        },
    ] {
        model.handle_event(&event, T0);
    }
    model
}

fn apply(model: &mut ChatModel, events: impl IntoIterator<Item = ClientEvent>) {
    for event in events {
        model.handle_event(&event, T0);
    }
}

fn texts(conversation: &Conversation) -> Vec<&str> {
    conversation
        .entries()
        .iter()
        .map(|e| e.text.as_str())
        .collect()
}

fn unread(model: &ChatModel) -> Vec<(&str, usize)> {
    model
        .conversations()
        .iter()
        .map(|c| (c.title(), c.unread()))
        .collect()
}

#[test]
fn room_messages_land_in_the_room_with_own_flag() {
    let mut model = logged_in();
    apply(&mut model, [room(1, "ana", "hola"), room(2, "me", "hi")]);
    let entries = model.selected().entries();
    assert_eq!(model.selected().id, ConversationId::Room("#general".into()));
    assert!(
        matches!(&entries[0].kind, EntryKind::Message { from, own: false, .. } if from == "ana")
    );
    assert!(matches!(
        &entries[1].kind,
        EntryKind::Message { own: true, .. }
    ));
}

#[test]
fn direct_messages_open_a_conversation_per_partner_with_unread_counts() {
    let mut model = logged_in();
    apply(
        &mut model,
        [
            direct(1, "李雷", "me", "你好"),
            direct(2, "李雷", "me", "在吗？"),
            direct(3, "me", "سارة", "مرحبا"),
        ],
    );
    assert_eq!(unread(&model), [("#general", 0), ("李雷", 2), ("سارة", 0)]);
    let lei = model
        .conversation(&ConversationId::Direct("李雷".into()))
        .unwrap();
    assert_eq!(texts(lei), ["你好", "在吗？"]);
}

#[test]
fn messages_in_the_open_conversation_are_not_unread_and_own_never_are() {
    let mut model = logged_in();
    apply(&mut model, [room(1, "ana", "a"), room(2, "me", "b")]);
    assert_eq!(model.selected().unread(), 0);
    model.open_direct("ana");
    apply(&mut model, [room(3, "me", "c"), room(4, "ana", "d")]);
    assert_eq!(unread(&model), [("#general", 1), ("ana", 0)]);
}

#[test]
fn returning_to_a_conversation_marks_the_first_unread_message() {
    let mut model = logged_in();
    apply(&mut model, [room(1, "ana", "seen")]);
    model.open_direct("ana");
    apply(
        &mut model,
        [
            ClientEvent::Joined {
                username: "bo".into(),
            },
            room(2, "bo", "first unread"),
            room(3, "ana", "second unread"),
        ],
    );
    model.select(0);
    let room = model.selected();
    assert_eq!(room.unread(), 0, "opening clears the count");
    let marker = room.read_marker().expect("marker");
    assert_eq!(
        room.entries()[marker].text,
        "first unread",
        "the join notice is not unread"
    );
    // Leaving again reads everything: no marker next time.
    model.select(1);
    model.select(0);
    assert_eq!(model.selected().read_marker(), None);
}

#[test]
fn no_marker_when_nothing_new_arrived() {
    let mut model = logged_in();
    apply(&mut model, [room(1, "ana", "a")]);
    model.open_direct("ana");
    apply(
        &mut model,
        [ClientEvent::Left {
            username: "x".into(),
            reason: LeaveReason::Exit,
        }],
    );
    model.select(0);
    assert_eq!(model.selected().read_marker(), None);
}

#[test]
fn history_is_marked_earlier_and_never_counted_unread() {
    let mut model = logged_in();
    model.open_direct("ana");
    apply(
        &mut model,
        [
            history(room(1, "ana", "old")),
            history(direct(2, "ana", "me", "old dm")),
            ClientEvent::HistoryDone,
            room(3, "ana", "new"),
        ],
    );
    let room = model
        .conversation(&ConversationId::Room("#general".into()))
        .unwrap();
    assert_eq!(room.unread(), 1);
    assert!(matches!(
        room.entries()[0].kind,
        EntryKind::Message { history: true, .. }
    ));
    assert!(matches!(
        room.entries()[1].kind,
        EntryKind::Message { history: false, .. }
    ));
}

#[test]
fn history_replayed_after_a_reconnect_is_not_shown_twice_and_missed_lines_count() {
    let mut model = logged_in();
    model.open_direct("ana");
    apply(
        &mut model,
        [history(room(1, "ana", "old")), ClientEvent::HistoryDone],
    );
    apply(
        &mut model,
        [
            ClientEvent::State(ConnectionState::Reconnecting {
                in_secs: 1,
                attempt: 1,
            }),
            ClientEvent::State(ConnectionState::Connected),
            ClientEvent::LoggedIn {
                username: "me".into(),
            },
            history(room(1, "ana", "old")),
            history(room(2, "ana", "missed while away")),
            ClientEvent::HistoryDone,
        ],
    );
    let room = model
        .conversation(&ConversationId::Room("#general".into()))
        .unwrap();
    let messages: Vec<_> = room
        .entries()
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message { history, .. } => Some((e.text.as_str(), *history)),
            EntryKind::Notice(_) => None,
        })
        .collect();
    assert_eq!(messages, [("old", true), ("missed while away", false)]);
    assert_eq!(room.unread(), 1);
}

/// An own line as typed here: no id yet, a client id for its deliveries.
fn typed(client_id: u64, text: &str) -> ClientEvent {
    ClientEvent::Room(ChatLine {
        id: 0,
        timestamp_ms: T0,
        from: "me".into(),
        room: Some("#general".into()),
        to: None,
        text: text.into(),
        history: false,
        own: true,
        client_id: Some(client_id),
    })
}

fn stored(client_id: u64, id: u64, already_shown: bool) -> ClientEvent {
    ClientEvent::Delivery {
        client_id,
        delivery: Delivery::Stored {
            id,
            timestamp_ms: T0 + 5,
            already_shown,
        },
    }
}

fn states(conversation: &Conversation) -> Vec<(u64, SendState)> {
    conversation
        .entries()
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message { id, state, .. } => Some((*id, state.clone())),
            EntryKind::Notice(_) => None,
        })
        .collect()
}

#[test]
fn an_own_message_is_pending_until_the_server_stores_it() {
    let mut model = logged_in();
    apply(&mut model, [typed(5, "hello")]);
    assert_eq!(
        states(model.selected()),
        [(0, SendState::Pending { client_id: 5 })]
    );
    apply(&mut model, [stored(5, 7, false)]);
    assert_eq!(states(model.selected()), [(7, SendState::Stored)]);
    assert_eq!(
        model.selected().entries()[0].timestamp_ms,
        T0 + 5,
        "server time"
    );
    // The history replay of a later reconnect does not show it again.
    apply(&mut model, [history(room(7, "me", "hello"))]);
    assert_eq!(texts(model.selected()), ["hello"]);
}

#[test]
fn an_own_message_replayed_before_its_acknowledgement_is_shown_once() {
    let mut model = logged_in();
    apply(
        &mut model,
        [
            typed(5, "hello"),
            // Reconnect: the replay has it, then the resend is acknowledged.
            history(room(7, "me", "hello")),
            stored(5, 7, true),
        ],
    );
    assert_eq!(texts(model.selected()), ["hello"]);
    assert_eq!(states(model.selected()), [(7, SendState::Stored)]);
}

#[test]
fn a_refused_own_message_stays_visible_and_says_why() {
    let mut model = logged_in();
    apply(
        &mut model,
        [
            typed(5, "too fast"),
            ClientEvent::Delivery {
                client_id: 5,
                delivery: Delivery::Failed(client_core::ServerRefusal {
                    code: proto_core::message::ErrorCode::RateLimited,
                    detail: "too many messages".into(),
                }),
            },
        ],
    );
    assert_eq!(
        states(model.selected()),
        [(
            0,
            SendState::Failed {
                reason: "slow down: too many messages".into()
            }
        )]
    );
}

#[test]
fn joins_and_leaves_update_the_online_list_and_the_room() {
    let mut model = logged_in();
    apply(
        &mut model,
        [
            ClientEvent::Online {
                users: vec!["me".into(), "Zoë".into(), "ana".into()],
            },
            ClientEvent::Joined {
                username: "bo".into(),
            },
            ClientEvent::Left {
                username: "ana".into(),
                reason: LeaveReason::Dropped,
            },
        ],
    );
    assert_eq!(model.online(), ["bo", "me", "Zoë"]);
    let room = model
        .conversation(&ConversationId::Room("#general".into()))
        .unwrap();
    let notices: Vec<_> = room
        .entries()
        .iter()
        .map(|e| (e.subject.as_deref(), e.text.as_str()))
        .collect();
    assert_eq!(
        notices,
        [
            (Some("bo"), "came online"),
            (Some("ana"), "lost connection")
        ]
    );
    assert!(matches!(
        room.entries()[0].kind,
        EntryKind::Notice(NoticeStyle::Join)
    ));
    assert!(matches!(
        room.entries()[1].kind,
        EntryKind::Notice(NoticeStyle::Leave)
    ));
}

#[test]
fn notices_go_to_the_open_conversation_and_errors_are_styled_apart() {
    let mut model = logged_in();
    model.open_direct("ana");
    apply(
        &mut model,
        [
            ClientEvent::Notice {
                text: "no such user".into(),
                kind: NoticeKind::Error,
            },
            ClientEvent::Notice {
                text: "help".into(),
                kind: NoticeKind::Info,
            },
        ],
    );
    let kinds: Vec<_> = model
        .selected()
        .entries()
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Notice(NoticeStyle::Error),
            EntryKind::Notice(NoticeStyle::Info)
        ]
    );
}

#[test]
fn losing_the_connection_shows_in_status_and_room() {
    let mut model = logged_in();
    apply(
        &mut model,
        [
            ClientEvent::Online {
                users: vec!["me".into()],
            },
            ClientEvent::State(ConnectionState::Reconnecting {
                in_secs: 4,
                attempt: 2,
            }),
        ],
    );
    assert!(model.status().text().contains("reconnecting in 4 s"));
    assert!(model.online().is_empty());
    apply(&mut model, [ClientEvent::State(ConnectionState::Connected)]);
    assert_eq!(
        texts(model.selected()),
        ["Connection lost; reconnecting…", "Reconnected"]
    );
}

#[test]
fn long_timelines_drop_the_oldest_entries_and_keep_the_marker_in_place() {
    let mut model = logged_in();
    model.open_direct("ana");
    for id in 1..=(MAX_ENTRIES as u64 + 10) {
        model.handle_event(&room(id, "ana", &id.to_string()), T0);
    }
    model.select(0);
    let room = model.selected();
    assert_eq!(room.entries().len(), MAX_ENTRIES);
    assert_eq!(room.entries()[0].text, "11");
    assert_eq!(room.read_marker(), Some(0));
}

fn room_joined(name: &str, topic: &str) -> ClientEvent {
    ClientEvent::RoomJoined(client_core::RoomView {
        name: name.into(),
        topic: topic.into(),
        invite_only: false,
        role: client_core::RoomRole::Member,
        members: 3,
    })
}

fn line_in(room_name: &str, id: u64, from: &str, text: &str) -> ClientEvent {
    match room(id, from, text) {
        ClientEvent::Room(line) => ClientEvent::Room(ChatLine {
            room: Some(room_name.into()),
            ..line
        }),
        other => other,
    }
}

#[test]
fn each_room_is_a_conversation_listed_before_the_direct_ones() {
    let mut model = logged_in();
    apply(
        &mut model,
        [
            room_joined("#general", ""),
            direct(1, "ana", "me", "psst"),
            room_joined("#Rust", "crabs"),
            line_in("#rust", 2, "ana", "borrowck"),
            line_in("#general", 3, "ana", "hi all"),
        ],
    );
    assert_eq!(
        unread(&model),
        [("#general", 0), ("#Rust", 1), ("ana", 1)],
        "the selected #general counts nothing; #rust is #Rust"
    );
    let rust = model
        .conversation(&ConversationId::Room("#Rust".into()))
        .unwrap();
    assert_eq!(rust.topic, "crabs");
    assert_eq!(texts(rust), ["borrowck"]);
    assert_eq!(model.command_room(), "#general");
    model.select(1);
    assert_eq!(model.command_room(), "#Rust");
    model.open_direct("ana");
    assert_eq!(
        model.command_room(),
        "#general",
        "from a DM: the first room"
    );
}

#[test]
fn leaving_a_room_closes_its_conversation_and_members_are_announced_in_it() {
    let mut model = logged_in();
    apply(
        &mut model,
        [
            room_joined("#general", ""),
            room_joined("#ops", ""),
            ClientEvent::MemberJoined {
                room: "#ops".into(),
                user: "bo".into(),
            },
        ],
    );
    let ops = model
        .conversation(&ConversationId::Room("#ops".into()))
        .unwrap();
    let notices: Vec<_> = ops
        .entries()
        .iter()
        .map(|e| (e.subject.as_deref(), e.text.as_str()))
        .collect();
    assert_eq!(notices, [(Some("bo"), "joined the room")]);
    model.select(1);
    apply(
        &mut model,
        [ClientEvent::RoomLeft {
            room: "#OPS".into(),
            reason: client_core::RoomLeaveReason::Left,
        }],
    );
    assert_eq!(unread(&model), [("#general", 0)]);
    assert_eq!(model.selected_index(), 0);
    assert_eq!(texts(model.selected()).last(), Some(&"You left #OPS"));
}

#[test]
fn a_removal_says_who_did_it_where_the_user_lands() {
    use client_core::{RoomChange, RoomLeaveReason};
    use proto_core::message::{Reason, Username};
    let mut model = logged_in();
    apply(
        &mut model,
        [room_joined("#general", ""), room_joined("#den", "")],
    );
    model.select(1);
    let removed = |change| ClientEvent::RoomChanged {
        room: "#den".into(),
        actor: "mo".into(),
        change,
    };
    apply(
        &mut model,
        [
            removed(RoomChange::Kicked {
                user: Username::new("ME").unwrap(),
                reason: Reason::new("too loud").unwrap(),
            }),
            ClientEvent::RoomLeft {
                room: "#den".into(),
                reason: RoomLeaveReason::Kicked,
            },
        ],
    );
    assert_eq!(unread(&model), [("#general", 0)]);
    assert_eq!(
        texts(model.selected()).last(),
        Some(&"You were removed from #den by mo (too loud)")
    );
    // Someone else's removal is the room's own news; a later leave of
    // this user's own accord names nobody.
    apply(
        &mut model,
        [
            room_joined("#den", ""),
            removed(RoomChange::Banned {
                user: Username::new("bo").unwrap(),
                reason: Reason::empty(),
                until_ms: 0,
            }),
            ClientEvent::RoomLeft {
                room: "#den".into(),
                reason: RoomLeaveReason::Left,
            },
        ],
    );
    assert_eq!(texts(model.selected()).last(), Some(&"You left #den"));
}

#[test]
fn read_markers_go_out_when_a_conversation_is_shown_and_only_forward() {
    let mut model = logged_in();
    apply(
        &mut model,
        [
            ClientEvent::HistoryDone,
            direct(5, "ana", "me", "one"),
            direct(6, "ana", "me", "two"),
        ],
    );
    let ana = ConversationId::Direct("ana".into());
    // #general is open, focused and at its end, but has nothing.
    assert_eq!(model.poll_mark_read(), None);
    model.open_direct("ana");
    assert_eq!(model.poll_mark_read(), Some((ana.clone(), 6)), "opened");
    assert_eq!(model.poll_mark_read(), None, "once per id");
    model.select(0);
    model.open_direct("ana");
    assert_eq!(model.poll_mark_read(), None, "opened again, nothing new");

    // A burst in the open, focused, bottom-scrolled conversation: one
    // marker, the newest.
    apply(
        &mut model,
        [
            direct(7, "ana", "me", "three"),
            direct(8, "ana", "me", "four"),
        ],
    );
    assert_eq!(model.poll_mark_read(), Some((ana.clone(), 8)));
    assert_eq!(model.poll_mark_read(), None);

    model.set_viewing(true, false);
    apply(&mut model, [direct(9, "ana", "me", "scrolled up")]);
    assert_eq!(model.poll_mark_read(), None, "scrolled up: not seen");
    model.set_viewing(false, true);
    apply(&mut model, [direct(10, "ana", "me", "unfocused")]);
    assert_eq!(model.poll_mark_read(), None, "window unfocused: not seen");
    model.set_viewing(true, true);
    assert_eq!(
        model.poll_mark_read(),
        Some((ana.clone(), 10)),
        "back: seen now"
    );

    // Another device read further: nothing to repeat.
    apply(
        &mut model,
        [
            direct(11, "ana", "me", "read elsewhere"),
            ClientEvent::ReadMarker {
                conversation: client_core::ConversationRef::Direct("ana".into()),
                up_to_id: 11,
                unread: 0,
            },
        ],
    );
    assert_eq!(model.poll_mark_read(), None);
}

#[test]
fn no_read_marker_before_the_history_or_while_offline() {
    let mut model = logged_in();
    apply(&mut model, [room(3, "ana", "replayed")]);
    assert_eq!(model.poll_mark_read(), None, "the greeting is not done");
    apply(&mut model, [ClientEvent::HistoryDone]);
    apply(
        &mut model,
        [ClientEvent::State(ConnectionState::Reconnecting {
            in_secs: 1,
            attempt: 1,
        })],
    );
    assert_eq!(model.poll_mark_read(), None, "offline");
    apply(&mut model, [ClientEvent::State(ConnectionState::Connected)]);
    assert_eq!(
        model.poll_mark_read(),
        Some((ConversationId::Room("#general".into()), 3))
    );
}
