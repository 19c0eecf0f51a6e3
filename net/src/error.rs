//! Why a network operation failed.

use thiserror::Error;

/// A failure of a session or of its handshake.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetError {
    /// The transport failed (reset, broken pipe, ...).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The protocol core refused the peer's bytes or our request. Any alert
    /// it queued has already been sent, best effort.
    #[error("protocol error: {0}")]
    Protocol(#[from] proto_core::Error),
    /// The handshake did not finish within `HandshakeOptions::deadline`
    /// (or the client's deadline): a silent or slow peer (threat M2).
    #[error("handshake did not complete before the deadline")]
    HandshakeTimeout,
    /// The session has already ended (its `Closed` event was reported), or
    /// the peer closed cleanly before the handshake completed.
    #[error("connection closed")]
    Closed,
    /// Writing to the peer did not finish in time while closing.
    #[error("timed out writing to the peer")]
    WriteTimeout,
    /// The semaphore bounding handshake work was closed: the server is
    /// shutting down.
    #[error("handshake capacity closed: shutting down")]
    ShuttingDown,
    /// The blocking task running handshake cryptography failed (panicked or
    /// was cancelled by runtime shutdown). The connection is abandoned.
    #[error("handshake worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

impl NetError {
    /// The protocol core's error, if that is what this is.
    pub fn as_protocol(&self) -> Option<&proto_core::Error> {
        match self {
            NetError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}
