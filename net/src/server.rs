//! The accepting side: [`accept`] and [`ServerSession`].

use std::sync::Arc;
use std::time::Duration;

use proto_core::message::{ClientMessage, ServerMessage};
use proto_core::{EncodedServerMessage, ServerConfig, ServerConnection, ServerEvent};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

use crate::driver::{read_until, ConnId, Driver, SessionEvent};
use crate::error::NetError;
use crate::session_rng;

/// Limits on handshakes, shared by every connection of a server.
#[derive(Debug, Clone)]
pub struct HandshakeOptions {
    /// The whole handshake — waiting for the ClientHello, waiting for a
    /// CPU permit, the key exchange, the client's Finished — must end
    /// within this (threat M2, slowloris).
    pub deadline: Duration,
    /// Permits for the ~3 ms of ClientHello cryptography, which runs on
    /// the blocking pool. A handshake flood queues here instead of taking
    /// every core from chat delivery (threat M7). Close the semaphore to
    /// refuse new handshakes during shutdown.
    pub cpu_permits: Arc<Semaphore>,
}

impl HandshakeOptions {
    /// `concurrent` handshakes may compute at once; the number of cores is
    /// a sensible value.
    pub fn new(deadline: Duration, concurrent: usize) -> Self {
        Self {
            deadline,
            cpu_permits: Arc::new(Semaphore::new(concurrent.max(1))),
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
) -> Result<ServerSession<S>, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let id = ConnId::next();
    match tokio::time::timeout(opts.deadline, handshake(stream, config, opts, id)).await {
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

async fn handshake<S>(
    mut stream: S,
    config: ServerConfig,
    opts: &HandshakeOptions,
    id: ConnId,
) -> Result<ServerSession<S>, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut core = Box::new(ServerConnection::new(config, session_rng()));
    let mut hello = Vec::new();
    // Until the core can process the hello or refuse it (a wrong type,
    // length or version is known from the first seven bytes); nothing
    // expensive happens meanwhile, so no CPU permit is held.
    let got_frame = read_until(
        &mut stream,
        &mut hello,
        ServerConnection::first_flight_ready,
    )
    .await?;
    if !got_frame {
        return Err(core
            .handle_eof()
            .err()
            .unwrap_or(proto_core::Error::UnexpectedEof)
            .into());
    }

    // The expensive step, off the async workers. The permit moves into the
    // closure so it is held exactly as long as the CPU work runs, even if
    // this future is dropped by the deadline meanwhile.
    let permit = opts
        .cpu_permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| NetError::ShuttingDown)?;
    let (core, result) = crate::background_cpu::spawn(move || {
        let _permit = permit;
        let result = core.handle_input(&hello);
        (core, result)
    })
    .await?;

    let mut driver = Driver::new(stream, core, id);
    if let Err(e) = result {
        return Err(driver.fail(e).await);
    }
    driver.flush().await?; // ServerHello + server Finished

    loop {
        // Only pop up to `Connected`: messages behind it stay queued for
        // the session.
        if let Some(ev) = driver.core.poll_event() {
            return match ev {
                ServerEvent::Connected => Ok(ServerSession { driver }),
                ServerEvent::Closed => Err(NetError::Closed),
                ServerEvent::Message(_) => {
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

/// An established server-side session.
///
/// Typical loop: `select!` [`next_event`](Self::next_event) against the
/// outbox; for outgoing messages [`queue`](Self::queue) all that is ready,
/// then [`flush`](Self::flush) once; cut the client off when
/// [`pending_bytes`](Self::pending_bytes) grows past the server's limit.
pub struct ServerSession<S> {
    driver: Driver<S, ServerConnection>,
}

impl<S> ServerSession<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// This connection's id in the logs.
    pub fn id(&self) -> ConnId {
        self.driver.id
    }

    /// The underlying stream (for `peer_addr` and the like).
    pub fn get_ref(&self) -> &S {
        &self.driver.stream
    }

    /// The next message from the client, or `Closed`. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<SessionEvent<ClientMessage>, NetError> {
        self.driver.next_event().await
    }

    /// Seals `msg` into the outgoing buffer. No I/O: call [`Self::flush`].
    pub fn queue(&mut self, msg: &ServerMessage) -> Result<(), NetError> {
        self.driver.core.send(msg)?;
        self.driver.stage();
        Ok(())
    }

    /// Seals a message encoded once for many recipients. No I/O.
    pub fn queue_encoded(&mut self, msg: &EncodedServerMessage) -> Result<(), NetError> {
        self.driver.core.send_encoded(msg)?;
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
    pub async fn send(&mut self, msg: &ServerMessage) -> Result<(), NetError> {
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
    pub async fn close(mut self, goodbye: Option<&ServerMessage>) -> Result<(), NetError> {
        if let Some(msg) = goodbye {
            // A failed session cannot say goodbye; close anyway.
            let _ = self.queue(msg);
        }
        self.driver.close().await
    }
}
