//! Enumerated fields: why authentication failed, why a user left, why a
//! connection ends, what went wrong. Unknown values are decoding errors.

use crate::message::codec::{Reader, Sink};
use crate::message::error::MessageError;

/// Defines a fieldless enum carried as one unsigned integer of type `$repr`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident: $repr:ident, field = $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$( $name::$variant, )+];

            /// The value on the wire.
            pub fn to_wire(self) -> $repr {
                match self {
                    $( $name::$variant => $value, )+
                }
            }

            /// The variant for a wire value, if it is one.
            pub fn from_wire(value: $repr) -> Option<Self> {
                match value {
                    $( $value => Some($name::$variant), )+
                    _ => None,
                }
            }

            pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
                let value = r.$repr()?;
                Self::from_wire(value).ok_or(MessageError::InvalidEnum {
                    field: $field,
                    value: u16::from(value),
                })
            }

            pub(crate) fn encode(self, out: &mut impl Sink) {
                out.$repr(self.to_wire());
            }
        }
    };
}

wire_enum! {
    /// Why `Register`, `Login` or `Resume` failed (u8).
    AuthFailure: u8, field = "auth failure" {
        /// The one answer for unknown user, wrong password and throttled
        /// account, so none can be told apart (SECURITY.md E1, B1).
        LoginFailed = 1,
        /// `Register` for a name whose canonical form is taken.
        NameTaken = 2,
        /// `Register` for a name the server's policy refuses (e.g. reserved).
        InvalidUsername = 3,
        /// `Register` with a password the server's policy refuses.
        WeakPassword = 4,
        /// `Resume` with an unknown, expired or used token.
        ResumeFailed = 5,
        /// A server administrator disabled the account (told only after
        /// the password was proven).
        AccountDisabled = 6,
        /// The account is logged in on as many devices as the server
        /// allows, and this is a new one: log one out first.
        TooManyDevices = 7,
    }
}

wire_enum! {
    /// Why a user left the room (u8).
    LeaveReason: u8, field = "leave reason" {
        /// Said goodbye.
        Exit = 1,
        /// Connection lost without a goodbye.
        Dropped = 2,
        /// The server is shutting down.
        ServerShutdown = 3,
        /// Disconnected by the server for a limit or protocol violation.
        Disconnected = 4,
    }
}

wire_enum! {
    /// Why the server ends the session (u8).
    GoodbyeReason: u8, field = "goodbye reason" {
        /// The client said goodbye.
        ClientRequest = 1,
        ServerShutdown = 2,
        IdleTimeout = 3,
        ProtocolViolation = 4,
        /// The client read too slowly and its queue overflowed.
        SlowConsumer = 5,
        /// The same user logged in (or resumed) on another connection.
        Replaced = 6,
        /// A server administrator disabled the account.
        AccountDisabled = 7,
        /// A server administrator ended the account's sessions.
        SessionEnded = 8,
    }
}

wire_enum! {
    /// What a server `Error` reports (u16).
    ErrorCode: u16, field = "error code" {
        /// A chat message before authentication.
        NotLoggedIn = 1,
        /// A direct message to a user who does not exist (an offline user
        /// gets it from history at their next login).
        UnknownRecipient = 2,
        RateLimited = 3,
        MessageTooLarge = 4,
        InvalidMessage = 5,
        /// `Register`, `Login` or `Resume` on an authenticated session.
        AlreadyLoggedIn = 6,
        ServerFull = 7,
        Internal = 8,
        /// A request this server no longer serves: the version-1
        /// `Register` (which carried the password), or a password change
        /// before the account's first OPAQUE login.
        Unsupported = 9,
        /// A room that does not exist (or, invite-only, is not shown to
        /// the asker).
        NoSuchRoom = 10,
        /// A room request that needs membership (sending, leaving) from
        /// a user who is not a member.
        NotAMember = 11,
        /// `CreateRoom` with a name taken in any letter case.
        RoomExists = 12,
        /// The user's role does not allow the request, or the room is
        /// invite-only.
        Forbidden = 13,
        /// A cap was reached: rooms per user, members per room, rooms on
        /// the server.
        LimitReached = 14,
    }
}

wire_enum! {
    /// A member's role in a room (u8).
    RoomRole: u8, field = "room role" {
        Member = 1,
        /// Appointed by the owner.
        Moderator = 2,
        /// The creator.
        Owner = 3,
    }
}

impl RoomRole {
    /// Higher outranks lower: the owner, then moderators, then members.
    pub fn rank(self) -> u8 {
        match self {
            RoomRole::Member => 0,
            RoomRole::Moderator => 1,
            RoomRole::Owner => 2,
        }
    }
}

wire_enum! {
    /// Why the user is no longer in a room (u8).
    RoomLeaveReason: u8, field = "room leave reason" {
        /// The user left (from this or another of their devices).
        Left = 1,
        /// A moderator removed the user.
        Kicked = 2,
        /// A moderator banned the user.
        Banned = 3,
        /// The room was deleted (by its owner or a server administrator).
        Deleted = 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_enum_value_round_trips_and_neighbours_are_rejected() {
        for &v in AuthFailure::ALL {
            assert_eq!(AuthFailure::from_wire(v.to_wire()), Some(v));
        }
        for &v in LeaveReason::ALL {
            assert_eq!(LeaveReason::from_wire(v.to_wire()), Some(v));
        }
        for &v in GoodbyeReason::ALL {
            assert_eq!(GoodbyeReason::from_wire(v.to_wire()), Some(v));
        }
        for &v in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(v.to_wire()), Some(v));
        }
        assert_eq!(AuthFailure::from_wire(0), None);
        assert_eq!(AuthFailure::from_wire(8), None);
        assert_eq!(LeaveReason::from_wire(5), None);
        assert_eq!(GoodbyeReason::from_wire(9), None);
        assert_eq!(ErrorCode::from_wire(0), None);
        assert_eq!(ErrorCode::from_wire(15), None);
        assert_eq!(RoomRole::from_wire(0), None);
        assert_eq!(RoomRole::from_wire(4), None);
        assert_eq!(RoomLeaveReason::from_wire(5), None);
        assert_eq!(ErrorCode::from_wire(0x0101), None);
    }

    #[test]
    fn enum_values_match_the_spec() {
        let auth: Vec<u8> = AuthFailure::ALL.iter().map(|v| v.to_wire()).collect();
        assert_eq!(auth, [1, 2, 3, 4, 5, 6, 7]);
        let leave: Vec<u8> = LeaveReason::ALL.iter().map(|v| v.to_wire()).collect();
        assert_eq!(leave, [1, 2, 3, 4]);
        let bye: Vec<u8> = GoodbyeReason::ALL.iter().map(|v| v.to_wire()).collect();
        assert_eq!(bye, [1, 2, 3, 4, 5, 6, 7, 8]);
        let codes: Vec<u16> = ErrorCode::ALL.iter().map(|v| v.to_wire()).collect();
        assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        let roles: Vec<u8> = RoomRole::ALL.iter().map(|v| v.to_wire()).collect();
        assert_eq!(roles, [1, 2, 3]);
        let gone: Vec<u8> = RoomLeaveReason::ALL.iter().map(|v| v.to_wire()).collect();
        assert_eq!(gone, [1, 2, 3, 4]);
    }
}
