//! One client connection after its handshake: a thin tokio driver around
//! [`policy::SessionPolicy`], which makes every decision (login phase, rate
//! limits, auth timeout, ping and idle, why the session ends). The driver
//! only moves bytes, channel messages and time: it reads the client, the
//! hub's kick, the shutdown signal and the not-logged-in pool; feeds them to
//! the policy with the time; performs the policy's actions (writes, the
//! accounts and history calls, hub delivery); and sleeps until the policy's
//! next timeout.
//!
//! Messages the hub delivers go from the outbox to the socket here, without
//! the policy: write coalescing is about bytes (seal what is queued, one
//! write), so it stays in the driver, and the delivery hot path costs no
//! more than a `select!` branch.

pub mod policy;

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use net::{LinkEvent, NetError, ServerLink};
use proto_core::message::{
    Conversation as WireConversation, HistoryEntry as WireEntry, MessageText, RoomName,
    ServerMessage, Username,
};
use proto_core::ChannelBinding;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};

use crate::accounts::{AuthAnswer, AuthError, LoggedIn};
use crate::clock::now_ms;
use crate::config::ServerLimits;
use crate::history::{History, Recent};
use crate::hub::{Hub, Kick, Outgoing, Registration, SessionControl, SessionId};
use crate::rooms::{Outcome, RoomError, RoomId, Rooms};
use crate::storage::Conversation;
use crate::storage::{AuditEntry, AuditTrail};
use crate::unauthenticated_pool::PoolSlot;
use policy::AdminRequest;
use policy::{Action, AuthRequest, Directory, Disconnect, End, Event, SessionPolicy};

/// Outbox messages sealed into one write at most.
const MAX_COALESCE: usize = 256;

/// What every session shares.
pub struct Shared {
    pub hub: Hub,
    pub accounts: crate::accounts::Accounts,
    pub rooms: Rooms,
    /// Each user's devices.
    pub devices: crate::devices::Devices,
    /// How far each user has read each conversation.
    pub read_markers: crate::read_markers::ReadMarkers,
    /// Every moderation and administration action (durable per entry).
    pub audit: std::sync::Mutex<Box<dyn AuditTrail>>,
    /// Canonical names of the server's administrators.
    pub admins: std::collections::HashSet<String>,
    pub history: History,
    pub limits: ServerLimits,
    pub history_replay: usize,
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// Whether room `id` has more members than `presence_room_max_members`:
    /// such a room is told neither presence nor plain joins and leaves
    /// (PROTOCOL.md §7a); its members ask (`Members`).
    pub fn room_is_quiet(&self, id: RoomId) -> bool {
        self.rooms
            .member_count(id)
            .is_some_and(|n| n > self.limits.presence_room_max_members)
    }
}

impl Directory for Shared {
    fn display_name(&self, canonical: &str) -> Option<Username> {
        self.accounts.display_name(canonical)
    }
    fn member_room(
        &self,
        canonical: &str,
        room: &proto_core::message::RoomName,
    ) -> Result<(RoomId, proto_core::message::RoomName), RoomError> {
        self.rooms.member_room(canonical, room)
    }
}

/// The policy's clock: tokio's, so paused-time tests move it too.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Runs a session from the end of its handshake to its close.
///
/// `unauthenticated` is this connection's place among those not logged in;
/// it is given back at login, and the connection is closed if a newcomer
/// evicts it first.
///
/// Returns the connection if the client went without a word (the stream
/// ended without close_notify, or failed): there is nobody left to say
/// anything to, and the caller closes and frees it where that delays
/// nobody (the [`crate::reaper`]). Every other end is closed here.
pub async fn run<S>(
    session: ServerLink<S>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    unauthenticated: PoolSlot,
) -> Option<ServerLink<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let shutdown = shared.shutdown.clone();
    if *shutdown.borrow() {
        let goodbye = End::Shutdown.last_word();
        let _ = session.close(goodbye.as_ref()).await;
        return None;
    }
    let policy = SessionPolicy::new(&shared.limits, Arc::clone(&shared), now());
    let mut driver = Driver {
        session,
        policy,
        shared,
        shutdown,
        peer,
        place: Some(unauthenticated),
        chat: None,
        outbox: None,
    };
    let end = driver.drive().await;
    Box::pin(driver.finish(end)).await
}

/// What a logged-in session holds.
struct Chat {
    me: LoggedIn,
    session_id: SessionId,
    control: Arc<SessionControl>,
}

struct Driver<S> {
    session: ServerLink<S>,
    policy: SessionPolicy<Arc<Shared>>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
    /// Until login.
    place: Option<PoolSlot>,
    /// From login.
    chat: Option<Chat>,
    outbox: Option<mpsc::Receiver<Outgoing>>,
}

async fn kicked(control: Option<&SessionControl>) -> Kick {
    match control {
        Some(control) => control.kicked().await,
        None => std::future::pending().await,
    }
}

async fn evicted(place: Option<&mut PoolSlot>) {
    match place {
        Some(place) => place.evicted().await,
        None => std::future::pending().await,
    }
}

async fn delivered(outbox: Option<&mut mpsc::Receiver<Outgoing>>) -> Option<Outgoing> {
    match outbox {
        Some(outbox) => outbox.recv().await,
        None => std::future::pending().await,
    }
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Until the policy (or a failed write) ends the session.
    async fn drive(&mut self) -> End {
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        // The deadline the timer is set to. Traffic moves the idle deadline
        // later on every message; the timer is not reset for that: it fires
        // at the old deadline, the policy does nothing, and it is re-armed.
        let mut armed: Option<std::time::Instant> = None;
        loop {
            if let Err(end) = self.perform().await {
                return end;
            }
            match self.policy.poll_timeout() {
                None => armed = None,
                Some(at) if armed.is_none_or(|a| at < a) => {
                    timer.as_mut().reset(Instant::from_std(at));
                    armed = Some(at);
                }
                Some(_) => {}
            }
            let event = tokio::select! {
                biased;
                kick = kicked(self.chat.as_ref().map(|c| &*c.control)) => Event::Kicked(kick),
                // Once logged in, the hub's kick carries the shutdown: it
                // costs two atomics per wake-up, the watch a shared lock.
                _ = self.shutdown.changed(), if self.chat.is_none() => Event::Shutdown,
                first = delivered(self.outbox.as_mut()) => {
                    let Some(first) = first else { return End::Dropped };
                    if let Err(end) = self.write_outbox(&first).await {
                        return end;
                    }
                    continue;
                }
                () = evicted(self.place.as_mut()) => Event::Evicted,
                event = self.session.next_event() => self.disconnect_or_message(event),
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    self.policy.handle_timeout(now());
                    continue;
                }
            };
            let now = now();
            self.policy.handle(event, now);
            // A client that keeps the socket busy must not starve the timer
            // branch (it comes last in the biased select).
            if self.policy.poll_timeout().is_some_and(|at| at <= now) {
                self.policy.handle_timeout(now);
            }
        }
    }

    fn disconnect_or_message(
        &self,
        event: Result<LinkEvent<proto_core::message::ClientMessage>, NetError>,
    ) -> Event {
        let how = match event {
            Ok(LinkEvent::Message(msg)) => return Event::Client(msg),
            Ok(LinkEvent::Closed { clean: true }) => Disconnect::Clean,
            Ok(LinkEvent::Closed { clean: false }) => Disconnect::Dropped,
            Err(NetError::Protocol(e)) if e.came_from_peer() => {
                tracing::debug!(conn = %self.session.id(), error = %e, "client aborted the session");
                Disconnect::PeerAborted
            }
            Err(NetError::Protocol(e)) => {
                tracing::debug!(conn = %self.session.id(), error = %e, "protocol violation");
                Disconnect::Violated
            }
            Err(_) => Disconnect::Dropped,
        };
        Event::Disconnected(how)
    }

    /// Performs the policy's actions in order. Writes are queued and sent
    /// with one flush before anything that waits, and at the end.
    async fn perform(&mut self) -> Result<(), End> {
        let mut queued = false;
        while let Some(action) = self.policy.poll_action() {
            match action {
                Action::Send(msg) => {
                    self.session.queue(&msg).map_err(|_| End::Violation)?;
                    queued = true;
                }
                Action::Ping => {
                    let ping = ServerMessage::Ping { nonce: now_ms() };
                    self.session.queue(&ping).map_err(|_| End::Violation)?;
                    queued = true;
                }
                Action::SendOnlineUsers => {
                    for page in ServerMessage::online_users_pages(self.shared.hub.online()) {
                        self.session.queue(&page).map_err(|_| End::Violation)?;
                    }
                    queued = true;
                }
                Action::Authenticate(request) => {
                    if std::mem::take(&mut queued) {
                        self.flush().await?;
                    }
                    let registering = matches!(request, AuthRequest::RegisterFinish { .. });
                    let device = match &self.chat {
                        Some(chat) => chat.me.device,
                        None => self.policy.device().id,
                    };
                    // Boxed, as are the login and the close below: each is
                    // run once or twice per session, and inline the largest
                    // of them would size every idle session's task.
                    let mut answer = Box::pin(authenticate(
                        &self.shared,
                        self.peer,
                        self.session.channel_binding(),
                        request,
                        device,
                    ))
                    .await;
                    if let Ok(AuthAnswer::LoggedIn(me)) = &answer {
                        let name = self.policy.device().name.clone();
                        if let Err(refused) = self.admit_device(me, name.as_ref()) {
                            answer = Err(refused);
                        }
                    }
                    if let (true, Ok(AuthAnswer::LoggedIn(me))) = (registering, &answer) {
                        join_general(&self.shared, &me.canonical, &me.username).await;
                    }
                    self.policy.handle(Event::Authenticated(answer), now());
                }
                Action::LogIn(me) => {
                    if std::mem::take(&mut queued) {
                        self.flush().await?;
                    }
                    Box::pin(self.log_in(me)).await?;
                }
                Action::Store {
                    destination,
                    message,
                    posting,
                } => {
                    if std::mem::take(&mut queued) {
                        self.flush().await?;
                    }
                    // Boxed too (~600 bytes every idle task would carry):
                    // one allocation per message sent, beside storing it.
                    let answer =
                        match Box::pin(self.shared.history.append(destination, message)).await {
                            Ok(stored) => Event::Stored { stored, posting },
                            Err(_) => Event::StoreFailed { posting },
                        };
                    self.policy.handle(answer, now());
                }
                Action::BroadcastRoom { room, message } => {
                    if let Some(chat) = &self.chat {
                        self.shared
                            .hub
                            .broadcast_room(room, chat.session_id, &message);
                    }
                }
                Action::Room {
                    request,
                    target,
                    reason,
                } => {
                    if std::mem::take(&mut queued) {
                        self.flush().await?;
                    }
                    queued = Box::pin(self.room_request(request, target, reason)).await?;
                }
                Action::Admin(request) => {
                    if std::mem::take(&mut queued) {
                        self.flush().await?;
                    }
                    queued = Box::pin(self.admin_request(request)).await?;
                }
                Action::ListRooms(filter) => {
                    if let Some(chat) = &self.chat {
                        let rooms = self
                            .shared
                            .rooms
                            .list(&chat.me.canonical, &filter, now_ms());
                        for page in ServerMessage::room_list_pages(rooms) {
                            self.session.queue(&page).map_err(|_| End::Violation)?;
                        }
                        queued = true;
                    }
                }
                Action::Deliver { to, message } => {
                    self.shared.hub.send_to(&to, &message);
                    if let Some(chat) = &self.chat {
                        self.shared.hub.send_to_others(
                            &chat.me.canonical,
                            chat.session_id,
                            &message,
                        );
                    }
                }
                Action::ListDevices => {
                    if let Some(chat) = &self.chat {
                        let me = &chat.me.canonical;
                        let online = self.shared.hub.online_devices(me);
                        let list = self.shared.devices.list(me, &online, chat.me.device);
                        let devices = proto_core::message::DeviceInfos::new(list)
                            .unwrap_or_else(|_| proto_core::message::DeviceInfos::empty());
                        let msg = ServerMessage::DeviceList { devices };
                        self.session.queue(&msg).map_err(|_| End::Violation)?;
                        queued = true;
                    }
                }
                Action::LogoutDevice(id) => {
                    if std::mem::take(&mut queued) {
                        self.flush().await?;
                    }
                    queued = self.logout_device(id).await?;
                }
                Action::History {
                    conversation,
                    before_id,
                    limit,
                } => {
                    if std::mem::take(&mut queued) {
                        self.flush().await?;
                    }
                    queued = self.history_page(conversation, before_id, limit).await?;
                }
                Action::Members { room, offset } => {
                    if let Some(msg) = self.member_page(&room, offset) {
                        self.session.queue(&msg).map_err(|_| End::Violation)?;
                        queued = true;
                    }
                }
                Action::MarkRead {
                    conversation,
                    up_to_id,
                } => self.mark_read(conversation, up_to_id),
                Action::RenameDevice(name) => {
                    if let Some(chat) = &self.chat {
                        let (shared, me, device) = (
                            Arc::clone(&self.shared),
                            chat.me.canonical.clone(),
                            chat.me.device,
                        );
                        let _ = tokio::task::spawn_blocking(move || {
                            shared.devices.rename(&me, device, &name)
                        })
                        .await;
                    }
                }
                // What is queued goes out with the close.
                Action::Close(end) => return Err(end),
            }
        }
        if queued {
            self.flush().await?;
        }
        Ok(())
    }

    /// The answer to `Members`: a page of the room's members, with their
    /// roles and whether they are online, or why not.
    fn member_page(&self, room: &RoomName, offset: u32) -> Option<ServerMessage> {
        use proto_core::message::{MemberInfo, MemberInfos, MAX_MEMBERS_PER_PAGE};
        let chat = self.chat.as_ref()?;
        let offset_at = usize::try_from(offset).unwrap_or(usize::MAX);
        let page = match self.shared.rooms.member_page(
            &chat.me.canonical,
            room,
            offset_at,
            MAX_MEMBERS_PER_PAGE,
        ) {
            Ok(page) => page,
            Err(e) => return Some(crate::rooms::error_message(e)),
        };
        let online = self
            .shared
            .hub
            .online_among(page.members.iter().map(|(name, _)| name.as_str()));
        let members = page
            .members
            .into_iter()
            .zip(online)
            .filter_map(|((canonical, role), online)| {
                let user = self
                    .shared
                    .accounts
                    .display_name(&canonical)
                    .or_else(|| Username::new(&canonical).ok())?;
                Some(MemberInfo { user, role, online })
            })
            .collect();
        Some(ServerMessage::MemberPage {
            room: page.room,
            offset,
            total: page.total,
            members: MemberInfos::new(members).unwrap_or_else(|_| MemberInfos::empty()),
        })
    }

    async fn flush(&mut self) -> Result<(), End> {
        match timeout(self.shared.limits.write_timeout, self.session.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Dropped),
            Err(_) => Err(End::SlowConsumer),
        }
    }

    /// Performs a room request off the runtime (a change fsyncs the
    /// journal, a moderation action the audit log too) and tells whom the
    /// outcome says. True if something was queued for this session.
    async fn room_request(
        &mut self,
        request: crate::rooms::RoomRequest,
        target: Option<Username>,
        reason: proto_core::message::Reason,
    ) -> Result<bool, End> {
        let Some(chat) = &self.chat else {
            return Ok(false);
        };
        let shared = Arc::clone(&self.shared);
        let user = chat.me.canonical.clone();
        let admin = self.shared.admins.contains(&user);
        let audit_reason = reason.clone();
        let result = tokio::task::spawn_blocking(move || {
            let at_ms = now_ms();
            let result = shared.rooms.request(&user, &request, at_ms, admin);
            if let (Ok(applied), true) = (&result, request.is_moderation()) {
                // A kicked or banned user's sessions stop getting the room
                // before anyone is told (R2).
                if let crate::rooms::Applied::Changed {
                    id,
                    change:
                        crate::rooms::Change::Kicked { target }
                        | crate::rooms::Change::Banned { target, .. },
                    ..
                } = applied
                {
                    shared.hub.unsubscribe(target, *id);
                }
                let entry =
                    crate::rooms::audit_entry(&user, &request, &audit_reason, applied, at_ms);
                write_audit(&shared, &entry);
            }
            result
        })
        .await
        .unwrap_or(Err(RoomError::Storage));
        let outcome = Outcome::of(&chat.me.username, target.as_ref(), &reason, result);
        let hub = &self.shared.hub;
        if let Some(room) = outcome.unsubscribe {
            hub.unsubscribe(&chat.me.canonical, room);
        }
        for msg in &outcome.to_user {
            hub.send_to(&chat.me.canonical, msg);
        }
        if let Some((room, msg)) = &outcome.to_room {
            // A plain join or leave: not told to a large room (a flood of
            // them would be one write per member online each).
            if !self.shared.room_is_quiet(*room) {
                hub.broadcast_room(*room, chat.session_id, msg);
            }
        }
        if let Some((room, msg)) = &outcome.to_everyone_in {
            hub.broadcast_room_all(*room, msg);
        }
        for (who, msg) in &outcome.to_target {
            hub.send_to(who, msg);
        }
        if let Some((who, room)) = &outcome.unsubscribe_target {
            hub.unsubscribe(who, *room);
        }
        if let Some(room) = outcome.subscribe {
            hub.subscribe(&chat.me.canonical, room);
        }
        if let Some((room, msg, members)) = &outcome.deleted {
            hub.drop_room(*room);
            for member in members {
                hub.send_to(member, msg);
            }
            if let Err(e) = self.shared.history.delete_room(*room).await {
                tracing::error!(error = %e, "a deleted room's history could not be removed");
            }
        }
        match outcome.reply {
            Some(reply) => {
                self.session.queue(&reply).map_err(|_| End::Violation)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Where a conversation named on the wire lives, if this user may read
    /// it: the history's destination, the marker's key, and the name to
    /// answer with (a room's as created, a partner's as registered).
    fn resolve(
        &self,
        conversation: &WireConversation,
    ) -> Option<(
        crate::history::Destination,
        crate::read_markers::MarkerKey,
        WireConversation,
    )> {
        let me = &self.chat.as_ref()?.me.canonical;
        match conversation {
            WireConversation::Room { room } => {
                let (id, room) = self.shared.rooms.readable_room(me, room).ok()?;
                Some((
                    crate::history::Destination::Room { id },
                    crate::read_markers::MarkerKey::Room(id),
                    WireConversation::Room { room },
                ))
            }
            WireConversation::Direct { peer } => {
                let partner = peer.canonical();
                let peer = self.shared.accounts.display_name(&partner)?;
                Some((
                    crate::history::Destination::Direct {
                        a: me.clone(),
                        b: partner.clone(),
                    },
                    crate::read_markers::MarkerKey::Direct(partner),
                    WireConversation::Direct { peer },
                ))
            }
        }
    }

    /// Answers `History`: the page, or `Error NoSuchRoom` for a room the
    /// user is not in (a banned or kicked user pages nothing).
    async fn history_page(
        &mut self,
        conversation: WireConversation,
        before_id: u64,
        limit: u16,
    ) -> Result<bool, End> {
        let Some((destination, _, named)) = self.resolve(&conversation) else {
            let refusal = match conversation {
                WireConversation::Room { .. } => RoomError::NoSuchRoom,
                WireConversation::Direct { .. } => RoomError::TargetNotAMember,
            };
            let reply = crate::rooms::error_message(refusal);
            self.session.queue(&reply).map_err(|_| End::Violation)?;
            return Ok(true);
        };
        let pages = match self
            .shared
            .history
            .page(destination, before_id, usize::from(limit))
            .await
        {
            Ok((entries, complete)) => {
                let wire = wire_entries(&named, entries);
                ServerMessage::history_page_chunks(named, wire, complete)
            }
            Err(e) => {
                tracing::error!(error = %e, "a history page could not be read");
                vec![crate::rooms::error_message(RoomError::Storage)]
            }
        };
        for page in &pages {
            self.session.queue(page).map_err(|_| End::Violation)?;
        }
        Ok(true)
    }

    /// Moves the user's read marker and tells their other devices.
    fn mark_read(&mut self, conversation: WireConversation, up_to_id: u64) {
        let Some((_, key, named)) = self.resolve(&conversation) else {
            return;
        };
        let Some(chat) = &self.chat else { return };
        match self
            .shared
            .read_markers
            .mark(&chat.me.canonical, key, up_to_id)
        {
            Ok(true) => {
                let msg = ServerMessage::ReadMarker {
                    conversation: named,
                    up_to_id,
                    unread: 0,
                };
                self.shared
                    .hub
                    .send_to_others(&chat.me.canonical, chat.session_id, &msg);
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "a read marker could not be saved"),
        }
    }

    /// A login of `me`'s device: refused (and its fresh token revoked) if it
    /// is a new device beyond the cap; else recorded as seen.
    fn admit_device(
        &self,
        me: &LoggedIn,
        name: Option<&proto_core::message::DeviceName>,
    ) -> Result<(), AuthError> {
        let address = self.peer.ip().to_string();
        match self
            .shared
            .devices
            .admit(&me.canonical, me.device, name, &address, now_ms())
        {
            Ok(()) => Ok(()),
            Err(crate::devices::DeviceError::TooMany(_)) => {
                self.shared
                    .accounts
                    .revoke_device_token(&me.canonical, me.device);
                Err(AuthError::Failed(
                    proto_core::message::AuthFailure::TooManyDevices,
                ))
            }
            Err(crate::devices::DeviceError::Storage) => {
                self.shared
                    .accounts
                    .revoke_device_token(&me.canonical, me.device);
                Err(AuthError::Internal)
            }
        }
    }

    /// Logs out one of the user's devices: forgotten (durably), its token
    /// revoked, its session ended (`Goodbye SessionEnded`); then `Done`.
    async fn logout_device(&mut self, id: u64) -> Result<bool, End> {
        let Some(chat) = &self.chat else {
            return Ok(false);
        };
        let (shared, me) = (Arc::clone(&self.shared), chat.me.canonical.clone());
        let forgotten = tokio::task::spawn_blocking(move || shared.devices.forget(&me, id))
            .await
            .unwrap_or(Err(crate::devices::DeviceError::Storage));
        let reply = match forgotten {
            Ok(true) => {
                self.shared
                    .accounts
                    .revoke_device_token(&chat.me.canonical, id);
                self.shared
                    .hub
                    .kick_device(&chat.me.canonical, id, Kick::Ended);
                ServerMessage::Done
            }
            Ok(false) => ServerMessage::Error {
                code: proto_core::message::ErrorCode::InvalidMessage,
                detail: proto_core::message::ErrorDetail::new("no such device")
                    .unwrap_or_else(|_| proto_core::message::ErrorDetail::empty()),
            },
            Err(_) => crate::rooms::error_message(RoomError::Storage),
        };
        self.session.queue(&reply).map_err(|_| End::Violation)?;
        Ok(true)
    }

    /// An administrator's request: refused unless the user is one; then
    /// carried out, audited, and answered `Done`.
    async fn admin_request(&mut self, request: AdminRequest) -> Result<bool, End> {
        let Some(chat) = &self.chat else {
            return Ok(false);
        };
        let actor = chat.me.canonical.clone();
        let reply = if !self.shared.admins.contains(&actor) {
            crate::rooms::error_message(RoomError::NotAdmin)
        } else {
            let (action, target, done) = match request {
                AdminRequest::SetDisabled {
                    target, disabled, ..
                } => {
                    let done = self.shared.accounts.set_disabled(&target, disabled).await;
                    if done.is_ok() && disabled {
                        self.shared.hub.kick_user(&target, Kick::Disabled);
                    }
                    let action = if disabled {
                        "disable_account"
                    } else {
                        "enable_account"
                    };
                    (action, target, done.is_ok())
                }
                AdminRequest::EndSessions { target, .. } => {
                    self.shared.accounts.revoke_all_tokens(&target);
                    self.shared.hub.kick_user(&target, Kick::Ended);
                    let (shared, t) = (Arc::clone(&self.shared), target.clone());
                    let _ =
                        tokio::task::spawn_blocking(move || shared.devices.forget_all(&t)).await;
                    ("end_sessions", target, true)
                }
            };
            if done {
                let entry = AuditEntry {
                    at_ms: now_ms(),
                    actor,
                    action: action.to_owned(),
                    room: None,
                    target: Some(target),
                    detail: String::new(),
                };
                let shared = Arc::clone(&self.shared);
                let _ = tokio::task::spawn_blocking(move || write_audit(&shared, &entry)).await;
                ServerMessage::Done
            } else {
                crate::rooms::error_message(RoomError::Storage)
            }
        };
        self.session.queue(&reply).map_err(|_| End::Violation)?;
        Ok(true)
    }

    /// Gives back the place among the not-logged-in, joins the hub and
    /// greets.
    async fn log_in(&mut self, me: LoggedIn) -> Result<(), End> {
        self.place = None;
        let (tx, outbox) = mpsc::channel(self.shared.limits.outbox_capacity);
        let control = Arc::new(SessionControl::default());
        let session_id = SessionId(self.session.id().0);
        tracing::info!(conn = %self.session.id(), user = %me.canonical, "logged in");
        let rooms = self.shared.rooms.rooms_of(&me.canonical);
        self.shared.hub.join(Registration {
            canonical: me.canonical.clone(),
            display: me.username.clone(),
            session: session_id,
            device: me.device,
            outbox: tx,
            control: Arc::clone(&control),
            rooms: rooms.iter().map(|(id, _)| *id).collect(),
        });
        let greeting = greeting(&self.shared, &me, rooms).await;
        self.outbox = Some(outbox);
        self.chat = Some(Chat {
            me,
            session_id,
            control,
        });
        for msg in &greeting {
            self.session.queue(msg).map_err(|_| End::Violation)?;
        }
        self.flush().await
    }

    /// Seals `first` and whatever else is already queued, then one write.
    /// A write blocked on a client that stopped reading yields to a kick at
    /// once, not after `write_timeout`.
    async fn write_outbox(&mut self, first: &Outgoing) -> Result<(), End> {
        let Self {
            session,
            outbox,
            chat,
            shared,
            ..
        } = self;
        let (Some(outbox), Some(chat)) = (outbox.as_mut(), chat.as_ref()) else {
            return Ok(());
        };
        session.queue_encoded(first).map_err(|_| End::Violation)?;
        for _ in 1..MAX_COALESCE {
            match outbox.try_recv() {
                Ok(next) => session.queue_encoded(&next).map_err(|_| End::Violation)?,
                Err(_) => break,
            }
        }
        // Most writes finish at once: only one that would block needs the
        // write timer (a tokio Sleep clones the runtime's shared handle)
        // and the race with a kick.
        let flush = session.flush();
        tokio::pin!(flush);
        if let Poll::Ready(written) = poll_fn(|cx| Poll::Ready(flush.as_mut().poll(cx))).await {
            return written.map_err(|_| End::Dropped);
        }
        let write_timeout = shared.limits.write_timeout;
        tokio::select! {
            biased;
            kick = chat.control.kicked() => Err(match kick {
                Kick::SlowConsumer => End::SlowConsumer,
                Kick::Replaced => End::Replaced,
                Kick::Shutdown => End::Shutdown,
                Kick::Disabled => End::Disabled,
                Kick::Ended => End::Ended,
            }),
            written = timeout(write_timeout, flush) => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(End::Dropped),
                Err(_) => Err(End::SlowConsumer),
            },
        }
    }

    /// Says the last word and closes: after login with close_notify, once
    /// the hub has been told; before it, the last word alone, within
    /// net's close timeout (the connection is dropped right after). A
    /// client that dropped is told nothing: its connection is returned,
    /// unclosed, for [`run`]'s caller to close.
    async fn finish(self, end: End) -> Option<ServerLink<S>> {
        let conn = self.session.id();
        let Some(chat) = self.chat else {
            tracing::debug!(%conn, why = ?end, "session ended before login");
            if end == End::Dropped {
                return Some(self.session);
            }
            if let Some(word) = end.last_word() {
                let mut session = self.session;
                let _ = timeout(net::CLOSE_TIMEOUT, session.send(&word)).await;
            }
            return None;
        };
        if end == End::Exit {
            self.shared.accounts.revoke(&chat.me.token);
        }
        // Last seen first: whoever is told of the leave can ask for it.
        self.shared
            .devices
            .seen(&chat.me.canonical, chat.me.device, now_ms());
        self.shared
            .hub
            .leave(&chat.me.canonical, chat.session_id, end.leave_reason());
        tracing::info!(%conn, user = %chat.me.canonical, why = ?end, "left");
        if end == End::Dropped {
            // No close_notify, flush or shutdown(2) for a peer that has
            // gone: closing the socket sends the FIN.
            return Some(self.session);
        }
        let _ = self.session.close(end.last_word().as_ref()).await;
        None
    }
}

async fn authenticate(
    shared: &Shared,
    peer: SocketAddr,
    binding: &ChannelBinding,
    request: AuthRequest,
    device: u64,
) -> Result<AuthAnswer, AuthError> {
    let accounts = &shared.accounts;
    let ip = peer.ip();
    match request {
        AuthRequest::PasswordRegister => accounts.register_with_password(),
        AuthRequest::RegisterStart { username, request } => {
            accounts.register_start(&username, &request)
        }
        AuthRequest::RegisterFinish { pending, upload } => {
            accounts.register_finish(pending, &upload, device).await
        }
        AuthRequest::LoginStart { username, request } => {
            accounts.login_start(&username, &request, ip, binding).await
        }
        AuthRequest::LoginFinish {
            pending,
            finalization,
        } => accounts.login_finish(pending, &finalization, binding, device),
        AuthRequest::LegacyLogin { username, password } => {
            accounts.legacy_login(&username, password, ip, device).await
        }
        AuthRequest::Resume { token } => accounts.resume(&token),
        AuthRequest::ChangePasswordStart {
            canonical,
            request,
            registration_request,
        } => {
            accounts
                .change_password_start(&canonical, &request, &registration_request, ip, binding)
                .await
        }
        AuthRequest::ChangePasswordFinish {
            pending,
            finalization,
            upload,
        } => {
            accounts
                .change_password_finish(pending, &finalization, &upload, binding, device)
                .await
        }
    }
}

/// Appends to the audit log (blocking: it fsyncs). A failure is logged
/// loudly; the action it records has happened.
fn write_audit(shared: &Shared, entry: &AuditEntry) {
    let mut audit = shared
        .audit
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(e) = audit.append(entry) {
        tracing::error!(error = %e, action = %entry.action, "the audit log could not be written");
    }
}

/// A new account joins `#general` (off the runtime: the journal fsyncs);
/// its members online are told, as for any join, unless `#general` is a
/// large room (then every registration would be one write per member
/// online).
async fn join_general(shared: &Arc<Shared>, canonical: &str, display: &Username) {
    let (blocking, user) = (Arc::clone(shared), canonical.to_owned());
    let joined = tokio::task::spawn_blocking(move || blocking.rooms.on_registered(&user)).await;
    if !matches!(joined, Ok(Ok(()))) {
        tracing::error!("a new account could not be added to #general");
        return;
    }
    if shared.room_is_quiet(crate::rooms::GENERAL_ID) {
        return;
    }
    shared.hub.broadcast_room_all(
        crate::rooms::GENERAL_ID,
        &ServerMessage::MemberJoined {
            room: RoomName::general(),
            user: display.clone(),
        },
    );
}

/// AuthOk, the user's rooms, and the recent history (who is online comes
/// with the next presence batch, per room, and on request).
async fn greeting(
    shared: &Shared,
    me: &LoggedIn,
    rooms: Vec<(RoomId, proto_core::message::RoomInfo)>,
) -> Vec<ServerMessage> {
    let mut msgs = vec![ServerMessage::AuthOk {
        username: me.username.clone(),
        resume_token: me.token.clone(),
        token_lifetime_secs: shared.accounts.token_lifetime_secs(),
    }];
    let ids: Vec<RoomId> = rooms.iter().map(|(id, _)| *id).collect();
    let names: std::collections::HashMap<RoomId, proto_core::message::RoomName> = rooms
        .iter()
        .map(|(id, info)| (*id, info.room.clone()))
        .collect();
    msgs.extend(
        rooms
            .into_iter()
            .map(|(_, info)| ServerMessage::RoomJoined { info }),
    );
    for (room, topic, by) in shared.rooms.invitations_of(&me.canonical) {
        if let Some(by) = shared.accounts.display_name(&by) {
            msgs.push(ServerMessage::Invited { room, by, topic });
        }
    }
    let recent = match shared
        .history
        .recent(me.canonical.clone(), ids, shared.history_replay)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "history could not be read for replay");
            Vec::new()
        }
    };
    msgs.extend(read_markers(shared, me, &names, &recent));
    msgs.extend(ServerMessage::history_batches(wire_history(
        shared, &names, recent,
    )));
    msgs
}

/// The greeting's `ReadMarker`s: each conversation the user has a marker
/// in, with the messages from others after it among those replayed.
fn read_markers(
    shared: &Shared,
    me: &LoggedIn,
    rooms: &std::collections::HashMap<RoomId, proto_core::message::RoomName>,
    recent: &Recent,
) -> Vec<ServerMessage> {
    use crate::read_markers::MarkerKey;
    let markers = shared.read_markers.of(&me.canonical);
    if markers.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (conversation, entries) in recent {
        let (key, wire) = match conversation {
            Conversation::Room { id } => match rooms.get(id) {
                Some(room) => (
                    MarkerKey::Room(*id),
                    WireConversation::Room { room: room.clone() },
                ),
                None => continue,
            },
            Conversation::Direct { partner } => match shared.accounts.display_name(partner) {
                Some(peer) => (
                    MarkerKey::Direct(partner.clone()),
                    WireConversation::Direct { peer },
                ),
                None => continue,
            },
        };
        let Some(&up_to_id) = markers.get(&key) else {
            continue;
        };
        let unread = entries
            .iter()
            .filter(|e| e.id > up_to_id && e.from != me.username.as_str())
            .count();
        out.push(ServerMessage::ReadMarker {
            conversation: wire,
            up_to_id,
            unread: u32::try_from(unread).unwrap_or(u32::MAX),
        });
    }
    out
}

/// Stored entries as a page's wire entries, all in `conversation`.
fn wire_entries(
    conversation: &WireConversation,
    entries: Vec<crate::storage::HistoryEntry>,
) -> Vec<WireEntry> {
    entries
        .into_iter()
        .filter_map(|e| {
            let (Ok(from), Ok(text)) = (Username::new(&e.from), MessageText::new(&e.text)) else {
                return None;
            };
            Some(WireEntry {
                id: e.id,
                timestamp_ms: e.timestamp_ms,
                conversation: conversation.clone(),
                from,
                text,
            })
        })
        .collect()
}

fn wire_history(
    shared: &Shared,
    rooms: &std::collections::HashMap<RoomId, proto_core::message::RoomName>,
    recent: Recent,
) -> Vec<WireEntry> {
    let mut out = Vec::new();
    for (conversation, entries) in recent {
        let wire_conv = match conversation {
            Conversation::Room { id } => match rooms.get(&id) {
                Some(room) => WireConversation::Room { room: room.clone() },
                None => continue,
            },
            Conversation::Direct { partner } => match shared.accounts.display_name(&partner) {
                Some(peer) => WireConversation::Direct { peer },
                None => continue,
            },
        };
        for e in entries {
            // Entries were valid when written; skip any that no longer are.
            let (Ok(from), Ok(text)) = (Username::new(&e.from), MessageText::new(&e.text)) else {
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
