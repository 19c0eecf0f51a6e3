//! The driver shared by both sides: one stream, one protocol core, the
//! buffers between them, and the run-loop contract of `proto-core`
//! (feed input, drain events, drain transmit, flush alerts on error,
//! hand the expensive step to an [`Offload`]). The core does all framing:
//! nothing here looks inside the bytes.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use std::sync::Arc;

use proto_core::message::{ClientMessage, ServerMessage};
use proto_core::{ClientEvent, ClientSide, Connection, ServerEvent, ServerSide, Side};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::NetError;
use crate::offload::Offload;

/// How long `close()` (goodbye, close_notify, shutdown) and the best-effort
/// alert after a protocol error may take before the stream is dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes read per `read` call, into a buffer on the stack that lives for
/// one poll only: an idle connection holds no read buffer at all (what
/// arrives goes straight into the core's frame reader).
const READ_BUF: usize = 8 * 1024;

/// After each flush the write buffer goes back to the core
/// (`recycle_transmit_buffer`), shrunk to this if a burst grew it, so one
/// big burst (the handshake's flight, a login's history replay, a long
/// member list) does not pin memory for the rest of the session: with
/// thousands of idle sessions the retained write buffers were most of the
/// server's memory per connection. A chat message's record fits many
/// times over; the realloc after a larger burst costs far less than the
/// write that sent it.
const KEEP_OUT_CAPACITY: usize = 1024;

/// What a session reports to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent<M> {
    /// A message from the peer.
    Message(M),
    /// The session ended. `clean` only if the peer sent close_notify before
    /// the stream ended; a bare EOF is a dropped or truncated connection
    /// (threat N3). Further `next_event` calls return `NetError::Closed`.
    Closed { clean: bool },
}

/// A process-wide connection number for log correlation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a side's events look to a session: messages and the end, with the
/// handshake's events left to the handshake. Implemented for both sides.
pub trait LinkSide: Side {
    /// What the peer sends.
    type Incoming: Send;
    /// The session's view of an event; `None` for a handshake event.
    fn link_event(event: Self::Event) -> Option<LinkEvent<Self::Incoming>>;
}

impl LinkSide for ServerSide {
    type Incoming = ClientMessage;
    fn link_event(event: ServerEvent) -> Option<LinkEvent<ClientMessage>> {
        match event {
            ServerEvent::Message(m) => Some(LinkEvent::Message(m)),
            ServerEvent::Closed => Some(LinkEvent::Closed { clean: true }),
            ServerEvent::Connected => None,
        }
    }
}

impl LinkSide for ClientSide {
    type Incoming = ServerMessage;
    fn link_event(event: ClientEvent) -> Option<LinkEvent<ServerMessage>> {
        match event {
            ClientEvent::Message(m) => Some(LinkEvent::Message(m)),
            ClientEvent::Closed => Some(LinkEvent::Closed { clean: true }),
            ClientEvent::Connected { .. } | ClientEvent::ServerKeyUnknown(_) => None,
        }
    }
}

/// A stream plus a core plus the buffers between them.
///
/// Every await point is either one `read` or one `write`/`flush`, and all
/// progress is recorded in `self` before and after it, so dropping any of
/// the futures below loses nothing: bytes read are always handed to the
/// core before the next await, and `out[written..]` is exactly what is
/// still owed to the peer.
pub(crate) struct Driver<S, Sd: Side> {
    pub(crate) stream: S,
    /// Boxed: the protocol state (keys, key schedules) is a few KiB, and
    /// the session futures that own the driver move it across several
    /// `async fn` layers; inline, each layer kept its own copy and an idle
    /// session's task grew to 33 KiB.
    pub(crate) core: Box<Connection<Sd>>,
    pub(crate) id: ConnId,
    out: Vec<u8>,
    written: usize,
    /// The core's sticky error, once seen: reported again on every call.
    failed: Option<proto_core::Error>,
    /// `Closed` has been reported to the application.
    ended: bool,
}

impl<S, Sd> Driver<S, Sd>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    Sd: LinkSide,
{
    pub(crate) fn new(stream: S, core: Box<Connection<Sd>>, id: ConnId) -> Self {
        let mut d = Self {
            stream,
            core,
            id,
            out: Vec::new(),
            written: 0,
            failed: None,
            ended: false,
        };
        d.stage();
        d
    }

    /// Moves the core's outgoing bytes into `out` (no I/O).
    pub(crate) fn stage(&mut self) {
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        self.core.drain_transmit(&mut self.out);
    }

    /// Bytes sealed but not yet written to the stream.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.out.len() - self.written
    }

    /// Writes everything staged (plus whatever the core holds) with as few
    /// `write` calls as the stream allows — one, unless it takes a short
    /// write. Cancel-safe: a dropped flush resumes where it stopped.
    pub(crate) async fn flush(&mut self) -> Result<(), NetError> {
        self.stage();
        while self.written < self.out.len() {
            let n = self.stream.write(&self.out[self.written..]).await?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            self.written += n;
        }
        let flushed = self.out.len();
        self.written = 0;
        self.core
            .recycle_transmit_buffer(&mut self.out, KEEP_OUT_CAPACITY);
        // TLS streams (and any buffering wrapper) need this to emit records.
        self.stream.flush().await?;
        if flushed > 0 {
            tracing::trace!(conn = %self.id, bytes = flushed, "flushed");
        }
        Ok(())
    }

    /// The next message or the end of the session. Cancel-safe: the only
    /// await is a single `read`, and its bytes reach the core at once.
    pub(crate) async fn next_event(&mut self) -> Result<LinkEvent<Sd::Incoming>, NetError> {
        loop {
            if let Some(e) = &self.failed {
                return Err(NetError::Protocol(e.clone()));
            }
            if let Some(ev) = self.poll_link_event() {
                if matches!(ev, LinkEvent::Closed { .. }) {
                    tracing::debug!(conn = %self.id, "peer sent close_notify");
                    self.ended = true;
                }
                return Ok(ev);
            }
            if self.ended {
                return Err(NetError::Closed);
            }
            if !self.read_some().await? {
                self.ended = true;
                return match self.core.handle_eof() {
                    Ok(()) => Ok(LinkEvent::Closed { clean: true }),
                    Err(proto_core::Error::UnexpectedEof) => {
                        tracing::debug!(conn = %self.id, "connection dropped without close_notify");
                        Ok(LinkEvent::Closed { clean: false })
                    }
                    Err(e) => Err(NetError::Protocol(e)),
                };
            }
        }
    }

    /// The next event a session shows; handshake events are skipped.
    fn poll_link_event(&mut self) -> Option<LinkEvent<Sd::Incoming>> {
        std::iter::from_fn(|| self.core.poll_event()).find_map(Sd::link_event)
    }

    /// The next handshake event, reading as needed; the expensive step
    /// (a hello's key agreement) runs through `offload`, holding a permit of
    /// `cpu_permits` if given. Reading the hello itself costs nothing, so no
    /// permit is held while a slow peer trickles it in.
    pub(crate) async fn next_handshake_event(
        mut self,
        offload: &Offload,
        cpu_permits: Option<&Arc<Semaphore>>,
    ) -> Result<(Self, Sd::Event), NetError> {
        loop {
            self.flush().await?;
            if let Some(ev) = self.core.poll_event() {
                return Ok((self, ev));
            }
            if self.core.expensive_input_pending() {
                let permit = match cpu_permits {
                    Some(p) => Some(
                        p.clone()
                            .acquire_owned()
                            .await
                            .map_err(|_| NetError::ShuttingDown)?,
                    ),
                    None => None,
                };
                self = self.process_expensive_input(offload, permit).await?;
                continue;
            }
            if !self.read_some().await? {
                let err = self
                    .core
                    .handle_eof()
                    .err()
                    .unwrap_or(proto_core::Error::UnexpectedEof);
                return Err(err.into());
            }
        }
    }

    /// Runs the core's pending expensive step through `offload`. The core
    /// moves to the worker and back; the permit moves with it, so it is held
    /// exactly as long as the work runs, even if this future is dropped by
    /// a deadline meanwhile.
    async fn process_expensive_input(
        self,
        offload: &Offload,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Self, NetError> {
        let mut driver = self;
        // The core goes to the worker; the driver waits for it, partly moved.
        let core = driver.core;
        let (core, result) = offload
            .run(move || {
                let _permit = permit;
                let mut core = core;
                let result = core.process_expensive_input();
                (core, result)
            })
            .await?;
        driver.core = core;
        driver.stage();
        match result {
            Ok(()) => Ok(driver),
            Err(e) => Err(driver.fail(e).await),
        }
    }

    /// One `read`, fed to the core at once, short of any expensive step
    /// (see [`Self::next_handshake_event`]; an established session has
    /// none). `Ok(false)` on end of stream (the caller decides what EOF
    /// means). The only await is the read,
    /// and the bytes reach the core in the same poll that reads them, so
    /// the buffer never outlives a poll (and never sits in the future).
    pub(crate) async fn read_some(&mut self) -> Result<bool, NetError> {
        let (stream, core) = (&mut self.stream, &mut self.core);
        let fed = std::future::poll_fn(|cx| {
            let mut buf = [0u8; READ_BUF];
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Ok(None)),
                Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(core.handle_cheap_input(rb.filled())))),
            }
        })
        .await?;
        match fed {
            None => Ok(false),
            Some(Ok(())) => {
                self.stage();
                Ok(true)
            }
            Some(Err(e)) => Err(self.fail(e).await),
        }
    }

    /// Records a core error and sends its alert, best effort, briefly.
    pub(crate) async fn fail(&mut self, err: proto_core::Error) -> NetError {
        tracing::debug!(conn = %self.id, error = %err, "protocol error; closing");
        self.failed = Some(err.clone());
        self.stage();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            self.flush().await?;
            self.stream.shutdown().await?;
            Ok::<_, NetError>(())
        })
        .await;
        NetError::Protocol(err)
    }

    /// Sends close_notify (after whatever is queued), flushes and shuts the
    /// write side down, within [`CLOSE_TIMEOUT`].
    pub(crate) async fn close(mut self) -> Result<(), NetError> {
        self.core.close();
        let id = self.id;
        let res = tokio::time::timeout(CLOSE_TIMEOUT, async {
            self.flush().await?;
            self.stream.shutdown().await?;
            Ok::<_, NetError>(())
        })
        .await
        .unwrap_or(Err(NetError::WriteTimeout));
        tracing::debug!(conn = %id, ok = res.is_ok(), "closed");
        res
    }
}
