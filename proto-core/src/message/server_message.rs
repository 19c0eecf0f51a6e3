//! Messages from server to client, and the size arithmetic that bounds them.

use crate::message::codec::{ByteCounter, Reader, Sink, U16_BYTES, U64_BYTES};
use crate::message::device::{MAX_DEVICE_INFO_BYTES, MIN_DEVICE_INFO_BYTES};
use crate::message::room::{
    MemberInfo, MAX_MEMBER_INFO_BYTES, MAX_ROOM_NAME_WIRE_BYTES, MAX_ROOM_SUMMARY_BYTES,
    MIN_MEMBER_INFO_BYTES, MIN_ROOM_NAME_WIRE_BYTES, MIN_ROOM_SUMMARY_BYTES,
};
use crate::message::text::{MAX_TEXT_WIRE_BYTES, MIN_TEXT_WIRE_BYTES};
use crate::message::username::{MAX_USERNAME_WIRE_BYTES, MIN_USERNAME_WIRE_BYTES};
use crate::message::{
    AuthFailure, BoundedList, DeviceInfo, ErrorCode, ErrorDetail, GoodbyeReason, LeaveReason,
    MessageError, MessageText, ResumeToken, RoomChange, RoomInfo, RoomLeaveReason, RoomName,
    RoomSummary, Topic, Username, MAX_MESSAGE_BYTES,
};
use crate::opaque::{CREDENTIAL_RESPONSE_LEN, REGISTRATION_RESPONSE_LEN};

/// Most usernames in one `OnlineUsers`: the largest count whose worst case
/// (every name 128 bytes) fits [`MAX_MESSAGE_BYTES`]:
/// 1 (tag) + 1 (more) + 2 (count) + 499 × 130 = 64 874; 500 would be 65 004.
pub const MAX_ONLINE_USERS_PER_MESSAGE: usize = 499;

/// Most entries in one `HistoryBatch`: the largest count whose worst case
/// fits [`MAX_MESSAGE_BYTES`]: 1 + 1 + 2 + 14 × 4 375 = 61 254; 15 would be
/// 65 629. (With 4 096-byte texts no larger count fits; a longer history is
/// simply sent as more batches.)
pub const MAX_HISTORY_ENTRIES_PER_BATCH: usize = 14;

/// Most rooms in one `RoomList`: the largest count whose worst case fits
/// [`MAX_MESSAGE_BYTES`]: 1 + 1 + 2 + 100 × 649 = 64 904; 101 would be
/// 65 553.
pub const MAX_ROOMS_PER_LIST: usize = 100;

/// Most devices in one `DeviceList`: the server's cap on devices per user
/// is at most this.
pub const MAX_DEVICES_PER_LIST: usize = 64;
/// The devices of one `DeviceList` message.
pub type DeviceInfos = BoundedList<DeviceInfo, MAX_DEVICES_PER_LIST>;
const _: () = assert!(1 + 2 + MAX_DEVICES_PER_LIST * MAX_DEVICE_INFO_BYTES <= MAX_MESSAGE_BYTES);

/// Most members in one `MemberPage`.
pub const MAX_MEMBERS_PER_PAGE: usize = 200;
/// The members of one `MemberPage` message.
pub type MemberInfos = BoundedList<MemberInfo, MAX_MEMBERS_PER_PAGE>;
const _: () = assert!(
    1 + MAX_ROOM_NAME_WIRE_BYTES + 4 + 4 + 2 + MAX_MEMBERS_PER_PAGE * MAX_MEMBER_INFO_BYTES
        <= MAX_MESSAGE_BYTES
);

/// Most names in each list of one `Presence`: both lists at their
/// largest, every name 128 bytes, fit [`MAX_MESSAGE_BYTES`]:
/// 1 + 2 + 240 × 130 + 2 + 240 × 131 = 62 645.
pub const MAX_PRESENCE_PER_LIST: usize = 240;
/// Who came online, in one `Presence`.
pub type PresenceOnline = BoundedList<Username, MAX_PRESENCE_PER_LIST>;
/// Who went offline and why, in one `Presence`.
pub type PresenceOffline = BoundedList<Departure, MAX_PRESENCE_PER_LIST>;
const _: () = assert!(
    1 + 2 * U16_BYTES
        + MAX_PRESENCE_PER_LIST * MAX_USERNAME_WIRE_BYTES
        + MAX_PRESENCE_PER_LIST * (MAX_USERNAME_WIRE_BYTES + 1)
        <= MAX_MESSAGE_BYTES
);

/// A user who went offline, in a `Presence`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Departure {
    pub user: Username,
    pub reason: LeaveReason,
}

/// The rooms of one `RoomList` message.
pub type RoomSummaries = BoundedList<RoomSummary, MAX_ROOMS_PER_LIST>;
/// The usernames of one `OnlineUsers` message.
pub type UserList = BoundedList<Username, MAX_ONLINE_USERS_PER_MESSAGE>;
/// The entries of one `HistoryBatch` message.
pub type HistoryEntries = BoundedList<HistoryEntry, MAX_HISTORY_ENTRIES_PER_BATCH>;

/// tag + more + count.
const LIST_HEADER_BYTES: usize = 1 + 1 + U16_BYTES;
/// Largest `HistoryEntry`: id, timestamp, conversation tag + room (a room
/// name is one byte longer than a peer's name), from, text.
pub(crate) const MAX_HISTORY_ENTRY_BYTES: usize = U64_BYTES
    + U64_BYTES
    + 1
    + MAX_ROOM_NAME_WIRE_BYTES
    + MAX_USERNAME_WIRE_BYTES
    + MAX_TEXT_WIRE_BYTES;
const MIN_HISTORY_ENTRY_BYTES: usize = U64_BYTES
    + U64_BYTES
    + 1
    + MIN_USERNAME_WIRE_BYTES
    + MIN_USERNAME_WIRE_BYTES
    + MIN_TEXT_WIRE_BYTES;
/// Largest possible `RoomList` encoding.
pub(crate) const MAX_ROOM_LIST_BYTES: usize =
    LIST_HEADER_BYTES + MAX_ROOMS_PER_LIST * MAX_ROOM_SUMMARY_BYTES;
/// Largest possible `OnlineUsers` encoding.
pub(crate) const MAX_ONLINE_USERS_BYTES: usize =
    LIST_HEADER_BYTES + MAX_ONLINE_USERS_PER_MESSAGE * MAX_USERNAME_WIRE_BYTES;
/// Largest possible `HistoryBatch` encoding.
pub(crate) const MAX_HISTORY_BATCH_BYTES: usize =
    LIST_HEADER_BYTES + MAX_HISTORY_ENTRIES_PER_BATCH * MAX_HISTORY_ENTRY_BYTES;

// The limits above are the largest that fit; checked at compile time.
const _: () = assert!(MAX_ONLINE_USERS_BYTES <= MAX_MESSAGE_BYTES);
const _: () = assert!(
    LIST_HEADER_BYTES + (MAX_ONLINE_USERS_PER_MESSAGE + 1) * MAX_USERNAME_WIRE_BYTES
        > MAX_MESSAGE_BYTES
);
const _: () = assert!(MAX_HISTORY_BATCH_BYTES <= MAX_MESSAGE_BYTES);
const _: () = assert!(
    LIST_HEADER_BYTES + (MAX_HISTORY_ENTRIES_PER_BATCH + 1) * MAX_HISTORY_ENTRY_BYTES
        > MAX_MESSAGE_BYTES
);
const _: () = assert!(MAX_HISTORY_ENTRY_BYTES == 4376);
// A `HistoryPage` chunk: tag, conversation, two bools, a full batch.
const _: () = assert!(
    1 + 1
        + MAX_ROOM_NAME_WIRE_BYTES
        + 2
        + U16_BYTES
        + MAX_HISTORY_ENTRIES_PER_BATCH * MAX_HISTORY_ENTRY_BYTES
        <= MAX_MESSAGE_BYTES
);
const _: () = assert!(MAX_ROOM_LIST_BYTES <= MAX_MESSAGE_BYTES);
const _: () = assert!(
    LIST_HEADER_BYTES + (MAX_ROOMS_PER_LIST + 1) * MAX_ROOM_SUMMARY_BYTES > MAX_MESSAGE_BYTES
);
const _: () = assert!(MAX_ROOM_SUMMARY_BYTES == 649);
const _: () = assert!(MIN_ROOM_NAME_WIRE_BYTES > MIN_USERNAME_WIRE_BYTES);

/// Which conversation a history entry belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Conversation {
    /// 0x00 + room name: a room.
    Room { room: RoomName },
    /// 0x01 + username: a direct conversation with `peer`, the other
    /// participant as seen by the receiving client (the recipient when
    /// `from` is the client itself, otherwise `from`).
    Direct { peer: Username },
}

impl Conversation {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        match r.u8()? {
            0x00 => Ok(Self::Room {
                room: RoomName::decode(r)?,
            }),
            0x01 => Ok(Self::Direct {
                peer: Username::decode(r)?,
            }),
            value => Err(MessageError::InvalidEnum {
                field: "conversation",
                value: u16::from(value),
            }),
        }
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        match self {
            Self::Room { room } => {
                out.u8(0x00);
                room.encode(out);
            }
            Self::Direct { peer } => {
                out.u8(0x01);
                peer.encode(out);
            }
        }
    }
}

/// One stored message, replayed to a client after login.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryEntry {
    pub id: u64,
    pub timestamp_ms: u64,
    pub conversation: Conversation,
    pub from: Username,
    pub text: MessageText,
}

impl HistoryEntry {
    fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            id: r.u64()?,
            timestamp_ms: r.u64()?,
            conversation: Conversation::decode(r)?,
            from: Username::decode(r)?,
            text: MessageText::decode(r)?,
        })
    }

    fn encode(&self, out: &mut impl Sink) {
        out.u64(self.id);
        out.u64(self.timestamp_ms);
        self.conversation.encode(out);
        self.from.encode(out);
        self.text.encode(out);
    }
}

/// A message from server to client: one tag byte, then the fields in order.
///
/// `id` is the server's message id (unique, increasing); `timestamp_ms` is
/// milliseconds since the Unix epoch, UTC, as stamped by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// 0x01: authentication succeeded; `username` is the registered form.
    AuthOk {
        username: Username,
        resume_token: ResumeToken,
        token_lifetime_secs: u32,
    },
    /// 0x02: authentication failed; the session stays unauthenticated.
    AuthFailed { reason: AuthFailure },
    /// 0x03: the answer to `RegisterStart`.
    RegisterResponse {
        response: Box<[u8; REGISTRATION_RESPONSE_LEN]>,
    },
    /// 0x04: the answer to `LoginStart` (KE2). Unknown users get one made
    /// from a fake record: same length, same cost.
    LoginResponse {
        response: Box<[u8; CREDENTIAL_RESPONSE_LEN]>,
    },
    /// 0x05: the answer to `LoginStart` for an account the server still
    /// holds an Argon2id hash for (made before OPAQUE): log in once with
    /// the version-1 `Login`, which replaces the hash with an OPAQUE record.
    LegacyLoginRequired,
    /// 0x06: the answer to `ChangePasswordStart`: KE2 for the old password
    /// and the registration response for the new one.
    ChangePasswordResponse {
        response: Box<[u8; CREDENTIAL_RESPONSE_LEN]>,
        registration_response: Box<[u8; REGISTRATION_RESPONSE_LEN]>,
    },
    /// 0x07: the new password is stored. Every resume token of the account
    /// was revoked; this session's new one is here.
    PasswordChanged {
        resume_token: ResumeToken,
        token_lifetime_secs: u32,
    },
    /// 0x08: the answer to `ListDevices`: every device of the user the
    /// server knows, the asking one marked `current`.
    DeviceList { devices: DeviceInfos },
    /// 0x09: one chunk of the answer to `History`, oldest first; every
    /// chunk but the last has `more`. `complete` (on the last chunk): no
    /// message older than these exists.
    HistoryPage {
        conversation: Conversation,
        more: bool,
        complete: bool,
        entries: HistoryEntries,
    },
    /// 0x0C: the answer to `Members`: up to 200 members of `room` from
    /// `offset` on (by canonical name), of `total`.
    MemberPage {
        room: RoomName,
        offset: u32,
        total: u32,
        members: MemberInfos,
    },
    /// 0x0B: the user has read `conversation` up to `up_to_id`, with
    /// `unread` messages from others after it (counted among the last
    /// replayed ones at login): in the greeting, and to every device of
    /// the user when one of them moves it.
    ReadMarker {
        conversation: Conversation,
        up_to_id: u64,
        unread: u32,
    },
    /// 0x10: a message in a room the user is in (`from` is set by the
    /// server from the session).
    RoomMessage {
        id: u64,
        timestamp_ms: u64,
        room: RoomName,
        from: Username,
        text: MessageText,
    },
    /// 0x11: a direct message, delivered to `to` (the sender gets `Stored`).
    DirectMessage {
        id: u64,
        timestamp_ms: u64,
        from: Username,
        to: Username,
        text: MessageText,
    },
    /// 0x0D: users who share a room with this user came online or went
    /// offline (on their last device), batched: at most one batch per
    /// presence interval, in as many messages as it takes. A name may come
    /// again (from each shared room) with the same state.
    Presence {
        online: PresenceOnline,
        offline: PresenceOffline,
    },
    /// 0x14: one page of the online users; the client accumulates pages
    /// until one has `more == false`.
    OnlineUsers { more: bool, users: UserList },
    /// 0x15: one page of history, oldest first; the last has `more == false`.
    HistoryBatch { more: bool, entries: HistoryEntries },
    /// 0x16: the sender's `SendRoom`/`SendDirect` with `client_id` is in
    /// history as message `id`; recipients get it after this point.
    Stored {
        client_id: u64,
        id: u64,
        timestamp_ms: u64,
    },
    /// 0x17: the sender's `SendRoom`/`SendDirect` with `client_id` was
    /// refused and is not stored (rate limit, unknown recipient, storage
    /// failure); nobody received it. `detail` as in `Error`.
    SendFailed {
        client_id: u64,
        code: ErrorCode,
        detail: ErrorDetail,
    },
    /// 0x18: the user is in this room: after `AuthOk` once per room, and
    /// to every device of the user when it creates or joins one.
    RoomJoined { info: RoomInfo },
    /// 0x19: the user is no longer in `room` (to every device of the user).
    RoomLeft {
        room: RoomName,
        reason: RoomLeaveReason,
    },
    /// 0x1A: one page of the answer to `ListRooms`, sorted by name; the
    /// last has `more == false`.
    RoomList { more: bool, rooms: RoomSummaries },
    /// 0x1B: `user` joined `room` (to the room's other members online).
    MemberJoined { room: RoomName, user: Username },
    /// 0x1C: `user` is no longer a member of `room`.
    MemberLeft {
        room: RoomName,
        user: Username,
        reason: RoomLeaveReason,
    },
    /// 0x1D: a moderator (`actor`) changed the room: to every member
    /// online, the actor's devices and the user it is about included.
    RoomChanged {
        room: RoomName,
        actor: Username,
        change: RoomChange,
    },
    /// 0x1E: `by` invited the user to `room` (to every device of the
    /// invitee, and again in each greeting while the invitation stands).
    /// `JoinRoom` accepts it.
    Invited {
        room: RoomName,
        by: Username,
        topic: Topic,
    },
    /// 0x1F: an administrator's request was carried out.
    Done,
    /// 0x20: the client answers `Pong` with the same nonce.
    Ping { nonce: u64 },
    /// 0x21: the answer to a client `Ping`.
    Pong { nonce: u64 },
    /// 0x30: the server ends the session.
    Goodbye { reason: GoodbyeReason },
    /// 0x40: a request failed. `detail` is for humans and untrusted: clients
    /// show it through `escape_for_display`.
    Error {
        code: ErrorCode,
        detail: ErrorDetail,
    },
}

/// `items` split into lists of at most `MAX`, each made a message by
/// `message(more, list)`: `more` on every one but the last; at least one.
fn paged<T, const MAX: usize>(
    items: Vec<T>,
    message: impl Fn(bool, BoundedList<T, MAX>) -> ServerMessage,
) -> Vec<ServerMessage> {
    let pages = BoundedList::paginate(items);
    let last = pages.len().saturating_sub(1);
    pages
        .into_iter()
        .enumerate()
        .map(|(i, list)| message(i < last, list))
        .collect()
}

pub(crate) mod tag {
    pub const AUTH_OK: u8 = 0x01;
    pub const AUTH_FAILED: u8 = 0x02;
    pub const REGISTER_RESPONSE: u8 = 0x03;
    pub const LOGIN_RESPONSE: u8 = 0x04;
    pub const LEGACY_LOGIN_REQUIRED: u8 = 0x05;
    pub const CHANGE_PASSWORD_RESPONSE: u8 = 0x06;
    pub const PASSWORD_CHANGED: u8 = 0x07;
    pub const DEVICE_LIST: u8 = 0x08;
    pub const HISTORY_PAGE: u8 = 0x09;
    pub const READ_MARKER: u8 = 0x0B;
    pub const MEMBER_PAGE: u8 = 0x0C;
    pub const PRESENCE: u8 = 0x0D;
    pub const ROOM_MESSAGE: u8 = 0x10;
    pub const DIRECT_MESSAGE: u8 = 0x11;
    pub const ONLINE_USERS: u8 = 0x14;
    pub const HISTORY_BATCH: u8 = 0x15;
    pub const STORED: u8 = 0x16;
    pub const SEND_FAILED: u8 = 0x17;
    pub const ROOM_JOINED: u8 = 0x18;
    pub const ROOM_LEFT: u8 = 0x19;
    pub const ROOM_LIST: u8 = 0x1A;
    pub const MEMBER_JOINED: u8 = 0x1B;
    pub const MEMBER_LEFT: u8 = 0x1C;
    pub const ROOM_CHANGED: u8 = 0x1D;
    pub const INVITED: u8 = 0x1E;
    pub const DONE: u8 = 0x1F;
    pub const PING: u8 = 0x20;
    pub const PONG: u8 = 0x21;
    pub const GOODBYE: u8 = 0x30;
    pub const ERROR: u8 = 0x40;
}

impl ServerMessage {
    /// The message's encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    /// Appends the message's encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.write(out);
    }

    /// The length of [`encode`](Self::encode)'s output; never more than
    /// [`MAX_MESSAGE_BYTES`].
    pub fn encoded_len(&self) -> usize {
        let mut counter = ByteCounter::default();
        self.write(&mut counter);
        counter.0
    }

    /// Decodes exactly one message occupying all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLong {
                field: "message",
                max: MAX_MESSAGE_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let msg = match r.u8()? {
            tag::AUTH_OK => Self::AuthOk {
                username: Username::decode(&mut r)?,
                resume_token: ResumeToken::decode(&mut r)?,
                token_lifetime_secs: r.u32()?,
            },
            tag::AUTH_FAILED => Self::AuthFailed {
                reason: AuthFailure::decode(&mut r)?,
            },
            tag::REGISTER_RESPONSE => Self::RegisterResponse {
                response: Box::new(r.array()?),
            },
            tag::LOGIN_RESPONSE => Self::LoginResponse {
                response: Box::new(r.array()?),
            },
            tag::LEGACY_LOGIN_REQUIRED => Self::LegacyLoginRequired,
            tag::CHANGE_PASSWORD_RESPONSE => Self::ChangePasswordResponse {
                response: Box::new(r.array()?),
                registration_response: Box::new(r.array()?),
            },
            tag::PASSWORD_CHANGED => Self::PasswordChanged {
                resume_token: ResumeToken::decode(&mut r)?,
                token_lifetime_secs: r.u32()?,
            },
            tag::DEVICE_LIST => {
                let count = r.count("devices", MAX_DEVICES_PER_LIST, MIN_DEVICE_INFO_BYTES)?;
                let mut devices = Vec::with_capacity(count);
                for _ in 0..count {
                    devices.push(DeviceInfo::decode(&mut r)?);
                }
                Self::DeviceList {
                    devices: BoundedList::from_checked(devices),
                }
            }
            tag::HISTORY_PAGE => {
                let conversation = Conversation::decode(&mut r)?;
                let more = r.bool("more")?;
                let complete = r.bool("complete")?;
                let count = r.count(
                    "entries",
                    MAX_HISTORY_ENTRIES_PER_BATCH,
                    MIN_HISTORY_ENTRY_BYTES,
                )?;
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    entries.push(HistoryEntry::decode(&mut r)?);
                }
                Self::HistoryPage {
                    conversation,
                    more,
                    complete,
                    entries: BoundedList::from_checked(entries),
                }
            }
            tag::MEMBER_PAGE => {
                let room = RoomName::decode(&mut r)?;
                let offset = r.u32()?;
                let total = r.u32()?;
                let count = r.count("members", MAX_MEMBERS_PER_PAGE, MIN_MEMBER_INFO_BYTES)?;
                let mut members = Vec::with_capacity(count);
                for _ in 0..count {
                    members.push(MemberInfo::decode(&mut r)?);
                }
                Self::MemberPage {
                    room,
                    offset,
                    total,
                    members: BoundedList::from_checked(members),
                }
            }
            tag::READ_MARKER => Self::ReadMarker {
                conversation: Conversation::decode(&mut r)?,
                up_to_id: r.u64()?,
                unread: r.u32()?,
            },
            tag::ROOM_MESSAGE => Self::RoomMessage {
                id: r.u64()?,
                timestamp_ms: r.u64()?,
                room: RoomName::decode(&mut r)?,
                from: Username::decode(&mut r)?,
                text: MessageText::decode(&mut r)?,
            },
            tag::DIRECT_MESSAGE => Self::DirectMessage {
                id: r.u64()?,
                timestamp_ms: r.u64()?,
                from: Username::decode(&mut r)?,
                to: Username::decode(&mut r)?,
                text: MessageText::decode(&mut r)?,
            },
            tag::PRESENCE => {
                let count = r.count("online", MAX_PRESENCE_PER_LIST, MIN_USERNAME_WIRE_BYTES)?;
                let mut online = Vec::with_capacity(count);
                for _ in 0..count {
                    online.push(Username::decode(&mut r)?);
                }
                let count = r.count(
                    "offline",
                    MAX_PRESENCE_PER_LIST,
                    MIN_USERNAME_WIRE_BYTES + 1,
                )?;
                let mut offline = Vec::with_capacity(count);
                for _ in 0..count {
                    offline.push(Departure {
                        user: Username::decode(&mut r)?,
                        reason: LeaveReason::decode(&mut r)?,
                    });
                }
                Self::Presence {
                    online: BoundedList::from_checked(online),
                    offline: BoundedList::from_checked(offline),
                }
            }
            tag::ONLINE_USERS => {
                let more = r.bool("more")?;
                let count = r.count(
                    "users",
                    MAX_ONLINE_USERS_PER_MESSAGE,
                    MIN_USERNAME_WIRE_BYTES,
                )?;
                let mut users = Vec::with_capacity(count);
                for _ in 0..count {
                    users.push(Username::decode(&mut r)?);
                }
                Self::OnlineUsers {
                    more,
                    users: BoundedList::from_checked(users),
                }
            }
            tag::HISTORY_BATCH => {
                let more = r.bool("more")?;
                let count = r.count(
                    "entries",
                    MAX_HISTORY_ENTRIES_PER_BATCH,
                    MIN_HISTORY_ENTRY_BYTES,
                )?;
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    entries.push(HistoryEntry::decode(&mut r)?);
                }
                Self::HistoryBatch {
                    more,
                    entries: BoundedList::from_checked(entries),
                }
            }
            tag::STORED => Self::Stored {
                client_id: r.u64()?,
                id: r.u64()?,
                timestamp_ms: r.u64()?,
            },
            tag::SEND_FAILED => Self::SendFailed {
                client_id: r.u64()?,
                code: ErrorCode::decode(&mut r)?,
                detail: ErrorDetail::decode(&mut r)?,
            },
            tag::ROOM_JOINED => Self::RoomJoined {
                info: RoomInfo::decode(&mut r)?,
            },
            tag::ROOM_LEFT => Self::RoomLeft {
                room: RoomName::decode(&mut r)?,
                reason: RoomLeaveReason::decode(&mut r)?,
            },
            tag::ROOM_LIST => {
                let more = r.bool("more")?;
                let count = r.count("rooms", MAX_ROOMS_PER_LIST, MIN_ROOM_SUMMARY_BYTES)?;
                let mut rooms = Vec::with_capacity(count);
                for _ in 0..count {
                    rooms.push(RoomSummary::decode(&mut r)?);
                }
                Self::RoomList {
                    more,
                    rooms: BoundedList::from_checked(rooms),
                }
            }
            tag::MEMBER_JOINED => Self::MemberJoined {
                room: RoomName::decode(&mut r)?,
                user: Username::decode(&mut r)?,
            },
            tag::MEMBER_LEFT => Self::MemberLeft {
                room: RoomName::decode(&mut r)?,
                user: Username::decode(&mut r)?,
                reason: RoomLeaveReason::decode(&mut r)?,
            },
            tag::ROOM_CHANGED => Self::RoomChanged {
                room: RoomName::decode(&mut r)?,
                actor: Username::decode(&mut r)?,
                change: RoomChange::decode(&mut r)?,
            },
            tag::INVITED => Self::Invited {
                room: RoomName::decode(&mut r)?,
                by: Username::decode(&mut r)?,
                topic: Topic::decode(&mut r)?,
            },
            tag::DONE => Self::Done,
            tag::PING => Self::Ping { nonce: r.u64()? },
            tag::PONG => Self::Pong { nonce: r.u64()? },
            tag::GOODBYE => Self::Goodbye {
                reason: GoodbyeReason::decode(&mut r)?,
            },
            tag::ERROR => Self::Error {
                code: ErrorCode::decode(&mut r)?,
                detail: ErrorDetail::decode(&mut r)?,
            },
            unknown => return Err(MessageError::UnknownTag(unknown)),
        };
        r.finish()?;
        Ok(msg)
    }

    /// `OnlineUsers` pages for any number of users: every page but the last
    /// has `more == true`; at least one page, even for no users.
    pub fn online_users_pages(users: Vec<Username>) -> Vec<ServerMessage> {
        paged(users, |more, users| Self::OnlineUsers { more, users })
    }

    /// `Presence` messages for any number of changes (none for none): each
    /// carries up to [`MAX_PRESENCE_PER_LIST`] of each kind.
    pub fn presence_batches(online: Vec<Username>, offline: Vec<Departure>) -> Vec<ServerMessage> {
        let mut online = online.into_iter().peekable();
        let mut offline = offline.into_iter().peekable();
        let mut out = Vec::new();
        while online.peek().is_some() || offline.peek().is_some() {
            out.push(Self::Presence {
                online: BoundedList::from_checked(
                    online.by_ref().take(MAX_PRESENCE_PER_LIST).collect(),
                ),
                offline: BoundedList::from_checked(
                    offline.by_ref().take(MAX_PRESENCE_PER_LIST).collect(),
                ),
            });
        }
        out
    }

    /// `HistoryBatch` pages for any number of entries, oldest first: every
    /// page but the last has `more == true`; at least one page.
    pub fn history_batches(entries: Vec<HistoryEntry>) -> Vec<ServerMessage> {
        paged(entries, |more, entries| Self::HistoryBatch {
            more,
            entries,
        })
    }

    /// `HistoryPage` chunks answering a `History` request, oldest first:
    /// every chunk but the last has `more`; `complete` on the last.
    pub fn history_page_chunks(
        conversation: Conversation,
        entries: Vec<HistoryEntry>,
        complete: bool,
    ) -> Vec<ServerMessage> {
        paged(entries, |more, entries| Self::HistoryPage {
            conversation: conversation.clone(),
            more,
            complete: !more && complete,
            entries,
        })
    }

    /// `RoomList` pages for any number of rooms: every page but the last
    /// has `more == true`; at least one page.
    pub fn room_list_pages(rooms: Vec<RoomSummary>) -> Vec<ServerMessage> {
        paged(rooms, |more, rooms| Self::RoomList { more, rooms })
    }

    /// The tag byte that starts this message's encoding.
    pub fn tag(&self) -> u8 {
        match self {
            Self::AuthOk { .. } => tag::AUTH_OK,
            Self::AuthFailed { .. } => tag::AUTH_FAILED,
            Self::RegisterResponse { .. } => tag::REGISTER_RESPONSE,
            Self::LoginResponse { .. } => tag::LOGIN_RESPONSE,
            Self::LegacyLoginRequired => tag::LEGACY_LOGIN_REQUIRED,
            Self::ChangePasswordResponse { .. } => tag::CHANGE_PASSWORD_RESPONSE,
            Self::PasswordChanged { .. } => tag::PASSWORD_CHANGED,
            Self::DeviceList { .. } => tag::DEVICE_LIST,
            Self::HistoryPage { .. } => tag::HISTORY_PAGE,
            Self::ReadMarker { .. } => tag::READ_MARKER,
            Self::MemberPage { .. } => tag::MEMBER_PAGE,
            Self::RoomMessage { .. } => tag::ROOM_MESSAGE,
            Self::DirectMessage { .. } => tag::DIRECT_MESSAGE,
            Self::Presence { .. } => tag::PRESENCE,
            Self::OnlineUsers { .. } => tag::ONLINE_USERS,
            Self::HistoryBatch { .. } => tag::HISTORY_BATCH,
            Self::Stored { .. } => tag::STORED,
            Self::SendFailed { .. } => tag::SEND_FAILED,
            Self::RoomJoined { .. } => tag::ROOM_JOINED,
            Self::RoomLeft { .. } => tag::ROOM_LEFT,
            Self::RoomList { .. } => tag::ROOM_LIST,
            Self::MemberJoined { .. } => tag::MEMBER_JOINED,
            Self::MemberLeft { .. } => tag::MEMBER_LEFT,
            Self::RoomChanged { .. } => tag::ROOM_CHANGED,
            Self::Invited { .. } => tag::INVITED,
            Self::Done => tag::DONE,
            Self::Ping { .. } => tag::PING,
            Self::Pong { .. } => tag::PONG,
            Self::Goodbye { .. } => tag::GOODBYE,
            Self::Error { .. } => tag::ERROR,
        }
    }

    fn write(&self, out: &mut impl Sink) {
        out.u8(self.tag());
        match self {
            Self::AuthOk {
                username,
                resume_token,
                token_lifetime_secs,
            } => {
                username.encode(out);
                resume_token.encode(out);
                out.u32(*token_lifetime_secs);
            }
            Self::AuthFailed { reason } => reason.encode(out),
            Self::RegisterResponse { response } => out.put(&response[..]),
            Self::LoginResponse { response } => out.put(&response[..]),
            Self::LegacyLoginRequired => {}
            Self::ChangePasswordResponse {
                response,
                registration_response,
            } => {
                out.put(&response[..]);
                out.put(&registration_response[..]);
            }
            Self::PasswordChanged {
                resume_token,
                token_lifetime_secs,
            } => {
                resume_token.encode(out);
                out.u32(*token_lifetime_secs);
            }
            Self::RoomMessage {
                id,
                timestamp_ms,
                room,
                from,
                text,
            } => {
                out.u64(*id);
                out.u64(*timestamp_ms);
                room.encode(out);
                from.encode(out);
                text.encode(out);
            }
            Self::DirectMessage {
                id,
                timestamp_ms,
                from,
                to,
                text,
            } => {
                out.u64(*id);
                out.u64(*timestamp_ms);
                from.encode(out);
                to.encode(out);
                text.encode(out);
            }
            Self::Presence { online, offline } => {
                out.len16(online.len());
                for user in online {
                    user.encode(out);
                }
                out.len16(offline.len());
                for d in offline {
                    d.user.encode(out);
                    d.reason.encode(out);
                }
            }
            Self::OnlineUsers { more, users } => {
                out.bool(*more);
                out.len16(users.len());
                for user in users {
                    user.encode(out);
                }
            }
            Self::HistoryBatch { more, entries } => {
                out.bool(*more);
                out.len16(entries.len());
                for entry in entries {
                    entry.encode(out);
                }
            }
            Self::Stored {
                client_id,
                id,
                timestamp_ms,
            } => {
                out.u64(*client_id);
                out.u64(*id);
                out.u64(*timestamp_ms);
            }
            Self::SendFailed {
                client_id,
                code,
                detail,
            } => {
                out.u64(*client_id);
                code.encode(out);
                detail.encode(out);
            }
            Self::RoomJoined { info } => info.encode(out),
            Self::RoomLeft { room, reason } => {
                room.encode(out);
                reason.encode(out);
            }
            Self::RoomList { more, rooms } => {
                out.bool(*more);
                out.len16(rooms.len());
                for room in rooms {
                    room.encode(out);
                }
            }
            Self::MemberJoined { room, user } => {
                room.encode(out);
                user.encode(out);
            }
            Self::MemberLeft { room, user, reason } => {
                room.encode(out);
                user.encode(out);
                reason.encode(out);
            }
            Self::RoomChanged {
                room,
                actor,
                change,
            } => {
                room.encode(out);
                actor.encode(out);
                change.encode(out);
            }
            Self::Invited { room, by, topic } => {
                room.encode(out);
                by.encode(out);
                topic.encode(out);
            }
            Self::Done => {}
            Self::HistoryPage {
                conversation,
                more,
                complete,
                entries,
            } => {
                conversation.encode(out);
                out.bool(*more);
                out.bool(*complete);
                out.len16(entries.len());
                for entry in entries {
                    entry.encode(out);
                }
            }
            Self::ReadMarker {
                conversation,
                up_to_id,
                unread,
            } => {
                conversation.encode(out);
                out.u64(*up_to_id);
                out.u32(*unread);
            }
            Self::MemberPage {
                room,
                offset,
                total,
                members,
            } => {
                room.encode(out);
                out.u32(*offset);
                out.u32(*total);
                out.len16(members.len());
                for member in members {
                    member.encode(out);
                }
            }
            Self::DeviceList { devices } => {
                out.len16(devices.len());
                for device in devices {
                    device.encode(out);
                }
            }
            Self::Ping { nonce } | Self::Pong { nonce } => out.u64(*nonce),
            Self::Goodbye { reason } => reason.encode(out),
            Self::Error { code, detail } => {
                code.encode(out);
                detail.encode(out);
            }
        }
    }
}
