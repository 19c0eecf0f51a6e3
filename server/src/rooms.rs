//! The rooms service: the [`RoomDirectory`] in memory, its journal on disk
//! (`storage::RoomsLog`), and what each room request tells whom
//! ([`Outcome`]).
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
    ErrorCode, RoomFilter, RoomInfo, RoomLeaveReason, RoomName, RoomSummary, ServerMessage,
    Username,
};

pub use directory::{
    Decision, Room, RoomDirectory, RoomError, RoomId, RoomLimits, RoomRequest, GENERAL_ID,
};

use crate::storage::{HistoryError, RoomEvent, RoomsLog};

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
    /// Deliver this room's messages to the user's sessions from now on.
    pub subscribe: Option<RoomId>,
    /// ... or no longer (sent before `to_room`, so the user gets no copy).
    pub unsubscribe: Option<RoomId>,
}

impl Outcome {
    /// What a request's result means for the user and the room.
    pub fn of(user: &Username, result: Result<Applied, RoomError>) -> Self {
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
            Err(e) => Self {
                reply: Some(error_message(e)),
                ..Self::default()
            },
        }
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
        RoomError::InviteOnly => ErrorCode::Forbidden,
        RoomError::TooManyRoomsForUser(_) | RoomError::RoomFull(_) | RoomError::TooManyRooms(_) => {
            ErrorCode::LimitReached
        }
        RoomError::Storage => ErrorCode::Internal,
    }
}

/// The rooms, shared by every session.
pub struct Rooms {
    state: RwLock<RoomDirectory>,
    journal: Mutex<RoomsLog>,
    limits: RoomLimits,
}

impl Rooms {
    /// Opens the journal at `path`; a server without one starts it with
    /// `#general` holding `accounts()` (the upgrade from before rooms).
    pub fn open(
        path: &Path,
        storage_key: &[u8; 32],
        accounts: impl FnOnce() -> Vec<String>,
        limits: RoomLimits,
    ) -> Result<Self, HistoryError> {
        let (journal, events) = RoomsLog::open(path, storage_key, || {
            RoomDirectory::initial_events(accounts())
        })?;
        Ok(Self {
            state: RwLock::new(RoomDirectory::replay(events)),
            journal: Mutex::new(journal),
            limits,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RoomDirectory> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides, makes durable and applies a request by `user` (canonical).
    /// Blocks for an fsync when something changes.
    pub fn request(&self, user: &str, request: &RoomRequest) -> Result<Applied, RoomError> {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let decision = self.read().decide(user, request, &self.limits)?;
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
        };
        if let Err(e) = journal.append(&event) {
            tracing::error!(error = %e, "room journal append failed");
            return Err(RoomError::Storage);
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.apply(&event);
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
        };
        Ok(applied)
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

    /// The room `name` (its id and its name as created) if `user` is a
    /// member (for a message to it).
    pub fn member_room(
        &self,
        user: &str,
        name: &RoomName,
    ) -> Result<(RoomId, RoomName), RoomError> {
        self.read()
            .member_room(user, name)
            .map(|r| (r.id, r.name.clone()))
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

    /// `ListRooms`.
    pub fn list(&self, user: &str, filter: &RoomFilter) -> Vec<RoomSummary> {
        self.read().list(user, filter)
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
            )
            .unwrap();
        rooms
            .request(
                "bob",
                &RoomRequest::Leave {
                    room: room("#general"),
                },
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
        let refused = Outcome::of(&bob, Err(RoomError::InviteOnly));
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
