//! The connecting side: [`connect`], [`PendingTrust`], [`ClientSession`].

use std::time::Duration;

use proto_core::message::{ClientMessage, ServerMessage};
use proto_core::{ClientConfig, ClientConnection, ClientEvent, Fingerprint, ServerKey};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::driver::{max_frame_body, read_first_frame, ConnId, Driver, SessionEvent};
use crate::error::NetError;
use crate::session_rng;

/// How a client handshake ended.
pub enum ClientHandshake<S> {
    /// The server proved the pinned key (or fingerprint): ready.
    Connected(ClientSession<S>),
    /// First contact: the server proved possession of a key we have never
    /// seen. Ask the user (show [`PendingTrust::fingerprint`]), pin it, then
    /// [`PendingTrust::accept`]; or [`PendingTrust::reject`]. Nothing has
    /// been sent under the session keys yet.
    NeedsTrust(PendingTrust<S>),
}

/// Runs the client side of the handshake on `stream`, all within
/// `deadline`. A key other than the pinned one fails with
/// `NetError::Protocol(Error::ServerKeyChanged { .. })` before anything
/// is sent under the session keys (threat N4).
pub async fn connect<S>(
    stream: S,
    config: ClientConfig,
    deadline: Duration,
) -> Result<ClientHandshake<S>, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let id = ConnId::next();
    let res = match tokio::time::timeout(deadline, handshake(stream, config, deadline, id)).await {
        Ok(res) => res,
        Err(_) => Err(NetError::HandshakeTimeout),
    };
    match &res {
        Ok(ClientHandshake::Connected(_)) => {
            tracing::debug!(conn = %id, "client handshake complete")
        }
        Ok(ClientHandshake::NeedsTrust(_)) => {
            tracing::debug!(conn = %id, "server key unknown; awaiting a trust decision")
        }
        Err(e) => tracing::debug!(conn = %id, error = %e, "client handshake failed"),
    }
    res
}

async fn handshake<S>(
    mut stream: S,
    config: ClientConfig,
    deadline: Duration,
    id: ConnId,
) -> Result<ClientHandshake<S>, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let max_body = max_frame_body(&config.limits);
    // Key generation (an ffdhe3072 exponentiation and ML-KEM) and the
    // ServerHello's key agreement are milliseconds of CPU each: keep them
    // off the async workers, which may be driving a UI's network tasks.
    let mut core = crate::background_cpu::spawn(move || {
        Box::new(ClientConnection::new(config, session_rng()))
    })
    .await?;
    let mut hello = Vec::new();
    core.drain_transmit(&mut hello);
    stream.write_all(&hello).await?;
    stream.flush().await?;

    let mut first = Vec::new();
    if !read_first_frame(&mut stream, &mut first, max_body).await? {
        return Err(core
            .handle_eof()
            .err()
            .unwrap_or(proto_core::Error::UnexpectedEof)
            .into());
    }
    let (core, result) = crate::background_cpu::spawn(move || {
        let result = core.handle_input(&first);
        (core, result)
    })
    .await?;
    let mut driver = Driver::new(stream, core, id);
    if let Err(e) = result {
        return Err(driver.fail(e).await);
    }
    loop {
        driver.flush().await?;
        if let Some(ev) = driver.core.poll_event() {
            return match ev {
                ClientEvent::Connected { server_key } => {
                    Ok(ClientHandshake::Connected(ClientSession {
                        driver,
                        server_key,
                    }))
                }
                ClientEvent::ServerKeyUnknown(server_key) => {
                    Ok(ClientHandshake::NeedsTrust(PendingTrust {
                        driver,
                        server_key,
                        deadline,
                    }))
                }
                ClientEvent::Closed => Err(NetError::Closed),
                ClientEvent::Message(_) => {
                    Err(proto_core::Error::InvalidState("message before Connected").into())
                }
            };
        }
        if !driver.read_some().await? {
            let err = driver
                .core
                .handle_eof()
                .err()
                .unwrap_or(proto_core::Error::UnexpectedEof);
            return Err(err.into());
        }
    }
}

/// A handshake waiting for the user to trust the server's key.
pub struct PendingTrust<S> {
    driver: Driver<S, ClientConnection>,
    server_key: ServerKey,
    deadline: Duration,
}

impl<S> PendingTrust<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// The key the server proved it holds.
    pub fn server_key(&self) -> ServerKey {
        self.server_key
    }

    /// What the user compares out of band.
    pub fn fingerprint(&self) -> Fingerprint {
        self.server_key.fingerprint()
    }

    /// Trusts the key (the caller pins it) and finishes the handshake.
    /// The server's own handshake deadline keeps running meanwhile, so a
    /// slow decision can end in a closed connection.
    pub async fn accept(mut self) -> Result<ClientSession<S>, NetError> {
        if let Err(e) = self.driver.core.accept_server_key() {
            return Err(self.driver.fail(e).await);
        }
        let Self {
            mut driver,
            server_key,
            deadline,
        } = self;
        tokio::time::timeout(deadline, driver.flush())
            .await
            .map_err(|_| NetError::HandshakeTimeout)??;
        // `Connected` is queued by accept_server_key; skip it so the
        // session starts with the server's messages.
        while let Some(ev) = driver.core.poll_event() {
            if matches!(ev, ClientEvent::Connected { .. }) {
                tracing::debug!(conn = %driver.id, "server key accepted; client handshake complete");
                return Ok(ClientSession { driver, server_key });
            }
        }
        Err(proto_core::Error::InvalidState("accepted key did not connect").into())
    }

    /// Declines the key: the server is told (handshake_failure alert) and
    /// the stream is shut down.
    pub async fn reject(mut self) {
        let err = self.driver.core.reject_server_key();
        tracing::debug!(conn = %self.driver.id, "server key rejected");
        let _ = self.driver.fail(err).await;
    }
}

/// An established client-side session.
pub struct ClientSession<S> {
    driver: Driver<S, ClientConnection>,
    server_key: ServerKey,
}

impl<S> ClientSession<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// This connection's id in the logs.
    pub fn id(&self) -> ConnId {
        self.driver.id
    }

    /// The server's identity key, as verified by the handshake.
    pub fn server_key(&self) -> ServerKey {
        self.server_key
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.driver.stream
    }

    /// The next message from the server, or `Closed`. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<SessionEvent<ServerMessage>, NetError> {
        self.driver.next_event().await
    }

    /// Seals `msg` into the outgoing buffer. No I/O.
    pub fn queue(&mut self, msg: &ClientMessage) -> Result<(), NetError> {
        self.driver.core.send(msg)?;
        self.driver.stage();
        Ok(())
    }

    /// Writes everything queued, in one `write` where possible.
    /// Cancel-safe.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        self.driver.flush().await
    }

    /// [`Self::queue`] then [`Self::flush`].
    pub async fn send(&mut self, msg: &ClientMessage) -> Result<(), NetError> {
        self.queue(msg)?;
        self.flush().await
    }

    /// Bytes queued but not yet written to the stream.
    pub fn pending_bytes(&self) -> usize {
        self.driver.pending_bytes()
    }

    /// Sends `goodbye` (if any) and close_notify, flushes and shuts down
    /// the write side, within [`crate::CLOSE_TIMEOUT`].
    pub async fn close(mut self, goodbye: Option<&ClientMessage>) -> Result<(), NetError> {
        if let Some(msg) = goodbye {
            let _ = self.queue(msg);
        }
        self.driver.close().await
    }
}
