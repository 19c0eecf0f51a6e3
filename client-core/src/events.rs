//! What a client reports to its user interface.

use std::path::PathBuf;

use proto_core::message::{AuthFailure, GoodbyeReason, LeaveReason};
use proto_core::Fingerprint;
use tokio::sync::oneshot;

use crate::address::ServerAddress;

/// The connection's state, for a status line ("reconnecting in 4 s").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    Connecting,
    Connected,
    Reconnecting { in_secs: u64, attempt: u32 },
    Offline,
}

/// A chat message, live or from history. Texts are raw: escape them for a
/// terminal (`proto_core::message::escape_for_display`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// The server's id (0 for our own message before the server saw it).
    pub id: u64,
    /// Milliseconds since the Unix epoch (server time; ours for own lines).
    pub timestamp_ms: u64,
    pub from: String,
    /// The other party of a direct message.
    pub to: Option<String>,
    pub text: String,
    /// Replayed at login, not live.
    pub history: bool,
    /// Sent by this user.
    pub own: bool,
    /// For a message typed on this client: the key its [`Delivery`]
    /// events name. Until `Stored`, `id` is 0 and the message is pending.
    pub client_id: Option<u64>,
}

impl ChatLine {
    /// The direct-message partner of this line, seen from `me`.
    pub fn partner(&self) -> Option<&str> {
        let to = self.to.as_deref()?;
        Some(if self.own { to } else { &self.from })
    }
}

/// What became of a message typed on this client (see
/// [`ChatLine::client_id`]). Until one of these, it is pending: sent and
/// unacknowledged, or waiting for the connection; it is resent after a
/// reconnect and cannot arrive twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// In the server's history as `id`; the recipients have it.
    /// `already_shown`: the line also came back in the history replay of a
    /// reconnect before this acknowledgement (show it once).
    Stored {
        id: u64,
        timestamp_ms: u64,
        already_shown: bool,
    },
    /// Refused by the server: nobody received it.
    Failed {
        code: proto_core::message::ErrorCode,
        reason: String,
    },
}

/// Informational or error notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    Info,
    Error,
}

/// Everything the client task tells the UI.
#[derive(Debug)]
pub enum ClientEvent {
    State(ConnectionState),
    /// First contact with this server: show the fingerprint and ask. Answer
    /// through `reply` (dropping it means no).
    TrustQuestion {
        server: ServerAddress,
        fingerprint: Fingerprint,
        reply: oneshot::Sender<bool>,
    },
    /// The server's key is not the pinned one: the connection was refused
    /// before anything was sent. Fatal; show `warning` prominently.
    KeyChanged {
        server: ServerAddress,
        pinned: Fingerprint,
        presented: Fingerprint,
        known_servers: PathBuf,
        warning: String,
    },
    /// Logged in (after each connect or reconnect).
    LoggedIn {
        username: String,
    },
    /// Login or registration refused (fatal at the first login).
    AuthFailed {
        reason: AuthFailure,
        message: String,
    },
    /// Everyone online (pages merged).
    Online {
        users: Vec<String>,
    },
    Joined {
        username: String,
    },
    Left {
        username: String,
        reason: LeaveReason,
    },
    Room(ChatLine),
    Direct(ChatLine),
    /// What became of a message typed on this client.
    Delivery {
        client_id: u64,
        delivery: Delivery,
    },
    /// The history replay at login is complete.
    HistoryDone,
    Notice {
        text: String,
        kind: NoticeKind,
    },
    /// The client task ended; no more events follow.
    Closed {
        reason: String,
    },
}

/// Why a client ended, as a type: for exit statuses, or for a UI that
/// words it itself ([`ClientEvent::Closed`] carries the text). Read it
/// with [`ClientHandle::close_cause`](crate::ClientHandle::close_cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    /// The user left (quit, or their input ended).
    Left,
    /// The server refused the login or registration.
    AuthFailed(AuthFailure),
    /// The server could not be reached, or the connection failed or was
    /// lost and the client does not reconnect (first login, scripts).
    ConnectionFailed,
    /// The server's key is not the pinned or given one: refused.
    ServerKeyChanged,
    /// The user did not trust a server's key seen for the first time.
    ServerKeyDeclined,
    /// The handshake failed where the server proves its identity (a bad
    /// signature or Finished): an impostor, or the path altered it.
    ServerIdentityUnproven,
    /// The server ended the session (another login took it over; or,
    /// when not reconnecting, shutdown, idle, too slow...).
    ClosedByServer(GoodbyeReason),
    /// Anything else retrying cannot help: TLS, the known-servers file,
    /// another protocol version, a login the server refused outright.
    Failed,
}

/// The text shown for a refused login or registration.
pub fn auth_failure_message(reason: AuthFailure) -> &'static str {
    match reason {
        AuthFailure::LoginFailed => "wrong username or password",
        AuthFailure::NameTaken => "name taken",
        AuthFailure::InvalidUsername => "invalid username",
        AuthFailure::WeakPassword => "password too short",
        AuthFailure::ResumeFailed => "session expired; log in again",
    }
}

/// The text shown when someone leaves.
pub fn leave_reason_text(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Exit => "left",
        LeaveReason::Dropped => "lost connection",
        LeaveReason::ServerShutdown => "left (server shutting down)",
        LeaveReason::Disconnected => "was disconnected by the server",
    }
}

/// The OpenSSH-style warning for a changed server key.
pub fn key_changed_warning(
    server: &ServerAddress,
    pinned: &Fingerprint,
    presented: &Fingerprint,
    known_servers: &std::path::Path,
) -> String {
    format!(
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @    WARNING: SERVER IDENTIFICATION HAS CHANGED!          @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         Someone could be intercepting your connection to {server},\n\
         or its operator replaced the server's identity key.\n\
         You trusted:      {pinned}\n\
         Server presented: {presented}\n\
         Nothing was sent; the connection was refused.\n\
         If the operator confirms the new fingerprint, remove the line for\n\
         {server} from {file}, or connect with --fingerprint {presented}.",
        file = known_servers.display()
    )
}
