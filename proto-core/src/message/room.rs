//! Rooms on the wire: their names, topics, the role a member holds, and what
//! a client is told about a room it is in or could join.

use core::fmt;

use crate::message::codec::{Reader, Sink, U16_BYTES};
use crate::message::error::{MessageError, TextError, UsernameError};
use crate::message::text::check_chars;
use crate::message::username::MAX_USERNAME_BYTES;
use crate::message::{RoomRole, Username};

/// Maximum encoded length of a room name in bytes: `#` and a username.
pub const MAX_ROOM_NAME_BYTES: usize = 1 + MAX_USERNAME_BYTES;
/// Maximum length of a room topic in bytes of UTF-8.
pub const MAX_TOPIC_BYTES: usize = 512;
/// Maximum length of a room-list filter in bytes of UTF-8.
pub const MAX_ROOM_FILTER_BYTES: usize = 128;
/// Maximum length of a moderator's reason in bytes of UTF-8.
pub const MAX_REASON_BYTES: usize = 256;
pub(crate) const MAX_ROOM_NAME_WIRE_BYTES: usize = U16_BYTES + MAX_ROOM_NAME_BYTES;
pub(crate) const MIN_ROOM_NAME_WIRE_BYTES: usize = U16_BYTES + 2;
pub(crate) const MAX_TOPIC_WIRE_BYTES: usize = U16_BYTES + MAX_TOPIC_BYTES;
pub(crate) const MIN_TOPIC_WIRE_BYTES: usize = U16_BYTES;

/// The room every account joins at registration.
pub const GENERAL_ROOM: &str = "#general";

/// A room's name: `#` followed by a valid [`Username`] (same characters,
/// same NFC rule, 1 to 32 characters after the `#`). Compared
/// case-insensitively through [`canonical`](Self::canonical), like
/// usernames.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

impl RoomName {
    /// Validates `s` exactly as given (with its `#`).
    pub fn new(s: &str) -> Result<Self, UsernameError> {
        let Some(rest) = s.strip_prefix('#') else {
            return Err(match s.chars().next() {
                None => UsernameError::Empty,
                Some(c) => UsernameError::ForbiddenChar {
                    code_point: u32::from(c),
                },
            });
        };
        Username::new(rest)?;
        Ok(Self(s.to_owned()))
    }

    /// Adds the `#` if it is missing and NFC-normalizes, then validates. For
    /// UIs (`/join general`); never used on the wire.
    pub fn parse_normalizing(s: &str) -> Result<Self, UsernameError> {
        let rest = s.strip_prefix('#').unwrap_or(s);
        let name = Username::parse_normalizing(rest)?;
        Ok(Self(format!("#{}", name.as_str())))
    }

    /// `#general`.
    pub fn general() -> Self {
        Self(GENERAL_ROOM.to_owned())
    }

    /// The name as created; safe to display as is.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key (`#` + the username key of the rest).
    pub fn canonical(&self) -> String {
        let rest = &self.0[1..];
        match Username::new(rest) {
            Ok(name) => format!("#{}", name.canonical()),
            // Unreachable: every RoomName was validated.
            Err(_) => self.0.to_lowercase(),
        }
    }

    /// Whether both name the same room.
    pub fn same_room(&self, other: &RoomName) -> bool {
        self.0 == other.0 || self.canonical() == other.canonical()
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        let s = r.str("room", MAX_ROOM_NAME_BYTES)?;
        Self::new(s).map_err(MessageError::InvalidRoomName)
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        out.str(&self.0);
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A one-line text field: 0 to `$max` bytes of UTF-8, the character rules
/// of [`MessageText`](crate::message::MessageText) and no `\n`; empty
/// means none.
macro_rules! one_line_text {
    ($(#[$meta:meta])* $name:ident, $max:expr, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: &str) -> Result<Self, TextError> {
                check_one_line(s, $max)?;
                Ok(Self(s.to_owned()))
            }

            /// None.
            pub fn empty() -> Self {
                Self::default()
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
                let s = r.str($field, $max)?;
                Ok(Self::new(s)?)
            }

            pub(crate) fn encode(&self, out: &mut impl Sink) {
                out.str(&self.0);
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

one_line_text!(
    /// A room's topic: 0 to [`MAX_TOPIC_BYTES`] bytes, one line. Empty
    /// means no topic.
    Topic,
    MAX_TOPIC_BYTES,
    "topic"
);

one_line_text!(
    /// What a room list is narrowed to: rooms whose name or topic contains
    /// it, case-insensitively. 0 to [`MAX_ROOM_FILTER_BYTES`] bytes, one
    /// line; empty lists every room.
    RoomFilter,
    MAX_ROOM_FILTER_BYTES,
    "filter"
);

one_line_text!(
    /// Why a moderator kicked or banned someone: 0 to [`MAX_REASON_BYTES`]
    /// bytes, one line; empty for none.
    Reason,
    MAX_REASON_BYTES,
    "reason"
);

impl RoomFilter {
    /// Whether a room with this name and topic is listed.
    pub fn matches(&self, room: &RoomName, topic: &Topic) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let needle = self.0.to_lowercase();
        room.as_str().to_lowercase().contains(&needle)
            || topic.as_str().to_lowercase().contains(&needle)
    }
}

/// What changed in a room, and about whom: the body of `RoomChanged`, which
/// every member online sees with the name of who did it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoomChange {
    /// 1: the topic is now `topic`.
    Topic { topic: Topic },
    /// 2: the room is now invite-only, or public.
    InviteOnly { invite_only: bool },
    /// 3: `user` was removed from the room; they may join again (a public
    /// room) or be invited again.
    Kicked { user: Username, reason: Reason },
    /// 4: `user` was removed and may not join again until `until_ms`
    /// (milliseconds since the Unix epoch; 0: until unbanned).
    Banned {
        user: Username,
        reason: Reason,
        until_ms: u64,
    },
    /// 5: `user` may join again.
    Unbanned { user: Username },
    /// 6: `user` now has `role` (the owner appoints moderators).
    Role { user: Username, role: RoomRole },
    /// 7: `user` may not post (`muted`), or may again.
    Muted { user: Username, muted: bool },
    /// 8: `user` was invited (may join although the room is invite-only).
    Invited { user: Username },
}

impl RoomChange {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        Ok(match r.u8()? {
            1 => Self::Topic {
                topic: Topic::decode(r)?,
            },
            2 => Self::InviteOnly {
                invite_only: r.bool("invite_only")?,
            },
            3 => Self::Kicked {
                user: Username::decode(r)?,
                reason: Reason::decode(r)?,
            },
            4 => Self::Banned {
                user: Username::decode(r)?,
                reason: Reason::decode(r)?,
                until_ms: r.u64()?,
            },
            5 => Self::Unbanned {
                user: Username::decode(r)?,
            },
            6 => Self::Role {
                user: Username::decode(r)?,
                role: RoomRole::decode(r)?,
            },
            7 => Self::Muted {
                user: Username::decode(r)?,
                muted: r.bool("muted")?,
            },
            8 => Self::Invited {
                user: Username::decode(r)?,
            },
            value => {
                return Err(MessageError::InvalidEnum {
                    field: "room change",
                    value: u16::from(value),
                })
            }
        })
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        match self {
            Self::Topic { topic } => {
                out.u8(1);
                topic.encode(out);
            }
            Self::InviteOnly { invite_only } => {
                out.u8(2);
                out.bool(*invite_only);
            }
            Self::Kicked { user, reason } => {
                out.u8(3);
                user.encode(out);
                reason.encode(out);
            }
            Self::Banned {
                user,
                reason,
                until_ms,
            } => {
                out.u8(4);
                user.encode(out);
                reason.encode(out);
                out.u64(*until_ms);
            }
            Self::Unbanned { user } => {
                out.u8(5);
                user.encode(out);
            }
            Self::Role { user, role } => {
                out.u8(6);
                user.encode(out);
                role.encode(out);
            }
            Self::Muted { user, muted } => {
                out.u8(7);
                user.encode(out);
                out.bool(*muted);
            }
            Self::Invited { user } => {
                out.u8(8);
                user.encode(out);
            }
        }
    }
}

fn check_one_line(s: &str, max: usize) -> Result<(), TextError> {
    check_chars(s, max)?;
    if s.contains('\n') {
        return Err(TextError::ForbiddenChar { code_point: 0x0A });
    }
    Ok(())
}

/// A room the user is in, as the greeting and `RoomJoined` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomInfo {
    pub room: RoomName,
    pub topic: Topic,
    /// Joined by invitation only, and not listed to non-members.
    pub invite_only: bool,
    /// The user's role in it.
    pub role: RoomRole,
    /// Members (online or not).
    pub members: u32,
}

/// Largest encoding of a [`RoomInfo`]: far below a message's limit.
const MAX_ROOM_INFO_BYTES: usize = MAX_ROOM_NAME_WIRE_BYTES + MAX_TOPIC_WIRE_BYTES + 1 + 1 + 4;
const _: () = assert!(MAX_ROOM_INFO_BYTES < crate::message::MAX_MESSAGE_BYTES);

impl RoomInfo {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            room: RoomName::decode(r)?,
            topic: Topic::decode(r)?,
            invite_only: r.bool("invite_only")?,
            role: RoomRole::decode(r)?,
            members: r.u32()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        self.room.encode(out);
        self.topic.encode(out);
        out.bool(self.invite_only);
        self.role.encode(out);
        out.u32(self.members);
    }
}

/// A member of a room, as a `MemberPage` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberInfo {
    pub user: Username,
    pub role: RoomRole,
    /// Logged in on at least one device.
    pub online: bool,
}

/// Largest encoding of a [`MemberInfo`]: a username, a role, a bool.
pub(crate) const MAX_MEMBER_INFO_BYTES: usize =
    crate::message::username::MAX_USERNAME_WIRE_BYTES + 1 + 1;
pub(crate) const MIN_MEMBER_INFO_BYTES: usize =
    crate::message::username::MIN_USERNAME_WIRE_BYTES + 1 + 1;

impl MemberInfo {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            user: Username::decode(r)?,
            role: RoomRole::decode(r)?,
            online: r.bool("online")?,
        })
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        self.user.encode(out);
        self.role.encode(out);
        out.bool(self.online);
    }
}

/// A room in a `RoomList`: a public room (or one the asker is in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomSummary {
    pub room: RoomName,
    pub topic: Topic,
    pub members: u32,
}

pub(crate) const MAX_ROOM_SUMMARY_BYTES: usize =
    MAX_ROOM_NAME_WIRE_BYTES + MAX_TOPIC_WIRE_BYTES + 4;
pub(crate) const MIN_ROOM_SUMMARY_BYTES: usize =
    MIN_ROOM_NAME_WIRE_BYTES + MIN_TOPIC_WIRE_BYTES + 4;

impl RoomSummary {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            room: RoomName::decode(r)?,
            topic: Topic::decode(r)?,
            members: r.u32()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        self.room.encode(out);
        self.topic.encode(out);
        out.u32(self.members);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_a_hash_and_a_username() {
        assert!(RoomName::new("#general").is_ok());
        assert!(RoomName::new("#Zoë-Ünïcode.2").is_ok());
        assert_eq!(
            RoomName::new("general"),
            Err(UsernameError::ForbiddenChar { code_point: 0x67 })
        );
        assert_eq!(RoomName::new(""), Err(UsernameError::Empty));
        assert_eq!(RoomName::new("#"), Err(UsernameError::Empty));
        assert!(RoomName::new("##x").is_err());
        assert!(RoomName::new("#a b").is_err());
        assert!(RoomName::new("#a\u{202e}b").is_err());
        assert!(RoomName::new(&format!("#{}", "x".repeat(33))).is_err());
        assert!(RoomName::new(&format!("#{}", "x".repeat(32))).is_ok());
    }

    #[test]
    fn room_names_compare_without_case() {
        let a = RoomName::new("#Rust").unwrap();
        let b = RoomName::new("#rUST").unwrap();
        assert!(a.same_room(&b));
        assert_eq!(a.canonical(), "#rust");
        assert_eq!(
            RoomName::parse_normalizing("rust").unwrap().as_str(),
            "#rust"
        );
        assert_eq!(
            RoomName::parse_normalizing("#Zoe\u{0308}")
                .unwrap()
                .as_str(),
            "#Zoë"
        );
    }

    #[test]
    fn topics_are_one_line_of_text_and_may_be_empty() {
        assert!(Topic::new("").unwrap().is_empty());
        assert!(Topic::new("Rust talk — no spoilers 🦀").is_ok());
        assert_eq!(
            Topic::new("two\nlines"),
            Err(TextError::ForbiddenChar { code_point: 0x0A })
        );
        assert!(Topic::new("\u{1b}[31m").is_err());
        assert!(Topic::new(&"x".repeat(MAX_TOPIC_BYTES)).is_ok());
        assert_eq!(
            Topic::new(&"x".repeat(MAX_TOPIC_BYTES + 1)),
            Err(TextError::TooLong {
                max: MAX_TOPIC_BYTES
            })
        );
    }

    #[test]
    fn a_filter_matches_name_or_topic_without_case() {
        let room = RoomName::new("#Rust").unwrap();
        let topic = Topic::new("Systems Programming").unwrap();
        assert!(RoomFilter::new("").unwrap().matches(&room, &topic));
        assert!(RoomFilter::new("rus").unwrap().matches(&room, &topic));
        assert!(RoomFilter::new("PROGRAM").unwrap().matches(&room, &topic));
        assert!(!RoomFilter::new("go").unwrap().matches(&room, &topic));
    }
}
