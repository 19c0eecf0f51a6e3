//! # proto-core — the SecureChat protocol, sans-IO
//!
//! Byte buffers in, byte buffers and events out: no sockets, no async, no
//! threads, no clock, and all randomness injected, so every run can be made
//! deterministic (the test vectors in docs/PROTOCOL.md come from here).
//!
//! ## Run-loop contract
//! For a [`ClientConnection`] or [`ServerConnection`] (both are
//! [`Connection`], over a [`Side`]):
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
//! An adapter that keeps milliseconds of cryptography off its event loop
//! calls `handle_cheap_input(bytes)` in step 2 instead: it stops before a
//! whole hello would be processed, and while `expensive_input_pending()`
//! the adapter reads nothing more and runs `process_expensive_input()` where
//! such work belongs (a blocking thread), then continues with step 2. The
//! core does all framing, so the adapter never parses a byte.
//!
//! ## Table of contents
//! - [`Connection`] (`connection.rs`): one connection type for both sides —
//!   frame reassembly, the record path, outgoing bytes, sticky errors.
//! - `client_handshake.rs`, `server_handshake.rs`: what each [`Side`] adds —
//!   its configuration, events and handshake states.
//! - [`message`]: chat messages inside records, and their validation.
//! - [`liveness`]: the Ping/idle policy both sides run.
//! - [`login`]: what the answer to a login request means (every client).
//! - [`opaque`]: OPAQUE (RFC 9807) password registration and login, both
//!   sides, bound to the connection's [`ChannelBinding`].
//! - [`error`]: why a connection ended.
//! - `resumption.rs`: the resumed handshake's key (from a resume token)
//!   and the server's [`PskStore`] that looks it up.
//! - `identity.rs`: server Ed25519 identity, keys, fingerprints, trust.
//! - Private, and public only with the `internals` feature (test vectors,
//!   fuzzing, benches; never for production code): `frame` (the outer
//!   `type || length || body` framing and its limit), `hello` (the hellos,
//!   transcript hash, signed content), `ffdhe` and `key_exchange` (the
//!   ffdhe3072 + X25519 + ML-KEM-768 hybrid), `key_schedule` (HKDF-SHA256
//!   labels, traffic secrets, Finished MACs), `record` (AES-256-CFB128 +
//!   HMAC-SHA256 records, key update), `fuzz_targets`.
#![forbid(unsafe_code)]

mod client_handshake;
mod connection;
mod identity;
mod server_handshake;

pub mod error;
pub mod liveness;
pub mod login;
pub mod message;
pub mod opaque;
pub mod resumption;

// The cryptography and the wire codecs: only the connection types use them,
// so nothing outside can build a record or a hello by hand (`internals`
// opens them for test vectors, fuzzing and benches).
macro_rules! internal_modules {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(not(feature = "internals"))]
        mod $name;
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
    )*};
}
internal_modules!(ffdhe, frame, hello, key_exchange, key_schedule, record);

#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzz_targets;

pub use client_handshake::{ClientConfig, ClientConnection, ClientEvent, ClientSide};
pub use connection::{plaintext_alert_frame, ChannelBinding, Connection, Limits, Side};
pub use error::{AlertCode, Error, HandshakeError, PeerMisbehaved};
pub use identity::{Fingerprint, ServerIdentity, ServerKey, ServerTrust};
pub use record::KeyUpdatePolicy;
pub use resumption::{PskStore, ResumptionPsk};
pub use server_handshake::{
    EncodedServerMessage, ServerConfig, ServerConnection, ServerEvent, ServerSide,
};

#[cfg(test)]
mod connection_tests;
