//! Messages from client to server.

use crate::message::codec::{ByteCounter, Reader, Sink};
use crate::message::password::MAX_PASSWORD_WIRE_BYTES;
use crate::message::room::MAX_ROOM_NAME_WIRE_BYTES;
use crate::message::server_message::Conversation;
use crate::message::text::MAX_TEXT_WIRE_BYTES;
use crate::message::username::MAX_USERNAME_WIRE_BYTES;
use crate::message::MAX_MESSAGE_BYTES;
use crate::message::{
    DeviceName, MessageError, MessageText, Password, Reason, ResumeToken, RoomFilter, RoomName,
    RoomRole, Topic, Username,
};
use crate::opaque::{
    CREDENTIAL_FINALIZATION_LEN, CREDENTIAL_REQUEST_LEN, REGISTRATION_REQUEST_LEN,
    REGISTRATION_UPLOAD_LEN,
};

/// Largest `Register`/`Login`: tag + username + password = 1 157 bytes.
pub(crate) const MAX_CREDENTIALS_BYTES: usize =
    1 + MAX_USERNAME_WIRE_BYTES + MAX_PASSWORD_WIRE_BYTES;
/// Largest client `SendDirect`: tag + client id + to + text = 4 237 bytes.
pub(crate) const MAX_CLIENT_DIRECT_MESSAGE_BYTES: usize =
    1 + 8 + MAX_USERNAME_WIRE_BYTES + MAX_TEXT_WIRE_BYTES;
/// Largest client `SendRoom`: tag + client id + room + text = 4 238 bytes,
/// the largest client message.
pub(crate) const MAX_CLIENT_ROOM_MESSAGE_BYTES: usize =
    1 + 8 + MAX_ROOM_NAME_WIRE_BYTES + MAX_TEXT_WIRE_BYTES;
const _: () = assert!(MAX_CREDENTIALS_BYTES <= MAX_MESSAGE_BYTES);
const _: () = assert!(MAX_CLIENT_DIRECT_MESSAGE_BYTES <= MAX_MESSAGE_BYTES);
const _: () = assert!(MAX_CLIENT_ROOM_MESSAGE_BYTES <= MAX_MESSAGE_BYTES);

/// A message from client to server: one tag byte, then the fields in order.
/// The server takes the sender's identity from the session, never from a
/// message (SECURITY.md M5), so no client message names its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// 0x01: create an account with the password in the message (version
    /// 1). Refused now (`Error Unsupported`): the password must not reach
    /// the server; [`RegisterStart`](Self::RegisterStart) replaces it.
    Register {
        username: Username,
        password: Password,
    },
    /// 0x02: log in with the password in the message (version 1). Accepted
    /// only for an account the server still holds an Argon2id hash for
    /// (it answers `LegacyLoginRequired` to `LoginStart`); the login
    /// migrates the account to OPAQUE.
    Login {
        username: Username,
        password: Password,
    },
    /// 0x03: log in with a token from an earlier `AuthOk`.
    Resume { token: ResumeToken },
    /// 0x04: OPAQUE registration, first message: the blinded password.
    RegisterStart {
        username: Username,
        request: Box<[u8; REGISTRATION_REQUEST_LEN]>,
    },
    /// 0x05: OPAQUE registration, last message: the record to store. The
    /// server answers `AuthOk` (created and logged in) or `AuthFailed`.
    RegisterFinish {
        upload: Box<[u8; REGISTRATION_UPLOAD_LEN]>,
    },
    /// 0x06: OPAQUE login, first message (KE1).
    LoginStart {
        username: Username,
        request: Box<[u8; CREDENTIAL_REQUEST_LEN]>,
    },
    /// 0x07: OPAQUE login, last message (KE3): `AuthOk` or `AuthFailed`.
    LoginFinish {
        finalization: Box<[u8; CREDENTIAL_FINALIZATION_LEN]>,
    },
    /// 0x08: change the password (logged in): a login with the old
    /// password (KE1) and a registration of the new one, together.
    ChangePasswordStart {
        request: Box<[u8; CREDENTIAL_REQUEST_LEN]>,
        registration_request: Box<[u8; REGISTRATION_REQUEST_LEN]>,
    },
    /// 0x09: the old password's KE3 and the new password's record.
    ChangePasswordFinish {
        finalization: Box<[u8; CREDENTIAL_FINALIZATION_LEN]>,
        upload: Box<[u8; REGISTRATION_UPLOAD_LEN]>,
    },
    /// 0x0A: which device this connection is: an id the client chose at
    /// random and keeps, and the name the user gave it. Sent before the
    /// login (or resume); sent again later, it renames the device.
    SetDevice { id: u64, name: DeviceName },
    /// 0x10: say something in a room, without an acknowledgement
    /// ([`SendRoom`](Self::SendRoom) is preferred).
    RoomMessage { room: RoomName, text: MessageText },
    /// 0x11: say something to one user, without an acknowledgement.
    DirectMessage { to: Username, text: MessageText },
    /// 0x12: ask for `OnlineUsers`.
    WhoIsOnline,
    /// 0x13: say something in a room the user is in; the server answers
    /// `Stored` with `client_id` once the message is in history. Resending
    /// the same `client_id` (after a reconnect) stores and delivers it only
    /// once.
    SendRoom {
        client_id: u64,
        room: RoomName,
        text: MessageText,
    },
    /// 0x14: say something to one user, acknowledged like `SendRoom`.
    SendDirect {
        client_id: u64,
        to: Username,
        text: MessageText,
    },
    /// 0x20: the server answers `Pong` with the same nonce.
    Ping { nonce: u64 },
    /// 0x21: the answer to a server `Ping`.
    Pong { nonce: u64 },
    /// 0x30: the client ends the session.
    Goodbye,
    /// 0x40: create a room and join it as its owner; answered by
    /// `RoomJoined` (or `Error RoomExists | LimitReached | RateLimited`).
    CreateRoom {
        room: RoomName,
        invite_only: bool,
        topic: Topic,
    },
    /// 0x41: join a public room; answered by `RoomJoined` (or `Error
    /// NoSuchRoom | Forbidden | LimitReached | RateLimited`). Joining a
    /// room the user is in already answers `RoomJoined` again.
    JoinRoom { room: RoomName },
    /// 0x42: leave a room; every device of the user gets `RoomLeft` (or
    /// `Error NotAMember`).
    LeaveRoom { room: RoomName },
    /// 0x43: list the public rooms (and the user's own) whose name or
    /// topic contains `filter`; answered by `RoomList` pages.
    ListRooms { filter: RoomFilter },
    /// 0x44: invite `user` (moderators and the owner): they may join the
    /// room even if it is invite-only.
    Invite { room: RoomName, user: Username },
    /// 0x45: remove `user` from the room (moderators may remove members,
    /// the owner anyone but themselves).
    Kick {
        room: RoomName,
        user: Username,
        reason: Reason,
    },
    /// 0x46: remove `user` and refuse their joins for `minutes` (0: until
    /// unbanned); a user need not be a member to be banned.
    Ban {
        room: RoomName,
        user: Username,
        reason: Reason,
        minutes: u32,
    },
    /// 0x47: lift a ban.
    Unban { room: RoomName, user: Username },
    /// 0x48: set the topic (moderators and the owner).
    SetTopic { room: RoomName, topic: Topic },
    /// 0x49: make the room invite-only or public (moderators and the
    /// owner).
    SetInviteOnly { room: RoomName, invite_only: bool },
    /// 0x4A: make a member a moderator or a member again (the owner only;
    /// `Owner` is refused).
    SetRole {
        room: RoomName,
        user: Username,
        role: RoomRole,
    },
    /// 0x4B: stop a member posting (`muted`), or let them again.
    Mute {
        room: RoomName,
        user: Username,
        muted: bool,
    },
    /// 0x4C: delete the room and its history (its owner, or a server
    /// administrator).
    DeleteRoom { room: RoomName },
    /// 0x50: disable or re-enable an account (server administrators):
    /// a disabled account's sessions end and it cannot log in.
    SetAccountDisabled { user: Username, disabled: bool },
    /// 0x51: end every session of an account and revoke its resume tokens
    /// (server administrators).
    EndSessions { user: Username },
    /// 0x52: ask for `DeviceList`.
    ListDevices,
    /// 0x53: log out one of the user's devices: its session ends, its
    /// resume token is revoked, and it is forgotten.
    LogoutDevice { id: u64 },
    /// 0x54: older messages of a conversation: at most `limit` (1 to
    /// [`MAX_HISTORY_PAGE`]) of those with an id below `before_id` (0: the
    /// newest), answered by `HistoryPage` chunks.
    History {
        conversation: Conversation,
        before_id: u64,
        limit: u16,
    },
    /// 0x55: the user has read `conversation` up to message `up_to_id`;
    /// the server keeps it and tells the user's other devices.
    MarkRead {
        conversation: Conversation,
        up_to_id: u64,
    },
    /// 0x56: a page of `room`'s members (by name, from `offset`), answered
    /// by `MemberPage`. Members only.
    Members { room: RoomName, offset: u32 },
}

/// Most messages one `History` request may ask for.
pub const MAX_HISTORY_PAGE: u16 = 200;

pub(crate) mod tag {
    pub const REGISTER: u8 = 0x01;
    pub const LOGIN: u8 = 0x02;
    pub const RESUME: u8 = 0x03;
    pub const REGISTER_START: u8 = 0x04;
    pub const REGISTER_FINISH: u8 = 0x05;
    pub const LOGIN_START: u8 = 0x06;
    pub const LOGIN_FINISH: u8 = 0x07;
    pub const CHANGE_PASSWORD_START: u8 = 0x08;
    pub const CHANGE_PASSWORD_FINISH: u8 = 0x09;
    pub const SET_DEVICE: u8 = 0x0A;
    pub const ROOM_MESSAGE: u8 = 0x10;
    pub const DIRECT_MESSAGE: u8 = 0x11;
    pub const WHO_IS_ONLINE: u8 = 0x12;
    pub const SEND_ROOM: u8 = 0x13;
    pub const SEND_DIRECT: u8 = 0x14;
    pub const PING: u8 = 0x20;
    pub const PONG: u8 = 0x21;
    pub const GOODBYE: u8 = 0x30;
    pub const CREATE_ROOM: u8 = 0x40;
    pub const JOIN_ROOM: u8 = 0x41;
    pub const LEAVE_ROOM: u8 = 0x42;
    pub const LIST_ROOMS: u8 = 0x43;
    pub const INVITE: u8 = 0x44;
    pub const KICK: u8 = 0x45;
    pub const BAN: u8 = 0x46;
    pub const UNBAN: u8 = 0x47;
    pub const SET_TOPIC: u8 = 0x48;
    pub const SET_INVITE_ONLY: u8 = 0x49;
    pub const SET_ROLE: u8 = 0x4A;
    pub const MUTE: u8 = 0x4B;
    pub const DELETE_ROOM: u8 = 0x4C;
    pub const SET_ACCOUNT_DISABLED: u8 = 0x50;
    pub const END_SESSIONS: u8 = 0x51;
    pub const LIST_DEVICES: u8 = 0x52;
    pub const LOGOUT_DEVICE: u8 = 0x53;
    pub const HISTORY: u8 = 0x54;
    pub const MARK_READ: u8 = 0x55;
    pub const MEMBERS: u8 = 0x56;
}

impl ClientMessage {
    /// The message's encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    /// Appends the message's encoding to `out`, reserving the exact size first
    /// so that `out` is not reallocated (and a password not copied) midway.
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
            tag::REGISTER => Self::Register {
                username: Username::decode(&mut r)?,
                password: Password::decode(&mut r)?,
            },
            tag::LOGIN => Self::Login {
                username: Username::decode(&mut r)?,
                password: Password::decode(&mut r)?,
            },
            tag::RESUME => Self::Resume {
                token: ResumeToken::decode(&mut r)?,
            },
            tag::REGISTER_START => Self::RegisterStart {
                username: Username::decode(&mut r)?,
                request: Box::new(r.array()?),
            },
            tag::REGISTER_FINISH => Self::RegisterFinish {
                upload: Box::new(r.array()?),
            },
            tag::LOGIN_START => Self::LoginStart {
                username: Username::decode(&mut r)?,
                request: Box::new(r.array()?),
            },
            tag::LOGIN_FINISH => Self::LoginFinish {
                finalization: Box::new(r.array()?),
            },
            tag::CHANGE_PASSWORD_START => Self::ChangePasswordStart {
                request: Box::new(r.array()?),
                registration_request: Box::new(r.array()?),
            },
            tag::CHANGE_PASSWORD_FINISH => Self::ChangePasswordFinish {
                finalization: Box::new(r.array()?),
                upload: Box::new(r.array()?),
            },
            tag::SET_DEVICE => Self::SetDevice {
                id: r.u64()?,
                name: DeviceName::decode(&mut r)?,
            },
            tag::ROOM_MESSAGE => Self::RoomMessage {
                room: RoomName::decode(&mut r)?,
                text: MessageText::decode(&mut r)?,
            },
            tag::DIRECT_MESSAGE => Self::DirectMessage {
                to: Username::decode(&mut r)?,
                text: MessageText::decode(&mut r)?,
            },
            tag::WHO_IS_ONLINE => Self::WhoIsOnline,
            tag::SEND_ROOM => Self::SendRoom {
                client_id: r.u64()?,
                room: RoomName::decode(&mut r)?,
                text: MessageText::decode(&mut r)?,
            },
            tag::SEND_DIRECT => Self::SendDirect {
                client_id: r.u64()?,
                to: Username::decode(&mut r)?,
                text: MessageText::decode(&mut r)?,
            },
            tag::PING => Self::Ping { nonce: r.u64()? },
            tag::PONG => Self::Pong { nonce: r.u64()? },
            tag::GOODBYE => Self::Goodbye,
            tag::CREATE_ROOM => Self::CreateRoom {
                room: RoomName::decode(&mut r)?,
                invite_only: r.bool("invite_only")?,
                topic: Topic::decode(&mut r)?,
            },
            tag::JOIN_ROOM => Self::JoinRoom {
                room: RoomName::decode(&mut r)?,
            },
            tag::LEAVE_ROOM => Self::LeaveRoom {
                room: RoomName::decode(&mut r)?,
            },
            tag::LIST_ROOMS => Self::ListRooms {
                filter: RoomFilter::decode(&mut r)?,
            },
            tag::INVITE => Self::Invite {
                room: RoomName::decode(&mut r)?,
                user: Username::decode(&mut r)?,
            },
            tag::KICK => Self::Kick {
                room: RoomName::decode(&mut r)?,
                user: Username::decode(&mut r)?,
                reason: Reason::decode(&mut r)?,
            },
            tag::BAN => Self::Ban {
                room: RoomName::decode(&mut r)?,
                user: Username::decode(&mut r)?,
                reason: Reason::decode(&mut r)?,
                minutes: r.u32()?,
            },
            tag::UNBAN => Self::Unban {
                room: RoomName::decode(&mut r)?,
                user: Username::decode(&mut r)?,
            },
            tag::SET_TOPIC => Self::SetTopic {
                room: RoomName::decode(&mut r)?,
                topic: Topic::decode(&mut r)?,
            },
            tag::SET_INVITE_ONLY => Self::SetInviteOnly {
                room: RoomName::decode(&mut r)?,
                invite_only: r.bool("invite_only")?,
            },
            tag::SET_ROLE => Self::SetRole {
                room: RoomName::decode(&mut r)?,
                user: Username::decode(&mut r)?,
                role: RoomRole::decode(&mut r)?,
            },
            tag::MUTE => Self::Mute {
                room: RoomName::decode(&mut r)?,
                user: Username::decode(&mut r)?,
                muted: r.bool("muted")?,
            },
            tag::DELETE_ROOM => Self::DeleteRoom {
                room: RoomName::decode(&mut r)?,
            },
            tag::SET_ACCOUNT_DISABLED => Self::SetAccountDisabled {
                user: Username::decode(&mut r)?,
                disabled: r.bool("disabled")?,
            },
            tag::END_SESSIONS => Self::EndSessions {
                user: Username::decode(&mut r)?,
            },
            tag::LIST_DEVICES => Self::ListDevices,
            tag::LOGOUT_DEVICE => Self::LogoutDevice { id: r.u64()? },
            tag::HISTORY => Self::History {
                conversation: Conversation::decode(&mut r)?,
                before_id: r.u64()?,
                limit: {
                    let limit = r.u16()?;
                    if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
                        return Err(MessageError::InvalidEnum {
                            field: "history limit",
                            value: limit,
                        });
                    }
                    limit
                },
            },
            tag::MARK_READ => Self::MarkRead {
                conversation: Conversation::decode(&mut r)?,
                up_to_id: r.u64()?,
            },
            tag::MEMBERS => Self::Members {
                room: RoomName::decode(&mut r)?,
                offset: r.u32()?,
            },
            unknown => return Err(MessageError::UnknownTag(unknown)),
        };
        r.finish()?;
        Ok(msg)
    }

    /// The tag byte that starts this message's encoding.
    pub fn tag(&self) -> u8 {
        match self {
            Self::Register { .. } => tag::REGISTER,
            Self::Login { .. } => tag::LOGIN,
            Self::Resume { .. } => tag::RESUME,
            Self::RegisterStart { .. } => tag::REGISTER_START,
            Self::RegisterFinish { .. } => tag::REGISTER_FINISH,
            Self::LoginStart { .. } => tag::LOGIN_START,
            Self::LoginFinish { .. } => tag::LOGIN_FINISH,
            Self::ChangePasswordStart { .. } => tag::CHANGE_PASSWORD_START,
            Self::ChangePasswordFinish { .. } => tag::CHANGE_PASSWORD_FINISH,
            Self::SetDevice { .. } => tag::SET_DEVICE,
            Self::RoomMessage { .. } => tag::ROOM_MESSAGE,
            Self::DirectMessage { .. } => tag::DIRECT_MESSAGE,
            Self::WhoIsOnline => tag::WHO_IS_ONLINE,
            Self::SendRoom { .. } => tag::SEND_ROOM,
            Self::SendDirect { .. } => tag::SEND_DIRECT,
            Self::Ping { .. } => tag::PING,
            Self::Pong { .. } => tag::PONG,
            Self::Goodbye => tag::GOODBYE,
            Self::CreateRoom { .. } => tag::CREATE_ROOM,
            Self::JoinRoom { .. } => tag::JOIN_ROOM,
            Self::LeaveRoom { .. } => tag::LEAVE_ROOM,
            Self::ListRooms { .. } => tag::LIST_ROOMS,
            Self::Invite { .. } => tag::INVITE,
            Self::Kick { .. } => tag::KICK,
            Self::Ban { .. } => tag::BAN,
            Self::Unban { .. } => tag::UNBAN,
            Self::SetTopic { .. } => tag::SET_TOPIC,
            Self::SetInviteOnly { .. } => tag::SET_INVITE_ONLY,
            Self::SetRole { .. } => tag::SET_ROLE,
            Self::Mute { .. } => tag::MUTE,
            Self::DeleteRoom { .. } => tag::DELETE_ROOM,
            Self::SetAccountDisabled { .. } => tag::SET_ACCOUNT_DISABLED,
            Self::EndSessions { .. } => tag::END_SESSIONS,
            Self::ListDevices => tag::LIST_DEVICES,
            Self::LogoutDevice { .. } => tag::LOGOUT_DEVICE,
            Self::History { .. } => tag::HISTORY,
            Self::MarkRead { .. } => tag::MARK_READ,
            Self::Members { .. } => tag::MEMBERS,
        }
    }

    fn write(&self, out: &mut impl Sink) {
        out.u8(self.tag());
        match self {
            Self::Register { username, password } | Self::Login { username, password } => {
                username.encode(out);
                password.encode(out);
            }
            Self::Resume { token } => token.encode(out),
            Self::RegisterStart { username, request } => {
                username.encode(out);
                out.put(&request[..]);
            }
            Self::RegisterFinish { upload } => out.put(&upload[..]),
            Self::LoginStart { username, request } => {
                username.encode(out);
                out.put(&request[..]);
            }
            Self::LoginFinish { finalization } => out.put(&finalization[..]),
            Self::ChangePasswordStart {
                request,
                registration_request,
            } => {
                out.put(&request[..]);
                out.put(&registration_request[..]);
            }
            Self::ChangePasswordFinish {
                finalization,
                upload,
            } => {
                out.put(&finalization[..]);
                out.put(&upload[..]);
            }
            Self::RoomMessage { room, text } => {
                room.encode(out);
                text.encode(out);
            }
            Self::DirectMessage { to, text } => {
                to.encode(out);
                text.encode(out);
            }
            Self::SendRoom {
                client_id,
                room,
                text,
            } => {
                out.u64(*client_id);
                room.encode(out);
                text.encode(out);
            }
            Self::SendDirect {
                client_id,
                to,
                text,
            } => {
                out.u64(*client_id);
                to.encode(out);
                text.encode(out);
            }
            Self::Ping { nonce } | Self::Pong { nonce } => out.u64(*nonce),
            Self::WhoIsOnline | Self::Goodbye => {}
            Self::CreateRoom {
                room,
                invite_only,
                topic,
            } => {
                room.encode(out);
                out.bool(*invite_only);
                topic.encode(out);
            }
            Self::JoinRoom { room } | Self::LeaveRoom { room } | Self::DeleteRoom { room } => {
                room.encode(out)
            }
            Self::ListRooms { filter } => filter.encode(out),
            Self::Invite { room, user } | Self::Unban { room, user } => {
                room.encode(out);
                user.encode(out);
            }
            Self::Kick { room, user, reason } => {
                room.encode(out);
                user.encode(out);
                reason.encode(out);
            }
            Self::Ban {
                room,
                user,
                reason,
                minutes,
            } => {
                room.encode(out);
                user.encode(out);
                reason.encode(out);
                out.u32(*minutes);
            }
            Self::SetTopic { room, topic } => {
                room.encode(out);
                topic.encode(out);
            }
            Self::SetInviteOnly { room, invite_only } => {
                room.encode(out);
                out.bool(*invite_only);
            }
            Self::SetRole { room, user, role } => {
                room.encode(out);
                user.encode(out);
                role.encode(out);
            }
            Self::Mute { room, user, muted } => {
                room.encode(out);
                user.encode(out);
                out.bool(*muted);
            }
            Self::SetAccountDisabled { user, disabled } => {
                user.encode(out);
                out.bool(*disabled);
            }
            Self::EndSessions { user } => user.encode(out),
            Self::SetDevice { id, name } => {
                out.u64(*id);
                name.encode(out);
            }
            Self::ListDevices => {}
            Self::LogoutDevice { id } => out.u64(*id),
            Self::History {
                conversation,
                before_id,
                limit,
            } => {
                conversation.encode(out);
                out.u64(*before_id);
                out.u16(*limit);
            }
            Self::MarkRead {
                conversation,
                up_to_id,
            } => {
                conversation.encode(out);
                out.u64(*up_to_id);
            }
            Self::Members { room, offset } => {
                room.encode(out);
                out.u32(*offset);
            }
        }
    }
}
