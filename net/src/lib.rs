//! # net — tokio adapters running `proto-core` over a byte stream
//!
//! The protocol core is sans-IO; this crate owns the sockets. Everything is
//! generic over `AsyncRead + AsyncWrite + Unpin + Send`, so plain TCP,
//! tokio-rustls streams and `tokio::io::duplex` pipes all work the same.
//!
//! ## Shape of a connection
//! - The core does all framing: this crate feeds it whatever it reads and
//!   never parses a byte. When the core reports that its next input step is
//!   expensive (a hello's key agreement), that step runs through an
//!   [`Offload`] — tokio's blocking pool unless the caller injects another.
//! - Server: [`accept`] runs the handshake under a deadline, the expensive
//!   ClientHello step behind a semaphore ([`HandshakeOptions`]), and
//!   returns a [`ServerLink`].
//! - Client: [`connect`] (or [`connect_with_offload`]) returns
//!   [`ClientHandshake::Connected`] for a pinned server, or
//!   [`ClientHandshake::NeedsTrust`] on first contact, whose
//!   [`PendingTrust::accept`] / [`PendingTrust::reject`] finish it.
//! - Both sides: one [`Link`] type (`ServerLink`, `ClientLink`).
//!   `next_event()` is cancel-safe (its only await is one
//!   read; everything else is buffered in the session), so it can sit in a
//!   `tokio::select!` against an outbox. `queue*()` only seals records into
//!   a buffer; `flush()` writes all of them with one `write` call: the
//!   per-write syscall costs more than the record crypto, so fan-out
//!   coalesces (BENCHMARKS.md).
//! - End of stream is [`LinkEvent::Closed`]`{ clean }`: clean only after
//!   the peer's close_notify, since a TCP FIN can be forged (threat N3).
//!
//! ## Table of contents
//! - [`session_rng()`]: one OS-seeded ChaCha20 generator per connection.
//! - `handshake.rs` — [`accept`], [`HandshakeOptions`], [`connect`],
//!   [`ClientHandshake`], [`PendingTrust`].
//! - `link.rs` — [`Link`]: queue, flush, next event, close.
//! - `driver.rs` — one stream, one core and the buffers between them.
//! - [`Offload`] — where the expensive handshake step runs.
//! - [`error`] — [`NetError`].
//! - [`tls`] (feature `tls`, on by default): rustls 0.23 with the ring
//!   provider and TLS 1.3 only; certificate loading and a reloadable
//!   acceptor. [`MaybeTlsStream`] holds plain or TLS streams uniformly.
//!
//! Logs go through `tracing` at debug level with a `conn` id field (see
//! [`ConnId`]); they never contain message contents or key material.
#![forbid(unsafe_code)]

mod driver;
mod handshake;
mod link;
mod offload;
mod session_rng;

pub mod error;
#[cfg(feature = "tls")]
pub mod stream;
#[cfg(feature = "tls")]
pub mod tls;

pub use driver::{ConnId, LinkEvent, LinkSide, CLOSE_TIMEOUT};
pub use error::NetError;
pub use handshake::{
    accept, connect, connect_with_offload, ClientHandshake, HandshakeOptions, PendingTrust,
};
pub use link::{ClientLink, Link, ServerLink};
pub use offload::{Offload, OffloadJob};
pub use session_rng::session_rng;
#[cfg(feature = "tls")]
pub use stream::{ClientStream, MaybeTlsStream, ServerStream};
