//! Messages this client sent that the server has not acknowledged yet.
//!
//! Each gets a `client_id` (the idempotency key of `SendRoom`/`SendDirect`)
//! when it is typed. It stays here until the server answers `Stored` or
//! `SendFailed` for that id, and every (re)connect sends all that are left
//! again, in order, with the same ids: the server stores and delivers a
//! resend only once (PROTOCOL.md §7a). Sans-IO: no sockets, no clock.

use std::collections::VecDeque;

use proto_core::message::{ClientMessage, MessageText, RoomName, Username};

/// Messages kept unacknowledged at most (typed offline or in flight). The
/// server recognises a resend among a sender's last 64 keyed messages per
/// conversation, so staying below that keeps resends exact.
pub const MAX_PENDING: usize = 60;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Room(RoomName),
    Direct(Username),
}

/// A message waiting for its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub client_id: u64,
    pub to: Target,
    pub text: MessageText,
}

impl Pending {
    /// What goes on the wire (the same for the first send and a resend).
    pub fn wire(&self) -> ClientMessage {
        match &self.to {
            Target::Room(room) => ClientMessage::SendRoom {
                client_id: self.client_id,
                room: room.clone(),
                text: self.text.clone(),
            },
            Target::Direct(to) => ClientMessage::SendDirect {
                client_id: self.client_id,
                to: to.clone(),
                text: self.text.clone(),
            },
        }
    }
}

/// The outbox was full: the message was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_PENDING} messages are still waiting for the server")]
pub struct OutboxFull;

#[derive(Debug)]
pub struct Outbox {
    pending: VecDeque<Pending>,
    next_client_id: u64,
}

impl Outbox {
    /// `first_client_id` should be random, so that ids from an earlier run
    /// of the client (whose messages the server still remembers) differ.
    pub fn new(first_client_id: u64) -> Self {
        Self {
            pending: VecDeque::new(),
            next_client_id: first_client_id,
        }
    }

    /// Takes a new message and gives it its `client_id`.
    pub fn push(&mut self, to: Target, text: MessageText) -> Result<&Pending, OutboxFull> {
        if self.pending.len() >= MAX_PENDING {
            return Err(OutboxFull);
        }
        let client_id = self.next_client_id;
        self.next_client_id = self.next_client_id.wrapping_add(1);
        self.pending.push_back(Pending {
            client_id,
            to,
            text,
        });
        Ok(self.pending.back().expect("just pushed"))
    }

    /// The server answered for `client_id` (stored or refused): forget it.
    pub fn settle(&mut self, client_id: u64) -> Option<Pending> {
        let at = self.pending.iter().position(|p| p.client_id == client_id)?;
        self.pending.remove(at)
    }

    /// Everything still unacknowledged, oldest first: to send after a
    /// (re)connect.
    pub fn unacknowledged(&self) -> impl Iterator<Item = &Pending> {
        self.pending.iter()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> MessageText {
        MessageText::new(s).unwrap()
    }

    fn general() -> Target {
        Target::Room(RoomName::general())
    }

    #[test]
    fn messages_keep_their_ids_until_settled_and_are_resent_in_order() {
        let mut outbox = Outbox::new(u64::MAX);
        let a = outbox.push(general(), text("a")).unwrap().client_id;
        let b = outbox
            .push(Target::Direct(Username::new("bob").unwrap()), text("b"))
            .unwrap()
            .client_id;
        assert_eq!((a, b), (u64::MAX, 0), "ids wrap instead of overflowing");
        let c = outbox.push(general(), text("c")).unwrap().client_id;
        assert_eq!(outbox.settle(b).map(|p| p.text), Some(text("b")));
        assert_eq!(
            outbox.settle(b),
            None,
            "an answer for a settled id is ignored"
        );
        let resend: Vec<ClientMessage> = outbox.unacknowledged().map(Pending::wire).collect();
        assert_eq!(
            resend,
            [
                ClientMessage::SendRoom {
                    client_id: a,
                    room: RoomName::general(),
                    text: text("a")
                },
                ClientMessage::SendRoom {
                    client_id: c,
                    room: RoomName::general(),
                    text: text("c")
                },
            ]
        );
    }

    #[test]
    fn the_outbox_refuses_more_than_the_server_can_recognise_as_resends() {
        let mut outbox = Outbox::new(1);
        for i in 0..MAX_PENDING {
            outbox.push(general(), text(&format!("m{i}"))).unwrap();
        }
        assert_eq!(
            outbox.push(general(), text("one too many")),
            Err(OutboxFull)
        );
        outbox.settle(1);
        assert!(outbox.push(general(), text("room again")).is_ok());
    }
}
