//! Why a connection failed. Every error is fatal and sticky: once a state
//! machine returns one, it queues an alert for the peer (if it can) and
//! refuses all further input and output with the same error.

use thiserror::Error;

use crate::identity::Fingerprint;
use crate::message::MessageError;

/// A connection-level failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer's first message named a protocol version we do not speak.
    #[error("peer speaks protocol version {peer}, this side speaks version {ours}")]
    VersionMismatch { ours: u16, peer: u16 },
    /// The peer refused our hello's version although it speaks that same
    /// version: the hello was altered on the way.
    #[error("the peer refused protocol version {version}, which it speaks too: the handshake was altered in transit")]
    VersionAltered { version: u16 },
    /// The handshake failed (bad key share, bad signature, bad Finished...).
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server proved possession of a different key than the one expected.
    #[error(
        "REMOTE SERVER IDENTIFICATION HAS CHANGED: expected {expected}, server presented {presented}"
    )]
    ServerKeyChanged {
        expected: Fingerprint,
        presented: Fingerprint,
    },
    /// The user declined a server key presented on first use.
    #[error("server key {0} was not accepted")]
    ServerKeyRejected(Fingerprint),
    /// The peer broke the framing or record rules.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// An application message inside a valid record did not decode.
    #[error("invalid application message: {0}")]
    Message(#[from] MessageError),
    /// The peer reported an error and closed.
    #[error("peer aborted the connection: {0}")]
    AlertReceived(AlertCode),
    /// The transport closed without the peer's close_notify: the session
    /// may have been truncated by an attacker or a crash (threat N3).
    #[error("connection dropped without a goodbye")]
    UnexpectedEof,
    /// The local application used the connection wrongly (e.g. sent
    /// before the handshake completed). Not the peer's fault.
    #[error("invalid use of the connection: {0}")]
    InvalidState(&'static str),
}

/// Handshake failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error("ffdhe3072 public value out of range or of the wrong length")]
    InvalidFfdhePublic,
    #[error("X25519 public value gives a non-contributory (low-order) shared secret")]
    InvalidX25519Public,
    #[error("ML-KEM-768 encapsulation key fails the FIPS 203 modulus check")]
    InvalidMlKemKey,
    #[error("server signature over the transcript does not verify")]
    BadSignature,
    #[error("Finished message does not verify")]
    BadFinished,
    #[error("handshake message has the wrong length")]
    MalformedHello,
    /// A resumed handshake named a key the server does not hold (expired,
    /// revoked, or lost in a crash): the client starts a full handshake.
    #[error("the server does not know the resumption key this handshake named")]
    UnknownPsk,
}

/// Framing and record-layer violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge { len: u32, max: u32 },
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrameType(u8),
    #[error("frame type 0x{got:02x} not expected in this state")]
    UnexpectedFrame { got: u8 },
    #[error("record authentication failed (tampered, replayed, reordered or dropped)")]
    BadRecordMac,
    #[error("record too short to hold IV, content type and tag")]
    RecordTooShort,
    #[error("unknown inner content type 0x{0:02x}")]
    UnknownContentType(u8),
    #[error("inner content type 0x{got:02x} not expected in this state")]
    UnexpectedContent { got: u8 },
    #[error("malformed alert or control record")]
    MalformedControl,
    #[error("peer did not update its keys within the record limit")]
    KeyUpdateOverdue,
    #[error("sequence number space exhausted")]
    SequenceExhausted,
    #[error("data after the peer's close_notify")]
    DataAfterClose,
}

/// Alert codes carried in alert frames and records (docs/PROTOCOL.md §Alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlertCode {
    CloseNotify,
    ProtocolVersion,
    HandshakeFailure,
    BadRecordMac,
    DecodeError,
    RecordOverflow,
    UnexpectedMessage,
    InternalError,
    /// The server refused the connection: it is at its connection limit.
    ServerFull,
    /// The server refused the connection: too many connections or
    /// handshakes from this address.
    RateLimited,
    /// The server does not hold the resumption key a `ResumeHello` named:
    /// connect again with a full `ClientHello`.
    UnknownPsk,
    /// A code this implementation does not know.
    Unknown(u8),
}

impl std::fmt::Display for AlertCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            AlertCode::CloseNotify => "close_notify",
            AlertCode::ProtocolVersion => "protocol_version",
            AlertCode::HandshakeFailure => "handshake_failure",
            AlertCode::BadRecordMac => "bad_record_mac",
            AlertCode::DecodeError => "decode_error",
            AlertCode::RecordOverflow => "record_overflow",
            AlertCode::UnexpectedMessage => "unexpected_message",
            AlertCode::InternalError => "internal_error",
            AlertCode::ServerFull => "server_full",
            AlertCode::RateLimited => "rate_limited",
            AlertCode::UnknownPsk => "unknown_psk",
            AlertCode::Unknown(b) => return write!(f, "unknown alert {b}"),
        };
        f.write_str(name)
    }
}

impl AlertCode {
    pub fn to_byte(self) -> u8 {
        match self {
            AlertCode::CloseNotify => 0,
            AlertCode::ProtocolVersion => 1,
            AlertCode::HandshakeFailure => 2,
            AlertCode::BadRecordMac => 3,
            AlertCode::DecodeError => 4,
            AlertCode::RecordOverflow => 5,
            AlertCode::UnexpectedMessage => 6,
            AlertCode::InternalError => 7,
            AlertCode::ServerFull => 8,
            AlertCode::RateLimited => 9,
            AlertCode::UnknownPsk => 10,
            AlertCode::Unknown(b) => b,
        }
    }

    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => AlertCode::CloseNotify,
            1 => AlertCode::ProtocolVersion,
            2 => AlertCode::HandshakeFailure,
            3 => AlertCode::BadRecordMac,
            4 => AlertCode::DecodeError,
            5 => AlertCode::RecordOverflow,
            6 => AlertCode::UnexpectedMessage,
            7 => AlertCode::InternalError,
            8 => AlertCode::ServerFull,
            9 => AlertCode::RateLimited,
            10 => AlertCode::UnknownPsk,
            other => AlertCode::Unknown(other),
        }
    }
}

impl Error {
    /// Whether the peer ended the connection (an alert or end of stream)
    /// rather than this side finding it at fault: nothing is sent back.
    pub fn came_from_peer(&self) -> bool {
        matches!(
            self,
            Error::AlertReceived(_) | Error::UnexpectedEof | Error::VersionAltered { .. }
        )
    }

    /// The alert this side sends when it fails with `self`.
    pub(crate) fn alert(&self) -> AlertCode {
        match self {
            Error::VersionMismatch { .. } => AlertCode::ProtocolVersion,
            Error::Handshake(HandshakeError::UnknownPsk) => AlertCode::UnknownPsk,
            Error::Handshake(_) | Error::ServerKeyChanged { .. } | Error::ServerKeyRejected(_) => {
                AlertCode::HandshakeFailure
            }
            Error::PeerMisbehaved(PeerMisbehaved::BadRecordMac) => AlertCode::BadRecordMac,
            Error::PeerMisbehaved(PeerMisbehaved::FrameTooLarge { .. }) => {
                AlertCode::RecordOverflow
            }
            Error::PeerMisbehaved(
                PeerMisbehaved::UnexpectedFrame { .. } | PeerMisbehaved::UnexpectedContent { .. },
            ) => AlertCode::UnexpectedMessage,
            Error::PeerMisbehaved(_) | Error::Message(_) => AlertCode::DecodeError,
            Error::AlertReceived(_)
            | Error::VersionAltered { .. }
            | Error::UnexpectedEof
            | Error::InvalidState(_) => AlertCode::InternalError,
        }
    }
}
