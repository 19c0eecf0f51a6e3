//! # client-core — what every SecureChat client shares
//!
//! One implementation of connecting (TCP or TLS), trust on first use with a
//! known-servers file, logging in or registering, reconnecting with backoff
//! and a resume token, and the commands typed in a message box. The
//! desktop client (`client-slint`) and the terminal client (`cli`) only
//! render [`ClientEvent`]s and pass input to a [`ClientHandle`].
//!
//! - [`spawn`] starts a client task on a tokio runtime (never the UI thread).
//! - [`input`] parses `#exit`, `/quit`, `/msg`, `/who`, `/help`.
//! - [`known_servers`] pins server fingerprints per host:port.
//! - [`session_policy`] is every decision of a running client, sans-IO
//!   (liveness, quit grace, reconnect timer, resends, dedupe); the tokio
//!   task around it only moves bytes, channels and time.
//! - [`backoff`] spaces reconnects (capped exponential, jittered).
//! - [`outbox`] keeps sent messages until the server acknowledges them,
//!   and resends them with the same idempotency key after a reconnect.
//! - [`events`] is what the UI receives.
//! - [`cause`] says why an attempt failed or a client ended, as types;
//!   their `Display` is the text both UIs show.
#![forbid(unsafe_code)]

pub mod address;
pub mod backoff;
pub mod cause;
pub mod connect;
pub mod device;
pub mod events;
pub mod input;
pub mod known_servers;
pub mod options;
pub mod outbox;
mod runner;
pub mod session_policy;

pub use address::{ServerAddress, DEFAULT_PORT};
pub use cause::{CloseCause, FatalCause, PasswordChangeError, RetryCause, ServerRefusal};
pub use device::DeviceIdentity;
pub use events::{
    room_change_text, room_leave_text, room_left_text, ChatLine, ClientEvent, ConnectionState,
    ConversationRef, Delivery, DeviceView, MemberView, NoticeKind, RoomListing, RoomView,
    MAX_MEMBERS_SHOWN,
};
pub use input::{parse_input, AdminCommand, Input, Moderation, HELP_TEXT};
pub use known_servers::KnownServers;
pub use options::{AuthRequest, ClientOptions, TlsOptions};
pub use outbox::MAX_PENDING;
pub use proto_core::message::{
    AuthFailure, GoodbyeReason, LeaveReason, RoomChange, RoomLeaveReason, RoomRole, GENERAL_ROOM,
};
pub use proto_core::Fingerprint;
pub use runner::{spawn, ClientHandle};
