//! The driver shared by both sides: one stream, one protocol core, the
//! buffers between them, and the run-loop contract of `proto-core`
//! (feed input, drain events, drain transmit, flush alerts on error).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use proto_core::frame::{decode_header, Decoded, MAX_FRAME_BODY, MIN_FRAME_BODY};
use proto_core::{ClientConnection, ClientEvent, ServerConnection, ServerEvent};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::NetError;

/// How long `close()` (goodbye, close_notify, shutdown) and the best-effort
/// alert after a protocol error may take before the stream is dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes read per `read` call, into a buffer on the stack that lives for
/// one poll only: an idle connection holds no read buffer at all (what
/// arrives goes straight into the core's frame reader).
const READ_BUF: usize = 8 * 1024;

/// A flush burst larger than this gives its memory back afterwards, so one
/// big burst (a login's history replay, a long online list) does not pin
/// memory for the rest of the session: with thousands of idle sessions the
/// retained write buffers were most of the server's memory per connection.
/// Reallocating after a burst costs far less than the write that sent it.
const KEEP_OUT_CAPACITY: usize = 4 * 1024;
/// What an oversized write buffer shrinks to.
const SHRUNK_OUT_CAPACITY: usize = 0;

/// What a session reports to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent<M> {
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

/// What the driver needs of a protocol state machine once established.
pub(crate) trait Core: Send + 'static {
    type Incoming;
    fn handle_input(&mut self, data: &[u8]) -> Result<(), proto_core::Error>;
    fn handle_eof(&mut self) -> Result<(), proto_core::Error>;
    fn drain_transmit(&mut self, out: &mut Vec<u8>);
    /// The next event the application sees; handshake events are skipped.
    fn poll_session_event(&mut self) -> Option<SessionEvent<Self::Incoming>>;
    fn close(&mut self);
}

impl Core for ServerConnection {
    type Incoming = proto_core::message::ClientMessage;
    fn handle_input(&mut self, data: &[u8]) -> Result<(), proto_core::Error> {
        ServerConnection::handle_input(self, data)
    }
    fn handle_eof(&mut self) -> Result<(), proto_core::Error> {
        ServerConnection::handle_eof(self)
    }
    fn drain_transmit(&mut self, out: &mut Vec<u8>) {
        ServerConnection::drain_transmit(self, out)
    }
    fn poll_session_event(&mut self) -> Option<SessionEvent<Self::Incoming>> {
        loop {
            match self.poll_event()? {
                ServerEvent::Message(m) => return Some(SessionEvent::Message(m)),
                ServerEvent::Closed => return Some(SessionEvent::Closed { clean: true }),
                ServerEvent::Connected => continue,
            }
        }
    }
    fn close(&mut self) {
        ServerConnection::close(self)
    }
}

impl Core for ClientConnection {
    type Incoming = proto_core::message::ServerMessage;
    fn handle_input(&mut self, data: &[u8]) -> Result<(), proto_core::Error> {
        ClientConnection::handle_input(self, data)
    }
    fn handle_eof(&mut self) -> Result<(), proto_core::Error> {
        ClientConnection::handle_eof(self)
    }
    fn drain_transmit(&mut self, out: &mut Vec<u8>) {
        ClientConnection::drain_transmit(self, out)
    }
    fn poll_session_event(&mut self) -> Option<SessionEvent<Self::Incoming>> {
        loop {
            match self.poll_event()? {
                ClientEvent::Message(m) => return Some(SessionEvent::Message(m)),
                ClientEvent::Closed => return Some(SessionEvent::Closed { clean: true }),
                ClientEvent::Connected { .. } | ClientEvent::ServerKeyUnknown(_) => continue,
            }
        }
    }
    fn close(&mut self) {
        ClientConnection::close(self)
    }
}

/// A stream plus a core plus the buffers between them.
///
/// Every await point is either one `read` or one `write`/`flush`, and all
/// progress is recorded in `self` before and after it, so dropping any of
/// the futures below loses nothing: bytes read are always handed to the
/// core before the next await, and `out[written..]` is exactly what is
/// still owed to the peer.
pub(crate) struct Driver<S, C> {
    pub(crate) stream: S,
    /// Boxed: the protocol state (keys, key schedules) is a few KiB, and
    /// the session futures that own the driver move it across several
    /// `async fn` layers; inline, each layer kept its own copy and an idle
    /// session's task grew to 33 KiB.
    pub(crate) core: Box<C>,
    pub(crate) id: ConnId,
    out: Vec<u8>,
    written: usize,
    /// The core's sticky error, once seen: reported again on every call.
    failed: Option<proto_core::Error>,
    /// `Closed` has been reported to the application.
    ended: bool,
}

impl<S, C> Driver<S, C>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    C: Core,
{
    pub(crate) fn new(stream: S, core: Box<C>, id: ConnId) -> Self {
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
        self.out.clear();
        self.written = 0;
        if self.out.capacity() > KEEP_OUT_CAPACITY {
            self.out.shrink_to(SHRUNK_OUT_CAPACITY);
        }
        // TLS streams (and any buffering wrapper) need this to emit records.
        self.stream.flush().await?;
        if flushed > 0 {
            tracing::trace!(conn = %self.id, bytes = flushed, "flushed");
        }
        Ok(())
    }

    /// The next message or the end of the session. Cancel-safe: the only
    /// await is a single `read`, and its bytes reach the core at once.
    pub(crate) async fn next_event(&mut self) -> Result<SessionEvent<C::Incoming>, NetError> {
        loop {
            if let Some(e) = &self.failed {
                return Err(NetError::Protocol(e.clone()));
            }
            if let Some(ev) = self.core.poll_session_event() {
                if matches!(ev, SessionEvent::Closed { .. }) {
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
                    Ok(()) => Ok(SessionEvent::Closed { clean: true }),
                    Err(proto_core::Error::UnexpectedEof) => {
                        tracing::debug!(conn = %self.id, "connection dropped without close_notify");
                        Ok(SessionEvent::Closed { clean: false })
                    }
                    Err(e) => Err(NetError::Protocol(e)),
                };
            }
        }
    }

    /// One `read`, fed to the core at once. `Ok(false)` on end of stream
    /// (the caller decides what EOF means). The only await is the read,
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
                Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(core.handle_input(rb.filled())))),
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

/// The frame-size limit as the core applies it.
pub(crate) fn max_frame_body(limits: &proto_core::Limits) -> u32 {
    limits.max_frame_body.clamp(MIN_FRAME_BODY, MAX_FRAME_BODY)
}

/// Reads until `buf` holds the peer's whole first frame, or a header the
/// core will refuse anyway (oversized, unknown type). Returns `false` on
/// EOF. Nothing expensive happens here, so no CPU permit is held while a
/// slow peer trickles its hello in.
pub(crate) async fn read_first_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    max_body: u32,
) -> io::Result<bool> {
    read_until(stream, buf, |b| {
        !matches!(decode_header(b, max_body), Ok(Decoded::Incomplete { .. }))
    })
    .await
}

/// Reads into `buf` until `ready(buf)`; `false` on EOF first.
pub(crate) async fn read_until<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    ready: impl Fn(&[u8]) -> bool,
) -> io::Result<bool> {
    while !ready(buf) {
        let start = buf.len();
        buf.resize(start + 2048, 0);
        let n = stream.read(&mut buf[start..]).await?;
        buf.truncate(start + n);
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;

    /// Hands out its bytes one per `read`, then EOF.
    struct Trickle(Vec<u8>);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if !self.0.is_empty() {
                let b = self.0.remove(0);
                buf.put_slice(&[b]);
            }
            Poll::Ready(Ok(()))
        }
    }

    fn frame(body_len: usize) -> Vec<u8> {
        let mut f = vec![0x01];
        f.extend_from_slice(&(body_len as u32).to_be_bytes());
        f.resize(5 + body_len, 0xab);
        f
    }

    #[tokio::test]
    async fn first_frame_is_reassembled_from_one_byte_reads() {
        let mut stream = Trickle(frame(300));
        let mut buf = Vec::new();
        assert!(read_first_frame(&mut stream, &mut buf, MAX_FRAME_BODY)
            .await
            .unwrap());
        assert_eq!(buf, frame(300));
    }

    #[tokio::test]
    async fn an_oversized_header_stops_reading_before_any_body() {
        let mut bytes = vec![0x17, 0xff, 0xff, 0xff, 0xff];
        bytes.extend_from_slice(&[0u8; 100]);
        let mut stream = Trickle(bytes);
        let mut buf = Vec::new();
        assert!(read_first_frame(&mut stream, &mut buf, MAX_FRAME_BODY)
            .await
            .unwrap());
        assert_eq!(buf.len(), 5, "only the header was read");
    }

    #[tokio::test]
    async fn eof_inside_the_first_frame_is_reported() {
        let mut partial = frame(300);
        partial.truncate(100);
        let mut stream = Trickle(partial);
        let mut buf = Vec::new();
        assert!(!read_first_frame(&mut stream, &mut buf, MAX_FRAME_BODY)
            .await
            .unwrap());
        assert_eq!(buf.len(), 100);
    }

    #[test]
    fn the_frame_limit_is_clamped_as_the_core_clamps_it() {
        let limits = |max_frame_body| proto_core::Limits {
            max_frame_body,
            ..Default::default()
        };
        assert_eq!(max_frame_body(&limits(u32::MAX)), MAX_FRAME_BODY);
        assert_eq!(max_frame_body(&limits(0)), MIN_FRAME_BODY);
    }
}
