//! [`Link`]: an established connection, either side.

use proto_core::{ChannelBinding, ClientSide, EncodedServerMessage, ServerKey, ServerSide};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::driver::{ConnId, Driver, LinkEvent, LinkSide};
use crate::error::NetError;

/// An established session on either side.
///
/// Typical loop: `select!` [`next_event`](Self::next_event) against the
/// outbox; for outgoing messages [`queue`](Self::queue) all that is ready,
/// then [`flush`](Self::flush) once; a server cuts the client off when
/// [`pending_bytes`](Self::pending_bytes) grows past its limit.
pub struct Link<S, Sd: LinkSide> {
    pub(crate) driver: Driver<S, Sd>,
    binding: ChannelBinding,
}

/// An established server-side session (from [`crate::accept`]).
pub type ServerLink<S> = Link<S, ServerSide>;
/// An established client-side session (from [`crate::connect`]).
pub type ClientLink<S> = Link<S, ClientSide>;

impl<S, Sd: LinkSide> Link<S, Sd> {
    /// Wraps a driver whose handshake has just completed.
    pub(crate) fn established(driver: Driver<S, Sd>) -> Self {
        let binding = driver
            .core
            .channel_binding()
            .expect("a completed handshake has derived its channel binding");
        Self { driver, binding }
    }

    /// This connection's channel binding: what an OPAQUE login is bound
    /// to, so that it cannot be relayed into another connection.
    pub fn channel_binding(&self) -> &ChannelBinding {
        &self.binding
    }
}

impl<S, Sd> Link<S, Sd>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    Sd: LinkSide,
{
    /// This connection's id in the logs.
    pub fn id(&self) -> ConnId {
        self.driver.id
    }

    /// The underlying stream (for `peer_addr` and the like).
    pub fn get_ref(&self) -> &S {
        &self.driver.stream
    }

    /// The next message from the peer, or `Closed`. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<LinkEvent<Sd::Incoming>, NetError> {
        self.driver.next_event().await
    }

    /// Seals `msg` into the outgoing buffer. No I/O: call [`Self::flush`].
    pub fn queue(&mut self, msg: &Sd::Outgoing) -> Result<(), NetError> {
        self.driver.core.send(msg)?;
        self.driver.stage();
        Ok(())
    }

    /// Writes everything queued with a single `write` where the stream
    /// takes it all. Cancel-safe: a dropped flush resumes on the next call.
    /// Has no timeout of its own: a server bounds slow readers with
    /// [`Self::pending_bytes`] or wraps this in `tokio::time::timeout`.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        self.driver.flush().await
    }

    /// [`Self::queue`] then [`Self::flush`].
    pub async fn send(&mut self, msg: &Sd::Outgoing) -> Result<(), NetError> {
        self.queue(msg)?;
        self.flush().await
    }

    /// Bytes queued but not yet written to the stream.
    pub fn pending_bytes(&self) -> usize {
        self.driver.pending_bytes()
    }

    /// Sends `goodbye` (if any) and close_notify after whatever is queued,
    /// flushes and shuts down the write side, within
    /// [`crate::CLOSE_TIMEOUT`].
    pub async fn close(mut self, goodbye: Option<&Sd::Outgoing>) -> Result<(), NetError> {
        if let Some(msg) = goodbye {
            // A failed session cannot say goodbye; close anyway.
            let _ = self.queue(msg);
        }
        self.driver.close().await
    }
}

impl<S> Link<S, ServerSide>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Seals a message encoded once for many recipients. No I/O.
    pub fn queue_encoded(&mut self, msg: &EncodedServerMessage) -> Result<(), NetError> {
        self.driver.core.send_encoded(msg)?;
        self.driver.stage();
        Ok(())
    }
}

impl<S> Link<S, ClientSide> {
    /// The server's identity key, as verified by the handshake.
    pub fn server_key(&self) -> ServerKey {
        self.driver
            .core
            .server_key()
            .expect("a client session exists only after a verified handshake")
    }
}
