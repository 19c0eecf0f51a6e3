//! # proto-core — the SecureChat protocol, sans-IO
//!
//! Byte buffers in, byte buffers and events out: no sockets, no async, no
//! threads, no clock, and all randomness injected, so every run can be made
//! deterministic (the test vectors in docs/PROTOCOL.md come from here).
//!
//! ## Run-loop contract
//! For a [`ClientConnection`] or [`ServerConnection`]:
//! 1. After construction (and after every call below), call
//!    `drain_transmit(&mut buf)` and write `buf` to the transport.
//! 2. When bytes arrive, call `handle_input(bytes)` once, then
//!    `poll_event()` until it returns `None`, then step 1.
//! 3. On end of stream call `handle_eof()`: `Ok` means the peer closed
//!    cleanly with close_notify; `Err(UnexpectedEof)` means it dropped.
//! 4. Any `Err` is fatal and sticky: flush `drain_transmit` once more (it may
//!    hold an alert telling the peer why), then close the transport.
//! 5. A client that sees `ClientEvent::ServerKeyUnknown` must call
//!    `accept_server_key()` or `reject_server_key()` before anything else
//!    happens; `send` is refused until `ClientEvent::Connected`.
//!
//! ## Table of contents
//! - [`frame`]: the outer `type || length || body` framing and its limit.
//! - [`hello`]: ClientHello, ServerHello, transcript hash, signed content.
//! - [`ffdhe`], [`key_exchange`]: the ffdhe3072 + X25519 + ML-KEM-768 hybrid.
//! - [`key_schedule`]: HKDF-SHA256 labels, traffic secrets, Finished MACs.
//! - [`record`]: AES-256-CFB128 + HMAC-SHA256 records, key update.
//! - [`identity`]: server Ed25519 identity, keys, fingerprints, trust.
//! - [`client`], [`server`]: the two state machines.
//! - [`message`]: chat messages inside records, and their validation.
//! - [`liveness`]: the Ping/idle policy both sides run.
//! - [`login`]: what the answer to a login request means (every client).
//! - [`error`]: why a connection ended.
#![forbid(unsafe_code)]

mod common;

pub mod client;
pub mod error;
pub mod ffdhe;
pub mod frame;
pub mod hello;
pub mod identity;
pub mod key_exchange;
pub mod key_schedule;
pub mod liveness;
pub mod login;
pub mod message;
pub mod record;
pub mod server;

#[doc(hidden)]
pub mod fuzz_targets;

pub use client::{ClientConfig, ClientConnection, ClientEvent};
pub use common::{plaintext_alert_frame, Limits};
pub use error::{AlertCode, Error, HandshakeError, PeerMisbehaved};
pub use identity::{Fingerprint, ServerIdentity, ServerKey, ServerTrust};
pub use record::KeyUpdatePolicy;
pub use server::{EncodedServerMessage, ServerConfig, ServerConnection, ServerEvent};

#[cfg(test)]
mod connection_tests;
