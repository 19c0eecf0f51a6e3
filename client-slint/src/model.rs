//! The chat window's state: conversations and their timelines, unread
//! counts, read markers, who is online. Fed with [`ClientEvent`]s and the
//! user's clicks; knows nothing of Slint, so it is tested with plain
//! `#[test]`s. [`crate::timeline`] turns a conversation into display rows.

use std::collections::HashSet;

use client_core::cause::auth_failure_text;
use client_core::events::{leave_reason_text, room_change_text, room_leave_text, room_left_text};
use client_core::{
    ChatLine, ClientEvent, ConnectionState, Delivery, NoticeKind, RoomRole, GENERAL_ROOM,
};

/// Which conversation: a room (by its name as created, with the `#`) or a
/// direct-message partner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConversationId {
    Room(String),
    Direct(String),
}

impl ConversationId {
    /// The room's name, for a room.
    pub fn room(&self) -> Option<&str> {
        match self {
            ConversationId::Room(name) => Some(name),
            ConversationId::Direct(_) => None,
        }
    }
}

/// " by ACTOR (REASON)", names and reason escaped like every notice.
fn removed_by_text(actor: &str, reason: &proto_core::message::Reason) -> String {
    let esc = proto_core::message::escape_for_display;
    if reason.is_empty() {
        format!(" by {}", esc(actor))
    } else {
        format!(" by {} ({})", esc(actor), esc(reason.as_str()))
    }
}

/// Room names compare without case (`#Rust` is `#rust`).
fn same_room(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// How a system notice is styled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeStyle {
    Info,
    Join,
    Leave,
    Error,
}

/// Where an own message typed here stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendState {
    /// Stored by the server (and every message not typed here).
    Stored,
    /// Waiting for the server's acknowledgement (or for the connection):
    /// it is sent again after a reconnect, never twice.
    Pending { client_id: u64 },
    /// Refused by the server: nobody received it.
    Failed { reason: String },
    /// The user left before the server answered: it may not have arrived.
    Unconfirmed,
}

/// One thing in a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Message {
        /// The server's id; 0 until the server stored an own message.
        id: u64,
        from: String,
        own: bool,
        /// Replayed at login: shown as earlier, never unread.
        history: bool,
        state: SendState,
    },
    Notice(NoticeStyle),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub timestamp_ms: u64,
    pub kind: EntryKind,
    pub text: String,
    /// Whom a join or leave notice is about. Kept apart from the sentence
    /// so that a right-to-left name cannot reorder it on screen.
    pub subject: Option<String>,
}

impl Entry {
    /// A message someone else wrote that arrived live (the kind that counts
    /// as unread).
    fn is_unread_kind(&self) -> bool {
        matches!(
            self.kind,
            EntryKind::Message {
                own: false,
                history: false,
                ..
            }
        )
    }
}

/// Timelines keep at most this many entries; older ones are dropped.
pub const MAX_ENTRIES: usize = 1000;

#[derive(Debug)]
pub struct Conversation {
    pub id: ConversationId,
    /// A room's topic (empty for none and for direct conversations).
    pub topic: String,
    entries: Vec<Entry>,
    seen_ids: HashSet<u64>,
    /// Entries before this index were on screen when the user last looked.
    read_upto: usize,
    /// Index of the entry the "new messages" marker stands before, set when
    /// the user returns to a conversation with unread messages.
    marker: Option<usize>,
    unread: usize,
    /// The server said there is nothing older (scrolling up asks no more).
    at_beginning: bool,
    /// The user's read marker on the server as far as we know: the
    /// furthest we sent or another device moved it to.
    marked_id: u64,
}

impl Conversation {
    fn new(id: ConversationId) -> Self {
        Self {
            id,
            topic: String::new(),
            entries: Vec::new(),
            seen_ids: HashSet::new(),
            read_upto: 0,
            marker: None,
            unread: 0,
            at_beginning: false,
            marked_id: 0,
        }
    }

    /// Whether older messages may still be fetched.
    pub fn has_older(&self) -> bool {
        !self.at_beginning
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn unread(&self) -> usize {
        self.unread
    }

    /// The index of the first unread entry while the marker is shown.
    pub fn read_marker(&self) -> Option<usize> {
        self.marker
    }

    /// The name shown in the conversation list.
    pub fn title(&self) -> &str {
        match &self.id {
            ConversationId::Room(name) | ConversationId::Direct(name) => name,
        }
    }

    fn push(&mut self, entry: Entry, selected: bool) {
        if entry.is_unread_kind() && !selected {
            self.unread += 1;
        }
        self.entries.push(entry);
        if self.entries.len() > MAX_ENTRIES {
            let excess = self.entries.len() - MAX_ENTRIES;
            self.entries.drain(..excess);
            self.read_upto = self.read_upto.saturating_sub(excess);
            self.marker = self.marker.and_then(|m| m.checked_sub(excess));
        }
    }

    /// A chat line, unless it is one we already show (history replayed
    /// again after a reconnect, or an own message acknowledged before).
    fn push_line(&mut self, line: &ChatLine, history: bool, selected: bool) {
        if line.id != 0 && !self.seen_ids.insert(line.id) {
            return;
        }
        let state = match line.client_id {
            Some(client_id) if line.id == 0 => SendState::Pending { client_id },
            _ => SendState::Stored,
        };
        self.push(
            Entry {
                timestamp_ms: line.timestamp_ms,
                kind: EntryKind::Message {
                    id: line.id,
                    from: line.from.clone(),
                    own: line.own,
                    history,
                    state,
                },
                text: line.text.clone(),
                subject: None,
            },
            selected,
        );
    }

    /// The pending own message `client_id`, if this conversation has it.
    fn pending_index(&self, client_id: u64) -> Option<usize> {
        self.entries.iter().position(|e| {
            matches!(&e.kind, EntryKind::Message { state: SendState::Pending { client_id: c }, .. } if *c == client_id)
        })
    }

    /// What became of a pending own message; false if it is not here.
    fn settle(&mut self, client_id: u64, delivery: &Delivery) -> bool {
        let Some(index) = self.pending_index(client_id) else {
            return false;
        };
        match delivery {
            Delivery::Stored {
                id,
                timestamp_ms,
                already_shown,
            } => {
                if *already_shown || !self.seen_ids.insert(*id) {
                    // The history replay of a reconnect showed it already.
                    self.entries.remove(index);
                    self.read_upto = self.read_upto.min(self.entries.len());
                    self.marker = self.marker.filter(|&m| m < self.entries.len());
                    return true;
                }
                let entry = &mut self.entries[index];
                entry.timestamp_ms = *timestamp_ms;
                if let EntryKind::Message {
                    id: entry_id,
                    state,
                    ..
                } = &mut entry.kind
                {
                    *entry_id = *id;
                    *state = SendState::Stored;
                }
            }
            Delivery::Unconfirmed => {
                if let EntryKind::Message { state, .. } = &mut self.entries[index].kind {
                    *state = SendState::Unconfirmed;
                }
            }
            Delivery::Failed(refusal) => {
                if let EntryKind::Message { state, .. } = &mut self.entries[index].kind {
                    *state = SendState::Failed {
                        reason: refusal.to_string(),
                    };
                }
            }
        }
        true
    }

    /// Older messages (a history page), before everything shown.
    fn prepend_lines(&mut self, lines: &[ChatLine]) {
        let mut older = Vec::with_capacity(lines.len());
        for line in lines {
            if line.id != 0 && !self.seen_ids.insert(line.id) {
                continue;
            }
            older.push(Entry {
                timestamp_ms: line.timestamp_ms,
                kind: EntryKind::Message {
                    id: line.id,
                    from: line.from.clone(),
                    own: line.own,
                    history: true,
                    state: SendState::Stored,
                },
                text: line.text.clone(),
                subject: None,
            });
        }
        let added = older.len();
        older.append(&mut self.entries);
        self.entries = older;
        self.read_upto += added;
        self.marker = self.marker.map(|m| m + added);
    }

    /// A read marker from the server: at login with the count of unread
    /// messages it knows of; later (another device read it) as read up
    /// to `up_to_id`.
    fn apply_read_marker(&mut self, up_to_id: u64, unread: u32, selected: bool) {
        self.marked_id = self.marked_id.max(up_to_id);
        if selected {
            return;
        }
        self.unread = if unread > 0 {
            usize::try_from(unread).unwrap_or(usize::MAX)
        } else {
            self.entries
                .iter()
                .filter(|e| {
                    e.is_unread_kind()
                        && matches!(e.kind, EntryKind::Message { id, .. } if id > up_to_id)
                })
                .count()
        };
    }

    /// The id of the newest message the server stored that is shown here
    /// (0 for none).
    fn newest_id(&self) -> u64 {
        self.entries
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::Message { id, .. } => Some(id),
                EntryKind::Notice(_) => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The user leaves the conversation: everything in it has been seen.
    fn leave(&mut self) {
        self.read_upto = self.entries.len();
        self.marker = None;
        self.unread = 0;
    }

    /// The user opens the conversation: mark the first unread message.
    fn enter(&mut self) {
        self.marker = (self.unread > 0)
            .then(|| {
                (self.read_upto..self.entries.len()).find(|&i| self.entries[i].is_unread_kind())
            })
            .flatten();
        self.unread = 0;
    }
}

/// The connection as the status line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Connected,
    Reconnecting { in_secs: u64, attempt: u32 },
    Offline(String),
}

impl Status {
    pub fn text(&self) -> String {
        match self {
            Status::Connecting => "Connecting…".into(),
            Status::Connected => "Connected".into(),
            Status::Reconnecting { in_secs, attempt } => {
                format!("Connection lost — reconnecting in {in_secs} s (attempt {attempt})")
            }
            Status::Offline(reason) if reason.is_empty() => "Offline".into(),
            Status::Offline(reason) => format!("Offline: {reason}"),
        }
    }
}

/// A room's members as the server listed them.
#[derive(Debug, Clone)]
struct RoomMembers {
    members: Vec<client_core::MemberView>,
    total: u32,
}

/// Someone in the side panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub role: RoomRole,
    pub online: bool,
    /// The viewer may kick, ban or mute them (ranks above them).
    pub can_moderate: bool,
    /// The viewer owns the room and may make them a moderator or not.
    pub can_appoint: bool,
}

/// What the panel beside the conversation lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidePanel {
    /// The open room's members (`total` may exceed those fetched).
    Members { total: u32, people: Vec<Person> },
    /// Everyone online (a direct conversation, or before the room's
    /// members came).
    Online(Vec<Person>),
}

/// Everything the chat window shows.
#[derive(Debug)]
pub struct ChatModel {
    me: String,
    conversations: Vec<Conversation>,
    selected: usize,
    online: Vec<String>,
    /// Whether `online` came from the server (`/who`) since the login: it
    /// is asked only when a direct conversation is shown, since at 19,000
    /// online it is 39 pages and a room shows its members instead.
    online_fetched: bool,
    /// Each room's members as last fetched (by the room's canonical
    /// name), kept current by presence; `total` counts those not fetched.
    members: std::collections::HashMap<String, RoomMembers>,
    /// Rooms whose members are asked again (opened again since the list
    /// came): a large room is not told presence, so its list is only as
    /// current as its last fetch. The old list shows until the new comes.
    members_stale: std::collections::HashSet<String>,
    /// The room browser: open, the last `/list` answer, open invitations
    /// (room, who invited, topic).
    browsing: bool,
    /// The devices page: open, and the user's devices as last listed.
    devices_open: bool,
    devices: Vec<client_core::DeviceView>,
    room_list: Vec<client_core::RoomListing>,
    invitations: Vec<(String, String, String)>,
    /// Who removed the user from a room (by its canonical name) and why,
    /// as the end of the sentence the `RoomLeft` after it shows: the
    /// room's own notice goes with its conversation.
    removed_by: std::collections::HashMap<String, String>,
    status: Status,
    /// Until the first replay ends, history lines are shown as "earlier";
    /// lines replayed after a reconnect were missed while away, so they
    /// are shown (and counted) like live ones.
    first_history_done: bool,
    /// The window has the focus and the open conversation is scrolled to
    /// its end: new messages there are seen as they come.
    focused: bool,
    at_bottom: bool,
    /// The user opened the selected conversation since the last
    /// [`ChatModel::poll_mark_read`]: it was shown, whatever the focus.
    opened: bool,
}

impl Default for ChatModel {
    fn default() -> Self {
        Self::new()
    }
}

impl ChatModel {
    pub fn new() -> Self {
        Self {
            me: String::new(),
            // Where notices go until the greeting names the user's rooms.
            conversations: vec![Conversation::new(ConversationId::Room(
                GENERAL_ROOM.to_owned(),
            ))],
            selected: 0,
            online: Vec::new(),
            online_fetched: false,
            members: std::collections::HashMap::new(),
            members_stale: std::collections::HashSet::new(),
            browsing: false,
            devices_open: false,
            devices: Vec::new(),
            room_list: Vec::new(),
            invitations: Vec::new(),
            removed_by: std::collections::HashMap::new(),
            status: Status::Connecting,
            first_history_done: false,
            focused: true,
            at_bottom: true,
            opened: false,
        }
    }

    // ---- getters

    /// Our own name, as the server registered it.
    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn conversations(&self) -> &[Conversation] {
        &self.conversations
    }

    pub fn selected_index(&self) -> usize {
        self.selected
    }

    pub fn selected(&self) -> &Conversation {
        &self.conversations[self.selected]
    }

    pub fn conversation(&self, id: &ConversationId) -> Option<&Conversation> {
        self.conversations.iter().find(|c| &c.id == id)
    }

    /// Everyone online, sorted, ourselves included.
    pub fn online(&self) -> &[String] {
        &self.online
    }

    /// The side panel: the open room's members (owner, moderators, then
    /// the rest; online first within each, then by name) once fetched;
    /// otherwise everyone online.
    pub fn side_panel(&self) -> SidePanel {
        if let Some(room) = self.selected().id.room() {
            if let Some(list) = self.members.get(&room.to_lowercase()) {
                // The viewer's own role, from the same list; the server
                // decides again on every request.
                let mine = list
                    .members
                    .iter()
                    .find(|m| m.name == self.me)
                    .map_or(RoomRole::Member, |m| m.role);
                let mut people: Vec<Person> = list
                    .members
                    .iter()
                    .map(|m| {
                        let other = m.name != self.me;
                        Person {
                            name: m.name.clone(),
                            role: m.role,
                            online: m.online,
                            can_moderate: other
                                && mine != RoomRole::Member
                                && mine.rank() > m.role.rank(),
                            can_appoint: other
                                && mine == RoomRole::Owner
                                && m.role != RoomRole::Owner,
                        }
                    })
                    .collect();
                people.sort_by_key(|p| {
                    (
                        std::cmp::Reverse(p.role.rank()),
                        !p.online,
                        p.name.to_lowercase(),
                    )
                });
                return SidePanel::Members {
                    total: list.total,
                    people,
                };
            }
        }
        SidePanel::Online(
            self.online
                .iter()
                .map(|name| Person {
                    name: name.clone(),
                    role: RoomRole::Member,
                    online: true,
                    can_moderate: false,
                    can_appoint: false,
                })
                .collect(),
        )
    }

    /// Whether the room browser replaces the side panel.
    pub fn browsing(&self) -> bool {
        self.browsing
    }

    /// Opens or closes the room browser (closing the devices page).
    pub fn set_browsing(&mut self, open: bool) {
        self.browsing = open;
        self.devices_open &= !open;
    }

    /// Whether the devices page replaces the side panel.
    pub fn devices_open(&self) -> bool {
        self.devices_open
    }

    /// Opens or closes the devices page (closing the room browser).
    pub fn set_devices_open(&mut self, open: bool) {
        self.devices_open = open;
        self.browsing &= !open;
    }

    /// The user's devices as last listed: this one first, then those
    /// online, then by when they were last seen.
    pub fn devices(&self) -> Vec<client_core::DeviceView> {
        let mut devices = self.devices.clone();
        devices.sort_by_key(|d| (!d.current, !d.online, std::cmp::Reverse(d.last_seen_ms)));
        devices
    }

    /// The public rooms (and the user's own) from the last `/list`, and
    /// whether the user is in each.
    pub fn room_list(&self) -> Vec<(client_core::RoomListing, bool)> {
        self.room_list
            .iter()
            .map(|r| {
                let joined = self.conversations.iter().any(|c| {
                    c.id.room()
                        .is_some_and(|name| name.to_lowercase() == r.name.to_lowercase())
                });
                (r.clone(), joined)
            })
            .collect()
    }

    /// Open invitations: (room, who invited, topic).
    pub fn invitations(&self) -> &[(String, String, String)] {
        &self.invitations
    }

    /// Whether the panel shows who is online (a direct conversation is
    /// open) and that list has not been fetched since the login.
    pub fn online_wanted(&self) -> bool {
        !self.online_fetched && self.selected().id.room().is_none()
    }

    /// The room whose members the panel should show but has not fetched.
    pub fn members_wanted(&self) -> Option<&str> {
        let room = self.selected().id.room()?;
        let key = room.to_lowercase();
        (!self.members.contains_key(&key) || self.members_stale.contains(&key)).then_some(room)
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    // ---- inputs

    /// Applies one event from the client task; `now_ms` stamps notices.
    pub fn handle_event(&mut self, event: &ClientEvent, now_ms: u64) {
        match event {
            ClientEvent::State(state) => self.handle_state(state, now_ms),
            ClientEvent::LoggedIn { username } => self.me = username.clone(),
            ClientEvent::Online { users } => {
                self.online_fetched = true;
                self.online = users.clone();
                self.online.sort_by_key(|u| u.to_lowercase());
                self.online.dedup();
            }
            ClientEvent::Joined { username } => {
                self.set_online(username, true);
                if !self.online.contains(username) {
                    self.online.push(username.clone());
                    self.online.sort_by_key(|u| u.to_lowercase());
                }
                if *username != self.me {
                    let entry = Entry {
                        timestamp_ms: now_ms,
                        kind: EntryKind::Notice(NoticeStyle::Join),
                        text: "came online".into(),
                        subject: Some(username.clone()),
                    };
                    self.conversations[0].push(entry, self.selected == 0);
                }
            }
            ClientEvent::Left { username, reason } => {
                self.set_online(username, false);
                self.online.retain(|u| u != username);
                let entry = Entry {
                    timestamp_ms: now_ms,
                    kind: EntryKind::Notice(NoticeStyle::Leave),
                    text: leave_reason_text(*reason).into(),
                    subject: Some(username.clone()),
                };
                self.conversations[0].push(entry, self.selected == 0);
            }
            ClientEvent::RoomJoined(room) => {
                let key = room.name.to_lowercase();
                self.invitations.retain(|(r, _, _)| r.to_lowercase() != key);
                let index = self.index_of_room(&room.name);
                let conversation = &mut self.conversations[index];
                conversation.id = ConversationId::Room(room.name.clone());
                conversation.topic = room.topic.clone();
            }
            ClientEvent::RoomLeft { room, reason } => {
                self.members.remove(&room.to_lowercase());
                let mut text = room_left_text(room, *reason);
                if let Some(first) = text.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                if let Some(by) = self.removed_by.remove(&room.to_lowercase()) {
                    text.push_str(&by);
                }
                self.leave_room(room);
                self.notice_in(self.selected, NoticeStyle::Info, text, now_ms);
            }
            ClientEvent::RoomList { rooms } if self.browsing => {
                self.room_list = rooms.clone();
            }
            ClientEvent::RoomList { rooms } => {
                self.room_list = rooms.clone();
                let text = if rooms.is_empty() {
                    "No rooms match.".to_owned()
                } else {
                    let lines: Vec<String> = rooms
                        .iter()
                        .map(|r| {
                            if r.topic.is_empty() {
                                format!("{} ({})", r.name, r.members)
                            } else {
                                format!("{} ({}) — {}", r.name, r.members, r.topic)
                            }
                        })
                        .collect();
                    format!("Rooms:\n{}", lines.join("\n"))
                };
                self.notice_in(self.selected, NoticeStyle::Info, text, now_ms);
            }
            ClientEvent::RoomChanged {
                room,
                actor,
                change,
            } => {
                match change {
                    client_core::RoomChange::Role { user, role } => {
                        let key = room.to_lowercase();
                        if let Some(list) = self.members.get_mut(&key) {
                            for m in list.members.iter_mut().filter(|m| m.name == user.as_str()) {
                                m.role = *role;
                            }
                        }
                    }
                    client_core::RoomChange::Kicked { user, reason }
                    | client_core::RoomChange::Banned { user, reason, .. } => {
                        self.member_moved(room, user.as_str(), false);
                        if user.as_str().to_lowercase() == self.me.to_lowercase() {
                            self.removed_by
                                .insert(room.to_lowercase(), removed_by_text(actor, reason));
                        }
                    }
                    _ => {}
                }
                let index = self.index_of_room(room);
                if let client_core::RoomChange::Topic { topic } = change {
                    self.conversations[index].topic = topic.as_str().to_owned();
                }
                let text = room_change_text(actor, change);
                self.notice_in(index, NoticeStyle::Info, text, now_ms);
            }
            // Shown in the side panel while the room is open.
            ClientEvent::Members {
                room,
                members,
                total,
            } => {
                self.members_stale.remove(&room.to_lowercase());
                self.members.insert(
                    room.to_lowercase(),
                    RoomMembers {
                        members: members.clone(),
                        total: *total,
                    },
                );
            }
            ClientEvent::Devices { devices } if self.devices_open => {
                self.devices = devices.clone();
            }
            ClientEvent::Devices { devices } => {
                self.devices = devices.clone();
                let lines: Vec<String> = devices
                    .iter()
                    .map(|d| {
                        let state = if d.current {
                            "this device"
                        } else if d.online {
                            "online"
                        } else {
                            "offline"
                        };
                        format!("{:016x}  {} ({state}, {})", d.id, d.name, d.address)
                    })
                    .collect();
                let text = format!(
                    "Your devices (/logout-device ID logs one out):\n{}",
                    lines.join("\n")
                );
                self.notice_in(self.selected, NoticeStyle::Info, text, now_ms);
            }
            ClientEvent::HistoryPage {
                conversation,
                lines,
                complete,
            } => {
                let index = self.index_of(conversation);
                self.conversations[index].prepend_lines(lines);
                if *complete && !self.conversations[index].at_beginning {
                    self.conversations[index].at_beginning = true;
                    let text = "Beginning of the conversation".to_owned();
                    self.conversations[index].entries.insert(
                        0,
                        Entry {
                            timestamp_ms: lines.first().map_or(now_ms, |l| l.timestamp_ms),
                            kind: EntryKind::Notice(NoticeStyle::Info),
                            text,
                            subject: None,
                        },
                    );
                    self.conversations[index].read_upto += 1;
                }
            }
            ClientEvent::ReadMarker {
                conversation,
                up_to_id,
                unread,
            } => {
                let index = self.index_of(conversation);
                let selected = self.selected == index;
                self.conversations[index].apply_read_marker(*up_to_id, *unread, selected);
            }
            ClientEvent::Invited { room, by, topic } => {
                let key = room.to_lowercase();
                if !self
                    .invitations
                    .iter()
                    .any(|(r, _, _)| r.to_lowercase() == key)
                {
                    self.invitations
                        .push((room.clone(), by.clone(), topic.clone()));
                }
                let about = if topic.is_empty() {
                    String::new()
                } else {
                    format!(" ({topic})")
                };
                let text =
                    format!("{by} invited you to {room}{about}. Type /join {room} to accept.");
                self.notice_in(self.selected, NoticeStyle::Info, text, now_ms);
            }
            ClientEvent::MemberJoined { room, user }
            | ClientEvent::MemberLeft { room, user, .. } => {
                let joined = matches!(event, ClientEvent::MemberJoined { .. });
                self.member_moved(room, user, joined);
                let (style, text) = match event {
                    ClientEvent::MemberLeft { reason, .. } => {
                        (NoticeStyle::Leave, room_leave_text(*reason).to_owned())
                    }
                    _ => (NoticeStyle::Join, "joined the room".to_owned()),
                };
                let index = self.index_of_room(room);
                let selected = self.selected == index;
                self.conversations[index].push(
                    Entry {
                        timestamp_ms: now_ms,
                        kind: EntryKind::Notice(style),
                        text,
                        subject: Some(user.clone()),
                    },
                    selected,
                );
            }
            ClientEvent::Room(line) => {
                let Some(room) = &line.room else { return };
                let index = self.index_of_room(room);
                let history = line.history && !self.first_history_done;
                let selected = self.selected == index;
                self.conversations[index].push_line(line, history, selected);
            }
            ClientEvent::Direct(line) => {
                let Some(partner) = line.partner() else {
                    return;
                };
                let index = self.index_of_direct(partner);
                let history = line.history && !self.first_history_done;
                let selected = self.selected == index;
                self.conversations[index].push_line(line, history, selected);
            }
            ClientEvent::HistoryDone => self.first_history_done = true,
            ClientEvent::Delivery {
                client_id,
                delivery,
            } => {
                for conversation in &mut self.conversations {
                    if conversation.settle(*client_id, delivery) {
                        break;
                    }
                }
            }
            ClientEvent::Notice { text, kind } => {
                let style = match kind {
                    NoticeKind::Info => NoticeStyle::Info,
                    NoticeKind::Error => NoticeStyle::Error,
                };
                self.notice_in(self.selected, style, text.clone(), now_ms);
            }
            ClientEvent::ConnectionLost { cause, unconfirmed } => {
                let text = cause.to_string();
                self.notice_in(self.selected, NoticeStyle::Error, text, now_ms);
                if *unconfirmed > 0 {
                    let text = format!(
                        "{unconfirmed} message(s) not yet confirmed by the server; \
                         they will be sent again after reconnecting (never twice)"
                    );
                    self.notice_in(self.selected, NoticeStyle::Info, text, now_ms);
                }
            }
            ClientEvent::AuthFailed { reason } => {
                let text = auth_failure_text(*reason).to_owned();
                self.notice_in(self.selected, NoticeStyle::Error, text, now_ms);
            }
            ClientEvent::PasswordChanged => {
                let text = "Password changed. Your other devices must log in again with the \
                            new one."
                    .to_owned();
                self.notice_in(self.selected, NoticeStyle::Info, text, now_ms);
            }
            ClientEvent::PasswordChangeFailed { reason } => {
                let text = format!("Password not changed: {reason}");
                self.notice_in(self.selected, NoticeStyle::Error, text, now_ms);
            }
            ClientEvent::Closed { cause } => {
                self.status = Status::Offline(cause.to_string());
                self.online.clear();
                self.members.clear();
                let text = format!("Disconnected: {cause}");
                self.notice_in(self.selected, NoticeStyle::Error, text, now_ms);
            }
            // Dialogs, handled by the session.
            ClientEvent::TrustQuestion { .. } | ClientEvent::KeyChanged { .. } => {}
        }
    }

    /// The user clicks a conversation in the list.
    pub fn select(&mut self, index: usize) {
        if index >= self.conversations.len() || index == self.selected {
            return;
        }
        self.conversations[self.selected].leave();
        self.selected = index;
        self.conversations[index].enter();
        if let Some(room) = self.conversations[index].id.room() {
            let key = room.to_lowercase();
            if self.members.contains_key(&key) {
                self.members_stale.insert(key);
            }
        }
        // The list jumps to the end of the conversation it shows.
        self.at_bottom = true;
        self.opened = true;
    }

    /// Whether the window has the focus and whether the open conversation
    /// is scrolled to its end (the window reports both as they change).
    pub fn set_viewing(&mut self, focused: bool, at_bottom: bool) {
        self.focused = focused;
        self.at_bottom = at_bottom;
    }

    /// The read marker to send now, if any: the open conversation up to its
    /// newest message, when the user was shown it (just opened, or the
    /// window focused and at the end) and that moves the marker forward.
    /// At most one per call: the caller polls once per batch of events or
    /// user action, so a burst of messages makes one marker, the latest.
    /// Nothing before the login's history is in (its markers come first)
    /// or while offline (the one after reconnecting says it).
    #[must_use]
    pub fn poll_mark_read(&mut self) -> Option<(ConversationId, u64)> {
        let opened = std::mem::take(&mut self.opened);
        if self.status != Status::Connected || !self.first_history_done {
            return None;
        }
        let seen = opened || (self.focused && self.at_bottom);
        if !seen {
            return None;
        }
        let conversation = &mut self.conversations[self.selected];
        let newest = conversation.newest_id();
        if newest <= conversation.marked_id {
            return None;
        }
        conversation.marked_id = newest;
        Some((conversation.id.clone(), newest))
    }

    /// Someone joined or left `room`: its fetched list follows.
    fn member_moved(&mut self, room: &str, user: &str, joined: bool) {
        let Some(list) = self.members.get_mut(&room.to_lowercase()) else {
            return;
        };
        let had = list.members.iter().any(|m| m.name == user);
        if joined && !had {
            list.members.push(client_core::MemberView {
                name: user.to_owned(),
                role: RoomRole::Member,
                online: true,
            });
            list.total = list.total.saturating_add(1);
        } else if !joined && had {
            list.members.retain(|m| m.name != user);
            list.total = list.total.saturating_sub(1);
        }
    }

    /// Presence moved: every fetched member list follows.
    fn set_online(&mut self, name: &str, online: bool) {
        for list in self.members.values_mut() {
            for m in list.members.iter_mut().filter(|m| m.name == name) {
                m.online = online;
            }
        }
    }

    /// The user clicks a name in the online list: open (or create) the
    /// direct conversation with them. Returns its index.
    pub fn open_direct(&mut self, name: &str) -> usize {
        let index = self.index_of_direct(name);
        self.select(index);
        index
    }

    fn index_of(&mut self, conversation: &client_core::ConversationRef) -> usize {
        match conversation {
            client_core::ConversationRef::Room(room) => self.index_of_room(room),
            client_core::ConversationRef::Direct(peer) => self.index_of_direct(peer),
        }
    }

    /// The room's conversation, made (after the other rooms, before the
    /// direct conversations) if there is none.
    fn index_of_room(&mut self, name: &str) -> usize {
        let found = self
            .conversations
            .iter()
            .position(|c| c.id.room().is_some_and(|r| same_room(r, name)));
        if let Some(i) = found {
            return i;
        }
        let at = self
            .conversations
            .iter()
            .position(|c| matches!(c.id, ConversationId::Direct(_)))
            .unwrap_or(self.conversations.len());
        self.conversations
            .insert(at, Conversation::new(ConversationId::Room(name.to_owned())));
        if at <= self.selected {
            self.selected += 1;
        }
        at
    }

    /// The user is no longer in `name`: its conversation goes (unless it is
    /// the last one: notices need a place).
    fn leave_room(&mut self, name: &str) {
        let Some(index) = self
            .conversations
            .iter()
            .position(|c| c.id.room().is_some_and(|r| same_room(r, name)))
        else {
            return;
        };
        if self.conversations.len() == 1 {
            return;
        }
        self.conversations.remove(index);
        if self.selected == index {
            self.selected = 0;
            self.conversations[0].enter();
        } else if self.selected > index {
            self.selected -= 1;
        }
    }

    /// The room to run commands against from the selected conversation:
    /// itself, or (from a direct conversation) the first room.
    pub fn command_room(&self) -> &str {
        self.selected()
            .id
            .room()
            .or_else(|| self.conversations.iter().find_map(|c| c.id.room()))
            .unwrap_or(GENERAL_ROOM)
    }

    fn index_of_direct(&mut self, partner: &str) -> usize {
        let id = ConversationId::Direct(partner.to_owned());
        match self.conversations.iter().position(|c| c.id == id) {
            Some(i) => i,
            None => {
                self.conversations.push(Conversation::new(id));
                self.conversations.len() - 1
            }
        }
    }

    fn handle_state(&mut self, state: &ConnectionState, now_ms: u64) {
        let previous = std::mem::replace(
            &mut self.status,
            match state {
                ConnectionState::Connecting => Status::Connecting,
                ConnectionState::Connected => Status::Connected,
                ConnectionState::Reconnecting { in_secs, attempt } => Status::Reconnecting {
                    in_secs: *in_secs,
                    attempt: *attempt,
                },
                ConnectionState::Offline => Status::Offline(String::new()),
            },
        );
        let lost = matches!(previous, Status::Connected) && self.status != Status::Connected;
        if lost {
            self.online.clear();
            self.online_fetched = false;
            self.members.clear();
            let text = "Connection lost; reconnecting…".to_owned();
            self.notice_in(0, NoticeStyle::Error, text, now_ms);
        } else if self.status == Status::Connected
            && matches!(previous, Status::Reconnecting { .. })
        {
            self.notice_in(0, NoticeStyle::Info, "Reconnected".to_owned(), now_ms);
        }
    }

    fn notice_in(&mut self, index: usize, style: NoticeStyle, text: String, now_ms: u64) {
        let selected = self.selected == index;
        self.conversations[index].push(
            Entry {
                timestamp_ms: now_ms,
                kind: EntryKind::Notice(style),
                text,
                subject: None,
            },
            selected,
        );
    }
}

#[cfg(test)]
mod tests;
