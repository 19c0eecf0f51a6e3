//! One stream type for plain TCP and TLS connections, so a server (or a
//! client) can hold both kinds uniformly and run one session type over
//! either.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Plain TCP or a TLS stream over TCP (`T` is boxed: a rustls connection
/// is large, and plain streams should not pay for it).
#[derive(Debug)]
pub enum MaybeTlsStream<T> {
    Plain(TcpStream),
    Tls(Box<T>),
}

/// What a server accepts: TCP, or TLS over TCP.
pub type ServerStream = MaybeTlsStream<tokio_rustls::server::TlsStream<TcpStream>>;
/// What a client connects with: TCP, or TLS over TCP.
pub type ClientStream = MaybeTlsStream<tokio_rustls::client::TlsStream<TcpStream>>;

impl<T> MaybeTlsStream<T> {
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTlsStream::Tls(_))
    }
}

impl ServerStream {
    /// The TCP stream underneath (for `peer_addr`, `set_nodelay`, ...).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTlsStream::Plain(s) => s,
            MaybeTlsStream::Tls(s) => s.get_ref().0,
        }
    }
}

impl ClientStream {
    /// The TCP stream underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTlsStream::Plain(s) => s,
            MaybeTlsStream::Tls(s) => s.get_ref().0,
        }
    }
}

impl<T> From<TcpStream> for MaybeTlsStream<T> {
    fn from(s: TcpStream) -> Self {
        MaybeTlsStream::Plain(s)
    }
}

impl From<tokio_rustls::server::TlsStream<TcpStream>> for ServerStream {
    fn from(s: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        MaybeTlsStream::Tls(Box::new(s))
    }
}

impl From<tokio_rustls::client::TlsStream<TcpStream>> for ClientStream {
    fn from(s: tokio_rustls::client::TlsStream<TcpStream>) -> Self {
        MaybeTlsStream::Tls(Box::new(s))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for MaybeTlsStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for MaybeTlsStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            MaybeTlsStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
