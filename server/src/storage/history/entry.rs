//! What a record says: the JSON plaintexts of the logs' records, and what the store
//! answers with.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One stored chat message (a record of a room or DM log). `Debug` hides the text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: u64,
    pub timestamp_ms: u64,
    /// Sender's display name.
    pub from: String,
    /// Recipient's display name for a direct message; `None` in the room.
    pub to: Option<String>,
    pub text: String,
    /// The sender's idempotency key (`SendRoom`/`SendDirect`), so that a
    /// resend after a reconnect is recognised; absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<u64>,
}

impl fmt::Debug for HistoryEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryEntry")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .finish()
    }
}

/// The part of a stored message that recognises a resend; parsed from every
/// record when a log is loaded (the text is skipped, not copied).
#[derive(Deserialize)]
pub(super) struct KeyedRecord<'a> {
    pub(super) id: u64,
    pub(super) timestamp_ms: u64,
    #[serde(borrow)]
    pub(super) from: Cow<'a, str>,
    #[serde(default)]
    pub(super) client_id: Option<u64>,
}

/// A record of a partners log.
#[derive(Serialize, Deserialize)]
pub(super) struct PartnerRecord {
    pub(super) partner: String,
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// The entry is now in the log.
    New,
    /// The sender's `client_id` was already stored in this conversation as
    /// message `id`: nothing was written.
    Duplicate { id: u64, timestamp_ms: u64 },
}

/// A conversation as seen by one user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Conversation {
    /// A room, by its server id.
    Room { id: u64 },
    /// A direct-message conversation with `partner` (canonical name).
    Direct { partner: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_debug_hides_the_text() {
        let entry = HistoryEntry {
            id: 0,
            timestamp_ms: 1,
            from: "A".into(),
            to: None,
            text: "top secret".into(),
            client_id: None,
        };
        assert!(!format!("{entry:?}").contains("top secret"));
    }

    #[test]
    fn an_entry_without_client_id_is_stored_without_the_field() {
        let entry = HistoryEntry {
            id: 7,
            timestamp_ms: 8,
            from: "A".into(),
            to: Some("B".into()),
            text: "t".into(),
            client_id: None,
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            json,
            r#"{"id":7,"timestamp_ms":8,"from":"A","to":"B","text":"t"}"#
        );
        let keyed = HistoryEntry {
            client_id: Some(9),
            ..entry
        };
        let json = serde_json::to_string(&keyed).unwrap();
        assert!(json.ends_with(r#""text":"t","client_id":9}"#));
        assert_eq!(serde_json::from_str::<HistoryEntry>(&json).unwrap(), keyed);
    }
}
