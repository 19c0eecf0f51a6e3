//! Why a connection attempt failed and why a client ended, as types.
//!
//! Code decides on the variants (the CLI's exit status, the GUI's login
//! page, tests); people read their `Display`. That `Display` is the one
//! wording both UIs use (the CLI prints it, the GUI shows it on the login
//! page and in the status line), so the words live in this file only and
//! nothing upstream formats a reason into a `String`. `Display` rather
//! than a separate `describe()`: these are `thiserror` errors like every
//! other error in the workspace, and `{cause}` then works the same in a
//! terminal, a window and a log line.

use std::io;
use std::sync::Arc;

use net::tls::TlsError;
use net::NetError;
use proto_core::message::{AuthFailure, ErrorCode, GoodbyeReason, PasswordError, UsernameError};
use proto_core::Fingerprint;

use crate::address::ServerAddress;

/// A server's `Error` or `SendFailed`: its code, and its detail (the
/// server's own words, shown escaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRefusal {
    pub code: ErrorCode,
    pub detail: String,
}

/// Why a password change did not happen. The old password still works.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordChangeError {
    /// The current password is wrong (checked on this device: the
    /// server's proof did not verify; nothing was sent).
    #[error("the current password is wrong")]
    WrongPassword,
    #[error(
        "the new password is too short (at least {} characters)",
        proto_core::login::MIN_PASSWORD_CHARS
    )]
    TooShort,
    #[error("invalid password: {0}")]
    Invalid(PasswordError),
    /// Not logged in right now (offline or reconnecting).
    #[error("not connected; try again once connected")]
    NotConnected,
    #[error("a password change is already in progress")]
    InProgress,
    /// The connection dropped before the server confirmed it.
    #[error("the connection was lost before the server confirmed the change")]
    Interrupted,
    /// The server refused it (`AuthFailed`, or an `Error`).
    #[error("refused by the server: {0}")]
    Refused(String),
}

impl std::fmt::Display for ServerRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.code {
            ErrorCode::UnknownRecipient => "no such user",
            ErrorCode::RateLimited => "slow down",
            ErrorCode::MessageTooLarge => "message too large",
            ErrorCode::ServerFull => "server full",
            _ => "server error",
        };
        // The server's detail often says the same ("no such user").
        if self.detail.is_empty() || self.detail == what {
            f.write_str(what)
        } else {
            write!(f, "{what}: {}", self.detail)
        }
    }
}

/// A connection attempt failed, or a session was lost, in a way that
/// trying again later may fix.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RetryCause {
    #[error("server unreachable: {server} timed out")]
    ConnectTimedOut { server: ServerAddress },
    #[error("server unreachable: {server}: {error}")]
    Unreachable {
        server: ServerAddress,
        error: Arc<io::Error>,
    },
    #[error("TLS handshake timed out")]
    TlsTimedOut,
    /// The server's `server_full` alert.
    #[error("server full: it is at its connection limit; try again later")]
    ServerFull,
    /// The server's `rate_limited` alert.
    #[error("the server is limiting connections from your address; try again later")]
    RateLimited,
    /// The protocol version in the hello was altered on the way.
    #[error("the connection was tampered with on the way to the server: {0}")]
    Tampered(proto_core::Error),
    #[error("the server closed the connection during the handshake")]
    ClosedDuringHandshake,
    #[error("handshake failed: {0}")]
    Handshake(Arc<NetError>),
    /// No answer to the login within `AUTH_TIMEOUT`.
    #[error("the server did not answer the login")]
    LoginTimedOut,
    /// The server answered the login with a passing `Error` (rate limit,
    /// full, internal).
    #[error("server refused: {0}")]
    Refused(ServerRefusal),
    /// A `Goodbye` instead of an answer to the login.
    #[error("the server ended the connection ({0:?})")]
    EndedByServer(GoodbyeReason),
    /// The server closed the connection (cleanly or not).
    #[error("connection to the server lost")]
    Closed,
    #[error("connection to the server lost: {0}")]
    Lost(Arc<NetError>),
    /// Silence past the liveness limit, even after a Ping.
    #[error("the server stopped answering")]
    ServerSilent,
}

/// A connection attempt failed in a way that trying again cannot fix.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FatalCause {
    #[error("{}", auth_failure_text(*.0))]
    AuthFailed(AuthFailure),
    /// The name was refused before anything was sent.
    #[error("{}: {}", auth_failure_text(AuthFailure::InvalidUsername), .0)]
    InvalidUsername(UsernameError),
    #[error("invalid password: {0}")]
    InvalidPassword(PasswordError),
    /// The server asked for the password itself (the version-1 login of an
    /// account made before OPAQUE) for an account that has logged in with
    /// OPAQUE on it from here before: refused, nothing was sent.
    #[error(
        "{server} asked for your password in the pre-OPAQUE form, but this account has \
         logged in there with OPAQUE before; refused, your password was not sent (the server \
         may be an impostor, or its data was restored from an old backup)"
    )]
    LegacyLoginRefused { server: ServerAddress },
    /// The password's key stretching (Argon2id) failed: its parameters
    /// were refused, or its thread died.
    #[error("the password could not be stretched (Argon2id)")]
    StretchFailed,
    /// The server's key is not the pinned or given one: refused before
    /// anything was sent.
    #[error("the server's key has CHANGED; refused")]
    ServerKeyChanged {
        pinned: Fingerprint,
        presented: Fingerprint,
    },
    /// The user did not trust a key seen for the first time.
    #[error("you did not trust the server's key; nothing was sent")]
    ServerKeyDeclined,
    /// A bad signature or Finished: an impostor, or the path altered it.
    #[error("handshake failed, the server could not prove its identity: {0}")]
    ServerIdentityUnproven(proto_core::Error),
    #[error("the server speaks another protocol version: {0}")]
    VersionMismatch(proto_core::Error),
    #[error("handshake failed: {0}")]
    Handshake(proto_core::Error),
    #[error("known servers file: {0}")]
    KnownServers(Arc<io::Error>),
    #[error("cannot save the server's key: {0}")]
    Pin(Arc<io::Error>),
    #[error("TLS setup: {0}")]
    TlsSetup(Arc<TlsError>),
    #[error("TLS server name: {0}")]
    TlsServerName(Arc<TlsError>),
    #[error("TLS handshake failed: {0}")]
    TlsHandshake(Arc<io::Error>),
    /// The server answered the login with an `Error` that will not pass.
    #[error("server refused: {0}")]
    Refused(ServerRefusal),
    #[error("unexpected answer to login (message type {tag})")]
    UnexpectedAnswer { tag: u8 },
}

/// Why a client ended: what [`ClientEvent::Closed`](crate::ClientEvent)
/// carries and [`ClientHandle::close_cause`](crate::ClientHandle::close_cause)
/// returns.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CloseCause {
    /// The user left (quit, or their input ended).
    #[error("you left")]
    Left,
    /// An attempt failed and trying again cannot help.
    #[error("{0}")]
    Fatal(FatalCause),
    /// The server could not be reached, or the connection failed or was
    /// lost, and the client does not reconnect (first login, scripts).
    #[error("{0}")]
    ConnectionFailed(RetryCause),
    /// The server ended the session: another login took it over; or,
    /// when not reconnecting, shutdown, idle, too slow...
    #[error("{}", goodbye_text(*.0))]
    ClosedByServer(GoodbyeReason),
}

impl From<FatalCause> for CloseCause {
    fn from(cause: FatalCause) -> Self {
        CloseCause::Fatal(cause)
    }
}

impl From<RetryCause> for CloseCause {
    fn from(cause: RetryCause) -> Self {
        CloseCause::ConnectionFailed(cause)
    }
}

/// The text shown for a refused login or registration.
pub fn auth_failure_text(reason: AuthFailure) -> &'static str {
    match reason {
        AuthFailure::LoginFailed => "wrong username or password",
        AuthFailure::NameTaken => "name taken",
        AuthFailure::InvalidUsername => "invalid username",
        AuthFailure::WeakPassword => "password too short",
        AuthFailure::ResumeFailed => "session expired; log in again",
        AuthFailure::AccountDisabled => "this account was disabled by the server's administrator",
        AuthFailure::TooManyDevices => {
            "this account is logged in on as many devices as the server allows: \
             log one out (/devices, /logout-device ID) from another device first"
        }
    }
}

/// The text shown when the server ends the session.
fn goodbye_text(reason: GoodbyeReason) -> &'static str {
    match reason {
        GoodbyeReason::ClientRequest => "you left",
        GoodbyeReason::Replaced => "you logged in from somewhere else; this session was closed",
        GoodbyeReason::ServerShutdown => "the server is shutting down",
        GoodbyeReason::IdleTimeout => "disconnected: idle",
        GoodbyeReason::SlowConsumer => "disconnected: messages arrived faster than we read them",
        GoodbyeReason::ProtocolViolation => "disconnected: protocol error",
        GoodbyeReason::AccountDisabled => {
            "the server's administrator disabled your account; you were logged out"
        }
        GoodbyeReason::SessionEnded => {
            "the server's administrator ended your sessions; log in again with your password"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_worded_once() {
        let refusal = |code, detail: &str| ServerRefusal {
            code,
            detail: detail.into(),
        };
        assert_eq!(
            refusal(ErrorCode::UnknownRecipient, "no such user").to_string(),
            "no such user"
        );
        assert_eq!(
            refusal(ErrorCode::RateLimited, "too many messages").to_string(),
            "slow down: too many messages"
        );
        assert_eq!(
            refusal(ErrorCode::ServerFull, "").to_string(),
            "server full"
        );
    }
}
