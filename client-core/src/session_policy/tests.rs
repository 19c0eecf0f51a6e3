//! The policy with virtual time: every timer to the exact instant, no
//! sockets, no sleeps.

use proto_core::message::{
    BoundedList, ErrorCode, ErrorDetail, HistoryEntry, MessageText, ResumeToken, ServerMessage,
    Username,
};

use super::*;
use crate::cause::FatalCause;

/// Jitter factor 1.0 (delays are the exact ceilings) and client ids
/// from 100.
struct FixedRng;

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        u32::MAX
    }
    fn next_u64(&mut self) -> u64 {
        100
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0xff);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        dest.fill(0xff);
        Ok(())
    }
}

const SEC: Duration = Duration::from_secs(1);

fn policy(reconnect: bool) -> (SessionPolicy, Instant) {
    let t0 = Instant::now();
    let mut p = SessionPolicy::new(PolicyConfig::new(reconnect), t0, 0, Box::new(FixedRng));
    let start = p.start();
    assert!(matches!(
        start.as_slice(),
        [
            Action::Emit(ClientEvent::State(ConnectionState::Connecting)),
            Action::Connect {
                resume: None,
                register: true
            }
        ]
    ));
    (p, t0)
}

fn token(n: u8) -> ResumeToken {
    ResumeToken::from_bytes([n; 32])
}

fn log_in(p: &mut SessionPolicy, now: Instant) -> Vec<Action> {
    p.handle(
        Event::LoggedIn {
            username: "Ann".into(),
            token: token(1),
        },
        now,
    )
}

/// A policy logged in at the returned instant.
fn online(reconnect: bool) -> (SessionPolicy, Instant) {
    let (mut p, t0) = policy(reconnect);
    let _ = log_in(&mut p, t0);
    (p, t0)
}

fn sent(actions: &[Action]) -> Vec<&ClientMessage> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn finished(actions: &[Action]) -> Option<&CloseCause> {
    actions.iter().find_map(|a| match a {
        Action::Finish(c) => Some(c),
        _ => None,
    })
}

fn type_room(p: &mut SessionPolicy, text: &str, now: Instant) -> Vec<Action> {
    p.handle(
        Event::Input(Input::Room {
            room: "#general".into(),
            text: text.into(),
        }),
        now,
    )
}

/// The client id of the message the actions sent or showed as pending.
fn client_id_of(actions: &[Action]) -> u64 {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Emit(ClientEvent::Room(line)) if line.own => line.client_id,
            _ => None,
        })
        .expect("an own pending line")
}

fn stored(client_id: u64, id: u64) -> Event {
    Event::Received(ServerMessage::Stored {
        client_id,
        id,
        timestamp_ms: 1,
    })
}

fn room(id: u64, from: &str) -> ServerMessage {
    ServerMessage::RoomMessage {
        id,
        timestamp_ms: 1,
        room: RoomName::general(),
        from: Username::new(from).unwrap(),
        text: MessageText::new("hi").unwrap(),
    }
}

fn shown_ids(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(ClientEvent::Room(line) | ClientEvent::Direct(line)) => Some(line.id),
            _ => None,
        })
        .collect()
}

/// Runs the policy from `from` to `until` while the user types every
/// `typing` and the server says nothing: wake-ups at each keystroke and
/// at each `poll_timeout`, as the driver does. Returns each timer action
/// with its time since `from`.
fn silent_server(
    p: &mut SessionPolicy,
    from: Instant,
    typing: Duration,
    until: Duration,
) -> Vec<(Duration, Action)> {
    let mut seen = Vec::new();
    let mut next_key = from + typing;
    while !p.is_finished() && next_key - from <= until {
        match p.poll_timeout() {
            Some(at) if at <= next_key => {
                for action in p.handle_timeout(at) {
                    seen.push((at - from, action));
                }
            }
            _ => {
                let _ = type_room(p, "anyone there?", next_key);
                next_key += typing;
            }
        }
    }
    seen
}

#[test]
fn a_silent_server_is_pinged_at_45_s_and_declared_dead_at_90_s_while_the_user_keeps_typing() {
    for typing in [SEC / 10, SEC, 5 * SEC, 44 * SEC] {
        let (mut p, t0) = online(false);
        let actions = silent_server(&mut p, t0, typing, 600 * SEC);
        let pings: Vec<Duration> = actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::Send(ClientMessage::Ping { .. })))
            .map(|(at, _)| *at)
            .collect();
        assert_eq!(pings, [45 * SEC], "typing every {typing:?}");
        let end: Vec<(Duration, &CloseCause)> = actions
            .iter()
            .filter_map(|(at, a)| match a {
                Action::Finish(c) => Some((*at, c)),
                _ => None,
            })
            .collect();
        assert!(
            matches!(
                end.as_slice(),
                [(at, CloseCause::ConnectionFailed(RetryCause::ServerSilent))] if *at == 90 * SEC
            ),
            "typing every {typing:?}: {end:?}"
        );
    }
}

#[test]
fn hearing_from_the_server_restarts_the_silence_clock() {
    let (mut p, t0) = online(false);
    assert_eq!(p.poll_timeout(), Some(t0 + 45 * SEC));
    let ping = p.handle_timeout(t0 + 45 * SEC);
    let nonce = match sent(&ping).as_slice() {
        [ClientMessage::Ping { nonce }] => *nonce,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        nonce, 45_000,
        "wall-clock milliseconds, from the epoch given"
    );
    let _ = p.handle(
        Event::Received(ServerMessage::Pong { nonce }),
        t0 + 50 * SEC,
    );
    assert_eq!(p.poll_timeout(), Some(t0 + 95 * SEC));
    assert!(
        p.handle_timeout(t0 + 90 * SEC).is_empty(),
        "no verdict at 90 s"
    );
    assert_eq!(
        sent(&p.handle_timeout(t0 + 95 * SEC)).len(),
        1,
        "a new ping"
    );
    let end = p.handle_timeout(t0 + 140 * SEC);
    assert!(matches!(
        finished(&end),
        Some(CloseCause::ConnectionFailed(RetryCause::ServerSilent))
    ));
}

#[test]
fn a_ping_from_the_server_is_answered_with_its_nonce() {
    let (mut p, t0) = online(false);
    let actions = p.handle(Event::Received(ServerMessage::Ping { nonce: 7 }), t0);
    assert_eq!(sent(&actions), [&ClientMessage::Pong { nonce: 7 }]);
}

#[test]
fn quit_with_nothing_in_flight_says_goodbye_at_once() {
    let (mut p, t0) = online(false);
    let actions = p.handle(Event::Quit, t0);
    assert!(matches!(
        actions.as_slice(),
        [Action::CloseSession, Action::Finish(CloseCause::Left)]
    ));
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn quit_waits_for_the_acknowledgements_then_leaves() {
    let (mut p, t0) = online(false);
    let a = client_id_of(&type_room(&mut p, "one", t0));
    let b = client_id_of(&type_room(&mut p, "two", t0));
    let quit_at = t0 + SEC;
    assert!(p.handle(Event::Quit, quit_at).is_empty(), "waits");
    assert_eq!(p.poll_timeout(), Some(quit_at + QUIT_GRACE));
    assert!(
        type_room(&mut p, "late", quit_at).is_empty(),
        "nothing new goes out while leaving"
    );
    let first = p.handle(stored(a, 10), quit_at + SEC);
    assert_eq!(finished(&first).map(|_| ()), None, "one still in flight");
    let last = p.handle(stored(b, 11), quit_at + 2 * SEC);
    assert!(
        matches!(
            last.as_slice(),
            [
                Action::Emit(ClientEvent::Delivery {
                    delivery: Delivery::Stored { id: 11, .. },
                    ..
                }),
                Action::CloseSession,
                Action::Finish(CloseCause::Left)
            ]
        ),
        "{last:?}"
    );
}

#[test]
fn quit_gives_up_after_5_s_and_reports_the_unacknowledged() {
    let (mut p, t0) = online(false);
    let a = client_id_of(&type_room(&mut p, "one", t0));
    let b = client_id_of(&type_room(&mut p, "two", t0));
    let _ = p.handle(stored(a, 10), t0);
    let c = client_id_of(&type_room(&mut p, "three", t0));
    assert!(p.handle(Event::Quit, t0).is_empty());
    assert!(
        p.handle_timeout(t0 + QUIT_GRACE - Duration::from_millis(1))
            .is_empty(),
        "an early wake-up does nothing"
    );
    let actions = p.handle_timeout(t0 + QUIT_GRACE);
    let unconfirmed: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(ClientEvent::Delivery {
                client_id,
                delivery: Delivery::Unconfirmed,
            }) => Some(*client_id),
            _ => None,
        })
        .collect();
    assert_eq!(unconfirmed, [b, c]);
    assert!(matches!(
        &actions[2..],
        [Action::CloseSession, Action::Finish(CloseCause::Left)]
    ));
    assert!(p.is_finished());
}

/// The reconnect delays (jitter fixed at 1.0) and when each attempt starts.
fn reconnect_delays(p: &mut SessionPolicy, mut now: Instant, attempts: usize) -> Vec<u64> {
    let mut delays = Vec::new();
    for _ in 0..attempts {
        let at = p.poll_timeout().expect("a reconnect timer");
        delays.push((at - now).as_secs());
        assert!(p.handle_timeout(at - SEC / 2).is_empty(), "not yet");
        let actions = p.handle_timeout(at);
        assert!(
            matches!(
                actions.as_slice(),
                [
                    Action::Emit(ClientEvent::State(ConnectionState::Connecting)),
                    Action::Connect {
                        register: false,
                        ..
                    }
                ]
            ),
            "{actions:?}"
        );
        now = at;
        let failed = p.handle(
            Event::AttemptFailed(AttemptError::Retry(RetryCause::ServerFull)),
            now,
        );
        let in_secs = failed.iter().find_map(|a| match a {
            Action::Emit(ClientEvent::State(ConnectionState::Reconnecting { in_secs, .. })) => {
                Some(*in_secs)
            }
            _ => None,
        });
        assert_eq!(
            in_secs,
            Some(p.poll_timeout().unwrap().duration_since(now).as_secs())
        );
    }
    delays
}

#[test]
fn reconnects_back_off_1_2_4_to_60_s_and_start_over_after_a_login() {
    let (mut p, t0) = online(true);
    let lost = p.handle(Event::ConnectionLost(RetryCause::Closed), t0);
    assert!(matches!(
        lost.as_slice(),
        [
            Action::Emit(ClientEvent::ConnectionLost {
                cause: CloseCause::ConnectionFailed(RetryCause::Closed),
                unconfirmed: 0
            }),
            Action::Emit(ClientEvent::State(ConnectionState::Reconnecting {
                in_secs: 1,
                attempt: 1
            }))
        ]
    ));
    assert_eq!(
        reconnect_delays(&mut p, t0, 9),
        [1, 2, 4, 8, 16, 32, 60, 60, 60]
    );
    // The next attempt logs in: the schedule starts over.
    let at = p.poll_timeout().unwrap();
    let _ = p.handle_timeout(at);
    let _ = log_in(&mut p, at);
    let _ = p.handle(Event::ConnectionLost(RetryCause::Closed), at);
    assert_eq!(p.poll_timeout(), Some(at + SEC));
}

#[test]
fn a_reconnect_resumes_with_the_last_token_and_never_registers_again() {
    let (mut p, t0) = online(true);
    let _ = p.handle(Event::ConnectionLost(RetryCause::Closed), t0);
    let actions = p.handle_timeout(t0 + SEC);
    assert!(
        matches!(
            &actions[1],
            Action::Connect { resume: Some(t), register: false } if *t == token(1)
        ),
        "{actions:?}"
    );
}

#[test]
fn unacknowledged_messages_are_resent_after_a_reconnect_with_the_same_client_ids() {
    let (mut p, t0) = online(true);
    let a = client_id_of(&type_room(&mut p, "one", t0));
    let typed = type_room(&mut p, "two", t0);
    let b = client_id_of(&typed);
    assert_eq!(
        sent(&typed),
        [&ClientMessage::SendRoom {
            client_id: b,
            room: RoomName::general(),
            text: MessageText::new("two").unwrap()
        }]
    );
    let _ = p.handle(stored(a, 10), t0);
    let lost = p.handle(Event::ConnectionLost(RetryCause::Closed), t0 + SEC);
    assert!(matches!(
        lost.first(),
        Some(Action::Emit(ClientEvent::ConnectionLost {
            unconfirmed: 1,
            ..
        }))
    ));
    // Typed while offline: shown as pending and queued, nothing sent.
    let offline = type_room(&mut p, "three", t0 + SEC);
    let c = client_id_of(&offline);
    assert!(sent(&offline).is_empty());
    assert_eq!(p.unacknowledged(), 2);

    let at = p.poll_timeout().unwrap();
    let _ = p.handle_timeout(at);
    let back = log_in(&mut p, at);
    assert_eq!(
        sent(&back),
        [
            &ClientMessage::SendRoom {
                client_id: b,
                room: RoomName::general(),
                text: MessageText::new("two").unwrap()
            },
            &ClientMessage::SendRoom {
                client_id: c,
                room: RoomName::general(),
                text: MessageText::new("three").unwrap()
            },
        ]
    );
    assert_eq!((a, b, c), (100, 101, 102));
}

#[test]
fn a_message_seen_live_is_not_shown_again_from_history() {
    let (mut p, t0) = online(true);
    let live = p.handle(Event::Received(room(7, "Bob")), t0);
    assert_eq!(shown_ids(&live), [7]);
    assert!(shown_ids(&p.handle(Event::Received(room(7, "Bob")), t0)).is_empty());
    let entry = |id| HistoryEntry {
        id,
        timestamp_ms: 1,
        from: Username::new("Bob").unwrap(),
        conversation: Conversation::Room {
            room: RoomName::general(),
        },
        text: MessageText::new("hi").unwrap(),
    };
    let batch = ServerMessage::HistoryBatch {
        more: false,
        entries: BoundedList::new(vec![entry(7), entry(8)]).unwrap(),
    };
    let replay = p.handle(Event::Received(batch), t0);
    assert_eq!(shown_ids(&replay), [8]);
    assert!(matches!(
        replay.last(),
        Some(Action::Emit(ClientEvent::HistoryDone))
    ));
}

#[test]
fn an_own_message_replayed_before_its_acknowledgement_is_marked_already_shown() {
    let (mut p, t0) = online(true);
    let id = client_id_of(&type_room(&mut p, "mine", t0));
    let _ = p.handle(Event::Received(room(12, "Ann")), t0);
    let ack = p.handle(stored(id, 12), t0);
    assert!(matches!(
        ack.as_slice(),
        [Action::Emit(ClientEvent::Delivery {
            delivery: Delivery::Stored {
                id: 12,
                already_shown: true,
                ..
            },
            ..
        })]
    ));
    assert!(p.handle(stored(id, 12), t0).is_empty(), "settled once");
}

#[test]
fn a_refused_message_is_settled_with_the_servers_code() {
    let (mut p, t0) = online(true);
    let id = client_id_of(&type_room(&mut p, "too fast", t0));
    let actions = p.handle(
        Event::Received(ServerMessage::SendFailed {
            client_id: id,
            code: ErrorCode::RateLimited,
            detail: ErrorDetail::empty(),
        }),
        t0,
    );
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Emit(ClientEvent::Delivery {
            delivery: Delivery::Failed(ServerRefusal {
                code: ErrorCode::RateLimited,
                ..
            }),
            ..
        })
    )));
    assert_eq!(p.unacknowledged(), 0);
}

#[test]
fn a_failed_first_attempt_ends_the_client_instead_of_retrying() {
    let (mut p, t0) = policy(true);
    let actions = p.handle(
        Event::AttemptFailed(AttemptError::Retry(RetryCause::ServerFull)),
        t0,
    );
    assert!(matches!(
        finished(&actions),
        Some(CloseCause::ConnectionFailed(RetryCause::ServerFull))
    ));
    let (mut p, t0) = policy(true);
    let actions = p.handle(
        Event::AttemptFailed(AttemptError::Fatal(FatalCause::ServerKeyDeclined)),
        t0,
    );
    assert!(matches!(
        finished(&actions),
        Some(CloseCause::Fatal(FatalCause::ServerKeyDeclined))
    ));
}

#[test]
fn a_session_taken_over_ends_the_client_and_a_shutdown_reconnects() {
    let goodbye = |reason| Event::Received(ServerMessage::Goodbye { reason });
    let (mut p, t0) = online(true);
    let actions = p.handle(goodbye(GoodbyeReason::Replaced), t0);
    assert!(matches!(
        finished(&actions),
        Some(CloseCause::ClosedByServer(GoodbyeReason::Replaced))
    ));
    let (mut p, t0) = online(true);
    let actions = p.handle(goodbye(GoodbyeReason::ServerShutdown), t0);
    assert!(finished(&actions).is_none());
    assert_eq!(p.poll_timeout(), Some(t0 + SEC));
    let (mut p, t0) = online(false);
    let actions = p.handle(goodbye(GoodbyeReason::ServerShutdown), t0);
    assert!(matches!(
        finished(&actions),
        Some(CloseCause::ClosedByServer(GoodbyeReason::ServerShutdown))
    ));
}

#[test]
fn quit_while_waiting_to_reconnect_ends_at_once() {
    let (mut p, t0) = online(true);
    let _ = p.handle(Event::ConnectionLost(RetryCause::Closed), t0);
    let actions = p.handle(Event::Quit, t0 + SEC / 2);
    assert!(matches!(
        actions.as_slice(),
        [Action::Finish(CloseCause::Left)]
    ));
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn join_of_a_missing_room_creates_it_and_the_answer_is_shown() {
    let (mut p, t0) = online(true);
    let typed = p.handle(Event::Input(Input::Join("rust".into())), t0);
    let rust = RoomName::new("#rust").unwrap();
    assert_eq!(
        sent(&typed),
        [&ClientMessage::JoinRoom { room: rust.clone() }]
    );
    let missing = p.handle(
        Event::Received(ServerMessage::Error {
            code: ErrorCode::NoSuchRoom,
            detail: ErrorDetail::empty(),
        }),
        t0,
    );
    assert_eq!(
        sent(&missing),
        [&ClientMessage::CreateRoom {
            room: rust.clone(),
            invite_only: false,
            topic: Topic::empty(),
        }]
    );
    let joined = p.handle(
        Event::Received(ServerMessage::RoomJoined {
            info: proto_core::message::RoomInfo {
                room: rust,
                topic: Topic::empty(),
                invite_only: false,
                role: proto_core::message::RoomRole::Owner,
                members: 1,
            },
        }),
        t0,
    );
    assert!(matches!(
        &joined[..],
        [Action::Emit(ClientEvent::RoomJoined(RoomView { name, .. }))] if name == "#rust"
    ));
    // A later NoSuchRoom (no join waiting) is shown, not answered.
    let later = p.handle(
        Event::Received(ServerMessage::Error {
            code: ErrorCode::NoSuchRoom,
            detail: ErrorDetail::empty(),
        }),
        t0,
    );
    assert!(sent(&later).is_empty());
    assert!(matches!(
        &later[..],
        [Action::Emit(ClientEvent::Notice {
            kind: NoticeKind::Error,
            ..
        })]
    ));
}

#[test]
fn an_invalid_room_name_is_refused_before_anything_is_sent() {
    let (mut p, t0) = online(true);
    let typed = p.handle(Event::Input(Input::Join("#no spaces".into())), t0);
    assert!(sent(&typed).is_empty());
    assert!(matches!(
        &typed[..],
        [Action::Emit(ClientEvent::Notice {
            kind: NoticeKind::Error,
            ..
        })]
    ));
}

#[test]
fn room_lines_name_their_room() {
    let (mut p, t0) = online(true);
    let live = p.handle(Event::Received(room(7, "Bob")), t0);
    assert!(matches!(
        &live[..],
        [Action::Emit(ClientEvent::Room(ChatLine { room: Some(r), .. }))] if r == "#general"
    ));
    let own = type_room(&mut p, "hi", t0);
    assert!(own.iter().any(|a| matches!(
        a,
        Action::Emit(ClientEvent::Room(ChatLine { room: Some(r), own: true, .. })) if r == "#general"
    )));
}

#[test]
fn history_asks_for_what_is_older_than_the_oldest_line_shown() {
    let (mut p, t0) = online(true);
    let asked = |actions: Vec<Action>| match sent(&actions)[..] {
        [ClientMessage::History {
            before_id, limit, ..
        }] => (*before_id, *limit),
        ref other => panic!("expected one History, got {other:?}"),
    };
    let first = p.handle(
        Event::Input(Input::History {
            conversation: ConversationRef::Room("#general".into()),
            count: 20,
        }),
        t0,
    );
    assert_eq!(asked(first), (0, 20), "nothing shown yet: the newest");
    for id in [40, 30, 50] {
        let _ = p.handle(Event::Received(room(id, "Bob")), t0);
    }
    let next = p.handle(
        Event::Input(Input::History {
            conversation: ConversationRef::Room("#general".into()),
            count: 20,
        }),
        t0,
    );
    assert_eq!(asked(next), (30, 20));
    let read = p.handle(
        Event::Input(Input::MarkRead {
            conversation: ConversationRef::Room("#GENERAL".into()),
            up_to_id: None,
        }),
        t0,
    );
    assert!(matches!(
        sent(&read)[..],
        [ClientMessage::MarkRead { up_to_id: 50, .. }]
    ));
}

#[test]
fn mark_read_up_to_an_id_goes_out_for_rooms_and_direct_conversations() {
    let (mut p, t0) = online(true);
    let mark = |p: &mut SessionPolicy, conversation: ConversationRef, up_to_id| {
        let actions = p.handle(
            Event::Input(Input::MarkRead {
                conversation,
                up_to_id,
            }),
            t0,
        );
        sent(&actions).into_iter().cloned().collect::<Vec<_>>()
    };
    assert_eq!(
        mark(&mut p, ConversationRef::Direct("Bob".into()), Some(7)),
        [ClientMessage::MarkRead {
            conversation: Conversation::Direct {
                peer: Username::new("Bob").unwrap()
            },
            up_to_id: 7,
        }]
    );
    assert_eq!(
        mark(&mut p, ConversationRef::Room("#general".into()), Some(9)),
        [ClientMessage::MarkRead {
            conversation: Conversation::Room {
                room: RoomName::general()
            },
            up_to_id: 9,
        }]
    );
    assert!(
        mark(&mut p, ConversationRef::Direct("Bob".into()), None).is_empty(),
        "nothing of Bob's known: no newest to mark"
    );
    assert!(mark(&mut p, ConversationRef::Direct(String::new()), Some(3)).is_empty());
}

#[test]
fn history_of_a_direct_conversation_asks_before_the_oldest_line_with_that_partner() {
    let (mut p, t0) = online(true);
    let ask = |p: &mut SessionPolicy, partner: &str| {
        let actions = p.handle(
            Event::Input(Input::History {
                conversation: ConversationRef::Direct(partner.into()),
                count: 50,
            }),
            t0,
        );
        match sent(&actions)[..] {
            [ClientMessage::History {
                conversation: Conversation::Direct { peer },
                before_id,
                ..
            }] => (peer.as_str().to_owned(), *before_id),
            ref other => panic!("expected one History, got {other:?}"),
        }
    };
    let direct = |id: u64, from: &str, to: &str| {
        Event::Received(ServerMessage::DirectMessage {
            id,
            timestamp_ms: 1,
            from: Username::new(from).unwrap(),
            to: Username::new(to).unwrap(),
            text: MessageText::new("hi").unwrap(),
        })
    };
    assert_eq!(ask(&mut p, "bob"), ("bob".into(), 0), "nothing yet");
    let _ = p.handle(direct(70, "Bob", "Ann"), t0);
    let _ = p.handle(direct(60, "Ann", "Bob"), t0);
    let _ = p.handle(direct(55, "Ann", "Cy"), t0);
    let _ = p.handle(Event::Received(room(10, "Bob")), t0);
    assert_eq!(
        ask(&mut p, "BOB"),
        ("BOB".into(), 60),
        "both directions count, other partners and rooms do not"
    );
    // An own message, once stored, counts too.
    let typed = p.handle(
        Event::Input(Input::Direct {
            to: "Dee".into(),
            text: "hello".into(),
        }),
        t0,
    );
    let client_id = typed
        .iter()
        .find_map(|a| match a {
            Action::Emit(ClientEvent::Direct(line)) => line.client_id,
            _ => None,
        })
        .expect("an own pending line");
    let _ = p.handle(stored(client_id, 90), t0);
    assert_eq!(ask(&mut p, "Dee"), ("Dee".into(), 90));
    // Not a user name: said, not sent.
    let refused = p.handle(
        Event::Input(Input::History {
            conversation: ConversationRef::Direct("no spaces".into()),
            count: 50,
        }),
        t0,
    );
    assert!(sent(&refused).is_empty());
}

#[test]
fn names_gathers_every_page_and_ignores_pages_nobody_asked_for() {
    use proto_core::message::{MemberInfo, MemberInfos, RoomRole};
    let (mut p, t0) = online(true);
    let page = |offset: u32, from: usize, count: usize| {
        Event::Received(ServerMessage::MemberPage {
            room: RoomName::new("#general").unwrap(),
            offset,
            total: 250,
            members: MemberInfos::new(
                (from..from + count)
                    .map(|i| MemberInfo {
                        user: Username::new(&format!("u{i:03}")).unwrap(),
                        role: RoomRole::Member,
                        online: i % 2 == 0,
                    })
                    .collect(),
            )
            .unwrap(),
        })
    };
    // Unasked: dropped.
    assert!(p.handle(page(0, 0, 200), t0).is_empty());
    let asked = p.handle(Event::Input(Input::Names("#General".into())), t0);
    assert!(matches!(
        sent(&asked)[..],
        [ClientMessage::Members { offset: 0, .. }]
    ));
    let more = p.handle(page(0, 0, 200), t0);
    assert!(matches!(
        sent(&more)[..],
        [ClientMessage::Members { offset: 200, .. }]
    ));
    // A page for the wrong offset is not taken for the one asked.
    assert!(p.handle(page(0, 0, 200), t0).is_empty());
    let done = p.handle(page(200, 200, 50), t0);
    match &done[..] {
        [Action::Emit(ClientEvent::Members {
            room,
            members,
            total: 250,
        })] => {
            assert_eq!(room, "#general");
            assert_eq!(members.len(), 250);
            assert_eq!(members[249].name, "u249");
            assert!(members[0].online && !members[1].online);
        }
        other => panic!("expected the members, got {other:?}"),
    }
    // Answered once.
    assert!(p.handle(page(200, 200, 50), t0).is_empty());
}

#[test]
fn presence_from_several_shared_rooms_is_told_once_per_change_and_never_of_oneself() {
    use proto_core::message::{Departure, LeaveReason, PresenceOffline, PresenceOnline};
    let (mut p, t0) = online(true);
    let me = p.me.clone();
    let batch = |online: &[&str], offline: &[&str]| {
        Event::Received(ServerMessage::Presence {
            online: PresenceOnline::new(online.iter().map(|n| Username::new(n).unwrap()).collect())
                .unwrap(),
            offline: PresenceOffline::new(
                offline
                    .iter()
                    .map(|n| Departure {
                        user: Username::new(n).unwrap(),
                        reason: LeaveReason::Exit,
                    })
                    .collect(),
            )
            .unwrap(),
        })
    };
    let told = |actions: Vec<Action>| -> Vec<String> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Emit(ClientEvent::Joined { username }) => Some(format!("+{username}")),
                Action::Emit(ClientEvent::Left { username, .. }) => Some(format!("-{username}")),
                _ => None,
            })
            .collect()
    };
    // Bob is in two rooms with us: the same change comes twice.
    assert_eq!(told(p.handle(batch(&["Bob", &me], &[]), t0)), ["+Bob"]);
    assert!(told(p.handle(batch(&["bob"], &[]), t0)).is_empty());
    assert_eq!(told(p.handle(batch(&[], &["Bob"]), t0)), ["-Bob"]);
    assert!(told(p.handle(batch(&[], &["Bob"]), t0)).is_empty());
    // Someone online before we logged in, leaving: told.
    assert_eq!(told(p.handle(batch(&[], &["Carol"]), t0)), ["-Carol"]);
}
