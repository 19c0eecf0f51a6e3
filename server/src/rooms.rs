//! The rooms service: the [`RoomDirectory`] in memory, its journal (a
//! [`RoomJournal`]: the file backend's is `storage::RoomsLog`, `rooms.log`),
//! and what each room request tells whom ([`Outcome`]).
//!
//! Changes are serialised by one lock around the journal: a request is
//! decided against the state, appended and fsynced, then applied, so the
//! state only ever holds what is durable. Readers (every room message checks
//! its sender's membership) take the state's read lock, which a change holds
//! only to apply, never across the fsync. A change costs an fsync, so
//! sessions call [`Rooms::request`] from the blocking pool.

pub mod directory;

use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock};

use proto_core::message::{
    ErrorCode, Reason, RoomChange, RoomFilter, RoomInfo, RoomLeaveReason, RoomName, RoomRole,
    RoomSummary, ServerMessage, Topic, Username,
};

pub use directory::{
    Decision, Room, RoomDirectory, RoomError, RoomId, RoomLimits, RoomRequest, GENERAL_ID,
};

use crate::storage::{AuditEntry, HistoryError, RoomEvent, RoomJournal, RoomsLog};

/// What a room request changed, for [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The user created the room (and is its owner).
    Created { id: RoomId, info: RoomInfo },
    /// The user joined (or was in it already: `newly == false`).
    Joined {
        id: RoomId,
        info: RoomInfo,
        newly: bool,
    },
    /// The user left.
    Left { id: RoomId, room: RoomName },
    /// A moderator changed the room (or someone in it).
    Changed {
        id: RoomId,
        room: RoomName,
        change: Change,
    },
    /// The room is gone, with its history; `members` were in it.
    Deleted {
        id: RoomId,
        room: RoomName,
        members: Vec<String>,
    },
}

/// What a moderation request changed (targets by canonical name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Topic(Topic),
    InviteOnly(bool),
    Invited { target: String, topic: Topic },
    Kicked { target: String },
    Banned { target: String, until_ms: u64 },
    Unbanned { target: String },
    Role { target: String, role: RoomRole },
    Muted { target: String, muted: bool },
}

impl Change {
    fn target(&self) -> Option<&str> {
        match self {
            Change::Topic(_) | Change::InviteOnly(_) => None,
            Change::Invited { target, .. }
            | Change::Kicked { target }
            | Change::Banned { target, .. }
            | Change::Unbanned { target }
            | Change::Role { target, .. }
            | Change::Muted { target, .. } => Some(target),
        }
    }
}

/// Who is told what after a request by `user`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// To the requesting session only (a refusal).
    pub reply: Option<ServerMessage>,
    /// To every session of the user (the answer and its echo on other devices).
    pub to_user: Vec<ServerMessage>,
    /// To the room's other members online.
    pub to_room: Option<(RoomId, ServerMessage)>,
    /// To every member online, the actor's sessions included.
    pub to_everyone_in: Option<(RoomId, ServerMessage)>,
    /// To every session of one user (canonical name), in order: the one a
    /// change is about (a removed user is already unsubscribed, so the
    /// notice comes here too, then `RoomLeft`).
    pub to_target: Vec<(String, ServerMessage)>,
    /// Deliver this room's messages to the user's sessions from now on.
    pub subscribe: Option<RoomId>,
    /// ... or no longer (sent before `to_room`, so the user gets no copy).
    pub unsubscribe: Option<RoomId>,
    /// The target's sessions no longer get the room (after `to_target`).
    pub unsubscribe_target: Option<(String, RoomId)>,
    /// The room is gone: each of these users gets `RoomLeft Deleted` and
    /// nobody receives it any more; its history is deleted.
    pub deleted: Option<(RoomId, ServerMessage, Vec<String>)>,
}

impl Outcome {
    /// What a request's result means for the user and the room. `target`
    /// and `reason` are what a moderation request named (the target's
    /// registered name).
    pub fn of(
        user: &Username,
        target: Option<&Username>,
        reason: &Reason,
        result: Result<Applied, RoomError>,
    ) -> Self {
        match result {
            Ok(Applied::Created { id, info }) => Self {
                to_user: vec![ServerMessage::RoomJoined { info }],
                subscribe: Some(id),
                ..Self::default()
            },
            Ok(Applied::Joined { id, info, newly }) => Self {
                to_room: newly.then(|| {
                    (
                        id,
                        ServerMessage::MemberJoined {
                            room: info.room.clone(),
                            user: user.clone(),
                        },
                    )
                }),
                to_user: vec![ServerMessage::RoomJoined { info }],
                subscribe: Some(id),
                ..Self::default()
            },
            Ok(Applied::Left { id, room }) => Self {
                to_user: vec![ServerMessage::RoomLeft {
                    room: room.clone(),
                    reason: RoomLeaveReason::Left,
                }],
                to_room: Some((
                    id,
                    ServerMessage::MemberLeft {
                        room,
                        user: user.clone(),
                        reason: RoomLeaveReason::Left,
                    },
                )),
                unsubscribe: Some(id),
                ..Self::default()
            },
            Ok(Applied::Changed { id, room, change }) => {
                let target_name = || target.cloned().unwrap_or_else(|| user.clone());
                let wire = match &change {
                    Change::Topic(topic) => RoomChange::Topic {
                        topic: topic.clone(),
                    },
                    Change::InviteOnly(invite_only) => RoomChange::InviteOnly {
                        invite_only: *invite_only,
                    },
                    Change::Invited { .. } => RoomChange::Invited {
                        user: target_name(),
                    },
                    Change::Kicked { .. } => RoomChange::Kicked {
                        user: target_name(),
                        reason: reason.clone(),
                    },
                    Change::Banned { until_ms, .. } => RoomChange::Banned {
                        user: target_name(),
                        reason: reason.clone(),
                        until_ms: *until_ms,
                    },
                    Change::Unbanned { .. } => RoomChange::Unbanned {
                        user: target_name(),
                    },
                    Change::Role { role, .. } => RoomChange::Role {
                        user: target_name(),
                        role: *role,
                    },
                    Change::Muted { muted, .. } => RoomChange::Muted {
                        user: target_name(),
                        muted: *muted,
                    },
                };
                let notice = ServerMessage::RoomChanged {
                    room: room.clone(),
                    actor: user.clone(),
                    change: wire,
                };
                let mut outcome = Self {
                    to_everyone_in: Some((id, notice.clone())),
                    ..Self::default()
                };
                let removed = match &change {
                    Change::Kicked { .. } => Some(RoomLeaveReason::Kicked),
                    Change::Banned { .. } => Some(RoomLeaveReason::Banned),
                    _ => None,
                };
                if let (Some(who), Some(reason)) = (change.target(), removed) {
                    outcome.to_target = vec![
                        (who.to_owned(), notice),
                        (
                            who.to_owned(),
                            ServerMessage::RoomLeft {
                                room: room.clone(),
                                reason,
                            },
                        ),
                    ];
                    outcome.unsubscribe_target = Some((who.to_owned(), id));
                }
                if let Change::Invited { target: who, topic } = &change {
                    outcome.to_target = vec![(
                        who.clone(),
                        ServerMessage::Invited {
                            room,
                            by: user.clone(),
                            topic: topic.clone(),
                        },
                    )];
                }
                outcome
            }
            Ok(Applied::Deleted { id, room, members }) => Self {
                // An administrator outside the room hears it is done; a
                // member (the owner) by the `RoomLeft` every member gets.
                reply: (!members.contains(&user.canonical())).then_some(ServerMessage::Done),
                deleted: Some((
                    id,
                    ServerMessage::RoomLeft {
                        room,
                        reason: RoomLeaveReason::Deleted,
                    },
                    members,
                )),
                ..Self::default()
            },
            Err(e) => Self {
                reply: Some(error_message(e)),
                ..Self::default()
            },
        }
    }
}

/// A page of a room's members, as `Rooms::member_page` finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPage {
    pub room: RoomName,
    pub total: u32,
    /// Canonical names and roles.
    pub members: Vec<(String, proto_core::message::RoomRole)>,
}

/// The audit log's entry for a moderation request by `actor` that did
/// `applied` at `at_ms` (`reason`: what the moderator gave).
pub fn audit_entry(
    actor: &str,
    request: &RoomRequest,
    reason: &Reason,
    applied: &Applied,
    at_ms: u64,
) -> AuditEntry {
    let (room, change) = match applied {
        Applied::Created { info, .. } | Applied::Joined { info, .. } => (info.room.clone(), None),
        Applied::Left { room, .. } | Applied::Deleted { room, .. } => (room.clone(), None),
        Applied::Changed { room, change, .. } => (room.clone(), Some(change)),
    };
    let (action, detail) = match (request, change) {
        (RoomRequest::Kick { .. }, _) => ("kick", reason.as_str().to_owned()),
        (RoomRequest::Ban { .. }, Some(Change::Banned { until_ms, .. })) => {
            let until = if *until_ms == 0 {
                "until unbanned".to_owned()
            } else {
                format!("until {until_ms}")
            };
            if reason.is_empty() {
                ("ban", until)
            } else {
                ("ban", format!("{until}: {}", reason.as_str()))
            }
        }
        (RoomRequest::Ban { .. }, _) => ("ban", reason.as_str().to_owned()),
        (RoomRequest::Unban { .. }, _) => ("unban", String::new()),
        (RoomRequest::Invite { .. }, _) => ("invite", String::new()),
        (RoomRequest::SetTopic { topic, .. }, _) => ("topic", topic.as_str().to_owned()),
        (RoomRequest::SetInviteOnly { invite_only, .. }, _) => {
            ("mode", if *invite_only { "+i" } else { "-i" }.to_owned())
        }
        (RoomRequest::SetRole { role, .. }, _) => ("role", format!("{role:?}").to_lowercase()),
        (RoomRequest::Mute { muted, .. }, _) => {
            ("mute", if *muted { "muted" } else { "unmuted" }.to_owned())
        }
        (RoomRequest::Delete { .. }, _) => ("delete_room", String::new()),
        (RoomRequest::Create { .. }, _) => ("create_room", String::new()),
        (RoomRequest::Join { .. }, _) => ("join", String::new()),
        (RoomRequest::Leave { .. }, _) => ("leave", String::new()),
    };
    let target = match request {
        RoomRequest::Invite { target, .. }
        | RoomRequest::Kick { target, .. }
        | RoomRequest::Ban { target, .. }
        | RoomRequest::Unban { target, .. }
        | RoomRequest::SetRole { target, .. }
        | RoomRequest::Mute { target, .. } => Some(target.clone()),
        _ => None,
    };
    AuditEntry {
        at_ms,
        actor: actor.to_owned(),
        action: action.to_owned(),
        room: Some(room.as_str().to_owned()),
        target,
        detail,
    }
}

/// The `Error` a refused room request gets.
pub fn error_message(e: RoomError) -> ServerMessage {
    let detail = proto_core::message::ErrorDetail::new(&e.to_string())
        .unwrap_or_else(|_| proto_core::message::ErrorDetail::empty());
    ServerMessage::Error {
        code: error_code(e),
        detail,
    }
}

/// The wire code of a refusal.
pub fn error_code(e: RoomError) -> ErrorCode {
    match e {
        RoomError::NoSuchRoom => ErrorCode::NoSuchRoom,
        RoomError::NotAMember => ErrorCode::NotAMember,
        RoomError::RoomExists => ErrorCode::RoomExists,
        RoomError::InviteOnly
        | RoomError::Banned
        | RoomError::Muted
        | RoomError::NotAllowed
        | RoomError::OwnerOnly
        | RoomError::Outranked
        | RoomError::OwnerRole
        | RoomError::GeneralIsPermanent
        | RoomError::NotAdmin => ErrorCode::Forbidden,
        RoomError::TargetNotAMember | RoomError::AlreadyAMember | RoomError::NotBanned => {
            ErrorCode::InvalidMessage
        }
        RoomError::TooManyRoomsForUser(_)
        | RoomError::RoomFull(_)
        | RoomError::TooManyRooms(_)
        | RoomError::TooManyInvites(_) => ErrorCode::LimitReached,
        RoomError::Storage => ErrorCode::Internal,
    }
}

fn append(journal: &mut dyn RoomJournal, event: &RoomEvent) -> Result<(), RoomError> {
    journal.append(event).map_err(|e| {
        tracing::error!(error = %e, "room journal append failed");
        RoomError::Storage
    })
}

/// The rooms, shared by every session.
pub struct Rooms {
    state: RwLock<RoomDirectory>,
    /// Boxed once at start; each append fsyncs anyway.
    journal: Mutex<Box<dyn RoomJournal>>,
    limits: RoomLimits,
}

impl Rooms {
    /// Opens the file backend's journal at `path`; a server without one
    /// starts it with `#general` holding `accounts()` (the upgrade from
    /// before rooms; see [`RoomDirectory::initial_events`]).
    pub fn open(
        path: &Path,
        storage_key: &[u8; 32],
        accounts: impl FnOnce() -> Vec<String>,
        limits: RoomLimits,
    ) -> Result<Self, HistoryError> {
        let journal = RoomsLog::open_or_start(path, storage_key, || {
            RoomDirectory::initial_events(accounts())
        })?;
        Self::with_journal(journal, limits)
    }

    /// The rooms `journal` holds (it replays them once, now).
    pub fn with_journal(
        mut journal: impl RoomJournal + 'static,
        limits: RoomLimits,
    ) -> Result<Self, HistoryError> {
        let events = journal.replay()?;
        Ok(Self {
            state: RwLock::new(RoomDirectory::replay(events)),
            journal: Mutex::new(Box::new(journal)),
            limits,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RoomDirectory> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides, makes durable and applies a request by `user` (canonical)
    /// at `now_ms`; `admin`: `user` is a server administrator. Blocks for
    /// an fsync when something changes.
    pub fn request(
        &self,
        user: &str,
        request: &RoomRequest,
        now_ms: u64,
        admin: bool,
    ) -> Result<Applied, RoomError> {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let decision = self
            .read()
            .decide(user, request, &self.limits, now_ms, admin)?;
        let event = match decision {
            Decision::AlreadyMember(id) => {
                let state = self.read();
                let room = state.get(id).ok_or(RoomError::NoSuchRoom)?;
                return Ok(Applied::Joined {
                    id,
                    info: room.info_for(user),
                    newly: false,
                });
            }
            Decision::Change(event) => event,
            Decision::Ban { ban, also } => {
                // The ban first: a crash before the kick leaves the user
                // banned and still listed as a member, never in and unbanned.
                append(&mut **journal, &ban)?;
                if let Some(kick) = &also {
                    append(&mut **journal, kick)?;
                }
                let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                state.apply(&ban);
                if let Some(kick) = &also {
                    state.apply(kick);
                }
                let RoomEvent::Banned {
                    id,
                    user: target,
                    until_ms,
                } = ban
                else {
                    return Err(RoomError::Storage);
                };
                let room = state.get(id).ok_or(RoomError::NoSuchRoom)?.name.clone();
                return Ok(Applied::Changed {
                    id,
                    room,
                    change: Change::Banned { target, until_ms },
                });
            }
        };
        // The members of a room about to be deleted, to tell them.
        let members: Vec<String> = match &event {
            RoomEvent::Deleted { id } => self
                .read()
                .get(*id)
                .map(|r| r.members.iter().cloned().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        append(&mut **journal, &event)?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let deleted_name = match &event {
            RoomEvent::Deleted { id } => state.get(*id).map(|r| r.name.clone()),
            _ => None,
        };
        state.apply(&event);
        let changed = |state: &RoomDirectory, id: RoomId, change: Change| {
            let room = state.get(id).ok_or(RoomError::NoSuchRoom)?.name.clone();
            Ok::<_, RoomError>(Applied::Changed { id, room, change })
        };
        let applied = match event {
            RoomEvent::Created { id, .. } => Applied::Created {
                id,
                info: state.get(id).ok_or(RoomError::NoSuchRoom)?.info_for(user),
            },
            RoomEvent::Joined { id, .. } => Applied::Joined {
                id,
                info: state.get(id).ok_or(RoomError::NoSuchRoom)?.info_for(user),
                newly: true,
            },
            RoomEvent::Left { id, .. } => Applied::Left {
                id,
                room: state.get(id).ok_or(RoomError::NoSuchRoom)?.name.clone(),
            },
            RoomEvent::Topic { id, .. } => {
                let topic = state.get(id).ok_or(RoomError::NoSuchRoom)?.topic.clone();
                changed(&state, id, Change::Topic(topic))?
            }
            RoomEvent::InviteOnly { id, invite_only } => {
                changed(&state, id, Change::InviteOnly(invite_only))?
            }
            RoomEvent::Invited {
                id, user: target, ..
            } => {
                let topic = state.get(id).ok_or(RoomError::NoSuchRoom)?.topic.clone();
                changed(&state, id, Change::Invited { target, topic })?
            }
            RoomEvent::Kicked { id, user: target } => {
                changed(&state, id, Change::Kicked { target })?
            }
            RoomEvent::Banned {
                id,
                user: target,
                until_ms,
            } => changed(&state, id, Change::Banned { target, until_ms })?,
            RoomEvent::Unbanned { id, user: target } => {
                changed(&state, id, Change::Unbanned { target })?
            }
            RoomEvent::Moderator {
                id,
                user: target,
                moderator,
            } => {
                let role = if moderator {
                    RoomRole::Moderator
                } else {
                    RoomRole::Member
                };
                changed(&state, id, Change::Role { target, role })?
            }
            RoomEvent::Muted {
                id,
                user: target,
                muted,
            } => changed(&state, id, Change::Muted { target, muted })?,
            RoomEvent::Deleted { id } => Applied::Deleted {
                id,
                room: deleted_name.ok_or(RoomError::NoSuchRoom)?,
                members,
            },
        };
        Ok(applied)
    }

    /// Rooms with an open invitation for `user`: each room's name, topic
    /// and who invited (canonical).
    pub fn invitations_of(&self, user: &str) -> Vec<(RoomName, Topic, String)> {
        self.read()
            .invitations_of(user)
            .into_iter()
            .map(|r| {
                let by = r.invited.get(user).cloned().unwrap_or_default();
                (r.name.clone(), r.topic.clone(), by)
            })
            .collect()
    }

    /// A newly registered account joins `#general`. Blocks for an fsync.
    pub fn on_registered(&self, user: &str) -> Result<(), RoomError> {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(event) = self.read().registration_join(user) else {
            return Ok(());
        };
        journal.append(&event).map_err(|e| {
            tracing::error!(error = %e, "room journal append failed");
            RoomError::Storage
        })?;
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(&event);
        Ok(())
    }

    /// The room `name` (its id and its name as created) if `user` may
    /// post in it: a member, not muted.
    pub fn member_room(
        &self,
        user: &str,
        name: &RoomName,
    ) -> Result<(RoomId, RoomName), RoomError> {
        self.read()
            .postable_room(user, name)
            .map(|r| (r.id, r.name.clone()))
    }

    /// The room `name` (id, name as created) if `user` is a member (muted
    /// or not): reading its history.
    pub fn readable_room(
        &self,
        user: &str,
        name: &RoomName,
    ) -> Result<(RoomId, RoomName), RoomError> {
        self.read()
            .member_room(user, name)
            .map(|r| (r.id, r.name.clone()))
    }

    /// Up to `limit` members of room `name` from `offset` on (canonical
    /// names in order, with their roles), the room's name as created and
    /// how many members it has, if `user` is a member.
    pub fn member_page(
        &self,
        user: &str,
        name: &RoomName,
        offset: usize,
        limit: usize,
    ) -> Result<MemberPage, RoomError> {
        let state = self.read();
        let room = state.member_room(user, name)?;
        Ok(MemberPage {
            room: room.name.clone(),
            total: u32::try_from(room.members.len()).unwrap_or(u32::MAX),
            members: room
                .members
                .iter()
                .skip(offset)
                .take(limit)
                .map(|m| (m.clone(), room.role_of(m)))
                .collect(),
        })
    }

    /// How many members `id` has (`None`: no such room).
    pub fn member_count(&self, id: RoomId) -> Option<usize> {
        self.read().get(id).map(|room| room.members.len())
    }

    /// The rooms `user` is in, as the greeting describes them, by name.
    pub fn rooms_of(&self, user: &str) -> Vec<(RoomId, RoomInfo)> {
        let state = self.read();
        let mut rooms: Vec<(RoomId, RoomInfo)> = state
            .rooms_of(user)
            .into_iter()
            .filter_map(|id| state.get(id).map(|r| (id, r.info_for(user))))
            .collect();
        rooms.sort_by_key(|(_, info)| info.room.canonical());
        rooms
    }

    /// `ListRooms` at `now_ms`.
    pub fn list(&self, user: &str, filter: &RoomFilter, now_ms: u64) -> Vec<RoomSummary> {
        self.read().list(user, filter, now_ms)
    }

    /// The name of room `id`.
    pub fn name_of(&self, id: RoomId) -> Option<RoomName> {
        self.read().get(id).map(|r| r.name.clone())
    }

    /// Rooms on the server.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::message::{RoomRole, Topic};

    fn room(s: &str) -> RoomName {
        RoomName::new(s).unwrap()
    }

    fn open(dir: &Path) -> Rooms {
        Rooms::open(
            &dir.join("rooms.log"),
            &[3u8; 32],
            || vec!["alice".into(), "bob".into()],
            RoomLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn members_come_in_pages_by_name_to_members_only() {
        let dir = tempfile::tempdir().unwrap();
        let rooms = Rooms::open(
            &dir.path().join("rooms.log"),
            &[3u8; 32],
            || (0..450).map(|i| format!("user{i:03}")).collect(),
            RoomLimits::default(),
        )
        .unwrap();
        let general = room("#GENERAL");
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let page = rooms.member_page("user007", &general, offset, 200).unwrap();
            assert_eq!((page.room.as_str(), page.total), ("#general", 450));
            assert!(page.members.len() <= 200);
            if page.members.is_empty() {
                break;
            }
            offset += page.members.len();
            seen.extend(page.members);
        }
        let expected: Vec<(String, RoomRole)> = (0..450)
            .map(|i| (format!("user{i:03}"), RoomRole::Member))
            .collect();
        assert_eq!(seen, expected, "every member once, in order");
        assert_eq!(
            rooms.member_page("nobody", &general, 0, 200),
            Err(RoomError::NotAMember)
        );
        assert_eq!(
            rooms.member_page("user007", &room("#nowhere"), 0, 200),
            Err(RoomError::NoSuchRoom)
        );
    }

    #[test]
    fn what_a_user_did_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let rooms = open(dir.path());
        let created = rooms
            .request(
                "alice",
                &RoomRequest::Create {
                    room: room("#Rust"),
                    invite_only: false,
                    topic: Topic::new("crabs").unwrap(),
                },
                0,
                false,
            )
            .unwrap();
        assert!(
            matches!(created, Applied::Created { ref info, .. } if info.role == RoomRole::Owner)
        );
        rooms
            .request(
                "bob",
                &RoomRequest::Join {
                    room: room("#rust"),
                },
                0,
                false,
            )
            .unwrap();
        rooms
            .request(
                "bob",
                &RoomRequest::Leave {
                    room: room("#general"),
                },
                0,
                false,
            )
            .unwrap();
        rooms.on_registered("carol").unwrap();
        drop(rooms);
        let rooms = open(dir.path());
        let names = |user: &str| -> Vec<String> {
            rooms
                .rooms_of(user)
                .into_iter()
                .map(|(_, i)| i.room.as_str().to_owned())
                .collect()
        };
        assert_eq!(names("alice"), ["#general", "#Rust"]);
        assert_eq!(names("bob"), ["#Rust"]);
        assert_eq!(names("carol"), ["#general"]);
        assert_eq!(
            rooms.member_room("bob", &room("#general")),
            Err(RoomError::NotAMember)
        );
        assert_eq!(
            rooms.member_room("bob", &room("#RUST")),
            Ok((2, room("#Rust"))),
            "the name as created"
        );
    }

    #[test]
    fn the_service_runs_on_the_memory_backend_and_journals_every_change() {
        use crate::storage::memory::MemoryRoomJournal;
        let journal = MemoryRoomJournal::new(RoomDirectory::initial_events(["alice".to_owned()]));
        let rooms = Rooms::with_journal(journal, RoomLimits::default()).unwrap();
        rooms
            .request(
                "alice",
                &RoomRequest::Create {
                    room: room("#Rust"),
                    invite_only: false,
                    topic: Topic::empty(),
                },
                0,
                false,
            )
            .unwrap();
        rooms.on_registered("bob").unwrap();
        let names: Vec<String> = rooms
            .rooms_of("alice")
            .into_iter()
            .map(|(_, i)| i.room.as_str().to_owned())
            .collect();
        assert_eq!(names, ["#general", "#Rust"]);
        assert_eq!(rooms.rooms_of("bob").len(), 1);
        // What the journal holds replays to the same rooms.
        let events = rooms.journal.lock().unwrap().replay().unwrap();
        let replayed = RoomDirectory::replay(events);
        assert_eq!(replayed.rooms_of("alice").len(), 2);
        assert_eq!(replayed.rooms_of("bob").len(), 1);
    }

    #[test]
    fn outcomes_tell_the_user_and_the_room() {
        let bob = Username::new("bob").unwrap();
        let info = RoomInfo {
            room: room("#rust"),
            topic: Topic::empty(),
            invite_only: false,
            role: RoomRole::Member,
            members: 2,
        };
        let joined = Outcome::of(
            &bob,
            None,
            &Reason::empty(),
            Ok(Applied::Joined {
                id: 7,
                info: info.clone(),
                newly: true,
            }),
        );
        assert_eq!(joined.subscribe, Some(7));
        assert_eq!(
            joined.to_room,
            Some((
                7,
                ServerMessage::MemberJoined {
                    room: room("#rust"),
                    user: bob.clone()
                }
            ))
        );
        let again = Outcome::of(
            &bob,
            None,
            &Reason::empty(),
            Ok(Applied::Joined {
                id: 7,
                info,
                newly: false,
            }),
        );
        assert_eq!(
            again.to_room, None,
            "no notice for a join that changed nothing"
        );
        let refused = Outcome::of(&bob, None, &Reason::empty(), Err(RoomError::InviteOnly));
        assert!(matches!(
            refused.reply,
            Some(ServerMessage::Error {
                code: ErrorCode::Forbidden,
                ..
            })
        ));
        assert!(refused.to_user.is_empty());
        assert_eq!(refused.subscribe, None);
    }
}
