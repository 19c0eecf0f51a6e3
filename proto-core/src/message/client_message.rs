//! Messages from client to server.

use crate::message::codec::{ByteCounter, Reader, Sink};
use crate::message::password::MAX_PASSWORD_WIRE_BYTES;
use crate::message::text::MAX_TEXT_WIRE_BYTES;
use crate::message::username::MAX_USERNAME_WIRE_BYTES;
use crate::message::MAX_MESSAGE_BYTES;
use crate::message::{MessageError, MessageText, Password, ResumeToken, Username};

/// Largest `Register`/`Login`: tag + username + password = 1 157 bytes.
pub(crate) const MAX_CREDENTIALS_BYTES: usize =
    1 + MAX_USERNAME_WIRE_BYTES + MAX_PASSWORD_WIRE_BYTES;
/// Largest client `SendDirect`: tag + client id + to + text = 4 237 bytes,
/// the largest client message.
pub(crate) const MAX_CLIENT_DIRECT_MESSAGE_BYTES: usize =
    1 + 8 + MAX_USERNAME_WIRE_BYTES + MAX_TEXT_WIRE_BYTES;
const _: () = assert!(MAX_CREDENTIALS_BYTES <= MAX_MESSAGE_BYTES);
const _: () = assert!(MAX_CLIENT_DIRECT_MESSAGE_BYTES <= MAX_MESSAGE_BYTES);

/// A message from client to server: one tag byte, then the fields in order.
/// The server takes the sender's identity from the session, never from a
/// message (SECURITY.md M5), so no client message names its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// 0x01: create an account and log in.
    Register {
        username: Username,
        password: Password,
    },
    /// 0x02: log in.
    Login {
        username: Username,
        password: Password,
    },
    /// 0x03: log in with a token from an earlier `AuthOk`.
    Resume { token: ResumeToken },
    /// 0x10: say something in the room, without an acknowledgement (the
    /// version-1 form; [`SendRoom`](Self::SendRoom) is preferred).
    RoomMessage { text: MessageText },
    /// 0x11: say something to one user, without an acknowledgement.
    DirectMessage { to: Username, text: MessageText },
    /// 0x12: ask for `OnlineUsers`.
    WhoIsOnline,
    /// 0x13: say something in the room; the server answers `Stored` with
    /// `client_id` once the message is in history. Resending the same
    /// `client_id` (after a reconnect) stores and delivers it only once.
    SendRoom { client_id: u64, text: MessageText },
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
}

pub(crate) mod tag {
    pub const REGISTER: u8 = 0x01;
    pub const LOGIN: u8 = 0x02;
    pub const RESUME: u8 = 0x03;
    pub const ROOM_MESSAGE: u8 = 0x10;
    pub const DIRECT_MESSAGE: u8 = 0x11;
    pub const WHO_IS_ONLINE: u8 = 0x12;
    pub const SEND_ROOM: u8 = 0x13;
    pub const SEND_DIRECT: u8 = 0x14;
    pub const PING: u8 = 0x20;
    pub const PONG: u8 = 0x21;
    pub const GOODBYE: u8 = 0x30;
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
            tag::ROOM_MESSAGE => Self::RoomMessage {
                text: MessageText::decode(&mut r)?,
            },
            tag::DIRECT_MESSAGE => Self::DirectMessage {
                to: Username::decode(&mut r)?,
                text: MessageText::decode(&mut r)?,
            },
            tag::WHO_IS_ONLINE => Self::WhoIsOnline,
            tag::SEND_ROOM => Self::SendRoom {
                client_id: r.u64()?,
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
            Self::RoomMessage { .. } => tag::ROOM_MESSAGE,
            Self::DirectMessage { .. } => tag::DIRECT_MESSAGE,
            Self::WhoIsOnline => tag::WHO_IS_ONLINE,
            Self::SendRoom { .. } => tag::SEND_ROOM,
            Self::SendDirect { .. } => tag::SEND_DIRECT,
            Self::Ping { .. } => tag::PING,
            Self::Pong { .. } => tag::PONG,
            Self::Goodbye => tag::GOODBYE,
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
            Self::RoomMessage { text } => text.encode(out),
            Self::DirectMessage { to, text } => {
                to.encode(out);
                text.encode(out);
            }
            Self::SendRoom { client_id, text } => {
                out.u64(*client_id);
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
        }
    }
}
