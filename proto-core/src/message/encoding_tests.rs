//! Whole-message tests: the byte layouts published in the spec, decoding
//! errors, worst-case sizes, and properties over generated messages and
//! arbitrary bytes.

use proptest::prelude::*;
use proptest::sample::select;

use crate::message::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex written with optional spaces (for readability of the vectors).
fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn user(s: &str) -> Username {
    Username::new(s).unwrap()
}

fn text(s: &str) -> MessageText {
    MessageText::new(s).unwrap()
}

fn room(s: &str) -> RoomName {
    RoomName::new(s).unwrap()
}

fn password(s: &str) -> Password {
    Password::new(s.to_owned()).unwrap()
}

/// Asserts `msg` encodes to exactly `expected` and decodes back to itself.
fn assert_client_vector(msg: ClientMessage, expected: &str) {
    let bytes = msg.encode();
    assert_eq!(hex(&bytes), hex(&unhex(expected)), "{msg:?}");
    assert_eq!(ClientMessage::decode(&bytes).unwrap(), msg);
}

fn assert_server_vector(msg: ServerMessage, expected: &str) {
    let bytes = msg.encode();
    assert_eq!(hex(&bytes), hex(&unhex(expected)), "{msg:?}");
    assert_eq!(ServerMessage::decode(&bytes).unwrap(), msg);
}

// ---- Published byte layouts (docs/PROTOCOL.md examples) ----

#[test]
fn client_login_has_the_published_layout() {
    assert_client_vector(
        ClientMessage::Login {
            username: user("alice"),
            password: password("pw"),
        },
        "02 0005 616c696365 0002 7077",
    );
}

#[test]
fn client_register_with_arabic_name_has_the_published_layout() {
    assert_client_vector(
        ClientMessage::Register {
            username: user("علي"),
            password: password("pw"),
        },
        "01 0006 d8b9d984d98a 0002 7077",
    );
}

#[test]
fn client_direct_message_has_the_published_layout() {
    assert_client_vector(
        ClientMessage::DirectMessage {
            to: user("Zoë"),
            text: text("hi\n"),
        },
        "11 0004 5a6fc3ab 0003 68690a",
    );
}

#[test]
fn client_acknowledged_sends_have_the_published_layout() {
    assert_client_vector(
        ClientMessage::SendRoom {
            client_id: 0x0a0b_0c0d_0e0f_1011,
            room: room("#rust"),
            text: text("yo"),
        },
        "13 0a0b0c0d0e0f1011 0005 2372757374 0002 796f",
    );
    assert_client_vector(
        ClientMessage::SendDirect {
            client_id: 7,
            to: user("Zoë"),
            text: text("hi\n"),
        },
        "14 0000000000000007 0004 5a6fc3ab 0003 68690a",
    );
}

#[test]
fn server_stored_has_the_published_layout() {
    assert_server_vector(
        ServerMessage::Stored {
            client_id: 0x0a0b_0c0d_0e0f_1011,
            id: 1,
            timestamp_ms: 1_700_000_000_000,
        },
        "16 0a0b0c0d0e0f1011 0000000000000001 0000018bcfe56800",
    );
    assert_server_vector(
        ServerMessage::SendFailed {
            client_id: 9,
            code: ErrorCode::UnknownRecipient,
            detail: ErrorDetail::new("no such user").unwrap(),
        },
        "17 0000000000000009 0002 000c 6e6f20737563682075736572",
    );
}

#[test]
fn client_resume_ping_and_fieldless_messages_have_the_published_layout() {
    assert_client_vector(
        ClientMessage::Resume {
            token: ResumeToken::from_bytes([0x11; 32]),
        },
        &format!("03 {}", "11".repeat(32)),
    );
    assert_client_vector(
        ClientMessage::Ping {
            nonce: 0x0102_0304_0506_0708,
        },
        "20 0102030405060708",
    );
    assert_client_vector(ClientMessage::Pong { nonce: 0 }, "21 0000000000000000");
    assert_client_vector(
        ClientMessage::RoomMessage {
            room: room("#rust"),
            text: text("yo"),
        },
        "10 0005 2372757374 0002 796f",
    );
    assert_client_vector(ClientMessage::WhoIsOnline, "12");
    assert_client_vector(ClientMessage::Goodbye, "30");
}

#[test]
fn server_auth_messages_have_the_published_layout() {
    assert_server_vector(
        ServerMessage::AuthOk {
            username: user("alice"),
            resume_token: ResumeToken::from_bytes([0x11; 32]),
            token_lifetime_secs: 86_400,
        },
        &format!("01 0005 616c696365 {} 00015180", "11".repeat(32)),
    );
    assert_server_vector(
        ServerMessage::AuthFailed {
            reason: AuthFailure::LoginFailed,
        },
        "02 01",
    );
}

#[test]
fn opaque_client_messages_have_the_published_layout() {
    assert_client_vector(
        ClientMessage::RegisterStart {
            username: user("alice"),
            request: Box::new([0x11; 32]),
        },
        &format!("04 0005 616c696365 {}", "11".repeat(32)),
    );
    assert_client_vector(
        ClientMessage::RegisterFinish {
            upload: Box::new([0x22; 192]),
        },
        &format!("05 {}", "22".repeat(192)),
    );
    assert_client_vector(
        ClientMessage::LoginStart {
            username: user("alice"),
            request: Box::new([0x33; 96]),
        },
        &format!("06 0005 616c696365 {}", "33".repeat(96)),
    );
    assert_client_vector(
        ClientMessage::LoginFinish {
            finalization: Box::new([0x44; 64]),
        },
        &format!("07 {}", "44".repeat(64)),
    );
    assert_client_vector(
        ClientMessage::ChangePasswordStart {
            request: Box::new([0x33; 96]),
            registration_request: Box::new([0x11; 32]),
        },
        &format!("08 {}{}", "33".repeat(96), "11".repeat(32)),
    );
    assert_client_vector(
        ClientMessage::ChangePasswordFinish {
            finalization: Box::new([0x44; 64]),
            upload: Box::new([0x22; 192]),
        },
        &format!("09 {}{}", "44".repeat(64), "22".repeat(192)),
    );
    // A field one byte short is truncated, one byte long is trailing.
    let short = unhex(&format!("07 {}", "44".repeat(63)));
    assert_eq!(ClientMessage::decode(&short), Err(MessageError::Truncated));
    let long = unhex(&format!("07 {}", "44".repeat(65)));
    assert_eq!(
        ClientMessage::decode(&long),
        Err(MessageError::TrailingBytes { count: 1 })
    );
}

#[test]
fn opaque_server_messages_have_the_published_layout() {
    assert_server_vector(
        ServerMessage::RegisterResponse {
            response: Box::new([0x55; 64]),
        },
        &format!("03 {}", "55".repeat(64)),
    );
    assert_server_vector(
        ServerMessage::LoginResponse {
            response: Box::new([0x66; 320]),
        },
        &format!("04 {}", "66".repeat(320)),
    );
    assert_server_vector(ServerMessage::LegacyLoginRequired, "05");
    assert_server_vector(
        ServerMessage::ChangePasswordResponse {
            response: Box::new([0x66; 320]),
            registration_response: Box::new([0x55; 64]),
        },
        &format!("06 {}{}", "66".repeat(320), "55".repeat(64)),
    );
    assert_server_vector(
        ServerMessage::PasswordChanged {
            resume_token: ResumeToken::from_bytes([0x11; 32]),
            token_lifetime_secs: 86_400,
        },
        &format!("07 {} 00015180", "11".repeat(32)),
    );
}

#[test]
fn server_room_and_direct_messages_have_the_published_layout() {
    assert_server_vector(
        ServerMessage::RoomMessage {
            id: 1,
            timestamp_ms: 1_700_000_000_000,
            room: room("#rust"),
            from: user("bob"),
            text: text("hi"),
        },
        "10 0000000000000001 0000018bcfe56800 0005 2372757374 0003 626f62 0002 6869",
    );
    assert_server_vector(
        ServerMessage::DirectMessage {
            id: 2,
            timestamp_ms: 1_700_000_000_000,
            from: user("bob"),
            to: user("Zoë"),
            text: text("hi"),
        },
        "11 0000000000000002 0000018bcfe56800 0003 626f62 0004 5a6fc3ab 0002 6869",
    );
}

#[test]
fn client_room_requests_have_the_published_layout() {
    assert_client_vector(
        ClientMessage::CreateRoom {
            room: room("#rust"),
            invite_only: true,
            topic: Topic::new("crabs").unwrap(),
        },
        "40 0005 2372757374 01 0005 6372616273",
    );
    assert_client_vector(
        ClientMessage::JoinRoom {
            room: room("#rust"),
        },
        "41 0005 2372757374",
    );
    assert_client_vector(
        ClientMessage::LeaveRoom {
            room: room("#rust"),
        },
        "42 0005 2372757374",
    );
    assert_client_vector(
        ClientMessage::ListRooms {
            filter: RoomFilter::new("ru").unwrap(),
        },
        "43 0002 7275",
    );
}

#[test]
fn server_room_notices_have_the_published_layout() {
    assert_server_vector(
        ServerMessage::RoomJoined {
            info: RoomInfo {
                room: room("#rust"),
                topic: Topic::new("crabs").unwrap(),
                invite_only: false,
                role: RoomRole::Owner,
                members: 2,
            },
        },
        "18 0005 2372757374 0005 6372616273 00 03 00000002",
    );
    assert_server_vector(
        ServerMessage::RoomLeft {
            room: room("#rust"),
            reason: RoomLeaveReason::Left,
        },
        "19 0005 2372757374 01",
    );
    assert_server_vector(
        ServerMessage::RoomList {
            more: false,
            rooms: RoomSummaries::new(vec![RoomSummary {
                room: room("#rust"),
                topic: Topic::empty(),
                members: 7,
            }])
            .unwrap(),
        },
        "1a 00 0001 0005 2372757374 0000 00000007",
    );
    assert_server_vector(
        ServerMessage::MemberJoined {
            room: room("#rust"),
            user: user("bob"),
        },
        "1b 0005 2372757374 0003 626f62",
    );
    assert_server_vector(
        ServerMessage::MemberLeft {
            room: room("#rust"),
            user: user("bob"),
            reason: RoomLeaveReason::Left,
        },
        "1c 0005 2372757374 0003 626f62 01",
    );
}

#[test]
fn moderation_messages_have_the_published_layout() {
    assert_client_vector(
        ClientMessage::Kick {
            room: room("#rust"),
            user: user("bob"),
            reason: Reason::new("spam").unwrap(),
        },
        "45 0005 2372757374 0003 626f62 0004 7370616d",
    );
    assert_client_vector(
        ClientMessage::Ban {
            room: room("#rust"),
            user: user("bob"),
            reason: Reason::empty(),
            minutes: 60,
        },
        "46 0005 2372757374 0003 626f62 0000 0000003c",
    );
    assert_client_vector(
        ClientMessage::SetTopic {
            room: room("#rust"),
            topic: Topic::new("crabs").unwrap(),
        },
        "48 0005 2372757374 0005 6372616273",
    );
    assert_client_vector(
        ClientMessage::SetRole {
            room: room("#rust"),
            user: user("bob"),
            role: RoomRole::Moderator,
        },
        "4a 0005 2372757374 0003 626f62 02",
    );
    assert_client_vector(
        ClientMessage::SetAccountDisabled {
            user: user("bob"),
            disabled: true,
        },
        "50 0003 626f62 01",
    );
    assert_server_vector(
        ServerMessage::RoomChanged {
            room: room("#rust"),
            actor: user("alice"),
            change: RoomChange::Kicked {
                user: user("bob"),
                reason: Reason::new("spam").unwrap(),
            },
        },
        "1d 0005 2372757374 0005 616c696365 03 0003 626f62 0004 7370616d",
    );
    assert_server_vector(
        ServerMessage::RoomChanged {
            room: room("#rust"),
            actor: user("alice"),
            change: RoomChange::Banned {
                user: user("bob"),
                reason: Reason::empty(),
                until_ms: 0,
            },
        },
        "1d 0005 2372757374 0005 616c696365 04 0003 626f62 0000 0000000000000000",
    );
    assert_server_vector(
        ServerMessage::Invited {
            room: room("#rust"),
            by: user("alice"),
            topic: Topic::empty(),
        },
        "1e 0005 2372757374 0005 616c696365 0000",
    );
    assert_server_vector(ServerMessage::Done, "1f");
    assert_eq!(
        ServerMessage::decode(&unhex("1d 0002 2378 0001 61 09")).unwrap_err(),
        MessageError::InvalidEnum {
            field: "room change",
            value: 9
        }
    );
    assert!(Reason::new(&"r".repeat(MAX_REASON_BYTES + 1)).is_err());
    assert!(Reason::new("two\nlines").is_err());
}

#[test]
fn history_paging_and_read_markers_have_the_published_layout() {
    let rust = || Conversation::Room {
        room: room("#rust"),
    };
    assert_client_vector(
        ClientMessage::History {
            conversation: rust(),
            before_id: 100,
            limit: 50,
        },
        "54 00 0005 2372757374 0000000000000064 0032",
    );
    assert_client_vector(
        ClientMessage::MarkRead {
            conversation: Conversation::Direct { peer: user("bob") },
            up_to_id: 7,
        },
        "55 01 0003 626f62 0000000000000007",
    );
    assert_server_vector(
        ServerMessage::HistoryPage {
            conversation: rust(),
            more: false,
            complete: true,
            entries: HistoryEntries::empty(),
        },
        "09 00 0005 2372757374 00 01 0000",
    );
    assert_server_vector(
        ServerMessage::ReadMarker {
            conversation: rust(),
            up_to_id: 7,
            unread: 3,
        },
        "0b 00 0005 2372757374 0000000000000007 00000003",
    );
    for limit in ["0000", "00c9"] {
        assert_eq!(
            ClientMessage::decode(&unhex(&format!("54 00 0002 2378 0000000000000000 {limit}")))
                .unwrap_err(),
            MessageError::InvalidEnum {
                field: "history limit",
                value: u16::from_str_radix(limit, 16).unwrap()
            }
        );
    }
    let chunks = ServerMessage::history_page_chunks(rust(), vec![widest_history_entry(); 20], true);
    let flags: Vec<(bool, bool)> = chunks
        .iter()
        .map(|c| match c {
            ServerMessage::HistoryPage { more, complete, .. } => (*more, *complete),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(flags, [(true, false), (false, true)]);
    assert!(chunks.iter().all(|c| c.encode().len() <= MAX_MESSAGE_BYTES));
}

#[test]
fn member_pages_have_the_published_layout() {
    assert_client_vector(
        ClientMessage::Members {
            room: room("#rust"),
            offset: 200,
        },
        "56 0005 2372757374 000000c8",
    );
    assert_server_vector(
        ServerMessage::MemberPage {
            room: room("#rust"),
            offset: 0,
            total: 2,
            members: MemberInfos::new(vec![
                MemberInfo {
                    user: user("alice"),
                    role: RoomRole::Owner,
                    online: true,
                },
                MemberInfo {
                    user: user("bob"),
                    role: RoomRole::Member,
                    online: false,
                },
            ])
            .unwrap(),
        },
        "0c 0005 2372757374 00000000 00000002 0002 0005 616c696365 03 01 0003 626f62 01 00",
    );
    // 201 members do not fit one page.
    let many = vec![
        MemberInfo {
            user: user("bob"),
            role: RoomRole::Member,
            online: false,
        };
        MAX_MEMBERS_PER_PAGE + 1
    ];
    assert!(MemberInfos::new(many).is_err());
    let mut wire = unhex("0c 0002 2378 00000000 000000c9 00c9");
    for _ in 0..=MAX_MEMBERS_PER_PAGE {
        wire.extend(unhex("0003 626f62 01 00"));
    }
    assert!(ServerMessage::decode(&wire).is_err());
}

#[test]
fn device_messages_have_the_published_layout() {
    assert_client_vector(
        ClientMessage::SetDevice {
            id: 0x0102_0304_0506_0708,
            name: DeviceName::new("laptop").unwrap(),
        },
        "0a 0102030405060708 0006 6c6170746f70",
    );
    assert_client_vector(ClientMessage::ListDevices, "52");
    assert_client_vector(ClientMessage::LogoutDevice { id: 7 }, "53 0000000000000007");
    assert_server_vector(
        ServerMessage::DeviceList {
            devices: DeviceInfos::new(vec![DeviceInfo {
                id: 7,
                name: DeviceName::new("laptop").unwrap(),
                last_seen_ms: 1_700_000_000_000,
                address: "127.0.0.1".into(),
                online: true,
                current: false,
            }])
            .unwrap(),
        },
        "08 0001 0000000000000007 0006 6c6170746f70 0000018bcfe56800 0009 3132372e302e302e31 01 00",
    );
    // An address is printable ASCII.
    assert!(ServerMessage::decode(&unhex(
        "08 0001 0000000000000007 0001 61 0000000000000000 0001 0a 00 00"
    ))
    .is_err());
}

#[test]
fn max_size_room_list_fits_and_long_lists_are_paged() {
    let widest = RoomSummary {
        room: widest_room(),
        topic: Topic::new(&"😀".repeat(MAX_TOPIC_BYTES / 4)).unwrap(),
        members: u32::MAX,
    };
    let msg = ServerMessage::RoomList {
        more: true,
        rooms: RoomSummaries::new(vec![widest.clone(); MAX_ROOMS_PER_LIST]).unwrap(),
    };
    let bytes = msg.encode();
    assert_eq!(bytes.len(), 64_904);
    assert_eq!(ServerMessage::decode(&bytes).unwrap(), msg);
    assert!(RoomSummaries::new(vec![widest.clone(); MAX_ROOMS_PER_LIST + 1]).is_err());
    let pages = ServerMessage::room_list_pages(vec![widest; 250]);
    let flags: Vec<bool> = pages
        .iter()
        .map(|p| match p {
            ServerMessage::RoomList { more, .. } => *more,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(flags, [true, true, false]);
}

#[test]
fn a_room_name_without_its_hash_does_not_decode() {
    assert_eq!(
        ClientMessage::decode(&unhex("41 0004 72757374")).unwrap_err(),
        MessageError::InvalidRoomName(UsernameError::ForbiddenChar { code_point: 0x72 })
    );
    assert_eq!(
        ClientMessage::decode(&unhex("41 0001 23")).unwrap_err(),
        MessageError::InvalidRoomName(UsernameError::Empty)
    );
}

#[test]
fn server_presence_messages_have_the_published_layout() {
    assert_server_vector(
        ServerMessage::Presence {
            online: PresenceOnline::new(vec![user("alice")]).unwrap(),
            offline: PresenceOffline::new(vec![Departure {
                user: user("bob"),
                reason: LeaveReason::Dropped,
            }])
            .unwrap(),
        },
        "0d 0001 0005 616c696365 0001 0003 626f62 02",
    );
    // The widest batch fits a message; one name more does not decode.
    let widest = ServerMessage::Presence {
        online: PresenceOnline::new(vec![widest_username(); MAX_PRESENCE_PER_LIST]).unwrap(),
        offline: PresenceOffline::new(vec![
            Departure {
                user: widest_username(),
                reason: LeaveReason::Exit,
            };
            MAX_PRESENCE_PER_LIST
        ])
        .unwrap(),
    };
    assert_eq!(widest.encode().len(), 62_645);
    let mut wire = unhex("0d 00f1");
    for _ in 0..=MAX_PRESENCE_PER_LIST {
        wire.extend(unhex("0001 61"));
    }
    wire.extend(unhex("0000"));
    assert!(ServerMessage::decode(&wire).is_err());
    // Batches: none for nothing, and as many messages as the lists need.
    assert!(ServerMessage::presence_batches(vec![], vec![]).is_empty());
    let batches = ServerMessage::presence_batches(vec![user("a"); 500], vec![]);
    let sizes: Vec<usize> = batches
        .iter()
        .map(|m| match m {
            ServerMessage::Presence { online, offline } => online.len() + offline.len(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(sizes, [240, 240, 20]);
    assert_server_vector(
        ServerMessage::OnlineUsers {
            more: false,
            users: UserList::new(vec![user("alice"), user("李雷")]).unwrap(),
        },
        "14 00 0002 0005 616c696365 0006 e69d8ee99bb7",
    );
}

#[test]
fn server_history_batch_has_the_published_layout() {
    assert_server_vector(
        ServerMessage::HistoryBatch {
            more: true,
            entries: HistoryEntries::new(vec![
                HistoryEntry {
                    id: 7,
                    timestamp_ms: 1000,
                    conversation: Conversation::Direct { peer: user("bob") },
                    from: user("alice"),
                    text: text("yo"),
                },
                HistoryEntry {
                    id: 8,
                    timestamp_ms: 1001,
                    conversation: Conversation::Room {
                        room: room("#rust"),
                    },
                    from: user("bob"),
                    text: text("hi"),
                },
            ])
            .unwrap(),
        },
        "15 01 0002 \
         0000000000000007 00000000000003e8 01 0003 626f62 0005 616c696365 0002 796f \
         0000000000000008 00000000000003e9 00 0005 2372757374 0003 626f62 0002 6869",
    );
}

#[test]
fn server_control_messages_have_the_published_layout() {
    assert_server_vector(ServerMessage::Ping { nonce: 5 }, "20 0000000000000005");
    assert_server_vector(ServerMessage::Pong { nonce: 5 }, "21 0000000000000005");
    assert_server_vector(
        ServerMessage::Goodbye {
            reason: GoodbyeReason::IdleTimeout,
        },
        "30 03",
    );
    assert_server_vector(
        ServerMessage::Error {
            code: ErrorCode::RateLimited,
            detail: ErrorDetail::new("slow down").unwrap(),
        },
        "40 0003 0009 736c6f7720646f776e",
    );
    assert_server_vector(
        ServerMessage::Error {
            code: ErrorCode::Internal,
            detail: ErrorDetail::empty(),
        },
        "40 0008 0000",
    );
}

// ---- Decoding errors ----

#[test]
fn empty_input_is_truncated() {
    assert_eq!(ClientMessage::decode(&[]), Err(MessageError::Truncated));
    assert_eq!(ServerMessage::decode(&[]), Err(MessageError::Truncated));
}

#[test]
fn unknown_tags_are_rejected() {
    for tag in [0x00, 0x0b, 0x15, 0x16, 0x22, 0x31, 0x4d, 0x57, 0xff] {
        assert_eq!(
            ClientMessage::decode(&[tag]),
            Err(MessageError::UnknownTag(tag))
        );
    }
    for tag in [0x00, 0x0a, 0x12, 0x13, 0x22, 0x31, 0x41, 0xff] {
        assert_eq!(
            ServerMessage::decode(&[tag]),
            Err(MessageError::UnknownTag(tag))
        );
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    assert_eq!(
        ClientMessage::decode(&unhex("30 00")),
        Err(MessageError::TrailingBytes { count: 1 })
    );
    assert_eq!(
        ServerMessage::decode(&unhex("20 0000000000000005 0000")),
        Err(MessageError::TrailingBytes { count: 2 })
    );
}

#[test]
fn invalid_utf8_is_rejected_not_replaced() {
    // Lone continuation byte, overlong '/', UTF-16 surrogate, beyond U+10FFFF.
    for bad in ["80", "c0af", "eda080", "f4908080"] {
        let len = bad.len() / 2;
        let username = format!("11 {len:04x} {bad} 0002 6869");
        assert_eq!(
            ClientMessage::decode(&unhex(&username)),
            Err(MessageError::InvalidUtf8 { field: "username" }),
            "{bad}"
        );
        let body = format!("10 0002 2378 {len:04x} {bad}");
        assert_eq!(
            ClientMessage::decode(&unhex(&body)),
            Err(MessageError::InvalidUtf8 { field: "text" }),
            "{bad}"
        );
    }
    assert_eq!(
        ClientMessage::decode(&unhex("02 0001 61 0001 ff")),
        Err(MessageError::InvalidUtf8 { field: "password" })
    );
}

#[test]
fn over_limit_length_is_rejected_before_reading_the_bytes() {
    // The length alone is enough: the bytes it announces are absent.
    assert_eq!(
        ClientMessage::decode(&unhex("11 0081")),
        Err(MessageError::TooLong {
            field: "username",
            max: MAX_USERNAME_BYTES
        })
    );
    assert_eq!(
        ClientMessage::decode(&unhex("10 0002 2378 1001")),
        Err(MessageError::TooLong {
            field: "text",
            max: MAX_TEXT_BYTES
        })
    );
    assert_eq!(
        ClientMessage::decode(&unhex("02 0001 61 0401")),
        Err(MessageError::TooLong {
            field: "password",
            max: MAX_PASSWORD_BYTES
        })
    );
    assert_eq!(
        ServerMessage::decode(&unhex("40 0001 0101")),
        Err(MessageError::TooLong {
            field: "detail",
            max: MAX_ERROR_DETAIL_BYTES
        })
    );
    assert_eq!(
        ClientMessage::decode(&unhex("10 0002 2378 ffff")),
        Err(MessageError::TooLong {
            field: "text",
            max: MAX_TEXT_BYTES
        })
    );
}

#[test]
fn length_beyond_the_input_is_truncated() {
    assert_eq!(
        ClientMessage::decode(&unhex("10 0002 2378 0005 6869")),
        Err(MessageError::Truncated)
    );
}

#[test]
fn oversized_list_counts_are_rejected_before_allocating() {
    assert_eq!(
        ServerMessage::decode(&unhex("14 00 01f4")),
        Err(MessageError::TooManyItems {
            field: "users",
            max: MAX_ONLINE_USERS_PER_MESSAGE
        })
    );
    assert_eq!(
        ServerMessage::decode(&unhex("14 00 ffff")),
        Err(MessageError::TooManyItems {
            field: "users",
            max: MAX_ONLINE_USERS_PER_MESSAGE
        })
    );
    assert_eq!(
        ServerMessage::decode(&unhex("15 00 000f")),
        Err(MessageError::TooManyItems {
            field: "entries",
            max: MAX_HISTORY_ENTRIES_PER_BATCH
        })
    );
    // Within the limit but more items than the remaining bytes could hold.
    assert_eq!(
        ServerMessage::decode(&unhex("14 00 01f3 0001 61")),
        Err(MessageError::Truncated)
    );
    assert_eq!(
        ServerMessage::decode(&unhex("15 00 000e")),
        Err(MessageError::Truncated)
    );
}

#[test]
fn input_longer_than_max_message_bytes_is_rejected_up_front() {
    let mut big = vec![0x10];
    big.resize(MAX_MESSAGE_BYTES + 1, b'a');
    let expected = MessageError::TooLong {
        field: "message",
        max: MAX_MESSAGE_BYTES,
    };
    assert_eq!(ClientMessage::decode(&big).unwrap_err(), expected);
    assert_eq!(ServerMessage::decode(&big).unwrap_err(), expected);
}

#[test]
fn bool_other_than_zero_or_one_is_rejected() {
    for value in [0x02, 0x80, 0xff] {
        let bytes = [0x14, value, 0x00, 0x00];
        assert_eq!(
            ServerMessage::decode(&bytes),
            Err(MessageError::InvalidBool {
                field: "more",
                value
            })
        );
    }
}

#[test]
fn unknown_enum_values_are_rejected() {
    let cases: [(&str, &'static str, u16); 9] = [
        ("02 00", "auth failure", 0),
        ("02 08", "auth failure", 8),
        ("0d 0000 0001 0001 61 05", "leave reason", 5),
        ("30 00", "goodbye reason", 0),
        ("30 09", "goodbye reason", 9),
        ("40 000f 0000", "error code", 15),
        ("18 0002 2378 0000 00 00 00000000", "room role", 0),
        ("19 0002 2378 05", "room leave reason", 5),
        (
            "15 00 0001 0000000000000001 0000000000000001 02 000000000000000000000000",
            "conversation",
            2,
        ),
    ];
    for (bytes, field, value) in cases {
        assert_eq!(
            ServerMessage::decode(&unhex(bytes)),
            Err(MessageError::InvalidEnum { field, value }),
            "{bytes}"
        );
    }
}

#[test]
fn invalid_fields_on_the_wire_are_rejected_like_in_constructors() {
    let e = |s: &str| ClientMessage::decode(&unhex(s)).unwrap_err();
    // Non-NFC "e" + U+0301.
    assert_eq!(
        e("11 0003 65cc81 0002 6869"),
        MessageError::InvalidUsername(UsernameError::NotNfc)
    );
    assert_eq!(
        e("11 0000 0002 6869"),
        MessageError::InvalidUsername(UsernameError::Empty)
    );
    // U+202E in a username and in text.
    assert_eq!(
        e("11 0004 61e280ae 0002 6869"),
        MessageError::InvalidUsername(UsernameError::ForbiddenChar { code_point: 0x202E })
    );
    assert_eq!(
        e("10 0002 2378 0004 61e280ae"),
        MessageError::InvalidText(TextError::ForbiddenChar { code_point: 0x202E })
    );
    assert_eq!(
        e("10 0002 2378 0002 0a20"),
        MessageError::InvalidText(TextError::Blank)
    );
    assert_eq!(
        e("10 0002 2378 0000"),
        MessageError::InvalidText(TextError::Empty)
    );
    assert_eq!(
        e("02 0001 61 0003 610062"),
        MessageError::InvalidPassword(PasswordError::ContainsNul)
    );
    assert_eq!(
        e("01 0001 61 0000"),
        MessageError::InvalidPassword(PasswordError::Empty)
    );
    assert_eq!(
        ServerMessage::decode(&unhex("40 0001 0003 1b5b41")).unwrap_err(),
        MessageError::InvalidText(TextError::ForbiddenChar { code_point: 0x1B })
    );
}

#[test]
fn client_messages_never_carry_a_sender() {
    // M5: the only username in any chat message is the recipient's.
    let bytes = ClientMessage::RoomMessage {
        room: room("#x"),
        text: text("hi"),
    }
    .encode();
    assert_eq!(bytes, unhex("10 0002 2378 0002 6869"));
}

#[test]
fn register_error_does_not_echo_the_password() {
    let err = ClientMessage::decode(&unhex("01 0001 61 0007 73656372657400")).unwrap_err();
    assert!(!err.to_string().contains("secret"));
    let ok = ClientMessage::decode(&unhex("01 0001 61 0006 736563726574")).unwrap();
    assert!(!format!("{ok:?}").contains("secret"));
}

// ---- Worst-case sizes ----

/// A username of 32 four-byte characters: the longest encoding.
fn widest_username() -> Username {
    user(&"\u{20000}".repeat(MAX_USERNAME_CHARS))
}

/// 4 096 bytes of four-byte emoji: the longest text.
fn widest_text() -> MessageText {
    text(&"😀".repeat(MAX_TEXT_BYTES / 4))
}

/// `#` and 32 four-byte characters: the longest room name.
fn widest_room() -> RoomName {
    room(&format!("#{}", "\u{20000}".repeat(MAX_USERNAME_CHARS)))
}

fn widest_history_entry() -> HistoryEntry {
    HistoryEntry {
        id: u64::MAX,
        timestamp_ms: u64::MAX,
        conversation: Conversation::Room {
            room: widest_room(),
        },
        from: widest_username(),
        text: widest_text(),
    }
}

#[test]
fn max_size_history_batch_fits() {
    let entries = vec![widest_history_entry(); MAX_HISTORY_ENTRIES_PER_BATCH];
    let msg = ServerMessage::HistoryBatch {
        more: true,
        entries: HistoryEntries::new(entries).unwrap(),
    };
    let bytes = msg.encode();
    assert_eq!(bytes.len(), 61_268);
    assert_eq!(msg.encoded_len(), bytes.len());
    assert!(bytes.len() <= MAX_MESSAGE_BYTES);
    assert_eq!(ServerMessage::decode(&bytes).unwrap(), msg);
}

#[test]
fn history_batch_one_entry_over_the_cap_cannot_be_built() {
    let entries = vec![widest_history_entry(); MAX_HISTORY_ENTRIES_PER_BATCH + 1];
    assert_eq!(
        HistoryEntries::new(entries).unwrap_err(),
        MessageError::TooManyItems {
            field: "list",
            max: MAX_HISTORY_ENTRIES_PER_BATCH
        }
    );
}

#[test]
fn max_size_online_users_fits() {
    let users = vec![widest_username(); MAX_ONLINE_USERS_PER_MESSAGE];
    let msg = ServerMessage::OnlineUsers {
        more: false,
        users: UserList::new(users).unwrap(),
    };
    let bytes = msg.encode();
    assert_eq!(bytes.len(), 64_874);
    assert!(bytes.len() <= MAX_MESSAGE_BYTES);
    assert_eq!(ServerMessage::decode(&bytes).unwrap(), msg);
    assert!(UserList::new(vec![widest_username(); MAX_ONLINE_USERS_PER_MESSAGE + 1]).is_err());
}

#[test]
fn max_size_single_messages_fit() {
    let client = [
        ClientMessage::Register {
            username: widest_username(),
            password: Password::new("x".repeat(MAX_PASSWORD_BYTES)).unwrap(),
        },
        ClientMessage::DirectMessage {
            to: widest_username(),
            text: widest_text(),
        },
        ClientMessage::SendDirect {
            client_id: u64::MAX,
            to: widest_username(),
            text: widest_text(),
        },
    ];
    let sizes: Vec<usize> = client.iter().map(|m| m.encode().len()).collect();
    assert_eq!(sizes, [1_157, 4_229, 4_237]);
    let room_message = ClientMessage::RoomMessage {
        room: widest_room(),
        text: widest_text(),
    };
    assert_eq!(room_message.encode().len(), 4_230);
    let send_room = ClientMessage::SendRoom {
        client_id: u64::MAX,
        room: widest_room(),
        text: widest_text(),
    };
    assert_eq!(
        send_room.encode().len(),
        4_238,
        "the largest client message"
    );
    let resume = ClientMessage::Resume {
        token: ResumeToken::from_bytes([0; 32]),
    };
    assert_eq!(resume.encode().len(), 33);
    let others = [
        ServerMessage::AuthOk {
            username: widest_username(),
            resume_token: ResumeToken::from_bytes([0; 32]),
            token_lifetime_secs: u32::MAX,
        },
        ServerMessage::RoomMessage {
            id: 0,
            timestamp_ms: 0,
            room: widest_room(),
            from: widest_username(),
            text: widest_text(),
        },
    ];
    let sizes: Vec<usize> = others.iter().map(|m| m.encode().len()).collect();
    assert_eq!(sizes, [167, 4_376], "the spec's maxima");
    let server = [
        ServerMessage::DirectMessage {
            id: u64::MAX,
            timestamp_ms: u64::MAX,
            from: widest_username(),
            to: widest_username(),
            text: widest_text(),
        },
        ServerMessage::Error {
            code: ErrorCode::Internal,
            detail: ErrorDetail::new(&"x".repeat(MAX_ERROR_DETAIL_BYTES)).unwrap(),
        },
    ];
    let sizes: Vec<usize> = server.iter().map(|m| m.encode().len()).collect();
    assert_eq!(sizes, [4_375, 261]);
    for m in &server {
        assert_eq!(&ServerMessage::decode(&m.encode()).unwrap(), m);
    }
}

#[test]
fn long_lists_are_paginated_with_more_flags() {
    let users: Vec<Username> = (0..1000).map(|i| user(&format!("u{i}"))).collect();
    let pages = ServerMessage::online_users_pages(users.clone());
    assert_eq!(pages.len(), 3);
    let mut seen = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let ServerMessage::OnlineUsers { more, users } = page else {
            panic!("not OnlineUsers: {page:?}");
        };
        assert_eq!(*more, i < 2);
        seen.extend(users.iter().cloned());
        assert!(page.encode().len() <= MAX_MESSAGE_BYTES);
    }
    assert_eq!(seen, users);

    assert_eq!(
        ServerMessage::online_users_pages(vec![]),
        vec![ServerMessage::OnlineUsers {
            more: false,
            users: UserList::empty()
        }]
    );
    let batches = ServerMessage::history_batches(vec![widest_history_entry(); 30]);
    let flags: Vec<bool> = batches
        .iter()
        .map(|b| match b {
            ServerMessage::HistoryBatch { more, .. } => *more,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(flags, [true, true, false]);
}

#[test]
fn encode_into_appends_to_existing_bytes() {
    let mut out = vec![0xAA];
    ClientMessage::Goodbye.encode_into(&mut out);
    ServerMessage::Ping { nonce: 1 }.encode_into(&mut out);
    assert_eq!(out, unhex("aa 30 20 0000000000000001"));
}

// ---- Generated messages ----

fn username_strategy() -> impl Strategy<Value = Username> {
    let pool: Vec<char> = ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain("_-.ëöÆßİЖя李雷王عليש٣\u{20000}".chars())
        .collect();
    prop_oneof![
        select(vec!["Zoë", "李雷", "علي", "alice", "Bob", "o.k-_1"]).prop_map(user),
        proptest::collection::vec(select(pool), 1..=MAX_USERNAME_CHARS)
            .prop_filter_map("valid username", |cs| {
                Username::new(&cs.into_iter().collect::<String>()).ok()
            }),
    ]
}

fn room_strategy() -> impl Strategy<Value = RoomName> {
    username_strategy().prop_map(|name| room(&format!("#{}", name.as_str())))
}

fn topic_strategy() -> impl Strategy<Value = Topic> {
    "[\\PC]{0,60}".prop_filter_map("valid topic", |s| Topic::new(&s).ok())
}

fn device_name_strategy() -> impl Strategy<Value = DeviceName> {
    "[\\PC]{1,20}".prop_filter_map("valid device name", |s| DeviceName::new(&s).ok())
}

fn reason_strategy() -> impl Strategy<Value = Reason> {
    "[\\PC]{0,40}".prop_filter_map("valid reason", |s| Reason::new(&s).ok())
}

fn room_change_strategy() -> impl Strategy<Value = RoomChange> {
    prop_oneof![
        topic_strategy().prop_map(|topic| RoomChange::Topic { topic }),
        any::<bool>().prop_map(|invite_only| RoomChange::InviteOnly { invite_only }),
        (username_strategy(), reason_strategy())
            .prop_map(|(user, reason)| RoomChange::Kicked { user, reason }),
        (username_strategy(), reason_strategy(), any::<u64>()).prop_map(
            |(user, reason, until_ms)| RoomChange::Banned {
                user,
                reason,
                until_ms
            }
        ),
        username_strategy().prop_map(|user| RoomChange::Unbanned { user }),
        (username_strategy(), select(RoomRole::ALL.to_vec()))
            .prop_map(|(user, role)| RoomChange::Role { user, role }),
        (username_strategy(), any::<bool>())
            .prop_map(|(user, muted)| RoomChange::Muted { user, muted }),
        username_strategy().prop_map(|user| RoomChange::Invited { user }),
    ]
}

fn room_info_strategy() -> impl Strategy<Value = RoomInfo> {
    (
        room_strategy(),
        topic_strategy(),
        any::<bool>(),
        select(RoomRole::ALL.to_vec()),
        any::<u32>(),
    )
        .prop_map(|(room, topic, invite_only, role, members)| RoomInfo {
            room,
            topic,
            invite_only,
            role,
            members,
        })
}

fn text_strategy() -> impl Strategy<Value = MessageText> {
    let pool: Vec<&str> = vec![
        "a",
        "Z",
        " ",
        "\n",
        "hello",
        "😀",
        "👩\u{200D}👩\u{200D}👧",
        "é",
        "e\u{301}",
        "李",
        "مرحبا",
        "\u{200F}",
        "🇺🇳",
        "\\",
        "\u{200B}",
    ];
    prop_oneof![
        proptest::collection::vec(select(pool), 1..40)
            .prop_filter_map("valid text", |parts| MessageText::new(&parts.concat()).ok()),
        "[\\PC\n]{1,200}".prop_filter_map("valid text", |s| MessageText::new(&s).ok()),
        (1usize..=MAX_TEXT_BYTES).prop_map(|n| text(&"x".repeat(n))),
    ]
}

fn password_strategy() -> impl Strategy<Value = Password> {
    prop_oneof![
        "[^\u{0}]{1,40}",
        (1usize..=MAX_PASSWORD_BYTES).prop_map(|n| "p".repeat(n)),
    ]
    .prop_filter_map("valid password", |s| Password::new(s).ok())
}

fn detail_strategy() -> impl Strategy<Value = ErrorDetail> {
    "[\\PC\n]{0,80}".prop_filter_map("valid detail", |s| ErrorDetail::new(&s).ok())
}

fn token_strategy() -> impl Strategy<Value = ResumeToken> {
    any::<[u8; 32]>().prop_map(ResumeToken::from_bytes)
}

fn conversation_strategy() -> impl Strategy<Value = Conversation> {
    prop_oneof![
        room_strategy().prop_map(|room| Conversation::Room { room }),
        username_strategy().prop_map(|peer| Conversation::Direct { peer }),
    ]
}

fn history_entry_strategy() -> impl Strategy<Value = HistoryEntry> {
    let conversation = conversation_strategy();
    (
        any::<u64>(),
        any::<u64>(),
        conversation,
        username_strategy(),
        text_strategy(),
    )
        .prop_map(
            |(id, timestamp_ms, conversation, from, text)| HistoryEntry {
                id,
                timestamp_ms,
                conversation,
                from,
                text,
            },
        )
}

fn client_message_strategy() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (username_strategy(), password_strategy())
            .prop_map(|(username, password)| ClientMessage::Register { username, password }),
        (username_strategy(), password_strategy())
            .prop_map(|(username, password)| ClientMessage::Login { username, password }),
        token_strategy().prop_map(|token| ClientMessage::Resume { token }),
        (username_strategy(), any::<[u8; 32]>()).prop_map(|(username, request)| {
            ClientMessage::RegisterStart {
                username,
                request: Box::new(request),
            }
        }),
        proptest::collection::vec(any::<u8>(), 192).prop_map(|v| ClientMessage::RegisterFinish {
            upload: Box::new(v.try_into().unwrap()),
        }),
        (
            username_strategy(),
            proptest::collection::vec(any::<u8>(), 96)
        )
            .prop_map(|(username, v)| ClientMessage::LoginStart {
                username,
                request: Box::new(v.try_into().unwrap()),
            }),
        proptest::collection::vec(any::<u8>(), 64).prop_map(|v| ClientMessage::LoginFinish {
            finalization: Box::new(v.try_into().unwrap()),
        }),
        proptest::collection::vec(any::<u8>(), 128).prop_map(|v| {
            ClientMessage::ChangePasswordStart {
                request: Box::new(v[..96].try_into().unwrap()),
                registration_request: Box::new(v[96..].try_into().unwrap()),
            }
        }),
        proptest::collection::vec(any::<u8>(), 256).prop_map(|v| {
            ClientMessage::ChangePasswordFinish {
                finalization: Box::new(v[..64].try_into().unwrap()),
                upload: Box::new(v[64..].try_into().unwrap()),
            }
        }),
        (room_strategy(), text_strategy())
            .prop_map(|(room, text)| ClientMessage::RoomMessage { room, text }),
        (username_strategy(), text_strategy())
            .prop_map(|(to, text)| ClientMessage::DirectMessage { to, text }),
        (any::<u64>(), room_strategy(), text_strategy()).prop_map(|(client_id, room, text)| {
            ClientMessage::SendRoom {
                client_id,
                room,
                text,
            }
        }),
        (room_strategy(), any::<bool>(), topic_strategy()).prop_map(
            |(room, invite_only, topic)| ClientMessage::CreateRoom {
                room,
                invite_only,
                topic,
            }
        ),
        room_strategy().prop_map(|room| ClientMessage::JoinRoom { room }),
        (room_strategy(), username_strategy())
            .prop_map(|(room, user)| ClientMessage::Invite { room, user }),
        (room_strategy(), username_strategy(), reason_strategy())
            .prop_map(|(room, user, reason)| ClientMessage::Kick { room, user, reason }),
        (
            room_strategy(),
            username_strategy(),
            reason_strategy(),
            any::<u32>()
        )
            .prop_map(|(room, user, reason, minutes)| ClientMessage::Ban {
                room,
                user,
                reason,
                minutes
            }),
        (room_strategy(), username_strategy())
            .prop_map(|(room, user)| ClientMessage::Unban { room, user }),
        (room_strategy(), topic_strategy())
            .prop_map(|(room, topic)| ClientMessage::SetTopic { room, topic }),
        (room_strategy(), any::<bool>())
            .prop_map(|(room, invite_only)| { ClientMessage::SetInviteOnly { room, invite_only } }),
        (
            room_strategy(),
            username_strategy(),
            select(RoomRole::ALL.to_vec())
        )
            .prop_map(|(room, user, role)| ClientMessage::SetRole { room, user, role }),
        (room_strategy(), username_strategy(), any::<bool>())
            .prop_map(|(room, user, muted)| ClientMessage::Mute { room, user, muted }),
        room_strategy().prop_map(|room| ClientMessage::DeleteRoom { room }),
        (username_strategy(), any::<bool>())
            .prop_map(|(user, disabled)| { ClientMessage::SetAccountDisabled { user, disabled } }),
        username_strategy().prop_map(|user| ClientMessage::EndSessions { user }),
        (any::<u64>(), device_name_strategy())
            .prop_map(|(id, name)| ClientMessage::SetDevice { id, name }),
        Just(ClientMessage::ListDevices),
        (room_strategy(), any::<u32>())
            .prop_map(|(room, offset)| ClientMessage::Members { room, offset }),
        (conversation_strategy(), any::<u64>(), 1..=MAX_HISTORY_PAGE).prop_map(
            |(conversation, before_id, limit)| ClientMessage::History {
                conversation,
                before_id,
                limit
            }
        ),
        (conversation_strategy(), any::<u64>()).prop_map(|(conversation, up_to_id)| {
            ClientMessage::MarkRead {
                conversation,
                up_to_id,
            }
        }),
        any::<u64>().prop_map(|id| ClientMessage::LogoutDevice { id }),
        room_strategy().prop_map(|room| ClientMessage::LeaveRoom { room }),
        "[\\PC]{0,20}".prop_filter_map("valid filter", |s| RoomFilter::new(&s)
            .ok()
            .map(|filter| ClientMessage::ListRooms { filter })),
        (any::<u64>(), username_strategy(), text_strategy()).prop_map(|(client_id, to, text)| {
            ClientMessage::SendDirect {
                client_id,
                to,
                text,
            }
        }),
        Just(ClientMessage::WhoIsOnline),
        any::<u64>().prop_map(|nonce| ClientMessage::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ClientMessage::Pong { nonce }),
        Just(ClientMessage::Goodbye),
    ]
}

fn server_message_strategy() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (username_strategy(), token_strategy(), any::<u32>()).prop_map(
            |(username, resume_token, token_lifetime_secs)| ServerMessage::AuthOk {
                username,
                resume_token,
                token_lifetime_secs,
            }
        ),
        select(AuthFailure::ALL.to_vec()).prop_map(|reason| ServerMessage::AuthFailed { reason }),
        proptest::collection::vec(any::<u8>(), 64).prop_map(|v| {
            ServerMessage::RegisterResponse {
                response: Box::new(v.try_into().unwrap()),
            }
        }),
        proptest::collection::vec(any::<u8>(), 320).prop_map(|v| ServerMessage::LoginResponse {
            response: Box::new(v.try_into().unwrap()),
        }),
        Just(ServerMessage::LegacyLoginRequired),
        proptest::collection::vec(any::<u8>(), 384).prop_map(|v| {
            ServerMessage::ChangePasswordResponse {
                response: Box::new(v[..320].try_into().unwrap()),
                registration_response: Box::new(v[320..].try_into().unwrap()),
            }
        }),
        (token_strategy(), any::<u32>()).prop_map(|(resume_token, token_lifetime_secs)| {
            ServerMessage::PasswordChanged {
                resume_token,
                token_lifetime_secs,
            }
        }),
        (
            any::<u64>(),
            any::<u64>(),
            room_strategy(),
            username_strategy(),
            text_strategy()
        )
            .prop_map(|(id, timestamp_ms, room, from, text)| {
                ServerMessage::RoomMessage {
                    id,
                    timestamp_ms,
                    room,
                    from,
                    text,
                }
            }),
        room_info_strategy().prop_map(|info| ServerMessage::RoomJoined { info }),
        (room_strategy(), username_strategy(), room_change_strategy()).prop_map(
            |(room, actor, change)| ServerMessage::RoomChanged {
                room,
                actor,
                change
            }
        ),
        (room_strategy(), username_strategy(), topic_strategy())
            .prop_map(|(room, by, topic)| ServerMessage::Invited { room, by, topic }),
        Just(ServerMessage::Done),
        (
            conversation_strategy(),
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(history_entry_strategy(), 0..=3)
        )
            .prop_map(|(conversation, more, complete, entries)| {
                ServerMessage::HistoryPage {
                    conversation,
                    more,
                    complete,
                    entries: HistoryEntries::new(entries).unwrap(),
                }
            }),
        (conversation_strategy(), any::<u64>(), any::<u32>()).prop_map(
            |(conversation, up_to_id, unread)| ServerMessage::ReadMarker {
                conversation,
                up_to_id,
                unread
            }
        ),
        (
            room_strategy(),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(
                (
                    username_strategy(),
                    select(RoomRole::ALL.to_vec()),
                    any::<bool>()
                ),
                0..6
            )
        )
            .prop_map(|(room, offset, total, members)| ServerMessage::MemberPage {
                room,
                offset,
                total,
                members: MemberInfos::new(
                    members
                        .into_iter()
                        .map(|(user, role, online)| MemberInfo { user, role, online })
                        .collect()
                )
                .unwrap()
            }),
        proptest::collection::vec(
            (
                any::<u64>(),
                device_name_strategy(),
                any::<u64>(),
                "[0-9a-f:.]{0,45}",
                any::<bool>(),
                any::<bool>()
            ),
            0..6
        )
        .prop_map(|devices| ServerMessage::DeviceList {
            devices: DeviceInfos::new(
                devices
                    .into_iter()
                    .map(
                        |(id, name, last_seen_ms, address, online, current)| DeviceInfo {
                            id,
                            name,
                            last_seen_ms,
                            address,
                            online,
                            current
                        }
                    )
                    .collect()
            )
            .unwrap()
        }),
        (room_strategy(), select(RoomLeaveReason::ALL.to_vec()))
            .prop_map(|(room, reason)| ServerMessage::RoomLeft { room, reason }),
        (
            any::<bool>(),
            proptest::collection::vec((room_strategy(), topic_strategy(), any::<u32>()), 0..8)
        )
            .prop_map(|(more, rooms)| ServerMessage::RoomList {
                more,
                rooms: RoomSummaries::new(
                    rooms
                        .into_iter()
                        .map(|(room, topic, members)| RoomSummary {
                            room,
                            topic,
                            members
                        })
                        .collect()
                )
                .unwrap(),
            }),
        (room_strategy(), username_strategy())
            .prop_map(|(room, user)| ServerMessage::MemberJoined { room, user }),
        (
            room_strategy(),
            username_strategy(),
            select(RoomLeaveReason::ALL.to_vec())
        )
            .prop_map(|(room, user, reason)| ServerMessage::MemberLeft {
                room,
                user,
                reason
            }),
        (
            any::<u64>(),
            any::<u64>(),
            username_strategy(),
            username_strategy(),
            text_strategy()
        )
            .prop_map(|(id, timestamp_ms, from, to, text)| {
                ServerMessage::DirectMessage {
                    id,
                    timestamp_ms,
                    from,
                    to,
                    text,
                }
            }),
        (
            proptest::collection::vec(username_strategy(), 0..4),
            proptest::collection::vec(
                (username_strategy(), select(LeaveReason::ALL.to_vec())),
                0..4
            )
        )
            .prop_map(|(online, offline)| ServerMessage::Presence {
                online: PresenceOnline::new(online).unwrap(),
                offline: PresenceOffline::new(
                    offline
                        .into_iter()
                        .map(|(user, reason)| Departure { user, reason })
                        .collect()
                )
                .unwrap()
            }),
        (
            any::<bool>(),
            proptest::collection::vec(username_strategy(), 0..40)
        )
            .prop_map(|(more, users)| ServerMessage::OnlineUsers {
                more,
                users: UserList::new(users).unwrap(),
            }),
        (
            any::<bool>(),
            proptest::collection::vec(history_entry_strategy(), 0..=4)
        )
            .prop_map(|(more, entries)| ServerMessage::HistoryBatch {
                more,
                entries: HistoryEntries::new(entries).unwrap(),
            }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(client_id, id, timestamp_ms)| {
            ServerMessage::Stored {
                client_id,
                id,
                timestamp_ms,
            }
        }),
        (
            any::<u64>(),
            select(ErrorCode::ALL.to_vec()),
            detail_strategy()
        )
            .prop_map(|(client_id, code, detail)| ServerMessage::SendFailed {
                client_id,
                code,
                detail,
            }),
        any::<u64>().prop_map(|nonce| ServerMessage::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ServerMessage::Pong { nonce }),
        select(GoodbyeReason::ALL.to_vec()).prop_map(|reason| ServerMessage::Goodbye { reason }),
        (select(ErrorCode::ALL.to_vec()), detail_strategy())
            .prop_map(|(code, detail)| ServerMessage::Error { code, detail }),
    ]
}

/// Decoding anything must not panic, and whatever decodes must re-encode to
/// the same bytes: the encoding is canonical.
fn check_decode_is_total_and_canonical(bytes: &[u8]) {
    if let Ok(m) = ClientMessage::decode(bytes) {
        assert_eq!(m.encode(), bytes);
    }
    if let Ok(m) = ServerMessage::decode(bytes) {
        assert_eq!(m.encode(), bytes);
    }
}

proptest! {
    #[test]
    fn any_valid_client_message_round_trips(msg in client_message_strategy()) {
        let bytes = msg.encode();
        prop_assert_eq!(bytes.len(), msg.encoded_len());
        prop_assert!(bytes.len() <= MAX_MESSAGE_BYTES);
        prop_assert_eq!(ClientMessage::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn any_valid_server_message_round_trips(msg in server_message_strategy()) {
        let bytes = msg.encode();
        prop_assert_eq!(bytes.len(), msg.encoded_len());
        prop_assert!(bytes.len() <= MAX_MESSAGE_BYTES);
        prop_assert_eq!(ServerMessage::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn every_strict_prefix_of_a_client_message_fails(msg in client_message_strategy()) {
        let bytes = msg.encode();
        for len in 0..bytes.len() {
            prop_assert!(ClientMessage::decode(&bytes[..len]).is_err(), "prefix {}", len);
        }
    }

    #[test]
    fn every_strict_prefix_of_a_server_message_fails(msg in server_message_strategy()) {
        let bytes = msg.encode();
        for len in 0..bytes.len() {
            prop_assert!(ServerMessage::decode(&bytes[..len]).is_err(), "prefix {}", len);
        }
    }

    #[test]
    fn appending_a_byte_to_a_client_message_fails(msg in client_message_strategy(), extra: u8) {
        let mut bytes = msg.encode();
        bytes.push(extra);
        prop_assert_eq!(
            ClientMessage::decode(&bytes),
            Err(MessageError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn appending_a_byte_to_a_server_message_fails(msg in server_message_strategy(), extra: u8) {
        let mut bytes = msg.encode();
        bytes.push(extra);
        prop_assert_eq!(
            ServerMessage::decode(&bytes),
            Err(MessageError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_decode_is_total_and_canonical(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_tag_never_panic(
        tag in select(vec![0x01u8, 0x02, 0x03, 0x0d, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x20, 0x21, 0x30, 0x40]),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![tag];
        bytes.extend(body);
        check_decode_is_total_and_canonical(&bytes);
    }

    #[test]
    fn mutated_server_messages_never_panic(
        msg in server_message_strategy(),
        index: prop::sample::Index,
        xor in 1u8..,
    ) {
        let mut bytes = msg.encode();
        let i = index.index(bytes.len());
        bytes[i] ^= xor;
        check_decode_is_total_and_canonical(&bytes);
    }

    #[test]
    fn mutated_client_messages_never_panic(
        msg in client_message_strategy(),
        index: prop::sample::Index,
        xor in 1u8..,
    ) {
        let mut bytes = msg.encode();
        let i = index.index(bytes.len());
        bytes[i] ^= xor;
        check_decode_is_total_and_canonical(&bytes);
    }
}

#[test]
fn a_list_count_the_rest_cannot_hold_at_the_smallest_item_size_is_truncated() {
    // PROTOCOL.md §7 rule 6: 3 users announced, 3 bytes left (one 3-byte name).
    assert_eq!(
        ServerMessage::decode(&unhex("14 00 0003 0001 61")),
        Err(MessageError::Truncated)
    );
    // The same with one user decodes.
    assert!(ServerMessage::decode(&unhex("14 00 0001 0001 61")).is_ok());
}

/// PROTOCOL.md §7 "Which error is reported": the order of checks when a
/// field breaks several rules at once.
#[test]
fn when_several_rules_are_broken_the_published_order_decides_the_error() {
    let client = |h: &str| ClientMessage::decode(&unhex(h)).unwrap_err();
    // The length prefix is checked before the bytes are read or decoded:
    // 4 097 bytes announced and not even present.
    assert_eq!(
        client("10 0002 2378 1001 ff"),
        MessageError::TooLong {
            field: "text",
            max: MAX_TEXT_BYTES
        }
    );
    // Then the bytes must be there, then be UTF-8, before any text rule.
    assert_eq!(client("10 0002 2378 0003 0909"), MessageError::Truncated);
    assert_eq!(
        client("10 0002 2378 0002 09ff"),
        MessageError::InvalidUtf8 { field: "text" }
    );
    // MessageText: a forbidden character wins over blank (TAB is both).
    assert_eq!(
        client("10 0002 2378 0002 0920"),
        MessageError::InvalidText(TextError::ForbiddenChar { code_point: 0x09 })
    );
    // ... and the first forbidden character in the text is the one named.
    assert_eq!(
        MessageText::new("a\u{202E}b\u{1b}").unwrap_err(),
        TextError::ForbiddenChar { code_point: 0x202E }
    );
    // Too long wins over a forbidden character (constructor: empty, too
    // long, forbidden, blank).
    let long_with_esc = format!("\u{1b}{}", "a".repeat(MAX_TEXT_BYTES));
    assert_eq!(
        MessageText::new(&long_with_esc).unwrap_err(),
        TextError::TooLong {
            max: MAX_TEXT_BYTES
        }
    );
    // ErrorDetail: too long, then forbidden; empty and blank are allowed.
    let long_detail = format!("\u{1b}{}", " ".repeat(MAX_ERROR_DETAIL_BYTES));
    assert_eq!(
        ErrorDetail::new(&long_detail).unwrap_err(),
        TextError::TooLong {
            max: MAX_ERROR_DETAIL_BYTES
        }
    );
    assert!(ErrorDetail::new("").is_ok() && ErrorDetail::new("  ").is_ok());
    // Password: empty, too long, then NUL.
    let long_with_nul = format!("\0{}", "a".repeat(1024));
    assert_eq!(
        Password::new(long_with_nul).unwrap_err(),
        PasswordError::TooLong { max: 1024 }
    );
    // Username: the length prefix, then UTF-8, then empty, too long, not
    // NFC, forbidden character ("e" + U+0301 is not NFC and the space is
    // forbidden: not NFC is reported).
    assert_eq!(
        client("11 0081 61"),
        MessageError::TooLong {
            field: "username",
            max: 128
        }
    );
    assert_eq!(
        Username::new("e\u{301} x").unwrap_err(),
        UsernameError::NotNfc
    );
}
