//! Application messages: the typed chat messages carried inside records,
//! their byte-exact encoding and their validation.
//!
//! The wire format is specified in docs/PROTOCOL.md, "Application messages".
//! In short: each message is one tag byte followed by its fields; integers
//! are big-endian; `str` is a u16 byte length plus UTF-8; `list<T>` is a u16
//! count plus items; `bool` is 0x00 or 0x01. Decoding consumes the whole
//! buffer or fails, and every length is checked against its limit and the
//! bytes left before anything is allocated.
//!
//! Validation lives in the field types ([`Username`], [`Password`],
//! [`MessageText`], [`ErrorDetail`], [`BoundedList`]): their fields are
//! private and every constructor, including decoding, checks the rules, so a
//! value that exists is valid and every message encodes within
//! [`MAX_MESSAGE_BYTES`].

mod bounded_list;
mod client_message;
mod codec;
mod codes;
mod device;
mod error;
mod password;
mod resume_token;
mod room;
mod server_message;
mod text;
mod username;

#[cfg(test)]
mod encoding_tests;

pub use bounded_list::BoundedList;
pub use client_message::{ClientMessage, MAX_HISTORY_PAGE};
pub use codes::{AuthFailure, ErrorCode, GoodbyeReason, LeaveReason, RoomLeaveReason, RoomRole};
pub use device::{DeviceInfo, DeviceName, MAX_ADDRESS_BYTES, MAX_DEVICE_NAME_BYTES};
pub use error::{MessageError, PasswordError, TextError, UsernameError};
pub use password::{Password, MAX_PASSWORD_BYTES};
pub use resume_token::ResumeToken;
pub use room::{
    MemberInfo, Reason, RoomChange, RoomFilter, RoomInfo, RoomName, RoomSummary, Topic,
    GENERAL_ROOM, MAX_REASON_BYTES, MAX_ROOM_FILTER_BYTES, MAX_ROOM_NAME_BYTES, MAX_TOPIC_BYTES,
};
pub use server_message::{
    Conversation, Departure, DeviceInfos, HistoryEntries, HistoryEntry, MemberInfos,
    PresenceOffline, PresenceOnline, RoomSummaries, ServerMessage, UserList, MAX_DEVICES_PER_LIST,
    MAX_HISTORY_ENTRIES_PER_BATCH, MAX_MEMBERS_PER_PAGE, MAX_ONLINE_USERS_PER_MESSAGE,
    MAX_PRESENCE_PER_LIST, MAX_ROOMS_PER_LIST,
};
pub use text::{
    escape_for_display, ErrorDetail, MessageText, MAX_ERROR_DETAIL_BYTES, MAX_TEXT_BYTES,
};
pub use username::{Username, MAX_USERNAME_BYTES, MAX_USERNAME_CHARS};

/// The largest encoding of any valid message, in bytes. Every message type's
/// limits are chosen so that its worst case fits (checked at compile time
/// and by tests); decoders reject longer input before parsing it.
pub const MAX_MESSAGE_BYTES: usize = 65_000;
