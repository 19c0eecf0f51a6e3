//! One client connection after its handshake: the login phase, then the
//! chat loop that reads the client, drains its outbox with coalesced
//! writes, pings it when idle, and ends it for the reasons in [`End`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use net::{NetError, ServerSession, SessionEvent};
use proto_core::message::{
    ClientMessage, Conversation as WireConversation, ErrorCode, ErrorDetail, GoodbyeReason,
    HistoryEntry as WireEntry, LeaveReason, MessageText, ServerMessage, Username,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, timeout, Instant};

use crate::accounts::{Accounts, AuthError, LoggedIn};
use crate::clock::now_ms;
use crate::config::ServerLimits;
use crate::history::{Destination, History, NewMessage, Recent};
use crate::hub::{Hub, Kick, Registration, SessionControl, SessionId};
use crate::rate_limit::TokenBucket;
use crate::storage::Conversation;
use crate::unauthenticated_pool::PoolSlot;

/// Outbox messages sealed into one write at most.
const MAX_COALESCE: usize = 256;
/// Refused messages in a row before a flooding client is cut off.
const MAX_VIOLATIONS_IN_A_ROW: u32 = 100;
/// Login-phase requests per second per connection (each may cost an
/// Argon2id run), sustained and in a burst.
const AUTH_ATTEMPTS_PER_SECOND: u32 = 1;
const AUTH_ATTEMPT_BURST: u32 = 5;

/// What every session shares.
pub struct Shared {
    pub hub: Hub,
    pub accounts: Accounts,
    pub history: History,
    pub limits: ServerLimits,
    pub history_replay: usize,
    pub shutdown: watch::Receiver<bool>,
}

/// Why a logged-in session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client said goodbye (`#exit`).
    Exit,
    /// The connection broke or closed without a goodbye.
    Dropped,
    /// The client broke the protocol or flooded refused messages.
    Violation,
    /// The client did not read fast enough.
    SlowConsumer,
    /// Another connection logged in as the same user.
    Replaced,
    /// Nothing heard for `idle_timeout`.
    Idle,
    /// The server is stopping.
    Shutdown,
}

impl End {
    fn goodbye(self) -> Option<GoodbyeReason> {
        match self {
            End::Exit => Some(GoodbyeReason::ClientRequest),
            End::Dropped => None,
            End::Violation => Some(GoodbyeReason::ProtocolViolation),
            End::SlowConsumer => Some(GoodbyeReason::SlowConsumer),
            End::Replaced => Some(GoodbyeReason::Replaced),
            End::Idle => Some(GoodbyeReason::IdleTimeout),
            End::Shutdown => Some(GoodbyeReason::ServerShutdown),
        }
    }

    fn leave_reason(self) -> LeaveReason {
        match self {
            End::Exit => LeaveReason::Exit,
            End::Dropped => LeaveReason::Dropped,
            End::Shutdown => LeaveReason::ServerShutdown,
            End::Violation | End::SlowConsumer | End::Replaced | End::Idle => {
                LeaveReason::Disconnected
            }
        }
    }
}

fn error(code: ErrorCode, detail: &str) -> ServerMessage {
    ServerMessage::Error {
        code,
        detail: ErrorDetail::new(detail).unwrap_or_else(|_| ErrorDetail::empty()),
    }
}

/// Runs a session from the end of its handshake to its close.
///
/// `unauthenticated` is this connection's place among those not logged in;
/// it is given back at login, and the connection is closed if a newcomer
/// evicts it first.
pub async fn run<S>(
    session: ServerSession<S>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut unauthenticated: PoolSlot,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut conn = Conn {
        session,
        shared: Arc::clone(&shared),
        shutdown: shared.shutdown.clone(),
        bucket: TokenBucket::new(
            shared.limits.messages_per_second,
            shared.limits.message_burst,
            std::time::Instant::now(),
        ),
        auth_bucket: TokenBucket::new(
            AUTH_ATTEMPTS_PER_SECOND,
            AUTH_ATTEMPT_BURST,
            std::time::Instant::now(),
        ),
        violations: 0,
        peer,
    };
    if *conn.shutdown.borrow() {
        conn.close(Some(GoodbyeReason::ServerShutdown)).await;
        return;
    }
    let me = conn.authenticate(&mut unauthenticated).await;
    drop(unauthenticated);
    match me {
        Some(me) => conn.chat(me).await,
        None => tracing::debug!(conn = %conn.session.id(), "session ended before login"),
    }
}

struct Conn<S> {
    session: ServerSession<S>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    /// Chat messages (room, direct, who-is-online).
    bucket: TokenBucket,
    /// Login-phase requests, apart so logging in costs no chat budget.
    auth_bucket: TokenBucket,
    violations: u32,
    peer: SocketAddr,
}

/// The login phase's verdict on one event.
enum Step {
    Continue,
    LoggedIn(LoggedIn),
    Stop(Option<GoodbyeReason>),
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn limits(&self) -> &ServerLimits {
        &self.shared.limits
    }

    /// Queues `msgs` and writes them, within the write timeout.
    async fn send(&mut self, msgs: &[ServerMessage]) -> Result<(), End> {
        for m in msgs {
            self.session.queue(m).map_err(|_| End::Violation)?;
        }
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), End> {
        match timeout(self.limits().write_timeout, self.session.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Dropped),
            Err(_) => Err(End::SlowConsumer),
        }
    }

    /// Closes with a goodbye (best effort, bounded by net's close timeout).
    async fn close(self, reason: Option<GoodbyeReason>) {
        let goodbye = reason.map(|reason| ServerMessage::Goodbye { reason });
        let _ = self.session.close(goodbye.as_ref()).await;
    }

    /// A chat message (or auth attempt) spends a token; refusals in a row
    /// beyond a bound mean a flood.
    fn admit(&mut self) -> Result<bool, End> {
        let now = std::time::Instant::now();
        let ok = self.bucket.try_take(now);
        self.count_refusals(ok)
    }

    /// Like [`admit`](Self::admit), for login-phase requests.
    fn admit_auth(&mut self) -> Result<bool, End> {
        let now = std::time::Instant::now();
        let ok = self.auth_bucket.try_take(now);
        self.count_refusals(ok)
    }

    fn count_refusals(&mut self, admitted: bool) -> Result<bool, End> {
        if admitted {
            self.violations = 0;
            return Ok(true);
        }
        self.violations += 1;
        if self.violations >= MAX_VIOLATIONS_IN_A_ROW {
            return Err(End::Violation);
        }
        Ok(false)
    }

    /// Until a login succeeds, the client gives up, the auth timeout, or a
    /// newcomer takes this connection's place among the not-logged-in.
    async fn authenticate(&mut self, place: &mut PoolSlot) -> Option<LoggedIn> {
        let deadline = Instant::now() + self.limits().auth_timeout;
        loop {
            let event = tokio::select! {
                ev = self.session.next_event() => ev,
                () = place.evicted() => {
                    tracing::debug!(conn = %self.session.id(), "evicted before logging in: not-logged-in connections at their cap");
                    let _ = timeout(
                        net::CLOSE_TIMEOUT,
                        self.session.send(&error(
                            ErrorCode::ServerFull,
                            "server full: too many connections waiting to log in; try again",
                        )),
                    )
                    .await;
                    return None;
                }
                _ = sleep_until(deadline) => {
                    self.goodbye_now(GoodbyeReason::IdleTimeout).await;
                    return None;
                }
                _ = self.shutdown.changed() => {
                    self.goodbye_now(GoodbyeReason::ServerShutdown).await;
                    return None;
                }
            };
            let step = match event {
                Ok(SessionEvent::Message(msg)) => self.auth_step(msg).await,
                Ok(SessionEvent::Closed { .. }) | Err(_) => return None,
            };
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::LoggedIn(me)) => return Some(me),
                Ok(Step::Stop(reason)) => {
                    if let Some(reason) = reason {
                        self.goodbye_now(reason).await;
                    }
                    return None;
                }
                Err(end) => {
                    if let Some(reason) = end.goodbye() {
                        self.goodbye_now(reason).await;
                    }
                    return None;
                }
            }
        }
    }

    /// Sends a goodbye and close_notify without consuming the connection
    /// (the caller drops it right after).
    async fn goodbye_now(&mut self, reason: GoodbyeReason) {
        let _ = timeout(
            net::CLOSE_TIMEOUT,
            self.session.send(&ServerMessage::Goodbye { reason }),
        )
        .await;
    }

    async fn auth_step(&mut self, msg: ClientMessage) -> Result<Step, End> {
        let shared = Arc::clone(&self.shared);
        let accounts: &Accounts = &shared.accounts;
        let costly = matches!(
            msg,
            ClientMessage::Register { .. } | ClientMessage::Login { .. }
        );
        if costly && !self.admit_auth()? {
            self.send(&[error(
                ErrorCode::RateLimited,
                "too many attempts; slow down",
            )])
            .await?;
            return Ok(Step::Continue);
        }
        let attempt = match msg {
            ClientMessage::Register { username, password } => {
                accounts.register(&username, password).await
            }
            ClientMessage::Login { username, password } => {
                accounts.login(&username, password, self.peer.ip()).await
            }
            ClientMessage::Resume { token } => accounts.resume(&token),
            ClientMessage::Ping { nonce } => {
                self.send(&[ServerMessage::Pong { nonce }]).await?;
                return Ok(Step::Continue);
            }
            ClientMessage::Pong { .. } => return Ok(Step::Continue),
            ClientMessage::Goodbye => return Ok(Step::Stop(Some(GoodbyeReason::ClientRequest))),
            ClientMessage::RoomMessage { .. }
            | ClientMessage::DirectMessage { .. }
            | ClientMessage::SendRoom { .. }
            | ClientMessage::SendDirect { .. }
            | ClientMessage::WhoIsOnline => {
                if !self.admit_auth()? {
                    return Ok(Step::Continue);
                }
                self.send(&[error(ErrorCode::NotLoggedIn, "log in or register first")])
                    .await?;
                return Ok(Step::Continue);
            }
        };
        match attempt {
            Ok(me) => Ok(Step::LoggedIn(me)),
            Err(AuthError::Failed(reason)) => {
                self.send(&[ServerMessage::AuthFailed { reason }]).await?;
                Ok(Step::Continue)
            }
            Err(AuthError::Internal) => {
                self.send(&[error(
                    ErrorCode::Internal,
                    "the server could not complete that",
                )])
                .await?;
                Ok(Step::Continue)
            }
        }
    }

    /// The logged-in phase, from the greeting to the leave notice.
    async fn chat(mut self, me: LoggedIn) {
        let shared = Arc::clone(&self.shared);
        let (tx, mut outbox) = mpsc::channel(self.limits().outbox_capacity);
        let control = Arc::new(SessionControl::default());
        let session_id = SessionId(self.session.id().0);
        tracing::info!(conn = %self.session.id(), user = %me.canonical, "logged in");
        shared.hub.join(Registration {
            canonical: me.canonical.clone(),
            display: me.username.clone(),
            session: session_id,
            outbox: tx,
            control: Arc::clone(&control),
        });
        let token = me.token.clone();
        let end = match self.greet(&me).await {
            Ok(()) => self.chat_loop(&me, &mut outbox, &control).await,
            Err(end) => end,
        };
        if end == End::Exit {
            shared.accounts.revoke(&token);
        }
        shared
            .hub
            .leave(&me.canonical, session_id, end.leave_reason());
        tracing::info!(conn = %self.session.id(), user = %me.canonical, why = ?end, "left");
        self.close(end.goodbye()).await;
    }

    /// AuthOk, who is online, and the recent history.
    async fn greet(&mut self, me: &LoggedIn) -> Result<(), End> {
        let mut msgs = vec![ServerMessage::AuthOk {
            username: me.username.clone(),
            resume_token: me.token.clone(),
            token_lifetime_secs: self.shared.accounts.token_lifetime_secs(),
        }];
        msgs.extend(ServerMessage::online_users_pages(self.shared.hub.online()));
        let recent = match self
            .shared
            .history
            .recent(me.canonical.clone(), self.shared.history_replay)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "history could not be read for replay");
                Vec::new()
            }
        };
        msgs.extend(ServerMessage::history_batches(self.wire_history(recent)));
        self.send(&msgs).await
    }

    fn wire_history(&self, recent: Recent) -> Vec<WireEntry> {
        let mut out = Vec::new();
        for (conversation, entries) in recent {
            let wire_conv = match conversation {
                Conversation::Room => WireConversation::Room,
                Conversation::Direct { partner } => {
                    match self.shared.accounts.display_name(&partner) {
                        Some(peer) => WireConversation::Direct { peer },
                        None => continue,
                    }
                }
            };
            for e in entries {
                // Entries were valid when written; skip any that no longer are.
                let (Ok(from), Ok(text)) = (Username::new(&e.from), MessageText::new(&e.text))
                else {
                    continue;
                };
                out.push(WireEntry {
                    id: e.id,
                    timestamp_ms: e.timestamp_ms,
                    conversation: wire_conv.clone(),
                    from,
                    text,
                });
            }
        }
        out
    }

    async fn chat_loop(
        &mut self,
        me: &LoggedIn,
        outbox: &mut mpsc::Receiver<crate::hub::Outgoing>,
        control: &SessionControl,
    ) -> End {
        let limits = self.limits().clone();
        let mut last_heard = Instant::now();
        let mut pinged = false;
        let timer = tokio::time::sleep(limits.ping_interval);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                biased;
                kick = control.kicked() => {
                    return match kick {
                        Kick::SlowConsumer => End::SlowConsumer,
                        Kick::Replaced => End::Replaced,
                    };
                }
                _ = self.shutdown.changed() => return End::Shutdown,
                first = outbox.recv() => {
                    let Some(first) = first else { return End::Dropped };
                    // A write blocked on a client that stopped reading
                    // yields to a kick at once, not after write_timeout.
                    let written = tokio::select! {
                        biased;
                        kick = control.kicked() => Err(match kick {
                            Kick::SlowConsumer => End::SlowConsumer,
                            Kick::Replaced => End::Replaced,
                        }),
                        r = self.write_outbox(&first, outbox) => r,
                    };
                    if let Err(end) = written {
                        return end;
                    }
                }
                event = self.session.next_event() => {
                    last_heard = Instant::now();
                    pinged = false;
                    let msg = match event {
                        Ok(SessionEvent::Message(msg)) => msg,
                        Ok(SessionEvent::Closed { clean: true }) => return End::Exit,
                        Ok(SessionEvent::Closed { clean: false }) => return End::Dropped,
                        // The client ended the session with an alert: it found
                        // something wrong (e.g. a record tampered on the way to
                        // it), which is not its own violation.
                        Err(NetError::Protocol(e)) if e.came_from_peer() => {
                            tracing::debug!(conn = %self.session.id(), error = %e, "client aborted the session");
                            return End::Dropped;
                        }
                        Err(NetError::Protocol(e)) => {
                            tracing::debug!(conn = %self.session.id(), error = %e, "protocol violation");
                            return End::Violation;
                        }
                        Err(_) => return End::Dropped,
                    };
                    if let Err(end) = self.handle(me, msg).await {
                        return end;
                    }
                }
                () = &mut timer => {
                    // The timer is re-armed lazily: traffic only updates
                    // `last_heard`, and the deadline is checked here.
                    let now = Instant::now();
                    if now >= last_heard + limits.idle_timeout {
                        return End::Idle;
                    }
                    if !pinged && now >= last_heard + limits.ping_interval {
                        pinged = true;
                        if let Err(end) = self.send(&[ServerMessage::Ping { nonce: now_ms() }]).await {
                            return end;
                        }
                    }
                    let next = if pinged {
                        last_heard + limits.idle_timeout
                    } else {
                        last_heard + limits.ping_interval
                    };
                    timer.as_mut().reset(next.max(now + Duration::from_millis(10)));
                }
            }
        }
    }

    /// Seals `first` and whatever else is already queued, then one write.
    async fn write_outbox(
        &mut self,
        first: &crate::hub::Outgoing,
        outbox: &mut mpsc::Receiver<crate::hub::Outgoing>,
    ) -> Result<(), End> {
        self.session
            .queue_encoded(first)
            .map_err(|_| End::Violation)?;
        for _ in 1..MAX_COALESCE {
            match outbox.try_recv() {
                Ok(next) => self
                    .session
                    .queue_encoded(&next)
                    .map_err(|_| End::Violation)?,
                Err(_) => break,
            }
        }
        self.flush().await
    }

    async fn handle(&mut self, me: &LoggedIn, msg: ClientMessage) -> Result<(), End> {
        match msg {
            ClientMessage::RoomMessage { text } => self.post(me, None, text, None).await,
            ClientMessage::SendRoom { client_id, text } => {
                self.post(me, None, text, Some(client_id)).await
            }
            ClientMessage::DirectMessage { to, text } => self.post(me, Some(to), text, None).await,
            ClientMessage::SendDirect {
                client_id,
                to,
                text,
            } => self.post(me, Some(to), text, Some(client_id)).await,
            ClientMessage::WhoIsOnline => {
                if !self.admit()? {
                    return self
                        .refuse(None, ErrorCode::RateLimited, "too many requests; slow down")
                        .await;
                }
                let pages = ServerMessage::online_users_pages(self.shared.hub.online());
                self.send(&pages).await
            }
            ClientMessage::Ping { nonce } => self.send(&[ServerMessage::Pong { nonce }]).await,
            ClientMessage::Pong { .. } => Ok(()),
            ClientMessage::Goodbye => Err(End::Exit),
            ClientMessage::Register { .. }
            | ClientMessage::Login { .. }
            | ClientMessage::Resume { .. } => {
                self.send(&[error(ErrorCode::AlreadyLoggedIn, "already logged in")])
                    .await
            }
        }
    }

    /// A room message (`to` = None) or a direct message: stored, then
    /// delivered, then acknowledged with `Stored` when the client sent a
    /// `client_id`. A refusal is `SendFailed` (or `Error` for the version-1
    /// messages without an id) and nobody receives the message.
    async fn post(
        &mut self,
        me: &LoggedIn,
        to: Option<Username>,
        text: MessageText,
        client_id: Option<u64>,
    ) -> Result<(), End> {
        if !self.admit()? {
            return self
                .refuse(
                    client_id,
                    ErrorCode::RateLimited,
                    "too many messages; this one was not delivered",
                )
                .await;
        }
        let (destination, recipient) = match to {
            None => (Destination::Room, None),
            Some(to) => {
                let to_canonical = to.canonical();
                if to_canonical == me.canonical {
                    return self
                        .refuse(
                            client_id,
                            ErrorCode::InvalidMessage,
                            "you cannot send a direct message to yourself",
                        )
                        .await;
                }
                let Some(to_display) = self.shared.accounts.display_name(&to_canonical) else {
                    return self
                        .refuse(client_id, ErrorCode::UnknownRecipient, "no such user")
                        .await;
                };
                let destination = Destination::Direct {
                    a: me.canonical.clone(),
                    b: to_canonical.clone(),
                };
                (destination, Some((to_canonical, to_display)))
            }
        };
        let message = NewMessage {
            from: me.username.as_str().to_owned(),
            to: recipient.as_ref().map(|(_, d)| d.as_str().to_owned()),
            text: text.as_str().to_owned(),
            client_id,
        };
        let stored = match self.shared.history.append(destination, message).await {
            Ok(stored) => stored,
            Err(_) => {
                return self
                    .refuse(
                        client_id,
                        ErrorCode::Internal,
                        "the server could not store this message; it was not delivered",
                    )
                    .await
            }
        };
        if stored.is_new {
            match recipient {
                None => {
                    self.shared.hub.broadcast(
                        &me.canonical,
                        &ServerMessage::RoomMessage {
                            id: stored.id,
                            timestamp_ms: stored.timestamp_ms,
                            from: me.username.clone(),
                            text,
                        },
                    );
                }
                Some((to_canonical, to_display)) => {
                    self.shared.hub.send_to(
                        &to_canonical,
                        &ServerMessage::DirectMessage {
                            id: stored.id,
                            timestamp_ms: stored.timestamp_ms,
                            from: me.username.clone(),
                            to: to_display,
                            text,
                        },
                    );
                }
            }
        }
        match client_id {
            Some(client_id) => {
                self.send(&[ServerMessage::Stored {
                    client_id,
                    id: stored.id,
                    timestamp_ms: stored.timestamp_ms,
                }])
                .await
            }
            None => Ok(()),
        }
    }

    /// Tells the sender its message was not stored.
    async fn refuse(
        &mut self,
        client_id: Option<u64>,
        code: ErrorCode,
        detail: &str,
    ) -> Result<(), End> {
        let detail = ErrorDetail::new(detail).unwrap_or_else(|_| ErrorDetail::empty());
        let msg = match client_id {
            Some(client_id) => ServerMessage::SendFailed {
                client_id,
                code,
                detail,
            },
            None => ServerMessage::Error { code, detail },
        };
        self.send(&[msg]).await
    }
}
