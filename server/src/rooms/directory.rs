//! The rooms as the server knows them, in memory and without I/O: who is in which room,
//! with what role, who is banned, muted or invited, and every rule a room request must
//! pass (R1). [`RoomDirectory::decide`] checks a request against the state, the limits
//! and the time it is given and answers with the [`RoomEvent`] to make durable (or why
//! not); [`RoomDirectory::apply`] then changes the state. The journal replays through
//! `apply` at start, so what is decided is what survives.
//!
//! Roles rank member < moderator < owner. Moderators and the owner may invite, set the
//! topic and the mode, and kick, ban, unban and mute anyone who ranks below them; only
//! the owner appoints moderators; nobody acts on the owner. The owner, or a server
//! administrator, may delete a room (not `#general`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use proto_core::message::{RoomFilter, RoomInfo, RoomName, RoomRole, RoomSummary, Topic};

use crate::storage::RoomEvent;

/// A room's server-side id: never reused.
pub type RoomId = u64;

/// The seed's room, created by the first start: its history is the
/// pre-rooms `room.log`.
pub const GENERAL_ID: RoomId = 1;

/// Caps on rooms (from `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimits {
    /// Rooms on the server.
    pub max_rooms: usize,
    /// Rooms one user may be in.
    pub max_rooms_per_user: usize,
    /// Members of one room (`#general`'s automatic joins at registration
    /// are not refused by it).
    pub max_members_per_room: usize,
    /// Invitations not yet used, per room.
    pub max_invites_per_room: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        Self {
            max_rooms: 10_000,
            max_rooms_per_user: 100,
            max_members_per_room: 10_000,
            max_invites_per_room: 100,
        }
    }
}

/// One room.
#[derive(Debug, Clone)]
pub struct Room {
    pub id: RoomId,
    pub name: RoomName,
    pub topic: Topic,
    pub invite_only: bool,
    /// Canonical name of the owner.
    pub owner: String,
    /// Canonical names.
    pub members: BTreeSet<String>,
    /// Members appointed by the owner.
    pub moderators: BTreeSet<String>,
    /// Who may not join, until when (ms since the epoch; 0: until unbanned).
    pub bans: BTreeMap<String, u64>,
    /// Who may join although the room is invite-only (until they do), and
    /// who invited them.
    pub invited: BTreeMap<String, String>,
    /// Members who may not post.
    pub muted: BTreeSet<String>,
}

impl Room {
    pub fn role_of(&self, user: &str) -> RoomRole {
        if self.owner == user {
            RoomRole::Owner
        } else if self.moderators.contains(user) {
            RoomRole::Moderator
        } else {
            RoomRole::Member
        }
    }

    /// Whether `user` is banned at `now_ms`.
    pub fn is_banned(&self, user: &str, now_ms: u64) -> bool {
        self.bans
            .get(user)
            .is_some_and(|&until| until == 0 || until > now_ms)
    }

    /// `actor` (a member) may act on `target`: a moderator or the owner,
    /// ranking above the target (a non-member ranks as a member).
    fn outranks(&self, actor: &str, target: &str) -> Result<(), RoomError> {
        let actor_role = self.role_of(actor);
        if actor_role == RoomRole::Member {
            return Err(RoomError::NotAllowed);
        }
        if self.role_of(target).rank() >= actor_role.rank() {
            return Err(RoomError::Outranked);
        }
        Ok(())
    }

    /// What `user` (a member) is told about the room.
    pub fn info_for(&self, user: &str) -> RoomInfo {
        RoomInfo {
            room: self.name.clone(),
            topic: self.topic.clone(),
            invite_only: self.invite_only,
            role: self.role_of(user),
            members: u32::try_from(self.members.len()).unwrap_or(u32::MAX),
        }
    }

    fn summary(&self) -> RoomSummary {
        RoomSummary {
            room: self.name.clone(),
            topic: self.topic.clone(),
            members: u32::try_from(self.members.len()).unwrap_or(u32::MAX),
        }
    }
}

/// A room request, by the user named in [`RoomDirectory::decide`]. Users it
/// names (`target`) are canonical names of existing accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomRequest {
    Create {
        room: RoomName,
        invite_only: bool,
        topic: Topic,
    },
    Join {
        room: RoomName,
    },
    Leave {
        room: RoomName,
    },
    Invite {
        room: RoomName,
        target: String,
    },
    Kick {
        room: RoomName,
        target: String,
    },
    Ban {
        room: RoomName,
        target: String,
        /// 0: until unbanned.
        duration: Duration,
    },
    Unban {
        room: RoomName,
        target: String,
    },
    SetTopic {
        room: RoomName,
        topic: Topic,
    },
    SetInviteOnly {
        room: RoomName,
        invite_only: bool,
    },
    SetRole {
        room: RoomName,
        target: String,
        role: RoomRole,
    },
    Mute {
        room: RoomName,
        target: String,
        muted: bool,
    },
    Delete {
        room: RoomName,
    },
}

impl RoomRequest {
    /// The room it is about.
    pub fn room(&self) -> &RoomName {
        match self {
            Self::Create { room, .. }
            | Self::Join { room }
            | Self::Leave { room }
            | Self::Invite { room, .. }
            | Self::Kick { room, .. }
            | Self::Ban { room, .. }
            | Self::Unban { room, .. }
            | Self::SetTopic { room, .. }
            | Self::SetInviteOnly { room, .. }
            | Self::SetRole { room, .. }
            | Self::Mute { room, .. }
            | Self::Delete { room } => room,
        }
    }

    /// Whether it is a moderation action (it goes to the audit log).
    pub fn is_moderation(&self) -> bool {
        !matches!(
            self,
            Self::Create { .. } | Self::Join { .. } | Self::Leave { .. }
        )
    }
}

/// Why a room request is refused; each is one [`ErrorCode`](proto_core::message::ErrorCode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("no such room")]
    NoSuchRoom,
    #[error("you are not in that room")]
    NotAMember,
    #[error("a room with that name exists")]
    RoomExists,
    #[error("that room is invite-only: you need an invitation")]
    InviteOnly,
    #[error("you are banned from that room")]
    Banned,
    #[error("you are muted in that room")]
    Muted,
    #[error("only the room's moderators and owner may do that")]
    NotAllowed,
    #[error("only the room's owner may do that")]
    OwnerOnly,
    #[error("you cannot act on someone whose role is as high as yours")]
    Outranked,
    #[error("they are not in that room")]
    TargetNotAMember,
    #[error("they are in that room already")]
    AlreadyAMember,
    #[error("they are not banned from that room")]
    NotBanned,
    #[error("the room's ownership cannot be given away")]
    OwnerRole,
    #[error("#general cannot be deleted")]
    GeneralIsPermanent,
    #[error("the room has too many open invitations (at most {0})")]
    TooManyInvites(usize),
    #[error("only the server's administrators may do that")]
    NotAdmin,
    #[error("you are in too many rooms (at most {0})")]
    TooManyRoomsForUser(usize),
    #[error("the room is full (at most {0} members)")]
    RoomFull(usize),
    #[error("the server holds too many rooms (at most {0})")]
    TooManyRooms(usize),
    #[error("the room list could not be saved")]
    Storage,
}

/// What a decided request does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Make this durable, then [`apply`](RoomDirectory::apply) it.
    Change(RoomEvent),
    /// The ban of this room's member: make both durable, in order (the ban
    /// first, so a crash between them leaves the user out, not in).
    Ban {
        ban: RoomEvent,
        also: Option<RoomEvent>,
    },
    /// Nothing to change (joining a room one is in already).
    AlreadyMember(RoomId),
}

/// Every room, by id, by name and by member.
#[derive(Debug, Default)]
pub struct RoomDirectory {
    rooms: BTreeMap<RoomId, Room>,
    by_name: HashMap<String, RoomId>,
    by_user: HashMap<String, BTreeSet<RoomId>>,
    next_id: RoomId,
}

impl RoomDirectory {
    /// The events that start a server's journal: `#general` (owned by nobody
    /// who can log in: the empty name) holding every existing account.
    pub fn initial_events(accounts: impl IntoIterator<Item = String>) -> Vec<RoomEvent> {
        let mut events = vec![RoomEvent::Created {
            id: GENERAL_ID,
            name: RoomName::general().as_str().to_owned(),
            topic: String::new(),
            invite_only: false,
            owner: String::new(),
        }];
        events.extend(accounts.into_iter().map(|user| RoomEvent::Joined {
            id: GENERAL_ID,
            user,
        }));
        events
    }

    /// The state after `events` (a journal replay). An event that does not
    /// fit (a room's name unreadable) is skipped with a warning.
    pub fn replay(events: impl IntoIterator<Item = RoomEvent>) -> Self {
        let mut dir = Self {
            next_id: GENERAL_ID + 1,
            ..Self::default()
        };
        for event in events {
            dir.apply(&event);
        }
        dir
    }

    pub fn get(&self, id: RoomId) -> Option<&Room> {
        self.rooms.get(&id)
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// The room called `name` (any letter case).
    pub fn find(&self, name: &RoomName) -> Option<&Room> {
        self.by_name
            .get(&name.canonical())
            .and_then(|id| self.rooms.get(id))
    }

    /// The rooms `user` is in, by id.
    pub fn rooms_of(&self, user: &str) -> Vec<RoomId> {
        self.by_user
            .get(user)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The room `name` if `user` is in it.
    pub fn member_room(&self, user: &str, name: &RoomName) -> Result<&Room, RoomError> {
        let room = self.find(name).ok_or(RoomError::NoSuchRoom)?;
        if room.members.contains(user) {
            Ok(room)
        } else if room.invite_only {
            // An invite-only room is not shown to non-members.
            Err(RoomError::NoSuchRoom)
        } else {
            Err(RoomError::NotAMember)
        }
    }

    /// The room `name` if `user` may post in it (a member, not muted).
    pub fn postable_room(&self, user: &str, name: &RoomName) -> Result<&Room, RoomError> {
        let room = self.member_room(user, name)?;
        if room.muted.contains(user) {
            return Err(RoomError::Muted);
        }
        Ok(room)
    }

    /// Public rooms and the rooms `user` is in, matching `filter`, by name;
    /// not the rooms `user` is banned from at `now_ms` (R2).
    pub fn list(&self, user: &str, filter: &RoomFilter, now_ms: u64) -> Vec<RoomSummary> {
        let mut rooms: Vec<&Room> = self
            .rooms
            .values()
            .filter(|r| !r.invite_only || r.members.contains(user))
            .filter(|r| !r.is_banned(user, now_ms))
            .filter(|r| filter.matches(&r.name, &r.topic))
            .collect();
        rooms.sort_by_key(|r| r.name.canonical());
        rooms.into_iter().map(Room::summary).collect()
    }

    /// Rooms with an open invitation for `user`.
    pub fn invitations_of(&self, user: &str) -> Vec<&Room> {
        self.rooms
            .values()
            .filter(|r| r.invited.contains_key(user) && !r.members.contains(user))
            .collect()
    }

    /// Checks `request` by `user` at `now_ms` against the rules and
    /// limits. `admin`: `user` is a server administrator (who may delete
    /// any room but `#general`).
    pub fn decide(
        &self,
        user: &str,
        request: &RoomRequest,
        limits: &RoomLimits,
        now_ms: u64,
        admin: bool,
    ) -> Result<Decision, RoomError> {
        let rooms_of_user = self.by_user.get(user).map_or(0, BTreeSet::len);
        match request {
            RoomRequest::Create {
                room,
                invite_only,
                topic,
            } => {
                if self.by_name.contains_key(&room.canonical()) {
                    return Err(RoomError::RoomExists);
                }
                if self.rooms.len() >= limits.max_rooms {
                    return Err(RoomError::TooManyRooms(limits.max_rooms));
                }
                if rooms_of_user >= limits.max_rooms_per_user {
                    return Err(RoomError::TooManyRoomsForUser(limits.max_rooms_per_user));
                }
                Ok(Decision::Change(RoomEvent::Created {
                    id: self.next_id,
                    name: room.as_str().to_owned(),
                    topic: topic.as_str().to_owned(),
                    invite_only: *invite_only,
                    owner: user.to_owned(),
                }))
            }
            RoomRequest::Join { room } => {
                let found = self.find(room).ok_or(RoomError::NoSuchRoom)?;
                if found.members.contains(user) {
                    return Ok(Decision::AlreadyMember(found.id));
                }
                if found.is_banned(user, now_ms) {
                    // Checked before the invite-only rule: an invite-only
                    // room's ban is still a ban, and says so (R2).
                    return Err(RoomError::Banned);
                }
                if found.invite_only && !found.invited.contains_key(user) {
                    return Err(RoomError::InviteOnly);
                }
                if rooms_of_user >= limits.max_rooms_per_user {
                    return Err(RoomError::TooManyRoomsForUser(limits.max_rooms_per_user));
                }
                if found.members.len() >= limits.max_members_per_room {
                    return Err(RoomError::RoomFull(limits.max_members_per_room));
                }
                Ok(Decision::Change(RoomEvent::Joined {
                    id: found.id,
                    user: user.to_owned(),
                }))
            }
            RoomRequest::Leave { room } => {
                let found = self.member_room(user, room)?;
                Ok(Decision::Change(RoomEvent::Left {
                    id: found.id,
                    user: user.to_owned(),
                }))
            }
            RoomRequest::Delete { room } => {
                let found = if admin {
                    self.find(room).ok_or(RoomError::NoSuchRoom)?
                } else {
                    self.member_room(user, room)?
                };
                if found.id == GENERAL_ID {
                    return Err(RoomError::GeneralIsPermanent);
                }
                if !admin && found.role_of(user) != RoomRole::Owner {
                    return Err(RoomError::OwnerOnly);
                }
                Ok(Decision::Change(RoomEvent::Deleted { id: found.id }))
            }
            RoomRequest::SetTopic { room, topic } => {
                let found = self.moderated_room(user, room)?;
                Ok(Decision::Change(RoomEvent::Topic {
                    id: found.id,
                    topic: topic.as_str().to_owned(),
                }))
            }
            RoomRequest::SetInviteOnly { room, invite_only } => {
                let found = self.moderated_room(user, room)?;
                Ok(Decision::Change(RoomEvent::InviteOnly {
                    id: found.id,
                    invite_only: *invite_only,
                }))
            }
            RoomRequest::Invite { room, target } => {
                let found = self.moderated_room(user, room)?;
                if found.members.contains(target) {
                    return Err(RoomError::AlreadyAMember);
                }
                if found.is_banned(target, now_ms) {
                    return Err(RoomError::Banned);
                }
                if !found.invited.contains_key(target)
                    && found.invited.len() >= limits.max_invites_per_room
                {
                    return Err(RoomError::TooManyInvites(limits.max_invites_per_room));
                }
                Ok(Decision::Change(RoomEvent::Invited {
                    id: found.id,
                    user: target.clone(),
                    by: user.to_owned(),
                }))
            }
            RoomRequest::Kick { room, target } => {
                let found = self.member_room(user, room)?;
                found.outranks(user, target)?;
                if !found.members.contains(target) {
                    return Err(RoomError::TargetNotAMember);
                }
                Ok(Decision::Change(RoomEvent::Kicked {
                    id: found.id,
                    user: target.clone(),
                }))
            }
            RoomRequest::Ban {
                room,
                target,
                duration,
            } => {
                let found = self.member_room(user, room)?;
                found.outranks(user, target)?;
                let until_ms = if duration.is_zero() {
                    0
                } else {
                    now_ms.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
                };
                let ban = RoomEvent::Banned {
                    id: found.id,
                    user: target.clone(),
                    until_ms,
                };
                let also = found.members.contains(target).then(|| RoomEvent::Kicked {
                    id: found.id,
                    user: target.clone(),
                });
                Ok(Decision::Ban { ban, also })
            }
            RoomRequest::Unban { room, target } => {
                let found = self.moderated_room(user, room)?;
                if !found.is_banned(target, now_ms) {
                    return Err(RoomError::NotBanned);
                }
                Ok(Decision::Change(RoomEvent::Unbanned {
                    id: found.id,
                    user: target.clone(),
                }))
            }
            RoomRequest::SetRole { room, target, role } => {
                let found = self.member_room(user, room)?;
                if found.role_of(user) != RoomRole::Owner {
                    return Err(RoomError::OwnerOnly);
                }
                if *role == RoomRole::Owner || found.role_of(target) == RoomRole::Owner {
                    return Err(RoomError::OwnerRole);
                }
                if !found.members.contains(target) {
                    return Err(RoomError::TargetNotAMember);
                }
                Ok(Decision::Change(RoomEvent::Moderator {
                    id: found.id,
                    user: target.clone(),
                    moderator: *role == RoomRole::Moderator,
                }))
            }
            RoomRequest::Mute {
                room,
                target,
                muted,
            } => {
                let found = self.member_room(user, room)?;
                found.outranks(user, target)?;
                if !found.members.contains(target) {
                    return Err(RoomError::TargetNotAMember);
                }
                Ok(Decision::Change(RoomEvent::Muted {
                    id: found.id,
                    user: target.clone(),
                    muted: *muted,
                }))
            }
        }
    }

    /// The room `name` if `user` is one of its moderators or its owner.
    fn moderated_room(&self, user: &str, name: &RoomName) -> Result<&Room, RoomError> {
        let room = self.member_room(user, name)?;
        if room.role_of(user) == RoomRole::Member {
            return Err(RoomError::NotAllowed);
        }
        Ok(room)
    }

    /// The event that joins a newly registered account to `#general`, if it
    /// exists and the account is not in it.
    pub fn registration_join(&self, user: &str) -> Option<RoomEvent> {
        let general = self.rooms.get(&GENERAL_ID)?;
        (!general.members.contains(user)).then(|| RoomEvent::Joined {
            id: GENERAL_ID,
            user: user.to_owned(),
        })
    }

    /// Changes the state by a (durable) event.
    pub fn apply(&mut self, event: &RoomEvent) {
        match event {
            RoomEvent::Created {
                id,
                name,
                topic,
                invite_only,
                owner,
            } => {
                let (Ok(name), Ok(topic)) = (RoomName::new(name), Topic::new(topic)) else {
                    tracing::warn!(
                        room = id,
                        "a room in the journal has an invalid name or topic; skipped"
                    );
                    return;
                };
                let mut members = BTreeSet::new();
                if !owner.is_empty() {
                    members.insert(owner.clone());
                    self.by_user.entry(owner.clone()).or_default().insert(*id);
                }
                self.by_name.insert(name.canonical(), *id);
                self.rooms.insert(
                    *id,
                    Room {
                        id: *id,
                        name,
                        topic,
                        invite_only: *invite_only,
                        owner: owner.clone(),
                        members,
                        moderators: BTreeSet::new(),
                        bans: BTreeMap::new(),
                        invited: BTreeMap::new(),
                        muted: BTreeSet::new(),
                    },
                );
                self.next_id = self.next_id.max(id + 1);
            }
            RoomEvent::Joined { id, user } => {
                if let Some(room) = self.rooms.get_mut(id) {
                    room.members.insert(user.clone());
                    room.invited.remove(user);
                    self.by_user.entry(user.clone()).or_default().insert(*id);
                }
            }
            RoomEvent::Left { id, user } | RoomEvent::Kicked { id, user } => {
                self.remove_member(*id, user)
            }
            RoomEvent::Topic { id, topic } => {
                if let (Some(room), Ok(topic)) = (self.rooms.get_mut(id), Topic::new(topic)) {
                    room.topic = topic;
                }
            }
            RoomEvent::InviteOnly { id, invite_only } => {
                if let Some(room) = self.rooms.get_mut(id) {
                    room.invite_only = *invite_only;
                }
            }
            RoomEvent::Invited { id, user, by } => {
                if let Some(room) = self.rooms.get_mut(id) {
                    room.invited.insert(user.clone(), by.clone());
                }
            }
            RoomEvent::Banned { id, user, until_ms } => {
                if let Some(room) = self.rooms.get_mut(id) {
                    room.bans.insert(user.clone(), *until_ms);
                    room.invited.remove(user);
                }
            }
            RoomEvent::Unbanned { id, user } => {
                if let Some(room) = self.rooms.get_mut(id) {
                    room.bans.remove(user);
                }
            }
            RoomEvent::Moderator {
                id,
                user,
                moderator,
            } => {
                if let Some(room) = self.rooms.get_mut(id) {
                    if *moderator {
                        room.moderators.insert(user.clone());
                    } else {
                        room.moderators.remove(user);
                    }
                }
            }
            RoomEvent::Muted { id, user, muted } => {
                if let Some(room) = self.rooms.get_mut(id) {
                    if *muted {
                        room.muted.insert(user.clone());
                    } else {
                        room.muted.remove(user);
                    }
                }
            }
            RoomEvent::Deleted { id } => {
                if let Some(room) = self.rooms.remove(id) {
                    self.by_name.remove(&room.name.canonical());
                    for user in &room.members {
                        self.forget_membership(*id, user);
                    }
                }
            }
        }
    }

    fn remove_member(&mut self, id: RoomId, user: &str) {
        if let Some(room) = self.rooms.get_mut(&id) {
            room.members.remove(user);
            room.moderators.remove(user);
            room.muted.remove(user);
        }
        self.forget_membership(id, user);
    }

    fn forget_membership(&mut self, id: RoomId, user: &str) {
        if let Some(ids) = self.by_user.get_mut(user) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_user.remove(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn room(s: &str) -> RoomName {
        RoomName::new(s).unwrap()
    }

    fn fresh(accounts: &[&str]) -> RoomDirectory {
        RoomDirectory::replay(RoomDirectory::initial_events(
            accounts.iter().map(|s| s.to_string()),
        ))
    }

    fn create(name: &str, invite_only: bool) -> RoomRequest {
        RoomRequest::Create {
            room: room(name),
            invite_only,
            topic: Topic::empty(),
        }
    }

    /// Decides and applies, as the service does.
    fn act(dir: &mut RoomDirectory, user: &str, req: RoomRequest) -> Result<Decision, RoomError> {
        act_at(dir, user, req, NOW)
    }

    fn act_at(
        dir: &mut RoomDirectory,
        user: &str,
        req: RoomRequest,
        now: u64,
    ) -> Result<Decision, RoomError> {
        let decision = dir.decide(user, &req, &RoomLimits::default(), now, false)?;
        apply_decision(dir, &decision);
        Ok(decision)
    }

    fn apply_decision(dir: &mut RoomDirectory, decision: &Decision) {
        match decision {
            Decision::Change(event) => dir.apply(event),
            Decision::Ban { ban, also } => {
                dir.apply(ban);
                if let Some(also) = also {
                    dir.apply(also);
                }
            }
            Decision::AlreadyMember(_) => {}
        }
    }

    #[test]
    fn every_existing_account_starts_in_general_and_nobody_owns_it() {
        let dir = fresh(&["alice", "bob"]);
        let general = dir.find(&room("#GENERAL")).unwrap();
        assert_eq!(general.id, GENERAL_ID);
        assert_eq!(general.members.len(), 2);
        assert_eq!(general.role_of("alice"), RoomRole::Member);
        assert_eq!(dir.rooms_of("bob"), vec![GENERAL_ID]);
    }

    #[test]
    fn the_creator_owns_a_new_room_and_names_are_unique_in_any_case() {
        let mut dir = fresh(&["alice", "bob"]);
        act(&mut dir, "alice", create("#Rust", false)).unwrap();
        let rust = dir.find(&room("#rust")).unwrap();
        assert_eq!(rust.role_of("alice"), RoomRole::Owner);
        assert_eq!(rust.info_for("alice").members, 1);
        assert_eq!(
            act(&mut dir, "bob", create("#RUST", false)),
            Err(RoomError::RoomExists)
        );
    }

    #[test]
    fn anyone_joins_a_public_room_but_not_an_invite_only_one() {
        let mut dir = fresh(&["alice", "bob"]);
        act(&mut dir, "alice", create("#open", false)).unwrap();
        act(&mut dir, "alice", create("#closed", true)).unwrap();
        assert!(matches!(
            act(
                &mut dir,
                "bob",
                RoomRequest::Join {
                    room: room("#open")
                }
            ),
            Ok(Decision::Change(RoomEvent::Joined { .. }))
        ));
        assert_eq!(
            act(
                &mut dir,
                "bob",
                RoomRequest::Join {
                    room: room("#closed")
                }
            ),
            Err(RoomError::InviteOnly)
        );
        assert!(matches!(
            act(
                &mut dir,
                "bob",
                RoomRequest::Join {
                    room: room("#open")
                }
            ),
            Ok(Decision::AlreadyMember(_))
        ));
        assert_eq!(
            act(
                &mut dir,
                "bob",
                RoomRequest::Join {
                    room: room("#nowhere")
                }
            ),
            Err(RoomError::NoSuchRoom)
        );
    }

    #[test]
    fn only_members_leave_and_an_invite_only_room_is_not_shown_to_others() {
        let mut dir = fresh(&["alice", "bob"]);
        act(&mut dir, "alice", create("#open", false)).unwrap();
        act(&mut dir, "alice", create("#closed", true)).unwrap();
        assert_eq!(
            act(
                &mut dir,
                "bob",
                RoomRequest::Leave {
                    room: room("#open")
                }
            ),
            Err(RoomError::NotAMember)
        );
        assert_eq!(
            act(
                &mut dir,
                "bob",
                RoomRequest::Leave {
                    room: room("#closed")
                }
            ),
            Err(RoomError::NoSuchRoom)
        );
        let names = |user: &str| -> Vec<String> {
            dir.list(user, &RoomFilter::default(), NOW)
                .into_iter()
                .map(|r| r.room.as_str().to_owned())
                .collect()
        };
        assert_eq!(names("bob"), ["#general", "#open"]);
        assert_eq!(names("alice"), ["#closed", "#general", "#open"]);
        act(
            &mut dir,
            "alice",
            RoomRequest::Leave {
                room: room("#open"),
            },
        )
        .unwrap();
        assert!(dir.find(&room("#open")).unwrap().members.is_empty());
        assert_eq!(dir.rooms_of("alice"), vec![GENERAL_ID, 3]);
    }

    #[test]
    fn caps_refuse_with_the_limit_named() {
        let mut dir = fresh(&["alice", "bob", "carol"]);
        let limits = RoomLimits {
            max_rooms: 3,
            max_rooms_per_user: 2,
            max_members_per_room: 2,
            max_invites_per_room: 1,
        };
        let mut go = |user: &str, req: RoomRequest| {
            let d = dir.decide(user, &req, &limits, NOW, false)?;
            apply_decision(&mut dir, &d);
            Ok::<_, RoomError>(d)
        };
        go("alice", create("#a", false)).unwrap();
        assert_eq!(
            go("alice", create("#b", false)),
            Err(RoomError::TooManyRoomsForUser(2)),
            "general and #a"
        );
        go("bob", RoomRequest::Join { room: room("#a") }).unwrap();
        assert_eq!(
            go("carol", RoomRequest::Join { room: room("#a") }),
            Err(RoomError::RoomFull(2))
        );
        go("carol", create("#c", false)).unwrap();
        assert_eq!(
            go(
                "carol",
                RoomRequest::Leave {
                    room: room("#general")
                }
            )
            .map(|_| ())
            .and_then(|_| go("carol", create("#d", false)).map(|_| ())),
            Err(RoomError::TooManyRooms(3))
        );
    }

    #[test]
    fn a_replayed_journal_gives_the_same_state_and_ids_are_not_reused() {
        let mut events = RoomDirectory::initial_events(["alice".to_string()]);
        let mut dir = RoomDirectory::replay(events.clone());
        for req in [
            create("#one", false),
            RoomRequest::Leave { room: room("#one") },
        ] {
            if let Decision::Change(e) = dir
                .decide("alice", &req, &RoomLimits::default(), NOW, false)
                .unwrap()
            {
                dir.apply(&e);
                events.push(e);
            }
        }
        let again = RoomDirectory::replay(events);
        assert_eq!(again.rooms_of("alice"), dir.rooms_of("alice"));
        assert_eq!(again.len(), 2);
        let Decision::Change(RoomEvent::Created { id, .. }) = again
            .decide(
                "alice",
                &create("#two", false),
                &RoomLimits::default(),
                NOW,
                false,
            )
            .unwrap()
        else {
            panic!("a create");
        };
        assert_eq!(id, 3);
    }

    #[test]
    fn a_new_account_joins_general_once() {
        let mut dir = fresh(&["alice"]);
        assert_eq!(dir.registration_join("alice"), None);
        let join = dir.registration_join("bob").unwrap();
        dir.apply(&join);
        assert_eq!(dir.rooms_of("bob"), vec![GENERAL_ID]);
    }

    fn target(req: fn(RoomName, String) -> RoomRequest, name: &str, who: &str) -> RoomRequest {
        req(room(name), who.to_owned())
    }

    fn kick(r: RoomName, t: String) -> RoomRequest {
        RoomRequest::Kick { room: r, target: t }
    }

    fn ban(r: RoomName, t: String) -> RoomRequest {
        RoomRequest::Ban {
            room: r,
            target: t,
            duration: Duration::ZERO,
        }
    }

    fn mute(r: RoomName, t: String) -> RoomRequest {
        RoomRequest::Mute {
            room: r,
            target: t,
            muted: true,
        }
    }

    fn op(r: RoomName, t: String) -> RoomRequest {
        RoomRequest::SetRole {
            room: r,
            target: t,
            role: RoomRole::Moderator,
        }
    }

    fn invite(r: RoomName, t: String) -> RoomRequest {
        RoomRequest::Invite { room: r, target: t }
    }

    fn join(name: &str) -> RoomRequest {
        RoomRequest::Join { room: room(name) }
    }

    /// #den: owner "own", moderator "mod", members "ann" and "bob".
    fn den() -> RoomDirectory {
        let mut dir = fresh(&["own", "mod", "ann", "bob", "eve"]);
        act(&mut dir, "own", create("#den", false)).unwrap();
        for user in ["mod", "ann", "bob"] {
            act(&mut dir, user, join("#den")).unwrap();
        }
        act(&mut dir, "own", target(op, "#den", "mod")).unwrap();
        dir
    }

    #[test]
    fn only_the_owner_appoints_moderators_and_ownership_stays() {
        let mut dir = den();
        assert_eq!(
            dir.find(&room("#den")).unwrap().role_of("mod"),
            RoomRole::Moderator
        );
        assert_eq!(
            act(&mut dir, "mod", target(op, "#den", "ann")),
            Err(RoomError::OwnerOnly)
        );
        assert_eq!(
            act(&mut dir, "ann", target(op, "#den", "bob")),
            Err(RoomError::OwnerOnly)
        );
        assert_eq!(
            act(&mut dir, "own", target(op, "#den", "eve")),
            Err(RoomError::TargetNotAMember)
        );
        let crown = RoomRequest::SetRole {
            room: room("#den"),
            target: "ann".into(),
            role: RoomRole::Owner,
        };
        assert_eq!(act(&mut dir, "own", crown), Err(RoomError::OwnerRole));
        let demote = RoomRequest::SetRole {
            room: room("#den"),
            target: "mod".into(),
            role: RoomRole::Member,
        };
        act(&mut dir, "own", demote).unwrap();
        assert_eq!(
            dir.find(&room("#den")).unwrap().role_of("mod"),
            RoomRole::Member
        );
    }

    #[test]
    fn moderators_kick_members_but_not_their_equals_or_the_owner() {
        let mut dir = den();
        assert_eq!(
            act(&mut dir, "ann", target(kick, "#den", "bob")),
            Err(RoomError::NotAllowed)
        );
        assert_eq!(
            act(&mut dir, "mod", target(kick, "#den", "own")),
            Err(RoomError::Outranked)
        );
        act(&mut dir, "own", target(op, "#den", "ann")).unwrap();
        assert_eq!(
            act(&mut dir, "mod", target(kick, "#den", "ann")),
            Err(RoomError::Outranked)
        );
        assert_eq!(
            act(&mut dir, "eve", target(kick, "#den", "bob")),
            Err(RoomError::NotAMember)
        );
        act(&mut dir, "mod", target(kick, "#den", "bob")).unwrap();
        assert!(!dir.find(&room("#den")).unwrap().members.contains("bob"));
        assert_eq!(
            act(&mut dir, "mod", target(kick, "#den", "bob")),
            Err(RoomError::TargetNotAMember)
        );
        // A kicked member of a public room may come back.
        act(&mut dir, "bob", join("#den")).unwrap();
        // The owner removes a moderator.
        act(&mut dir, "own", target(kick, "#den", "mod")).unwrap();
    }

    #[test]
    fn a_ban_removes_keeps_out_hides_the_room_and_ends_when_it_expires_or_is_lifted() {
        let mut dir = den();
        assert_eq!(
            act(&mut dir, "ann", target(ban, "#den", "bob")),
            Err(RoomError::NotAllowed)
        );
        let timed = RoomRequest::Ban {
            room: room("#den"),
            target: "bob".into(),
            duration: Duration::from_secs(60),
        };
        let d = act(&mut dir, "mod", timed).unwrap();
        assert!(matches!(
            d,
            Decision::Ban { ban: RoomEvent::Banned { until_ms, .. }, also: Some(RoomEvent::Kicked { .. }) }
                if until_ms == NOW + 60_000
        ));
        assert_eq!(act(&mut dir, "bob", join("#den")), Err(RoomError::Banned));
        assert!(dir
            .list("bob", &RoomFilter::default(), NOW)
            .iter()
            .all(|r| r.room.as_str() != "#den"));
        // After a minute the ban has run out.
        assert!(act_at(&mut dir, "bob", join("#den"), NOW + 60_001).is_ok());
        // A ban of a non-member needs no kick and holds until lifted.
        let d = act(&mut dir, "mod", target(ban, "#den", "eve")).unwrap();
        assert!(matches!(d, Decision::Ban { also: None, .. }));
        assert_eq!(
            act_at(&mut dir, "eve", join("#den"), u64::MAX),
            Err(RoomError::Banned)
        );
        assert_eq!(
            act(
                &mut dir,
                "ann",
                RoomRequest::Unban {
                    room: room("#den"),
                    target: "eve".into()
                }
            ),
            Err(RoomError::NotAllowed)
        );
        act(
            &mut dir,
            "mod",
            RoomRequest::Unban {
                room: room("#den"),
                target: "eve".into(),
            },
        )
        .unwrap();
        assert!(act(&mut dir, "eve", join("#den")).is_ok());
        assert_eq!(
            act(
                &mut dir,
                "mod",
                RoomRequest::Unban {
                    room: room("#den"),
                    target: "eve".into()
                }
            ),
            Err(RoomError::NotBanned)
        );
    }

    #[test]
    fn an_invitation_opens_an_invite_only_room_once_and_only_moderators_invite() {
        let mut dir = den();
        let closed = RoomRequest::SetInviteOnly {
            room: room("#den"),
            invite_only: true,
        };
        assert_eq!(
            act(&mut dir, "ann", closed.clone()),
            Err(RoomError::NotAllowed)
        );
        act(&mut dir, "mod", closed).unwrap();
        assert_eq!(
            act(&mut dir, "eve", join("#den")),
            Err(RoomError::InviteOnly)
        );
        assert_eq!(
            act(&mut dir, "ann", target(invite, "#den", "eve")),
            Err(RoomError::NotAllowed)
        );
        assert_eq!(
            act(&mut dir, "mod", target(invite, "#den", "ann")),
            Err(RoomError::AlreadyAMember)
        );
        act(&mut dir, "mod", target(invite, "#den", "eve")).unwrap();
        assert_eq!(dir.invitations_of("eve").len(), 1);
        act(&mut dir, "eve", join("#den")).unwrap();
        assert!(dir.invitations_of("eve").is_empty(), "used up");
        act(&mut dir, "eve", RoomRequest::Leave { room: room("#den") }).unwrap();
        assert_eq!(
            act(&mut dir, "eve", join("#den")),
            Err(RoomError::InviteOnly)
        );
        // A banned user cannot be invited.
        act(&mut dir, "own", target(ban, "#den", "eve")).unwrap();
        assert_eq!(
            act(&mut dir, "mod", target(invite, "#den", "eve")),
            Err(RoomError::Banned)
        );
    }

    #[test]
    fn a_muted_member_cannot_post_until_unmuted() {
        let mut dir = den();
        assert_eq!(
            act(&mut dir, "bob", target(mute, "#den", "ann")),
            Err(RoomError::NotAllowed)
        );
        act(&mut dir, "mod", target(mute, "#den", "ann")).unwrap();
        assert_eq!(
            dir.postable_room("ann", &room("#den")).map(|r| r.id),
            Err(RoomError::Muted)
        );
        assert!(dir.postable_room("bob", &room("#den")).is_ok());
        let unmute = RoomRequest::Mute {
            room: room("#den"),
            target: "ann".into(),
            muted: false,
        };
        act(&mut dir, "mod", unmute).unwrap();
        assert!(dir.postable_room("ann", &room("#den")).is_ok());
    }

    #[test]
    fn topic_and_mode_are_for_moderators() {
        let mut dir = den();
        let topic = RoomRequest::SetTopic {
            room: room("#den"),
            topic: Topic::new("quiet please").unwrap(),
        };
        assert_eq!(
            act(&mut dir, "bob", topic.clone()),
            Err(RoomError::NotAllowed)
        );
        act(&mut dir, "mod", topic).unwrap();
        assert_eq!(
            dir.find(&room("#den")).unwrap().topic.as_str(),
            "quiet please"
        );
    }

    #[test]
    fn the_owner_or_an_administrator_deletes_a_room_but_nobody_deletes_general() {
        let mut dir = den();
        let delete = RoomRequest::Delete { room: room("#den") };
        assert_eq!(
            act(&mut dir, "mod", delete.clone()),
            Err(RoomError::OwnerOnly)
        );
        assert_eq!(
            act(&mut dir, "eve", delete.clone()),
            Err(RoomError::NotAMember)
        );
        let by_admin = dir.decide("eve", &delete, &RoomLimits::default(), NOW, true);
        assert!(matches!(
            by_admin,
            Ok(Decision::Change(RoomEvent::Deleted { .. }))
        ));
        act(&mut dir, "own", delete).unwrap();
        assert!(dir.find(&room("#den")).is_none());
        assert_eq!(dir.rooms_of("ann"), vec![GENERAL_ID]);
        let general = RoomRequest::Delete {
            room: room("#general"),
        };
        assert_eq!(
            dir.decide("own", &general, &RoomLimits::default(), NOW, true),
            Err(RoomError::GeneralIsPermanent)
        );
        // The name is free again; the new room gets a new id (a new log).
        let Decision::Change(RoomEvent::Created { id, .. }) =
            act(&mut dir, "ann", create("#den", false)).unwrap()
        else {
            panic!("a create")
        };
        assert_eq!(id, 3);
    }
}
