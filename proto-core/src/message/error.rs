//! Why an application message or one of its fields was rejected.
//!
//! Display strings never echo the offending input: a rejected code point is
//! shown as `U+XXXX`, and nothing about a password beyond the rule it broke.

use thiserror::Error;

/// A message failed to decode, or a field failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The input ended before the message did.
    #[error("message truncated")]
    Truncated,
    /// The message was complete but bytes followed it.
    #[error("{count} trailing byte(s) after the message")]
    TrailingBytes { count: usize },
    /// The first byte names no message of this direction.
    #[error("unknown message tag 0x{0:02x}")]
    UnknownTag(u8),
    /// A string field was not valid UTF-8.
    #[error("invalid UTF-8 in {field}")]
    InvalidUtf8 { field: &'static str },
    /// A field (or the whole message) is longer than its limit, in bytes.
    #[error("{field} longer than {max} bytes")]
    TooLong { field: &'static str, max: usize },
    /// A list holds more items than one message may carry.
    #[error("{field} has more than {max} items")]
    TooManyItems { field: &'static str, max: usize },
    /// A boolean byte was neither 0x00 nor 0x01.
    #[error("invalid boolean 0x{value:02x} in {field}")]
    InvalidBool { field: &'static str, value: u8 },
    /// An enumerated value outside the defined set.
    #[error("invalid value {value} for {field}")]
    InvalidEnum { field: &'static str, value: u16 },
    /// A username broke the username rules.
    #[error("invalid username: {0}")]
    InvalidUsername(UsernameError),
    /// A room name broke the room-name rules (`#` + a username).
    #[error("invalid room name: {0}")]
    InvalidRoomName(UsernameError),
    /// A password broke the password rules.
    #[error("invalid password: {0}")]
    InvalidPassword(PasswordError),
    /// Message text (or an error detail) broke the text rules.
    #[error("invalid text: {0}")]
    InvalidText(TextError),
}

/// Why a username was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UsernameError {
    #[error("empty")]
    Empty,
    #[error("longer than {max} characters")]
    TooLong { max: usize },
    /// Not in Unicode Normalization Form C; `Username::parse_normalizing`
    /// normalizes first.
    #[error("not in Unicode NFC")]
    NotNfc,
    /// A character outside the allowed set (letters, digits, `_`, `-`, `.`).
    #[error("character U+{code_point:04X} is not allowed")]
    ForbiddenChar { code_point: u32 },
}

/// Why a password was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("empty")]
    Empty,
    #[error("longer than {max} bytes")]
    TooLong { max: usize },
    #[error("contains NUL")]
    ContainsNul,
}

/// Why message text or an error detail was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TextError {
    #[error("empty")]
    Empty,
    #[error("longer than {max} bytes")]
    TooLong { max: usize },
    /// Only whitespace or zero-width characters.
    #[error("blank")]
    Blank,
    /// A control character (other than `\n`) or a bidi override/isolate.
    #[error("character U+{code_point:04X} is not allowed")]
    ForbiddenChar { code_point: u32 },
}

impl From<UsernameError> for MessageError {
    fn from(e: UsernameError) -> Self {
        Self::InvalidUsername(e)
    }
}

impl From<PasswordError> for MessageError {
    fn from(e: PasswordError) -> Self {
        Self::InvalidPassword(e)
    }
}

impl From<TextError> for MessageError {
    fn from(e: TextError) -> Self {
        Self::InvalidText(e)
    }
}
