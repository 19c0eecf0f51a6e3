//! The room the terminal is in: where plain text goes, shown in the prompt.
//! It follows `/join` (once the server says the user is in the room) and
//! moves to another of the user's rooms when the user leaves it.

use std::collections::BTreeMap;

use client_core::{ClientEvent, GENERAL_ROOM};
use proto_core::message::RoomName;

/// Whether two typed or received names are the same room.
pub fn same_room(a: &str, b: &str) -> bool {
    match (
        RoomName::parse_normalizing(a),
        RoomName::parse_normalizing(b),
    ) {
        (Ok(a), Ok(b)) => a.same_room(&b),
        _ => false,
    }
}

fn key(name: &str) -> String {
    RoomName::parse_normalizing(name)
        .map(|r| r.canonical())
        .unwrap_or_else(|_| name.to_lowercase())
}

#[derive(Debug)]
pub struct CurrentRoom {
    current: String,
    /// A `/join` waiting for its `RoomJoined`: it becomes current then.
    switching_to: Option<String>,
    /// The user's rooms (canonical name to name as created).
    mine: BTreeMap<String, String>,
}

impl CurrentRoom {
    pub fn new(first: &str) -> Self {
        let first = RoomName::parse_normalizing(first)
            .map(|r| r.as_str().to_owned())
            .unwrap_or_else(|_| GENERAL_ROOM.to_owned());
        Self {
            current: first,
            switching_to: None,
            mine: BTreeMap::new(),
        }
    }

    /// Where plain text goes.
    pub fn name(&self) -> &str {
        &self.current
    }

    /// `#general> `.
    pub fn prompt(&self) -> String {
        format!(
            "{}> ",
            proto_core::message::escape_for_display(&self.current)
        )
    }

    pub fn is_member(&self, room: &str) -> bool {
        self.mine.contains_key(&key(room))
    }

    /// The user typed `/join room`: it becomes current once joined.
    pub fn switch_on_join(&mut self, room: &str) {
        self.switching_to = Some(key(room));
    }

    /// Follows the rooms the user is in.
    pub fn see(&mut self, event: &ClientEvent) {
        match event {
            ClientEvent::RoomJoined(room) => {
                let k = key(&room.name);
                self.mine.insert(k.clone(), room.name.clone());
                if self.switching_to.as_deref() == Some(k.as_str()) {
                    self.switching_to = None;
                    self.current = room.name.clone();
                } else if k == key(&self.current) {
                    // The name as created ("#Rust" for a typed "#rust").
                    self.current = room.name.clone();
                }
            }
            ClientEvent::RoomLeft { room, .. } => {
                self.mine.remove(&key(room));
                if key(room) == key(&self.current) {
                    self.current = self
                        .mine
                        .get(&key(GENERAL_ROOM))
                        .or_else(|| self.mine.values().next())
                        .cloned()
                        .unwrap_or_else(|| GENERAL_ROOM.to_owned());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use client_core::{RoomLeaveReason, RoomRole, RoomView};

    fn joined(name: &str) -> ClientEvent {
        ClientEvent::RoomJoined(RoomView {
            name: name.into(),
            topic: String::new(),
            invite_only: false,
            role: RoomRole::Member,
            members: 2,
        })
    }

    #[test]
    fn the_current_room_follows_joins_and_leaves() {
        let mut c = CurrentRoom::new("general");
        assert_eq!(c.name(), "#general");
        c.see(&joined("#general"));
        c.see(&joined("#other"));
        assert_eq!(c.name(), "#general", "a greeting's rooms do not switch");
        c.switch_on_join("rust");
        assert_eq!(c.name(), "#general", "not before the server said so");
        c.see(&joined("#Rust"));
        assert_eq!(c.name(), "#Rust");
        assert_eq!(c.prompt(), "#Rust> ");
        c.see(&ClientEvent::RoomLeft {
            room: "#Rust".into(),
            reason: RoomLeaveReason::Left,
        });
        assert_eq!(c.name(), "#general");
        assert!(c.is_member("#OTHER"));
        assert!(!c.is_member("#rust"));
    }
}
