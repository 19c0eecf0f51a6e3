//! An IRC client, for running the same workloads against an IRC daemon
//! (InspIRCd) side by side with SecureChat: `NICK`/`USER` registration,
//! `JOIN` of one channel, `PRIVMSG` carrying the same send
//! [`Stamp`] text as SecureChat's room messages, `PING` answered.
//!
//! The protocol half is sans-IO and tested on its own: [`Line`] parses one
//! received line, the `encode_*` functions append one line to a buffer,
//! [`Registration`] follows the server's replies from `NICK` to the end of
//! the channel's name list, [`classify`] says what a line means to a member
//! in the room, and [`LineBuffer`] cuts the byte stream into lines. [`Irc`]
//! and [`IrcConn`] wire them to a TCP or TLS stream.
//!
//! There are no accounts: client `index` takes the nick `load00042` (the
//! same name as its SecureChat account), or `load00042_1` if that is taken.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use net::ClientStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::accounts;
use crate::stamp::Stamp;
use crate::transport::dialer::{Dialer, TlsOptions};
use crate::transport::{ChatConnection, ChatEvent, JoinInfo, Transport, TransportError};

/// Longest line a client may send, CR LF included (RFC 1459).
pub const MAX_LINE_BYTES: usize = 512;

/// Longest message text: a relayed `PRIVMSG` must still fit in
/// [`MAX_LINE_BYTES`] after the server puts `:nick!user@host ` in front.
pub const MAX_TEXT_BYTES: usize = 400;

/// Longest channel name accepted: short, so that a relayed message of
/// [`MAX_TEXT_BYTES`] still leaves 60 bytes for the sender's prefix.
pub const MAX_CHANNEL_BYTES: usize = 32;

/// Receive buffer per connection: room for a tagged line (8 KiB of tags
/// plus 512 bytes) and then some.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Nicks tried after the first one is taken (`load00042_1`, `_2`, ...).
const NICK_RETRIES: u32 = 5;

/// How long `close` waits for the server to acknowledge the QUIT.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------

/// One received line: `[@tags] [:prefix] COMMAND [params...] [:trailing]`,
/// borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// `nick!user@host` or a server name, without the colon.
    pub prefix: Option<&'a [u8]>,
    /// A word (`PRIVMSG`) or a three-digit numeric (`001`).
    pub command: &'a [u8],
    params: &'a [u8],
}

fn skip_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    s
}

/// Splits `s` at its first space: (word, rest after the spaces).
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == b' ') {
        Some(i) => (&s[..i], skip_spaces(&s[i..])),
        None => (s, &[]),
    }
}

impl<'a> Line<'a> {
    /// Parses one line (a trailing CR LF or LF is ignored); `None` for a
    /// line without a command.
    pub fn parse(line: &'a [u8]) -> Option<Self> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut rest = skip_spaces(line);
        if rest.first() == Some(&b'@') {
            // Message tags (IRCv3); nothing here needs them.
            rest = split_word(rest).1;
        }
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(b":") {
            let (p, r) = split_word(after);
            prefix = Some(p);
            rest = r;
        }
        let (command, params) = split_word(rest);
        if command.is_empty() {
            return None;
        }
        Some(Self {
            prefix,
            command,
            params,
        })
    }

    /// The parameters in order, the trailing one (after ` :`) last.
    pub fn params(&self) -> Params<'a> {
        Params { rest: self.params }
    }

    /// Parameter `n` (0-based).
    pub fn param(&self, n: usize) -> Option<&'a [u8]> {
        self.params().nth(n)
    }

    /// The last parameter (the text of a message or of a numeric reply).
    pub fn last_param(&self) -> Option<&'a [u8]> {
        self.params().last()
    }

    /// Whether the command is `command` (case-insensitive).
    pub fn is(&self, command: &str) -> bool {
        self.command.eq_ignore_ascii_case(command.as_bytes())
    }

    /// The command as a numeric reply code, if it is one.
    pub fn numeric(&self) -> Option<u16> {
        match self.command {
            [a, b, c] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
                Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
            }
            _ => None,
        }
    }

    /// The nick part of a `nick!user@host` prefix.
    pub fn source_nick(&self) -> Option<&'a [u8]> {
        let prefix = self.prefix?;
        let end = prefix
            .iter()
            .position(|&b| b == b'!' || b == b'@')
            .unwrap_or(prefix.len());
        Some(&prefix[..end])
    }
}

/// Iterator over a line's parameters.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Params<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = skip_spaces(self.rest);
        if rest.is_empty() {
            self.rest = rest;
            return None;
        }
        if let Some(trailing) = rest.strip_prefix(b":") {
            self.rest = &[];
            return Some(trailing);
        }
        let (word, after) = split_word(rest);
        self.rest = after;
        Some(word)
    }
}

/// Why a line could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("IRC parameter `{0}` is empty or holds a space, colon or line break")]
    BadParam(String),
    #[error("IRC text holds a line break or NUL")]
    BadText,
    #[error("IRC line of {0} bytes is over the {MAX_LINE_BYTES}-byte limit")]
    TooLong(usize),
}

fn valid_middle(p: &[u8]) -> bool {
    !p.is_empty() && p[0] != b':' && !p.iter().any(|&b| matches!(b, b' ' | b'\r' | b'\n' | 0))
}

/// Appends `COMMAND middle... [:trailing]\r\n` to `out`, or nothing at all
/// if it would not be a valid line.
fn encode(
    out: &mut Vec<u8>,
    command: &str,
    middle: &[&[u8]],
    trailing: Option<&[u8]>,
) -> Result<(), EncodeError> {
    if let Some(bad) = middle.iter().find(|p| !valid_middle(p)) {
        return Err(EncodeError::BadParam(
            String::from_utf8_lossy(bad).into_owned(),
        ));
    }
    if trailing.is_some_and(|t| t.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))) {
        return Err(EncodeError::BadText);
    }
    let len = command.len()
        + middle.iter().map(|p| 1 + p.len()).sum::<usize>()
        + trailing.map_or(0, |t| 2 + t.len())
        + 2;
    if len > MAX_LINE_BYTES {
        return Err(EncodeError::TooLong(len));
    }
    out.reserve(len);
    out.extend_from_slice(command.as_bytes());
    for p in middle {
        out.push(b' ');
        out.extend_from_slice(p);
    }
    if let Some(t) = trailing {
        out.extend_from_slice(b" :");
        out.extend_from_slice(t);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// `NICK nick` and `USER nick 0 * :realname`.
pub fn encode_register(out: &mut Vec<u8>, nick: &str, realname: &str) -> Result<(), EncodeError> {
    let mut lines = Vec::new();
    encode_nick(&mut lines, nick)?;
    encode(
        &mut lines,
        "USER",
        &[nick.as_bytes(), b"0", b"*"],
        Some(realname.as_bytes()),
    )?;
    out.extend_from_slice(&lines);
    Ok(())
}

pub fn encode_nick(out: &mut Vec<u8>, nick: &str) -> Result<(), EncodeError> {
    encode(out, "NICK", &[nick.as_bytes()], None)
}

pub fn encode_join(out: &mut Vec<u8>, channel: &str) -> Result<(), EncodeError> {
    encode(out, "JOIN", &[channel.as_bytes()], None)
}

/// `PRIVMSG target :text` — always in the trailing form, so text with
/// spaces or a leading colon arrives as sent.
pub fn encode_privmsg(out: &mut Vec<u8>, target: &str, text: &[u8]) -> Result<(), EncodeError> {
    encode(out, "PRIVMSG", &[target.as_bytes()], Some(text))
}

/// The answer to `PING token`.
pub fn encode_pong(out: &mut Vec<u8>, token: &[u8]) -> Result<(), EncodeError> {
    encode(out, "PONG", &[], Some(token))
}

pub fn encode_quit(out: &mut Vec<u8>, reason: &str) -> Result<(), EncodeError> {
    encode(out, "QUIT", &[], Some(reason.as_bytes()))
}

/// Whether `name` can be used as the bench channel: `#` or `&`, then no
/// space, comma, BELL or line break.
pub fn valid_channel(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= MAX_CHANNEL_BYTES
        && matches!(b[0], b'#' | b'&')
        && !b[1..]
            .iter()
            .any(|&c| matches!(c, b' ' | b',' | 7 | b'\r' | b'\n' | 0 | b':'))
}

// ---------------------------------------------------------------------------
// Registration and the room
// ---------------------------------------------------------------------------

/// Registration numerics that end the attempt.
fn registration_refused(code: u16) -> bool {
    // 463 no permission, 464 password, 465 banned; 491 no O-lines is not
    // sent to clients that do not ask.
    matches!(code, 463..=465)
}

/// JOIN refusals: no such channel, too many channels, full, invite-only,
/// banned, bad key, bad mask, registered nicks only, or other.
fn join_refused(code: u16) -> bool {
    matches!(code, 403 | 405 | 471 | 473..=477 | 479 | 489)
}

/// Nick refusals worth retrying with another nick: erroneous (432), in
/// use (433), collision (436), temporarily unavailable (437).
fn nick_refused(code: u16) -> bool {
    matches!(code, 432 | 433 | 436 | 437)
}

/// Where a [`Registration`] stands after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Pending,
    /// In the channel, its name list read: the room workload may start.
    Joined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegState {
    /// NICK and USER sent, waiting for 001.
    Registering,
    /// JOIN sent, waiting for our own JOIN echoed, then 366.
    Joining {
        echoed: bool,
    },
    Joined,
}

/// From `NICK`/`USER` to the end of the channel's name list, one received
/// line at a time; what to send goes to `out`.
#[derive(Debug)]
pub struct Registration {
    base_nick: String,
    nick: String,
    channel: String,
    retries: u32,
    state: RegState,
}

impl Registration {
    /// Queues `NICK` and `USER`.
    pub fn start(nick: &str, channel: &str, out: &mut Vec<u8>) -> Result<Self, EncodeError> {
        encode_register(out, nick, "securechat-load")?;
        Ok(Self {
            base_nick: nick.to_owned(),
            nick: nick.to_owned(),
            channel: channel.to_owned(),
            retries: 0,
            state: RegState::Registering,
        })
    }

    /// The nick the server knows us by (after any retry).
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// Handles one line; `Err` says why the server turned us away.
    pub fn on_line(&mut self, line: &Line<'_>, out: &mut Vec<u8>) -> Result<Progress, String> {
        if line.is("PING") {
            encode_pong(out, line.param(0).unwrap_or_default()).map_err(|e| e.to_string())?;
            return Ok(self.progress());
        }
        if line.is("ERROR") {
            return Err(format!(
                "server closed the link: {}",
                lossy(line.last_param().unwrap_or_default())
            ));
        }
        let numeric = line.numeric();
        match self.state {
            RegState::Registering => match numeric {
                Some(1) => {
                    // The server may have adjusted the nick (truncation).
                    if let Some(nick) = line.param(0) {
                        self.nick = lossy(nick);
                    }
                    encode_join(out, &self.channel).map_err(|e| e.to_string())?;
                    self.state = RegState::Joining { echoed: false };
                }
                Some(code) if nick_refused(code) => {
                    if self.retries >= NICK_RETRIES {
                        return Err(format!(
                            "nick refused ({code}) {} times: {}",
                            self.retries + 1,
                            lossy(line.last_param().unwrap_or_default())
                        ));
                    }
                    self.retries += 1;
                    self.nick = format!("{}_{}", self.base_nick, self.retries);
                    encode_nick(out, &self.nick).map_err(|e| e.to_string())?;
                }
                Some(code) if registration_refused(code) => {
                    return Err(format!(
                        "registration refused ({code}): {}",
                        lossy(line.last_param().unwrap_or_default())
                    ));
                }
                _ => {}
            },
            RegState::Joining { echoed } => {
                if line.is("JOIN")
                    && line.source_nick() == Some(self.nick.as_bytes())
                    && line
                        .param(0)
                        .is_some_and(|c| c.eq_ignore_ascii_case(self.channel.as_bytes()))
                {
                    self.state = RegState::Joining { echoed: true };
                } else {
                    match numeric {
                        // RPL_ENDOFNAMES: <nick> <channel> :End of /NAMES list.
                        Some(366)
                            if echoed
                                && line.param(1).is_some_and(|c| {
                                    c.eq_ignore_ascii_case(self.channel.as_bytes())
                                }) =>
                        {
                            self.state = RegState::Joined;
                        }
                        Some(code) if join_refused(code) => {
                            return Err(format!(
                                "JOIN {} refused ({code}): {}",
                                self.channel,
                                lossy(line.last_param().unwrap_or_default())
                            ));
                        }
                        _ => {}
                    }
                }
            }
            RegState::Joined => {}
        }
        Ok(self.progress())
    }

    fn progress(&self) -> Progress {
        if self.state == RegState::Joined {
            Progress::Joined
        } else {
            Progress::Pending
        }
    }
}

/// What a received line means to a member in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A `PRIVMSG` to the channel: its text.
    ChannelText(&'a [u8]),
    /// `PING`, with the token to echo.
    Ping(&'a [u8]),
    /// The server is closing the link (`ERROR`), with its reason.
    ServerError(&'a [u8]),
    /// We were kicked out of the channel, with the reason.
    Kicked(&'a [u8]),
    /// An error numeric (400–599) about something we sent.
    Refused(u16, &'a [u8]),
    /// Anything else (other members joining or quitting, notices, ...).
    Other,
}

/// Classifies `line` for a member whose nick is `nick` in `channel`.
pub fn classify<'a>(line: &Line<'a>, channel: &str, nick: &str) -> Incoming<'a> {
    let is_channel =
        |p: Option<&[u8]>| p.is_some_and(|c| c.eq_ignore_ascii_case(channel.as_bytes()));
    if line.is("PRIVMSG") {
        if is_channel(line.param(0)) {
            return Incoming::ChannelText(line.param(1).unwrap_or_default());
        }
        return Incoming::Other;
    }
    if line.is("PING") {
        return Incoming::Ping(line.param(0).unwrap_or_default());
    }
    if line.is("ERROR") {
        return Incoming::ServerError(line.last_param().unwrap_or_default());
    }
    if line.is("KICK")
        && is_channel(line.param(0))
        && line
            .param(1)
            .is_some_and(|n| n.eq_ignore_ascii_case(nick.as_bytes()))
    {
        return Incoming::Kicked(line.param(2).unwrap_or_default());
    }
    match line.numeric() {
        Some(code @ 400..=599) => Incoming::Refused(code, line.last_param().unwrap_or_default()),
        _ => Incoming::Other,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------
// The receive buffer
// ---------------------------------------------------------------------------

/// Received bytes cut into lines without copying them out: lines are
/// handed out as ranges of [`Self::bytes`], valid until the next
/// [`Self::spare`].
#[derive(Debug)]
pub struct LineBuffer {
    buf: Box<[u8]>,
    /// Start of the first byte not yet handed out.
    start: usize,
    /// End of the received bytes.
    end: usize,
    /// `start + scanned` bytes are known to hold no line feed.
    scanned: usize,
}

/// A line longer than the whole buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("received a line longer than {0} bytes")]
pub struct LineTooLong(pub usize);

impl LineBuffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
            scanned: 0,
        }
    }

    /// The next complete line (without its CR LF), if one has arrived.
    pub fn next_line(&mut self) -> Option<Range<usize>> {
        let from = self.start + self.scanned;
        match self.buf[from..self.end].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let begin = self.start;
                let newline = from + i;
                self.start = newline + 1;
                self.scanned = 0;
                let mut end = newline;
                if end > begin && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
                Some(begin..end)
            }
            None => {
                self.scanned = self.end - self.start;
                None
            }
        }
    }

    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Room to receive into (moving a partial line to the front first);
    /// an error if a single line fills the whole buffer.
    pub fn spare(&mut self) -> Result<&mut [u8], LineTooLong> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(LineTooLong(self.buf.len()));
        }
        Ok(&mut self.buf[self.end..])
    }

    /// `n` bytes were received into [`Self::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Forgets everything received.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.scanned = 0;
    }
}

// ---------------------------------------------------------------------------
// The transport
// ---------------------------------------------------------------------------

/// Where and how to reach the IRC server.
#[derive(Debug, Clone)]
pub struct IrcOptions {
    pub addr: std::net::SocketAddr,
    pub tls: Option<TlsOptions>,
    /// Loopback source addresses to spread connections over.
    pub sources: u8,
    /// TCP connect + TLS handshake.
    pub handshake_timeout: Duration,
    /// `NICK` sent until the channel's name list has been read.
    pub login_timeout: Duration,
    /// The channel every client joins.
    pub channel: String,
    /// Acknowledge received data at once (`TCP_QUICKACK` after every
    /// read). A diagnostic: IRC daemons leave Nagle's algorithm on, so a
    /// receiver's delayed ACK holds back the daemon's next small write by
    /// up to 40 ms; this takes that out of the latency. Real clients do
    /// not do it.
    pub quickack: bool,
}

/// Putting load clients into an IRC channel.
pub struct Irc {
    dialer: Dialer,
    handshake_timeout: Duration,
    login_timeout: Duration,
    channel: Arc<str>,
    quickack: bool,
}

impl Irc {
    pub fn new(opts: &IrcOptions) -> Result<Self, TransportError> {
        if !valid_channel(&opts.channel) {
            return Err(TransportError::Protocol(format!(
                "`{}` is not a usable channel name",
                opts.channel
            )));
        }
        Ok(Self {
            dialer: Dialer::new(opts.addr, opts.tls.as_ref(), opts.sources)?,
            handshake_timeout: opts.handshake_timeout,
            login_timeout: opts.login_timeout,
            channel: opts.channel.as_str().into(),
            quickack: opts.quickack,
        })
    }

    pub fn source_count(&self) -> usize {
        self.dialer.source_count()
    }
}

impl Transport for Irc {
    type Conn = IrcConn;
    type Memory = ();

    async fn join(&self, index: usize, _: &mut ()) -> Result<(IrcConn, JoinInfo), TransportError> {
        let start = Instant::now();
        let stream = tokio::time::timeout(self.handshake_timeout, self.dialer.connect(index))
            .await
            .map_err(|_| TransportError::Timeout("connect"))??;
        let registering = Instant::now();
        let mut conn = IrcConn {
            stream,
            channel: self.channel.clone(),
            nick: String::new(),
            input: LineBuffer::new(READ_BUFFER_BYTES),
            out: Vec::with_capacity(MAX_LINE_BYTES),
            written: 0,
            needs_flush: false,
            quickack: self.quickack,
        };
        tokio::time::timeout(
            self.login_timeout,
            conn.register(&accounts::username(index)),
        )
        .await
        .map_err(|_| TransportError::Timeout("registration"))??;
        Ok((
            conn,
            JoinInfo {
                handshake: registering - start,
                login: registering.elapsed(),
                registered: None,
                resumed: false,
                resumed_handshake: false,
            },
        ))
    }
}

/// A registered client in the channel.
pub struct IrcConn {
    stream: ClientStream,
    channel: Arc<str>,
    nick: String,
    input: LineBuffer,
    /// Lines queued to send; `written` bytes of them are out.
    out: Vec<u8>,
    written: usize,
    /// Bytes handed to the stream since its last flush (TLS buffers them).
    needs_flush: bool,
    /// See [`IrcOptions::quickack`].
    quickack: bool,
}

impl IrcConn {
    /// Sends what is queued. Cancel-safe: progress is recorded after every
    /// write, so a cancelled flush resumes where it stopped.
    async fn flush(&mut self) -> Result<(), TransportError> {
        while self.written < self.out.len() {
            let n = self
                .stream
                .write(&self.out[self.written..])
                .await
                .map_err(TransportError::Io)?;
            if n == 0 {
                return Err(TransportError::Closed(
                    "the connection takes no more data".into(),
                ));
            }
            self.written += n;
            self.needs_flush = true;
        }
        self.out.clear();
        self.written = 0;
        if self.needs_flush {
            self.stream.flush().await.map_err(TransportError::Io)?;
            self.needs_flush = false;
        }
        Ok(())
    }

    /// Reads more bytes; `false` at end of stream. Cancel-safe.
    async fn fill(&mut self) -> Result<bool, TransportError> {
        let spare = self
            .input
            .spare()
            .map_err(|e| TransportError::Protocol(e.to_string()))?;
        let n = self.stream.read(spare).await.map_err(TransportError::Io)?;
        self.input.filled(n);
        if self.quickack && n > 0 {
            // Linux clears the flag as it sees fit: set it after every read.
            let _ = socket2::SockRef::from(self.stream.tcp()).set_tcp_quickack(true);
        }
        Ok(n > 0)
    }

    async fn register(&mut self, nick: &str) -> Result<(), TransportError> {
        let mut reg = Registration::start(nick, &self.channel, &mut self.out)
            .map_err(|e| TransportError::Protocol(e.to_string()))?;
        loop {
            self.flush().await?;
            let Some(range) = self.input.next_line() else {
                if !self.fill().await? {
                    return Err(TransportError::Closed(
                        "closed by the server during registration".into(),
                    ));
                }
                continue;
            };
            let Some(line) = Line::parse(self.input.bytes(range)) else {
                continue;
            };
            match reg.on_line(&line, &mut self.out) {
                Ok(Progress::Pending) => {}
                Ok(Progress::Joined) => {
                    self.nick = reg.nick().to_owned();
                    return self.flush().await;
                }
                Err(why) => return Err(TransportError::Auth(why)),
            }
        }
    }
}

impl ChatConnection for IrcConn {
    async fn send_room(&mut self, text: &str) -> Result<(), TransportError> {
        encode_privmsg(&mut self.out, &self.channel, text.as_bytes())
            .map_err(|e| TransportError::Protocol(e.to_string()))?;
        self.flush().await
    }

    async fn next_event(&mut self) -> Result<ChatEvent, TransportError> {
        // A pong whose flush lost a select! race is still queued: send it.
        self.flush().await?;
        loop {
            while let Some(range) = self.input.next_line() {
                let Some(line) = Line::parse(self.input.bytes(range)) else {
                    continue;
                };
                match classify(&line, &self.channel, &self.nick) {
                    Incoming::ChannelText(text) => {
                        return Ok(ChatEvent::Room(Stamp::parse_bytes(text)))
                    }
                    Incoming::Ping(token) => {
                        // Queued first, so a cancelled flush loses nothing.
                        encode_pong(&mut self.out, token)
                            .map_err(|e| TransportError::Protocol(e.to_string()))?;
                        self.flush().await?;
                    }
                    Incoming::ServerError(reason) => {
                        return Ok(ChatEvent::Closed(format!("ERROR {}", lossy(reason))))
                    }
                    Incoming::Kicked(reason) => {
                        return Ok(ChatEvent::Closed(format!("kicked: {}", lossy(reason))))
                    }
                    Incoming::Refused(code, text) => {
                        return Ok(ChatEvent::Error(format!("{code:03} {}", lossy(text))))
                    }
                    Incoming::Other => {}
                }
            }
            if !self.fill().await? {
                return Ok(ChatEvent::Closed("closed by the server".into()));
            }
        }
    }

    async fn close(mut self) {
        let _ = encode_quit(&mut self.out, "securechat-load done");
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            self.flush().await?;
            // The server answers QUIT by closing: wait for that, so the nick
            // is free again when the next run starts.
            while self.fill().await? {
                self.input.clear();
            }
            let _ = self.stream.shutdown().await;
            Ok::<(), TransportError>(())
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Line<'_> {
        Line::parse(s.as_bytes()).unwrap()
    }

    fn params<'a>(l: &Line<'a>) -> Vec<&'a str> {
        l.params()
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect()
    }

    #[test]
    fn privmsg_with_prefix_splits_into_target_and_text() {
        let l = line(":load00001!load00001@127.0.0.1 PRIVMSG #bench :00ab cd :x\r\n");
        assert_eq!(l.prefix, Some(&b"load00001!load00001@127.0.0.1"[..]));
        assert!(l.is("privmsg"));
        assert_eq!(params(&l), ["#bench", "00ab cd :x"]);
        assert_eq!(l.source_nick(), Some(&b"load00001"[..]));
        assert_eq!(l.numeric(), None);
    }

    #[test]
    fn numerics_tags_and_missing_trailing_parse() {
        let l = line(
            "@time=2026-11-27T00:00:00Z :bench.invalid 366 load00001 #bench :End of /NAMES list.",
        );
        assert_eq!(l.numeric(), Some(366));
        assert_eq!(l.source_nick(), Some(&b"bench.invalid"[..]));
        assert_eq!(params(&l), ["load00001", "#bench", "End of /NAMES list."]);
        let l = line("PING irc.example");
        assert_eq!(l.prefix, None);
        assert_eq!(params(&l), ["irc.example"]);
        let l = line("JOIN   #a  #b  ");
        assert_eq!(params(&l), ["#a", "#b"]);
        let l = line("QUIT :");
        assert_eq!(params(&l), [""], "an empty trailing is a parameter");
        assert_eq!(line("PRIVMSG #c :").param(1), Some(&b""[..]));
        assert!(Line::parse(b":only.a.prefix").is_none());
        assert!(Line::parse(b"\r\n").is_none());
        assert_eq!(line("1234 x").numeric(), None);
        assert_eq!(line("00a x").numeric(), None);
    }

    #[test]
    fn encoded_lines_are_crlf_terminated_and_reparse() {
        let mut out = Vec::new();
        encode_register(&mut out, "load00007", "securechat-load").unwrap();
        encode_join(&mut out, "#bench").unwrap();
        encode_privmsg(&mut out, "#bench", b"0000000000000001 0002:.. ").unwrap();
        encode_pong(&mut out, b"token 1").unwrap();
        encode_quit(&mut out, "bye").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "NICK load00007\r\nUSER load00007 0 * :securechat-load\r\nJOIN #bench\r\n\
             PRIVMSG #bench :0000000000000001 0002:.. \r\nPONG :token 1\r\nQUIT :bye\r\n"
        );
        let third = out.split(|&b| b == b'\n').nth(3).unwrap();
        let l = Line::parse(third).unwrap();
        assert_eq!(l.param(1), Some(&b"0000000000000001 0002:.. "[..]));
    }

    #[test]
    fn bad_parameters_and_long_lines_are_refused_without_output() {
        let mut out = Vec::new();
        assert!(matches!(
            encode_privmsg(&mut out, "#bench", b"two\r\nlines"),
            Err(EncodeError::BadText)
        ));
        assert!(matches!(
            encode_privmsg(&mut out, "#a b", b"x"),
            Err(EncodeError::BadParam(_))
        ));
        assert!(matches!(
            encode_nick(&mut out, ":nick"),
            Err(EncodeError::BadParam(_))
        ));
        assert!(matches!(
            encode_join(&mut out, ""),
            Err(EncodeError::BadParam(_))
        ));
        let long = vec![b'.'; MAX_LINE_BYTES];
        assert!(matches!(
            encode_privmsg(&mut out, "#bench", &long),
            Err(EncodeError::TooLong(_))
        ));
        assert!(matches!(
            encode_register(&mut out, "bad nick", "x"),
            Err(EncodeError::BadParam(_))
        ));
        assert!(out.is_empty(), "nothing half-written");
        // The longest allowed text fits, with room for the server's prefix.
        let text = vec![b'.'; MAX_TEXT_BYTES];
        encode_privmsg(&mut out, &"#".repeat(MAX_CHANNEL_BYTES), &text).unwrap();
        assert!(out.len() + 60 <= MAX_LINE_BYTES, "{}", out.len());
    }

    #[test]
    fn stamps_survive_a_privmsg_round_trip() {
        let stamp = Stamp {
            phase: 3,
            sent_ns: 987_654_321,
        };
        let mut out = b":load00002!load00002@127.0.0.1 ".to_vec();
        encode_privmsg(&mut out, "#bench", stamp.to_text(64).as_bytes()).unwrap();
        let l = Line::parse(&out).unwrap();
        match classify(&l, "#BENCH", "load00001") {
            Incoming::ChannelText(text) => {
                assert_eq!(text.len(), 64);
                assert_eq!(Stamp::parse_bytes(text), Some(stamp));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lines_are_classified_for_the_room() {
        let c = |s| classify(&line(s), "#bench", "load00001");
        assert_eq!(c("PING :abc def"), Incoming::Ping(b"abc def"));
        assert_eq!(c("PING"), Incoming::Ping(b""));
        assert_eq!(
            c("ERROR :Closing link: (x@127.0.0.1) [Excess Flood]"),
            Incoming::ServerError(b"Closing link: (x@127.0.0.1) [Excess Flood]")
        );
        assert_eq!(
            c(":op!o@h KICK #bench load00001 :go away"),
            Incoming::Kicked(b"go away")
        );
        assert_eq!(c(":op!o@h KICK #bench someone :bye"), Incoming::Other);
        assert_eq!(
            c(":srv 404 load00001 #bench :Cannot send to channel"),
            Incoming::Refused(404, b"Cannot send to channel")
        );
        assert_eq!(c(":x!y@z PRIVMSG load00001 :private"), Incoming::Other);
        assert_eq!(c(":x!y@z JOIN :#bench"), Incoming::Other);
        assert_eq!(c(":srv 372 load00001 :- motd"), Incoming::Other);
    }

    fn feed(reg: &mut Registration, out: &mut Vec<u8>, s: &str) -> Result<Progress, String> {
        reg.on_line(&line(s), out)
    }

    fn sent(out: &mut Vec<u8>) -> String {
        String::from_utf8(std::mem::take(out)).unwrap()
    }

    #[test]
    fn registration_joins_after_welcome_and_ends_with_the_name_list() {
        let mut out = Vec::new();
        let mut reg = Registration::start("load00001", "#bench", &mut out).unwrap();
        assert_eq!(
            sent(&mut out),
            "NICK load00001\r\nUSER load00001 0 * :securechat-load\r\n"
        );
        let pending = Ok(Progress::Pending);
        assert_eq!(
            feed(&mut reg, &mut out, ":srv NOTICE * :*** Looking up"),
            pending
        );
        assert_eq!(feed(&mut reg, &mut out, "PING :12345"), pending);
        assert_eq!(sent(&mut out), "PONG :12345\r\n");
        assert_eq!(
            feed(&mut reg, &mut out, ":srv 366 load00001 #bench :early"),
            pending,
            "not joined yet"
        );
        assert_eq!(
            feed(&mut reg, &mut out, ":srv 001 load00001 :Welcome"),
            pending
        );
        assert_eq!(sent(&mut out), "JOIN #bench\r\n");
        assert_eq!(
            feed(&mut reg, &mut out, ":srv 376 load00001 :End of MOTD"),
            pending
        );
        assert_eq!(
            feed(&mut reg, &mut out, ":other!o@h JOIN :#bench"),
            pending,
            "someone else's join"
        );
        assert_eq!(
            feed(&mut reg, &mut out, ":srv 366 load00001 #bench :End"),
            pending,
            "names of a join we have not seen echoed"
        );
        assert_eq!(
            feed(
                &mut reg,
                &mut out,
                ":load00001!load00001@127.0.0.1 JOIN :#Bench"
            ),
            pending
        );
        assert_eq!(
            feed(&mut reg, &mut out, ":srv 353 load00001 = #bench :a b"),
            pending
        );
        assert_eq!(
            feed(
                &mut reg,
                &mut out,
                ":srv 366 load00001 #bench :End of /NAMES list."
            ),
            Ok(Progress::Joined)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_taken_nick_is_retried_with_a_suffix_a_few_times() {
        let mut out = Vec::new();
        let mut reg = Registration::start("load00009", "#bench", &mut out).unwrap();
        out.clear();
        for n in 1..=NICK_RETRIES {
            let r = feed(
                &mut reg,
                &mut out,
                ":srv 433 * load00009 :Nickname is already in use.",
            );
            assert_eq!(r, Ok(Progress::Pending));
            assert_eq!(sent(&mut out), format!("NICK load00009_{n}\r\n"));
        }
        assert_eq!(reg.nick(), format!("load00009_{NICK_RETRIES}"));
        let err = feed(&mut reg, &mut out, ":srv 433 * x :in use").unwrap_err();
        assert!(err.contains("433"), "{err}");
    }

    #[test]
    fn refusals_and_errors_end_registration() {
        let mut out = Vec::new();
        let mut reg = Registration::start("load00001", "#bench", &mut out).unwrap();
        let err = feed(&mut reg, &mut out, ":srv 465 load00001 :You are banned").unwrap_err();
        assert!(err.contains("465") && err.contains("banned"), "{err}");

        let mut reg = Registration::start("load00001", "#bench", &mut out).unwrap();
        feed(&mut reg, &mut out, ":srv 001 load00001_ :Welcome").unwrap();
        assert_eq!(reg.nick(), "load00001_", "the server's idea of our nick");
        let err = feed(
            &mut reg,
            &mut out,
            ":srv 471 load00001_ #bench :Cannot join channel (+l)",
        )
        .unwrap_err();
        assert!(err.contains("471"), "{err}");

        let mut reg = Registration::start("load00001", "#bench", &mut out).unwrap();
        let err = feed(
            &mut reg,
            &mut out,
            "ERROR :Closing link: too many connections",
        )
        .unwrap_err();
        assert!(err.contains("too many connections"), "{err}");
    }

    #[test]
    fn channel_names_are_checked() {
        assert!(valid_channel("#bench"));
        assert!(valid_channel("&local"));
        assert!(!valid_channel("#"));
        assert!(!valid_channel("bench"));
        assert!(!valid_channel("#a b"));
        assert!(!valid_channel("#a,#b"));
        assert!(!valid_channel(&format!(
            "#{}",
            "x".repeat(MAX_CHANNEL_BYTES)
        )));
    }

    #[test]
    fn line_buffer_cuts_lines_across_reads() {
        let mut b = LineBuffer::new(32);
        let put = |b: &mut LineBuffer, s: &[u8]| {
            let spare = b.spare().unwrap();
            spare[..s.len()].copy_from_slice(s);
            b.filled(s.len());
        };
        put(&mut b, b"PING :a\r\nPRIV");
        let r = b.next_line().unwrap();
        assert_eq!(b.bytes(r), b"PING :a");
        assert_eq!(b.next_line(), None);
        put(&mut b, b"MSG #c :x\nbare\r");
        let r = b.next_line().unwrap();
        assert_eq!(b.bytes(r), b"PRIVMSG #c :x", "LF alone ends a line too");
        assert_eq!(b.next_line(), None);
        put(&mut b, b"\n\r\n");
        let r = b.next_line().unwrap();
        assert_eq!(b.bytes(r), b"bare");
        let r = b.next_line().unwrap();
        assert_eq!(b.bytes(r), b"", "an empty line");
        assert_eq!(b.next_line(), None);
    }

    #[test]
    fn line_buffer_refuses_a_line_longer_than_itself() {
        let mut b = LineBuffer::new(8);
        let spare = b.spare().unwrap();
        let n = spare.len();
        spare.fill(b'x');
        b.filled(n);
        assert_eq!(b.next_line(), None);
        assert_eq!(b.spare().err(), Some(LineTooLong(8)));
        b.clear();
        assert_eq!(b.spare().unwrap().len(), 8);
    }
}
