//! What a client reports to its user interface.

use std::path::PathBuf;

use proto_core::message::{AuthFailure, LeaveReason, RoomChange, RoomLeaveReason, RoomRole};
use proto_core::Fingerprint;
use tokio::sync::oneshot;

use crate::address::ServerAddress;
use crate::cause::{CloseCause, ServerRefusal};

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
    /// The room of a room message (its name as created, with the `#`).
    pub room: Option<String>,
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
    Failed(ServerRefusal),
    /// The user left before the server answered (the quit grace ran
    /// out): it may or may not have been stored.
    Unconfirmed,
}

/// A room the user is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    /// With its `#`, as created.
    pub name: String,
    pub topic: String,
    pub invite_only: bool,
    /// The user's role in it.
    pub role: RoomRole,
    pub members: u32,
}

/// A conversation: a room (its name as created) or a direct conversation
/// (the partner's name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConversationRef {
    Room(String),
    Direct(String),
}

/// One of the user's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    /// The id `/logout-device` takes (shown in hex).
    pub id: u64,
    pub name: String,
    pub last_seen_ms: u64,
    pub address: String,
    pub online: bool,
    /// This device.
    pub current: bool,
}

/// A room in the answer to `/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomListing {
    pub name: String,
    pub topic: String,
    pub members: u32,
}

/// Most members one `/names` answer collects (50 pages); a bigger room
/// shows its first ones and its count.
pub const MAX_MEMBERS_SHOWN: usize = 10_000;

/// A member of a room in the answer to `/names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub name: String,
    pub role: RoomRole,
    /// Logged in on at least one device.
    pub online: bool,
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
    /// before anything was sent. Fatal; show [`key_changed_warning`]
    /// prominently.
    KeyChanged {
        server: ServerAddress,
        pinned: Fingerprint,
        presented: Fingerprint,
        known_servers: PathBuf,
    },
    /// Logged in (after each connect or reconnect).
    LoggedIn {
        username: String,
    },
    /// Login or registration refused (fatal at the first login); its
    /// text is
    /// [`auth_failure_text`](crate::cause::auth_failure_text).
    AuthFailed {
        reason: AuthFailure,
    },
    /// The password changed; every other device must log in again with
    /// the new one (their resume tokens were revoked).
    PasswordChanged,
    /// The password did not change.
    PasswordChangeFailed {
        reason: crate::cause::PasswordChangeError,
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
    /// The user is in this room: once per room after each login (before
    /// the history), and when they join or create one (here or on another
    /// device).
    RoomJoined(RoomView),
    /// The user is no longer in `room`.
    RoomLeft {
        room: String,
        reason: RoomLeaveReason,
    },
    /// The answer to `/list` (pages merged), sorted by name.
    RoomList {
        rooms: Vec<RoomListing>,
    },
    /// Someone joined a room the user is in.
    MemberJoined {
        room: String,
        user: String,
    },
    /// Someone left a room the user is in.
    MemberLeft {
        room: String,
        user: String,
        reason: RoomLeaveReason,
    },
    /// A moderator (`actor`) changed a room the user is in: its topic or
    /// mode, or someone's place in it. [`room_change_text`] says it.
    RoomChanged {
        room: String,
        actor: String,
        change: RoomChange,
    },
    /// The members of `room` (the answer to `/names`; pages merged), by
    /// name; `total` is how many the server counts, more than
    /// `members.len()` only past [`MAX_MEMBERS_SHOWN`] or if the room
    /// changed while the pages came.
    Members {
        room: String,
        members: Vec<MemberView>,
        total: u32,
    },
    /// The user's devices (the answer to `/devices`).
    Devices {
        devices: Vec<DeviceView>,
    },
    /// Older messages of a conversation (the answer to `/history`),
    /// oldest first; `complete`: there are none older.
    HistoryPage {
        conversation: ConversationRef,
        lines: Vec<ChatLine>,
        complete: bool,
    },
    /// The user has read `conversation` up to message `up_to_id` (on this
    /// or another device); at login `unread` counts the messages from
    /// others after it among those replayed.
    ReadMarker {
        conversation: ConversationRef,
        up_to_id: u64,
        unread: u32,
    },
    /// `by` invited the user to `room` (`/join` accepts).
    Invited {
        room: String,
        by: String,
        topic: String,
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
    /// The connection failed or was lost; the client reconnects (a
    /// `State(Reconnecting)` follows). `unconfirmed` messages typed here
    /// wait for the server and are sent again after reconnecting, never
    /// twice.
    ConnectionLost {
        cause: CloseCause,
        unconfirmed: usize,
    },
    Notice {
        text: String,
        kind: NoticeKind,
    },
    /// The client task ended; no more events follow. Show `cause` with
    /// its `Display`.
    Closed {
        cause: CloseCause,
    },
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

/// The text shown when someone leaves a room ("bob left #rust").
pub fn room_leave_text(reason: RoomLeaveReason) -> &'static str {
    match reason {
        RoomLeaveReason::Left => "left",
        RoomLeaveReason::Kicked => "was removed from",
        RoomLeaveReason::Banned => "was banned from",
        RoomLeaveReason::Deleted => "lost (deleted)",
    }
}

/// The text shown when the user is no longer in `room`, escaped.
pub fn room_left_text(room: &str, reason: RoomLeaveReason) -> String {
    let room = proto_core::message::escape_for_display(room);
    match reason {
        RoomLeaveReason::Left => format!("you left {room}"),
        RoomLeaveReason::Kicked => format!("you were removed from {room}"),
        RoomLeaveReason::Banned => format!("you were banned from {room}"),
        RoomLeaveReason::Deleted => format!("{room} was deleted"),
    }
}

/// A moderator's change as a sentence, names escaped:
/// "alice removed bob (spam)", "alice set the topic: crabs".
pub fn room_change_text(actor: &str, change: &RoomChange) -> String {
    let esc = proto_core::message::escape_for_display;
    let actor = esc(actor);
    let with_reason = |what: String, reason: &proto_core::message::Reason| {
        if reason.is_empty() {
            what
        } else {
            format!("{what} ({})", esc(reason.as_str()))
        }
    };
    match change {
        RoomChange::Topic { topic } if topic.is_empty() => format!("{actor} cleared the topic"),
        RoomChange::Topic { topic } => format!("{actor} set the topic: {}", esc(topic.as_str())),
        RoomChange::InviteOnly { invite_only: true } => {
            format!("{actor} made the room invite-only")
        }
        RoomChange::InviteOnly { invite_only: false } => format!("{actor} made the room public"),
        RoomChange::Kicked { user, reason } => {
            with_reason(format!("{actor} removed {}", esc(user.as_str())), reason)
        }
        RoomChange::Banned {
            user,
            reason,
            until_ms,
        } => {
            let how_long = if *until_ms == 0 {
                String::new()
            } else {
                " for a while".to_owned()
            };
            with_reason(
                format!("{actor} banned {}{how_long}", esc(user.as_str())),
                reason,
            )
        }
        RoomChange::Unbanned { user } => {
            format!("{actor} lifted the ban of {}", esc(user.as_str()))
        }
        RoomChange::Role {
            user,
            role: RoomRole::Moderator,
        } => format!("{actor} made {} a moderator", esc(user.as_str())),
        RoomChange::Role { user, .. } => {
            format!("{actor} made {} a member again", esc(user.as_str()))
        }
        RoomChange::Muted { user, muted: true } => format!("{actor} muted {}", esc(user.as_str())),
        RoomChange::Muted { user, muted: false } => {
            format!("{actor} unmuted {}", esc(user.as_str()))
        }
        RoomChange::Invited { user } => format!("{actor} invited {}", esc(user.as_str())),
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
