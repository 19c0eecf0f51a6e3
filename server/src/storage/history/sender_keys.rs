//! Recognising resends: per sender, the `client_id` of their last [`KEYS_PER_SENDER`]
//! keyed messages in one conversation, rebuilt from the log whenever it is loaded.

use std::collections::{HashMap, VecDeque};
use std::mem::size_of;

/// A sender's keyed messages remembered per conversation for recognising
/// resends: a client keeps fewer than this many messages unacknowledged.
pub const KEYS_PER_SENDER: usize = 64;

/// `(client_id, id, timestamp_ms)`.
type Key = (u64, u64, u64);

/// Bytes counted per sender besides their name: the map slot and the queue header.
const SENDER_BYTES: usize = size_of::<(String, VecDeque<Key>)>();
/// Bytes counted per remembered key.
pub(super) const KEY_BYTES: usize = size_of::<Key>();

/// Per sender, the last [`KEYS_PER_SENDER`] keys; `bytes` counts what it holds.
#[derive(Default)]
pub(super) struct SenderKeys {
    by_sender: HashMap<String, VecDeque<Key>>,
    bytes: usize,
}

impl SenderKeys {
    /// The `(id, timestamp_ms)` of `from`'s message with `client_id`, if remembered.
    pub(super) fn find(&self, from: &str, client_id: u64) -> Option<(u64, u64)> {
        self.by_sender.get(from).and_then(|keys| {
            keys.iter()
                .rev()
                .find(|(c, _, _)| *c == client_id)
                .map(|&(_, id, ts)| (id, ts))
        })
    }

    /// Remembers `from`'s message, forgetting their oldest beyond [`KEYS_PER_SENDER`].
    pub(super) fn remember(&mut self, from: &str, client_id: u64, id: u64, timestamp_ms: u64) {
        let keys = match self.by_sender.get_mut(from) {
            Some(keys) => keys,
            None => {
                self.bytes += SENDER_BYTES + from.len();
                self.by_sender.entry(from.to_owned()).or_default()
            }
        };
        if keys.len() == KEYS_PER_SENDER {
            keys.pop_front();
        } else {
            self.bytes += KEY_BYTES;
        }
        keys.push_back((client_id, id, timestamp_ms));
    }

    /// What it holds, as counted against the history cache budget.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// [`bytes`](Self::bytes) counted from scratch (tests check the running count).
    #[cfg(test)]
    pub(super) fn recount(&self) -> usize {
        self.by_sender
            .iter()
            .map(|(from, keys)| SENDER_BYTES + from.len() + keys.len() * KEY_BYTES)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_keeps_only_their_last_keys() {
        let mut keys = SenderKeys::default();
        let n = KEYS_PER_SENDER as u64;
        for k in 0..=n {
            keys.remember("Ann", k, 100 + k, 1000 + k);
        }
        assert_eq!(keys.find("Ann", 0), None, "fell out of the window");
        assert_eq!(keys.find("Ann", 1), Some((101, 1001)));
        assert_eq!(keys.find("Ann", n), Some((100 + n, 1000 + n)));
        assert_eq!(keys.find("Bob", 1), None, "keys are per sender");
    }

    #[test]
    fn the_byte_count_follows_what_is_held_and_stops_growing_at_the_window() {
        let mut keys = SenderKeys::default();
        for k in 0..200 {
            keys.remember("Ann", k, k, k);
            keys.remember(if k % 2 == 0 { "Bob" } else { "Carol" }, k, k, k);
            assert_eq!(keys.bytes(), keys.recount());
        }
        let full = 3 * SENDER_BYTES + "AnnBobCarol".len() + 3 * KEYS_PER_SENDER * KEY_BYTES;
        assert_eq!(keys.bytes(), full);
    }
}
