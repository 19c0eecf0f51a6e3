//! The storage conformance suite: what every backend must answer, written once against
//! the traits of `backend` and run against the file backend and the memory backend
//! (`suite!` at the end makes one test per backend of each function). A new backend
//! gets a [`Fixture`] and a line in `suite!`.
//!
//! Reopening is a file property (the memory backend has nothing to reopen), so the
//! `file_only` tests check that the file backend gives the same answers after a
//! reopen; the suite checks the answers within one instance.

use super::backend::{
    AccountStore, AuditTrail, DeviceJournal, HistoryBackend, ReadMarkerJournal, RoomJournal,
    TokenSnapshot,
};
use super::devices_log::{DeviceEvent, DeviceRecord, DeviceTable, DevicesLog};
use super::memory::{
    MemoryAccounts, MemoryAudit, MemoryDevices, MemoryHistory, MemoryReadMarkers,
    MemoryRoomJournal, MemoryTokens,
};
use super::read_markers_log::{MarkerKey, MarkerMoved, MarkerTable, ReadMarkersLog};
use super::token_file::StoredToken;
use super::token_snapshot::TokenFile;
use super::{
    Account, Appended, AuditEntry, AuditLog, Conversation, Credential, CredentialStore,
    HistoryConfig, HistoryEntry, HistoryError, HistoryStore, RegisterError, RoomEvent, RoomsLog,
    StoreError,
};

const KEY: [u8; 32] = [0x5c; 32];

/// Opens a backend of each kind. On one fixture, opening again opens the same storage
/// (for the file backend, the same files).
trait Fixture {
    type Accounts: AccountStore;
    type Rooms: RoomJournal;
    type History: HistoryBackend;
    type Audit: AuditTrail;
    type Devices: DeviceJournal;
    type ReadMarkers: ReadMarkerJournal;
    type Tokens: TokenSnapshot;
    fn accounts(&self) -> Self::Accounts;
    /// A journal started with `initial` if it is new.
    fn rooms(&self, initial: Vec<RoomEvent>) -> Self::Rooms;
    /// At most `tail_len` entries per conversation from `recent_for_user`.
    fn history(&self, tail_len: usize) -> Self::History;
    fn audit(&self) -> Self::Audit;
    fn devices(&self) -> Self::Devices;
    fn read_markers(&self) -> Self::ReadMarkers;
    fn tokens(&self) -> Self::Tokens;
}

struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
}

impl Fixture for Files {
    type Accounts = CredentialStore;
    type Rooms = RoomsLog;
    type History = HistoryStore;
    type Audit = AuditLog;
    type Devices = DevicesLog;
    type ReadMarkers = ReadMarkersLog;
    type Tokens = TokenFile;

    fn accounts(&self) -> CredentialStore {
        CredentialStore::open(self.0.path().join("accounts.json.enc"), &KEY).unwrap()
    }

    fn rooms(&self, initial: Vec<RoomEvent>) -> RoomsLog {
        RoomsLog::open_or_start(&self.0.path().join("rooms.log"), &KEY, || initial).unwrap()
    }

    fn history(&self, tail_len: usize) -> HistoryStore {
        let config = HistoryConfig {
            tail_len,
            ..HistoryConfig::default()
        };
        HistoryStore::open_with_config(self.0.path().join("chat_histories"), &KEY, config).unwrap()
    }

    fn audit(&self) -> AuditLog {
        AuditLog::open(&self.0.path().join("audit.log"), &KEY).unwrap()
    }

    fn devices(&self) -> DevicesLog {
        DevicesLog::open_keeping_table(&self.0.path().join("devices.log"), &KEY).unwrap()
    }

    fn read_markers(&self) -> ReadMarkersLog {
        ReadMarkersLog::open(&self.0.path().join("read_markers.log"), &KEY).unwrap()
    }

    fn tokens(&self) -> TokenFile {
        TokenFile::new(&self.0.path().join("resume_tokens.enc"), &KEY)
    }
}

struct Memory;

impl Fixture for Memory {
    type Accounts = MemoryAccounts;
    type Rooms = MemoryRoomJournal;
    type History = MemoryHistory;
    type Audit = MemoryAudit;
    type Devices = MemoryDevices;
    type ReadMarkers = MemoryReadMarkers;
    type Tokens = MemoryTokens;

    fn accounts(&self) -> MemoryAccounts {
        MemoryAccounts::new()
    }

    fn rooms(&self, initial: Vec<RoomEvent>) -> MemoryRoomJournal {
        MemoryRoomJournal::new(initial)
    }

    fn history(&self, tail_len: usize) -> MemoryHistory {
        MemoryHistory::with_tail_len(tail_len)
    }

    fn audit(&self) -> MemoryAudit {
        MemoryAudit::new()
    }

    fn devices(&self) -> MemoryDevices {
        MemoryDevices::new()
    }

    fn read_markers(&self) -> MemoryReadMarkers {
        MemoryReadMarkers::new()
    }

    fn tokens(&self) -> MemoryTokens {
        MemoryTokens::new()
    }
}

// ------------------------------------------------------------------ helpers

/// Registration does not look at the credential: a pre-OPAQUE hash string is the
/// cheapest to make.
fn phc(tag: &str) -> Credential {
    Credential::LegacyPhc(format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${tag}"))
}

fn created(id: u64, name: &str, owner: &str) -> RoomEvent {
    RoomEvent::Created {
        id,
        name: name.into(),
        topic: String::new(),
        invite_only: false,
        owner: owner.into(),
    }
}

fn joined(id: u64, user: &str) -> RoomEvent {
    RoomEvent::Joined {
        id,
        user: user.into(),
    }
}

fn message(id: u64, from: &str, client_id: Option<u64>) -> HistoryEntry {
    HistoryEntry {
        id,
        timestamp_ms: 1000 + id,
        from: from.into(),
        to: None,
        text: format!("message {id}"),
        client_id,
    }
}

fn ids(entries: &[HistoryEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.id).collect()
}

fn audit_entry(action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        at_ms: 42,
        actor: "alice".into(),
        action: action.into(),
        room: Some("#den".into()),
        target: Some(target.into()),
        detail: "spamming".into(),
    }
}

fn canonicals(store: &impl AccountStore) -> Vec<String> {
    let mut names: Vec<String> = store.accounts().into_iter().map(|a| a.canonical).collect();
    names.sort();
    names
}

// ------------------------------------------------------------------ accounts

fn a_registered_account_reads_back_and_its_name_cannot_be_taken_again(f: &impl Fixture) {
    let mut store = f.accounts();
    assert!(store.accounts().is_empty());
    assert_eq!(store.get("alice"), None);
    store.register("alice", "Alice", phc("one")).unwrap();
    store.register("bob", "Bob", phc("two")).unwrap();
    let alice = store.get("alice").expect("registered");
    assert_eq!(
        (alice.username.as_str(), alice.canonical.as_str()),
        ("Alice", "alice")
    );
    assert_eq!(alice.credential, phc("one"));
    assert!(!alice.disabled);
    assert!(alice.created_ms > 0);
    assert_eq!(store.get("Alice"), None, "keyed by the canonical name");
    assert!(matches!(
        store.register("alice", "ALICE", phc("three")),
        Err(RegisterError::NameTaken)
    ));
    assert_eq!(store.get("alice"), Some(alice), "the first one is kept");
    assert_eq!(canonicals(&store), ["alice", "bob"]);
}

fn credentials_and_disabling_change_known_accounts_only(f: &impl Fixture) {
    let mut store = f.accounts();
    store.register("alice", "Alice", phc("old")).unwrap();
    store.replace_credential("alice", phc("new")).unwrap();
    assert_eq!(store.get("alice").unwrap().credential, phc("new"));
    assert!(matches!(
        store.replace_credential("nobody", phc("x")),
        Err(StoreError::UnknownAccount)
    ));
    store.set_disabled("alice", true).unwrap();
    assert!(store.get("alice").unwrap().disabled);
    assert!(matches!(
        store.set_disabled("nobody", true),
        Err(StoreError::UnknownAccount)
    ));
    store.set_disabled("alice", false).unwrap();
    let alice = store.get("alice").unwrap();
    assert!(!alice.disabled);
    assert_eq!(alice.credential, phc("new"));
    assert_eq!(canonicals(&store), ["alice"], "nothing else was created");
}

// --------------------------------------------------------------------- rooms

fn room_events_replay_in_order_after_the_initial_ones(f: &impl Fixture) {
    let initial = vec![created(1, "#general", "alice"), joined(1, "bob")];
    let mut rooms = f.rooms(initial.clone());
    assert_eq!(rooms.replay().unwrap(), initial);
    let more = [
        created(2, "#rust", "bob"),
        joined(2, "carol"),
        RoomEvent::Left {
            id: 1,
            user: "bob".into(),
        },
        RoomEvent::Deleted { id: 2 },
    ];
    for event in &more {
        rooms.append(event).unwrap();
    }
    let expected: Vec<RoomEvent> = initial.iter().chain(&more).cloned().collect();
    assert_eq!(rooms.replay().unwrap(), expected);
    assert_eq!(
        rooms.replay().unwrap(),
        expected,
        "replaying changes nothing"
    );
}

// ------------------------------------------------------------------- history

fn room_and_direct_messages_come_back_per_conversation(f: &impl Fixture) {
    let mut history = f.history(100);
    for id in 1..=3 {
        assert_eq!(
            history.append_room(7, &message(id, "Ann", None)).unwrap(),
            Appended::New
        );
    }
    history.append_room(8, &message(4, "Ann", None)).unwrap();
    history
        .append_direct("ann", "bob", &message(5, "Ann", None))
        .unwrap();
    history
        .append_direct("carol", "ann", &message(6, "Carol", None))
        .unwrap();
    history
        .append_direct("bob", "ann", &message(7, "Bob", None))
        .unwrap();

    let recent = history.recent_for_user("ann", &[8, 7], 2).unwrap();
    let shape: Vec<(Conversation, Vec<u64>)> =
        recent.iter().map(|(c, e)| (c.clone(), ids(e))).collect();
    assert_eq!(
        shape,
        [
            (Conversation::Room { id: 8 }, vec![4]),
            (Conversation::Room { id: 7 }, vec![2, 3]),
            (
                Conversation::Direct {
                    partner: "bob".into()
                },
                vec![5, 7]
            ),
            (
                Conversation::Direct {
                    partner: "carol".into()
                },
                vec![6]
            ),
        ],
        "rooms as asked, then partners in first-contact order, last entries oldest first"
    );
    assert_eq!(recent[2].1[0], message(5, "Ann", None), "whole entries");
    let bob = history.recent_for_user("bob", &[], 10).unwrap();
    assert_eq!(
        bob.iter()
            .map(|(c, e)| (c.clone(), ids(e)))
            .collect::<Vec<_>>(),
        [(
            Conversation::Direct {
                partner: "ann".into()
            },
            vec![5, 7]
        )]
    );
    assert!(history.recent_for_user("dave", &[], 10).unwrap().is_empty());
    history.flush().unwrap();
}

fn recent_returns_at_most_the_tail_length(f: &impl Fixture) {
    let mut history = f.history(3);
    for id in 1..=5 {
        history.append_room(1, &message(id, "Ann", None)).unwrap();
    }
    let recent = history.recent_for_user("ann", &[1], 10).unwrap();
    assert_eq!(ids(&recent[0].1), [3, 4, 5]);
}

fn a_resend_answers_with_the_first_message_and_stores_nothing(f: &impl Fixture) {
    let mut history = f.history(100);
    let first = message(1, "Ann", Some(9));
    assert_eq!(history.append_room(1, &first).unwrap(), Appended::New);
    assert_eq!(
        history.append_room(1, &message(2, "Ann", Some(9))).unwrap(),
        Appended::Duplicate {
            id: 1,
            timestamp_ms: first.timestamp_ms
        }
    );
    // Another sender, another conversation or no key: new messages.
    assert_eq!(
        history.append_room(1, &message(3, "Bob", Some(9))).unwrap(),
        Appended::New
    );
    assert_eq!(
        history.append_room(2, &message(4, "Ann", Some(9))).unwrap(),
        Appended::New
    );
    assert_eq!(
        history.append_room(1, &message(5, "Ann", None)).unwrap(),
        Appended::New
    );
    assert_eq!(
        history
            .append_direct("ann", "bob", &message(6, "Ann", Some(9)))
            .unwrap(),
        Appended::New
    );
    assert_eq!(
        history
            .append_direct("bob", "ann", &message(7, "Ann", Some(9)))
            .unwrap(),
        Appended::Duplicate {
            id: 6,
            timestamp_ms: 1006
        },
        "either order names one conversation"
    );
    let recent = history.recent_for_user("ann", &[1], 10).unwrap();
    assert_eq!(ids(&recent[0].1), [1, 3, 5]);
    assert_eq!(ids(&recent[1].1), [6]);
}

fn pages_go_back_by_id_and_tell_when_nothing_is_older(f: &impl Fixture) {
    let mut history = f.history(100);
    for id in 1..=10 {
        history.append_room(1, &message(id, "Ann", None)).unwrap();
    }
    let room = history.room_target(1);
    let mut page = |before, limit| {
        let (entries, none_older) = history.page(&room, before, limit).unwrap();
        (ids(&entries), none_older)
    };
    assert_eq!(page(0, 3), (vec![8, 9, 10], false));
    assert_eq!(page(8, 3), (vec![5, 6, 7], false));
    assert_eq!(page(4, 3), (vec![1, 2, 3], true));
    assert_eq!(page(1, 3), (vec![], true));
    assert_eq!(page(0, 20), ((1..=10).collect(), true));

    history
        .append_direct("ann", "bob", &message(11, "Ann", None))
        .unwrap();
    history
        .append_direct("bob", "ann", &message(12, "Bob", None))
        .unwrap();
    let direct = history.direct_target("bob", "ann").unwrap();
    let (entries, none_older) = history.page(&direct, 0, 1).unwrap();
    assert_eq!((ids(&entries), none_older), (vec![12], false));
    let nowhere = history.room_target(99);
    assert_eq!(history.page(&nowhere, 0, 5).unwrap(), (vec![], true));
}

fn deleting_a_room_deletes_its_history_only(f: &impl Fixture) {
    let mut history = f.history(100);
    history.append_room(1, &message(1, "Ann", None)).unwrap();
    history.append_room(2, &message(2, "Ann", None)).unwrap();
    history.flush().unwrap();
    history.delete_room(1).unwrap();
    history.delete_room(99).unwrap();
    let recent = history.recent_for_user("ann", &[1, 2], 10).unwrap();
    assert!(recent[0].1.is_empty(), "room 1 is gone");
    assert_eq!(ids(&recent[1].1), [2]);
    let gone = history.room_target(1);
    assert_eq!(history.page(&gone, 0, 5).unwrap(), (vec![], true));
    // The id can hold a history again (ids are not reused, but the store does not care).
    history.append_room(1, &message(3, "Ann", None)).unwrap();
    assert_eq!(
        ids(&history.recent_for_user("ann", &[1], 10).unwrap()[0].1),
        [3]
    );
}

fn names_with_nul_are_refused(f: &impl Fixture) {
    let mut history = f.history(100);
    assert!(matches!(
        history.direct_target("a\0b", "c"),
        Err(HistoryError::InvalidName)
    ));
    assert!(matches!(
        history.append_direct("a", "b\0", &message(1, "A", None)),
        Err(HistoryError::InvalidName)
    ));
    assert!(matches!(
        history.recent_for_user("a\0", &[], 1),
        Err(HistoryError::InvalidName)
    ));
}

// --------------------------------------------------------------------- audit

fn audit_entries_read_back_in_order(f: &impl Fixture) {
    let mut audit = f.audit();
    assert!(audit.entries().unwrap().is_empty());
    let entries = [
        audit_entry("kick", "mallory"),
        audit_entry("ban", "mallory"),
        audit_entry("unban", "eve"),
    ];
    for entry in &entries {
        audit.append(entry).unwrap();
    }
    assert_eq!(audit.entries().unwrap(), entries);
}

// ------------------------------------------------- devices, markers, tokens

fn seen(user: &str, id: u64, at_ms: u64) -> DeviceEvent {
    DeviceEvent::Seen {
        user: user.into(),
        id,
        name: format!("device {id}"),
        at_ms,
        address: "192.0.2.7".into(),
    }
}

/// What the events of `device_events_leave_the_table_they_describe` leave.
fn devices_expected() -> DeviceTable {
    let mut expected = DeviceTable::new();
    expected.entry("alice".into()).or_default().insert(
        1,
        DeviceRecord {
            name: "device 1".into(),
            last_seen_ms: 50,
            address: "192.0.2.7".into(),
        },
    );
    expected
}

fn append_device_events(devices: &mut impl DeviceJournal) {
    let events = [
        (seen("alice", 1, 10), false),
        (seen("alice", 2, 20), false),
        (seen("bob", 1, 30), false),
        (seen("alice", 1, 50), false),
        (
            DeviceEvent::Forgotten {
                user: "alice".into(),
                id: 2,
            },
            true,
        ),
        (DeviceEvent::ForgottenAll { user: "bob".into() }, true),
    ];
    for (event, durable) in &events {
        devices.append(event, *durable).unwrap();
    }
}

fn device_events_leave_the_table_they_describe(f: &impl Fixture) {
    let mut devices = f.devices();
    assert!(devices.table().unwrap().is_empty());
    append_device_events(&mut devices);
    assert_eq!(devices.table().unwrap(), devices_expected());
    assert_eq!(devices.table().unwrap(), devices_expected(), "read again");
}

fn moved(user: &str, key: MarkerKey, up_to: u64) -> MarkerMoved {
    MarkerMoved {
        user: user.into(),
        key,
        up_to,
    }
}

fn markers_expected() -> MarkerTable {
    let mut expected = MarkerTable::new();
    let alice = expected.entry("alice".into()).or_default();
    alice.insert(MarkerKey::Room(1), 10);
    alice.insert(MarkerKey::Direct("bob".into()), 3);
    expected
        .entry("bob".into())
        .or_default()
        .insert(MarkerKey::Room(1), 7);
    expected
}

fn append_marker_moves(markers: &mut impl ReadMarkerJournal) {
    for event in [
        moved("alice", MarkerKey::Room(1), 4),
        moved("alice", MarkerKey::Room(1), 10),
        moved("alice", MarkerKey::Room(1), 5),
        moved("alice", MarkerKey::Direct("bob".into()), 3),
        moved("bob", MarkerKey::Room(1), 7),
    ] {
        markers.append(&event).unwrap();
    }
}

fn read_markers_keep_the_furthest_move(f: &impl Fixture) {
    let mut markers = f.read_markers();
    assert!(markers.table().unwrap().is_empty());
    append_marker_moves(&mut markers);
    assert_eq!(markers.table().unwrap(), markers_expected());
}

fn token(user: &str, byte: u8) -> StoredToken {
    StoredToken {
        hash: [byte; 32],
        user: user.into(),
        device: u64::from(byte),
        expires_ms: 1_000 + u64::from(byte),
    }
}

fn a_token_snapshot_is_taken_once_and_a_save_replaces_it(f: &impl Fixture) {
    let mut tokens = f.tokens();
    assert!(tokens.take().unwrap().is_empty(), "none saved");
    tokens
        .save(vec![token("alice", 1), token("bob", 2)])
        .unwrap();
    assert_eq!(tokens.take().unwrap(), [token("alice", 1), token("bob", 2)]);
    assert!(tokens.take().unwrap().is_empty(), "taken");
    tokens.save(vec![token("alice", 3)]).unwrap();
    tokens.save(vec![token("carol", 4)]).unwrap();
    assert_eq!(tokens.take().unwrap(), [token("carol", 4)]);
}

/// One test per backend of each function: `file_backend::…`, `memory_backend::…`.
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod file_backend {
            $( #[test] fn $test() { super::$test(&super::Files::new()) } )*
        }
        mod memory_backend {
            $( #[test] fn $test() { super::$test(&super::Memory) } )*
        }
    };
}

suite!(
    a_registered_account_reads_back_and_its_name_cannot_be_taken_again,
    credentials_and_disabling_change_known_accounts_only,
    room_events_replay_in_order_after_the_initial_ones,
    room_and_direct_messages_come_back_per_conversation,
    recent_returns_at_most_the_tail_length,
    a_resend_answers_with_the_first_message_and_stores_nothing,
    pages_go_back_by_id_and_tell_when_nothing_is_older,
    deleting_a_room_deletes_its_history_only,
    names_with_nul_are_refused,
    audit_entries_read_back_in_order,
    device_events_leave_the_table_they_describe,
    read_markers_keep_the_furthest_move,
    a_token_snapshot_is_taken_once_and_a_save_replaces_it,
);

/// The same answers after a reopen: what makes the file backend durable.
mod file_only {
    use super::*;

    #[test]
    fn accounts_read_back_the_same_after_a_reopen() {
        let f = Files::new();
        let mut store = f.accounts();
        store.register("alice", "Alice", phc("one")).unwrap();
        store.register("bob", "Bob", phc("two")).unwrap();
        store.set_disabled("bob", true).unwrap();
        let read = |store: &CredentialStore| -> Vec<Option<Account>> {
            vec![
                AccountStore::get(store, "alice"),
                AccountStore::get(store, "bob"),
            ]
        };
        let before = read(&store);
        assert!(before.iter().all(Option::is_some));
        drop(store);
        let mut store = f.accounts();
        assert_eq!(read(&store), before);
        assert!(matches!(
            store.register("alice", "Alice", phc("three")),
            Err(RegisterError::NameTaken)
        ));
    }

    #[test]
    fn room_events_round_trip_through_a_reopen_and_the_initial_ones_are_written_once() {
        let f = Files::new();
        let initial = vec![created(1, "#general", "alice")];
        let mut rooms = f.rooms(initial.clone());
        rooms.append(&joined(1, "bob")).unwrap();
        // Replayed after an append: read from the file, not what open read.
        let expected = vec![initial[0].clone(), joined(1, "bob")];
        assert_eq!(rooms.replay().unwrap(), expected);
        drop(rooms);
        let mut rooms = f.rooms(vec![created(9, "#never", "nobody")]);
        assert_eq!(rooms.replay().unwrap(), expected);
        rooms.append(&joined(1, "carol")).unwrap();
        drop(rooms);
        let mut rooms = f.rooms(Vec::new());
        assert_eq!(rooms.replay().unwrap().last(), Some(&joined(1, "carol")));
    }

    #[test]
    fn history_reads_back_the_same_after_a_reopen_and_still_knows_resends() {
        let f = Files::new();
        let mut history = f.history(100);
        for id in 1..=4 {
            history
                .append_room(1, &message(id, "Ann", Some(id)))
                .unwrap();
        }
        history
            .append_direct("ann", "bob", &message(5, "Ann", None))
            .unwrap();
        let recent = history.recent_for_user("ann", &[1], 10).unwrap();
        let room = history.room_target(1);
        let page = HistoryBackend::page(&mut history, &room, 3, 10).unwrap();
        history.flush().unwrap();
        drop(history);
        let mut history = f.history(100);
        assert_eq!(history.recent_for_user("ann", &[1], 10).unwrap(), recent);
        let room = history.room_target(1);
        assert_eq!(
            HistoryBackend::page(&mut history, &room, 3, 10).unwrap(),
            page
        );
        assert_eq!(
            history.append_room(1, &message(6, "Ann", Some(2))).unwrap(),
            Appended::Duplicate {
                id: 2,
                timestamp_ms: 1002
            }
        );
        history.delete_room(1).unwrap();
        drop(history);
        let mut history = f.history(100);
        assert!(history.recent_for_user("ann", &[1], 10).unwrap()[0]
            .1
            .is_empty());
    }

    #[test]
    fn audit_entries_read_back_the_same_after_a_reopen() {
        let f = Files::new();
        let mut audit = f.audit();
        audit.append(&audit_entry("kick", "mallory")).unwrap();
        drop(audit);
        let mut audit = f.audit();
        audit.append(&audit_entry("ban", "mallory")).unwrap();
        let actions: Vec<String> = audit
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["kick", "ban"]);
    }

    #[test]
    fn devices_and_read_markers_read_back_the_same_after_a_reopen() {
        let f = Files::new();
        let mut devices = f.devices();
        append_device_events(&mut devices);
        drop(devices);
        assert_eq!(f.devices().table().unwrap(), devices_expected());
        let mut markers = f.read_markers();
        append_marker_moves(&mut markers);
        drop(markers);
        assert_eq!(f.read_markers().table().unwrap(), markers_expected());
    }

    #[test]
    fn a_saved_token_snapshot_is_there_for_the_next_start_only() {
        let f = Files::new();
        f.tokens().save(vec![token("alice", 1)]).unwrap();
        assert_eq!(f.tokens().take().unwrap(), [token("alice", 1)]);
        assert!(f.tokens().take().unwrap().is_empty());
    }
}
