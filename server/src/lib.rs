//! # server — the SecureChat server
//!
//! One process holding a TCP (optionally TLS) listener, the logged-in
//! sessions, and the data directory. Shape (after mini-redis):
//! - [`app`] — [`start`] opens the data directory, keys and stores (it picks
//!   the storage backend: the files), binds, and returns a [`RunningServer`];
//!   [`RunningServer::shutdown`] ends it.
//! - [`listener`] — the accept loop: admission limits, TLS, handshake; the
//!   connections of clients that dropped go to the [`reaper`], which closes
//!   and frees them at background priority.
//! - [`session`] — one connection: a tokio driver that moves bytes, channel
//!   messages and time for [`session::policy`], the sans-IO decisions (login
//!   phase and its rate limit, auth timeout, chat rate, ping and idle via
//!   `proto_core::liveness`, why a session ends).
//! - [`hub`] — who is online; broadcast and direct delivery into bounded
//!   per-session outboxes.
//! - [`accounts`] — register/login/resume over an account store, with
//!   Argon2id on the blocking pool, [`login_throttle`] and [`resume_tokens`].
//! - [`rooms`] — the rooms and their members (durable in a room journal), the
//!   rules every room request passes, and who is told what.
//! - [`devices`] — each user's devices: the cap, the list, logging one out.
//! - [`read_markers`] — how far each user has read each conversation.
//! - [`history`] — the task that owns the history backend and numbers messages.
//! - [`storage`] — everything kept: one small trait per kind of data
//!   (`storage::backend`), which the services above hold, and the backends:
//!   the files of the data directory (see its docs for the layout) and a
//!   memory one for tests. The session logic never names a backend's type.
//! - [`config`], [`rate_limit`], [`clock`] — settings and small helpers.
//! - [`cli`] — the `securechat-server` binary.
//!
//! Logs never contain passwords, keys, tokens or message text.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod app;
pub mod attempt_queue;
pub mod cli;
pub mod clock;
pub mod config;
pub mod devices;
pub mod history;
pub mod hub;
pub mod listener;
pub mod login_throttle;
pub mod presence;
pub mod rate_limit;
pub mod read_markers;
pub mod reaper;
pub mod resume_tokens;
pub mod rooms;
pub mod session;
pub mod storage;
pub mod unauthenticated_pool;

pub use app::{start, RunningServer, StartError};
pub use cli::cli_main;
pub use config::{Config, ServerLimits, TlsFiles};
pub use storage::PasswordParams;
