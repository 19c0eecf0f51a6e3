//! The rooms as the server knows them, in memory and without I/O: who is in which room,
//! with what role, and every rule a room request must pass (R1). [`RoomDirectory::decide`]
//! checks a request against the state and the limits and answers with the
//! [`RoomEvent`] to make durable (or why not); [`RoomDirectory::apply`] then changes the
//! state. The journal replays through `apply` at start, so what is decided is what
//! survives.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
}

impl Default for RoomLimits {
    fn default() -> Self {
        Self {
            max_rooms: 10_000,
            max_rooms_per_user: 100,
            max_members_per_room: 10_000,
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
}

impl Room {
    pub fn role_of(&self, user: &str) -> RoomRole {
        if self.owner == user {
            RoomRole::Owner
        } else {
            RoomRole::Member
        }
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

/// A room request, by the user named in [`RoomDirectory::decide`].
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
    #[error("that room is invite-only")]
    InviteOnly,
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

    /// Public rooms and the rooms `user` is in, matching `filter`, by name.
    pub fn list(&self, user: &str, filter: &RoomFilter) -> Vec<RoomSummary> {
        let mut rooms: Vec<&Room> = self
            .rooms
            .values()
            .filter(|r| !r.invite_only || r.members.contains(user))
            .filter(|r| filter.matches(&r.name, &r.topic))
            .collect();
        rooms.sort_by_key(|r| r.name.canonical());
        rooms.into_iter().map(Room::summary).collect()
    }

    /// Checks `request` by `user` against the rules and limits.
    pub fn decide(
        &self,
        user: &str,
        request: &RoomRequest,
        limits: &RoomLimits,
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
                if found.invite_only {
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
        }
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
                    },
                );
                self.next_id = self.next_id.max(id + 1);
            }
            RoomEvent::Joined { id, user } => {
                if let Some(room) = self.rooms.get_mut(id) {
                    room.members.insert(user.clone());
                    self.by_user.entry(user.clone()).or_default().insert(*id);
                }
            }
            RoomEvent::Left { id, user } => {
                if let Some(room) = self.rooms.get_mut(id) {
                    room.members.remove(user);
                }
                if let Some(ids) = self.by_user.get_mut(user) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.by_user.remove(user);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let decision = dir.decide(user, &req, &RoomLimits::default())?;
        if let Decision::Change(event) = &decision {
            dir.apply(event);
        }
        Ok(decision)
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
            dir.list(user, &RoomFilter::default())
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
        };
        let mut go = |user: &str, req: RoomRequest| {
            let d = dir.decide(user, &req, &limits)?;
            if let Decision::Change(e) = &d {
                dir.apply(e);
            }
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
            if let Decision::Change(e) = dir.decide("alice", &req, &RoomLimits::default()).unwrap()
            {
                dir.apply(&e);
                events.push(e);
            }
        }
        let again = RoomDirectory::replay(events);
        assert_eq!(again.rooms_of("alice"), dir.rooms_of("alice"));
        assert_eq!(again.len(), 2);
        let Decision::Change(RoomEvent::Created { id, .. }) = again
            .decide("alice", &create("#two", false), &RoomLimits::default())
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
}
