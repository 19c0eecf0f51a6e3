//! What the workload needs of a chat connection, independent of the
//! protocol: join the room, send a room message, yield received ones.
//!
//! [`securechat`] implements it over the real SecureChat stack; [`irc`]
//! over IRC, for side-by-side runs against an IRC daemon: its `join`
//! registers a nick and joins a channel, and its connection sends `PRIVMSG`
//! and parses [`Stamp`](crate::stamp::Stamp)s out of the ones it receives.
//! Both open their streams through the [`dialer`].

pub mod dialer;
pub mod irc;
pub mod memo_stretch;
pub mod securechat;

use std::future::Future;
use std::time::{Duration, Instant};

use crate::stamp::Stamp;

/// Something that arrived on a connection, as the workload sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A room message from someone else, with its stamp if it carries one.
    Room(Option<Stamp>),
    /// The server refused one of our messages for exceeding its rate limit.
    RateLimited,
    /// Any other error the server reported about our traffic.
    Error(String),
    /// The connection ended (the reason says how).
    Closed(String),
}

/// Why connecting, logging in or talking failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("tls: {0}")]
    Tls(String),
    #[error("handshake: {0}")]
    Handshake(net::NetError),
    #[error("server key {seen} is not the expected {expected}")]
    KeyMismatch { seen: String, expected: String },
    #[error("login: {0}")]
    Auth(String),
    #[error("session: {0}")]
    Link(net::NetError),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("i/o: {0}")]
    Io(std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
}

impl TransportError {
    /// The server refused a resumed handshake: it does not hold the key
    /// (the token expired, was revoked, or the server lost it).
    pub fn is_unknown_psk(&self) -> bool {
        matches!(
            self,
            TransportError::Handshake(net::NetError::Protocol(proto_core::Error::AlertReceived(
                proto_core::AlertCode::UnknownPsk
            )))
        )
    }
}

/// How a connection got into the room.
#[derive(Debug, Clone, Copy)]
pub struct JoinInfo {
    /// TCP connect + TLS + protocol handshake.
    pub handshake: Duration,
    /// Credentials (or resume token) sent until logged in and caught up.
    pub login: Duration,
    /// The account had to be registered first: when that started and ended.
    pub registered: Option<(Instant, Instant)>,
    /// Logged in with a resume token instead of the password.
    pub resumed: bool,
    /// The handshake was a resumed one (keyed by the resume token, no
    /// ffdhe3072).
    pub resumed_handshake: bool,
}

/// One established connection in the room.
///
/// The futures are `Send` so every connection can run as its own task on the
/// multi-threaded runtime.
pub trait ChatConnection: Send + 'static {
    /// Sends one room message (`text` is at most the protocol's limit).
    fn send_room(&mut self, text: &str) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// The next event that matters to the workload; keep-alives are answered
    /// inside. Cancel-safe: it may lose a race in `select!` at any await.
    fn next_event(&mut self) -> impl Future<Output = Result<ChatEvent, TransportError>> + Send;

    /// Leaves politely, within a short bound.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// A way to put load client `index` into the room.
pub trait Transport: Send + Sync + 'static {
    type Conn: ChatConnection;
    /// What one client keeps between its connections (a resume token).
    type Memory: Default + Send + 'static;

    /// Connects client `index`, logs it in (registering the account if it
    /// does not exist yet) and returns once it is in the room and the
    /// server's login burst (user list, history) has been read.
    fn join(
        &self,
        index: usize,
        memory: &mut Self::Memory,
    ) -> impl Future<Output = Result<(Self::Conn, JoinInfo), TransportError>> + Send;
}
