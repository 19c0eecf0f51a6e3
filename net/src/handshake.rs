//! The two handshakes: [`accept`] for a server, [`connect`] for a client
//! (with [`PendingTrust`] on first contact). Both feed the core what they
//! read and run the step it reports as expensive through an [`Offload`].

use std::sync::Arc;
use std::time::Duration;

use proto_core::{
    ClientConfig, ClientConnection, ClientEvent, Fingerprint, ServerConfig, ServerConnection,
    ServerEvent, ServerKey,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

use crate::driver::{ConnId, Driver};
use crate::error::NetError;
use crate::link::{ClientLink, Link, ServerLink};
use crate::offload::Offload;
use crate::session_rng;

/// Limits on handshakes, shared by every connection of a server.
#[derive(Debug, Clone)]
pub struct HandshakeOptions {
    /// The whole handshake — waiting for the ClientHello, waiting for a
    /// CPU permit, the key exchange, the client's Finished — must end
    /// within this (threat M2, slowloris).
    pub deadline: Duration,
    /// Permits for the ~3 ms of ClientHello cryptography, which runs on
    /// `offload`. A handshake flood queues here instead of taking every
    /// core from chat delivery (threat M7). Close the semaphore to refuse
    /// new handshakes during shutdown.
    pub cpu_permits: Arc<Semaphore>,
    /// Where that cryptography runs (default: tokio's blocking pool).
    pub offload: Offload,
}

impl HandshakeOptions {
    /// `concurrent` handshakes may compute at once; the number of cores is
    /// a sensible value.
    pub fn new(deadline: Duration, concurrent: usize) -> Self {
        Self {
            deadline,
            cpu_permits: Arc::new(Semaphore::new(concurrent.max(1))),
            offload: Offload::default(),
        }
    }
}

/// Runs the server side of the handshake on `stream`.
///
/// Fails with [`NetError::HandshakeTimeout`] after `opts.deadline`,
/// [`NetError::Protocol`] if the client misbehaves (its alert is sent
/// first), [`NetError::Closed`] if the client ends the attempt cleanly.
pub async fn accept<S>(
    stream: S,
    config: ServerConfig,
    opts: &HandshakeOptions,
) -> Result<ServerLink<S>, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let id = ConnId::next();
    match tokio::time::timeout(opts.deadline, server_handshake(stream, config, opts, id)).await {
        Ok(Ok(session)) => {
            tracing::debug!(conn = %id, "server handshake complete");
            Ok(session)
        }
        Ok(Err(e)) => {
            tracing::debug!(conn = %id, error = %e, "server handshake failed");
            Err(e)
        }
        Err(_) => {
            tracing::debug!(conn = %id, "server handshake deadline passed");
            Err(NetError::HandshakeTimeout)
        }
    }
}

async fn server_handshake<S>(
    stream: S,
    config: ServerConfig,
    opts: &HandshakeOptions,
    id: ConnId,
) -> Result<ServerLink<S>, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let core = Box::new(ServerConnection::new(config, session_rng()));
    let driver = Driver::new(stream, core, id);
    // Only up to `Connected`: messages behind it stay queued for the session.
    let (driver, ev) = driver
        .next_handshake_event(&opts.offload, Some(&opts.cpu_permits))
        .await?;
    match ev {
        ServerEvent::Connected => Ok(Link::established(driver)),
        ServerEvent::Closed => Err(NetError::Closed),
        ServerEvent::Message(_) => {
            Err(proto_core::Error::InvalidState("message before Connected").into())
        }
    }
}

/// How a client handshake ended.
pub enum ClientHandshake<S> {
    /// The server proved the pinned key (or fingerprint): ready.
    Connected(ClientLink<S>),
    /// First contact: the server proved possession of a key we have never
    /// seen. Ask the user (show [`PendingTrust::fingerprint`]), pin it, then
    /// [`PendingTrust::accept`]; or [`PendingTrust::reject`]. Nothing has
    /// been sent under the session keys yet.
    NeedsTrust(PendingTrust<S>),
}

/// Runs the client side of the handshake on `stream`, all within
/// `deadline`, its cryptography on tokio's blocking pool. A key other than
/// the pinned one fails with
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
    connect_with_offload(stream, config, deadline, &Offload::default()).await
}

/// [`connect`], running the key generation and the ServerHello's key
/// agreement through `offload` (a load generator lowers their priority).
pub async fn connect_with_offload<S>(
    stream: S,
    config: ClientConfig,
    deadline: Duration,
    offload: &Offload,
) -> Result<ClientHandshake<S>, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let id = ConnId::next();
    let handshake = client_handshake(stream, config, deadline, offload, id);
    let res = match tokio::time::timeout(deadline, handshake).await {
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

async fn client_handshake<S>(
    stream: S,
    config: ClientConfig,
    deadline: Duration,
    offload: &Offload,
    id: ConnId,
) -> Result<ClientHandshake<S>, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // Key generation (an ffdhe3072 exponentiation and ML-KEM) and the
    // ServerHello's key agreement are milliseconds of CPU each: keep them
    // off the async workers, which may be driving a UI's network tasks.
    let core = offload
        .run(move || Box::new(ClientConnection::new(config, session_rng())))
        .await?;
    let driver = Driver::new(stream, core, id); // ClientHello staged
    let (driver, ev) = driver.next_handshake_event(offload, None).await?;
    match ev {
        ClientEvent::Connected { .. } => Ok(ClientHandshake::Connected(Link::established(driver))),
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
    }
}

/// A handshake waiting for the user to trust the server's key.
pub struct PendingTrust<S> {
    driver: Driver<S, proto_core::ClientSide>,
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
    pub async fn accept(mut self) -> Result<ClientLink<S>, NetError> {
        if let Err(e) = self.driver.core.accept_server_key() {
            return Err(self.driver.fail(e).await);
        }
        let Self {
            mut driver,
            deadline,
            ..
        } = self;
        tokio::time::timeout(deadline, driver.flush())
            .await
            .map_err(|_| NetError::HandshakeTimeout)??;
        // `Connected` is queued by accept_server_key; skip it so the
        // session starts with the server's messages.
        while let Some(ev) = driver.core.poll_event() {
            if matches!(ev, ClientEvent::Connected { .. }) {
                tracing::debug!(conn = %driver.id, "server key accepted; client handshake complete");
                return Ok(Link::established(driver));
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
