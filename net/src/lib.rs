//! # net — tokio adapters running `proto-core` over a byte stream
//!
//! The protocol core is sans-IO; this crate owns the sockets. Everything is
//! generic over `AsyncRead + AsyncWrite + Unpin + Send`, so plain TCP,
//! tokio-rustls streams and `tokio::io::duplex` pipes all work the same.
//!
//! ## Shape of a connection
//! - Server: [`accept`] runs the handshake under a deadline, doing the
//!   expensive ClientHello work on the blocking pool behind a semaphore
//!   ([`HandshakeOptions`]), and returns a [`ServerSession`].
//! - Client: [`connect`] returns [`ClientHandshake::Connected`] for a pinned
//!   server, or [`ClientHandshake::NeedsTrust`] on first contact, whose
//!   [`PendingTrust::accept`] / [`PendingTrust::reject`] finish it.
//! - Both sessions: `next_event()` is cancel-safe (its only await is one
//!   read; everything else is buffered in the session), so it can sit in a
//!   `tokio::select!` against an outbox. `queue*()` only seals records into
//!   a buffer; `flush()` writes all of them with one `write` call: the
//!   per-write syscall costs more than the record crypto, so fan-out
//!   coalesces (BENCHMARKS.md).
//! - End of stream is [`SessionEvent::Closed`]`{ clean }`: clean only after
//!   the peer's close_notify, since a TCP FIN can be forged (threat N3).
//!
//! ## Table of contents
//! - [`session_rng()`]: one OS-seeded ChaCha20 generator per connection.
//! - [`server`] — [`accept`], [`HandshakeOptions`], [`ServerSession`].
//! - [`client`] — [`connect`], [`ClientHandshake`], [`PendingTrust`], [`ClientSession`].
//! - [`error`] — [`NetError`].
//! - [`background_cpu`] — handshake and hashing work on the blocking pool at
//!   lowered priority, so it yields the CPU to chat.
//! - [`tls`] (feature `tls`, on by default): rustls 0.23 with the ring
//!   provider and TLS 1.3 only; certificate loading and a reloadable
//!   acceptor. [`MaybeTlsStream`] holds plain or TLS streams uniformly.
//!
//! Logs go through `tracing` at debug level with a `conn` id field (see
//! [`ConnId`]); they never contain message contents or key material.
#![forbid(unsafe_code)]

mod driver;
mod session_rng;

pub mod background_cpu;
pub mod client;
pub mod error;
pub mod server;
#[cfg(feature = "tls")]
pub mod stream;
#[cfg(feature = "tls")]
pub mod tls;

pub use client::{connect, ClientHandshake, ClientSession, PendingTrust};
pub use driver::{ConnId, SessionEvent, CLOSE_TIMEOUT};
pub use error::NetError;
pub use server::{accept, HandshakeOptions, ServerSession};
pub use session_rng::session_rng;
#[cfg(feature = "tls")]
pub use stream::{ClientStream, MaybeTlsStream, ServerStream};
