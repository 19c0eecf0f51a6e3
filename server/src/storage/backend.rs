//! The storage interface: what the services need from a backend, one small trait per
//! kind of data, shaped after the calls the services make.
//!
//! | Trait | Held by | File backend | Memory backend |
//! |---|---|---|---|
//! | [`AccountStore`] | `accounts::Accounts` | [`CredentialStore`](super::CredentialStore) | [`MemoryAccounts`](super::memory::MemoryAccounts) |
//! | [`RoomJournal`] | `rooms::Rooms` | [`RoomsLog`](super::RoomsLog) | [`MemoryRoomJournal`](super::memory::MemoryRoomJournal) |
//! | [`HistoryBackend`] | the `history` writer task | [`HistoryStore`](super::HistoryStore) | [`MemoryHistory`](super::memory::MemoryHistory) |
//! | [`AuditTrail`] | `session::Shared::audit` | [`AuditLog`](super::AuditLog) | [`MemoryAudit`](super::memory::MemoryAudit) |
//! | [`DeviceJournal`] | `devices::Devices` | [`DevicesLog`](super::devices_log::DevicesLog) | [`MemoryDevices`](super::memory::MemoryDevices) |
//! | [`ReadMarkerJournal`] | `read_markers::ReadMarkers` | [`ReadMarkersLog`](super::read_markers_log::ReadMarkersLog) | [`MemoryReadMarkers`](super::memory::MemoryReadMarkers) |
//! | [`TokenSnapshot`] | `app::RunningServer` (start and stop) | [`TokenFile`](super::token_snapshot::TokenFile) | [`MemoryTokens`](super::memory::MemoryTokens) |
//!
//! Every call is synchronous and may block (the file backend fsyncs), as the services
//! expect: accounts are written on the blocking pool, room and audit appends are made
//! from it, and the history writer moves its backend there for anything that reads or
//! syncs. A backend on a database server would sit behind the same calls, doing its
//! round trips on the calling (blocking) thread or on threads of its own; nothing above
//! this module changes. Opening a backend is not part of the traits: each opens its own
//! way (a path and the storage key, a connection string), and `app` picks one.
//!
//! Errors are the storage layer's typed ones ([`StoreError`], [`RegisterError`],
//! [`HistoryError`]); they are `#[non_exhaustive]`, so another backend can add the
//! variants it needs (a lost connection) without breaking a `match`.
//!
//! Dispatch: the history writer is generic over its [`HistoryBackend`] (static
//! dispatch: a message's append is on the delivery hot path). The others are held as
//! `Box<dyn Trait>`, boxed once at start: none is on the message path, and each call
//! writes (most fsync) anyway.

use super::audit_log::AuditEntry;
use super::credential_store::{Account, Credential};
use super::devices_log::{DeviceEvent, DeviceTable};
use super::error::{HistoryError, RegisterError, StoreError};
use super::history::{Appended, CacheStats, Conversation, HistoryEntry};
use super::read_markers_log::{MarkerMoved, MarkerTable};
use super::rooms_log::RoomEvent;
use super::token_file::StoredToken;

/// The accounts: who is registered, with which credential, and whether disabled.
/// Names are canonical (case-folded); `display` is the name as registered.
pub trait AccountStore: Send {
    /// Every account, in no particular order (read once at start).
    fn accounts(&self) -> Vec<Account>;

    /// The account registered under `canonical`, if any.
    fn get(&self, canonical: &str) -> Option<Account>;

    /// Registers `canonical` durably before returning `Ok`: exactly one registration
    /// of a name succeeds ([`RegisterError::NameTaken`] for the others); on any error
    /// nothing is registered.
    fn register(
        &mut self,
        canonical: &str,
        display: &str,
        credential: Credential,
    ) -> Result<(), RegisterError>;

    /// Replaces an account's credential durably (the old one is then gone);
    /// [`StoreError::UnknownAccount`] if there is no such account. On error nothing
    /// changed.
    fn replace_credential(
        &mut self,
        canonical: &str,
        credential: Credential,
    ) -> Result<(), StoreError>;

    /// Disables or re-enables an account durably; [`StoreError::UnknownAccount`] if
    /// there is no such account. On error nothing changed.
    fn set_disabled(&mut self, canonical: &str, disabled: bool) -> Result<(), StoreError>;
}

/// The rooms and their members, as the journal of [`RoomEvent`]s the rooms service
/// replays at start and appends to on every change.
pub trait RoomJournal: Send {
    /// Every event, oldest first: the state is their replay. A backend is started with
    /// its initial events when it opens (see each backend's opener).
    fn replay(&mut self) -> Result<Vec<RoomEvent>, HistoryError>;

    /// Appends `event`, durably before returning `Ok` (R3: a change a client was told
    /// about survives a crash).
    fn append(&mut self, event: &RoomEvent) -> Result<(), HistoryError>;
}

/// Work that makes durable what a [`HistoryBackend`] wrote before it was taken, run
/// away from the writer (on the blocking pool) while appends go on.
pub trait PendingSync: Send + 'static {
    /// Nothing to do (nothing was written since the last sync).
    fn is_empty(&self) -> bool;
    /// Does it, logging what fails (the writer does not wait for it).
    fn run(self);
}

/// The chat histories: rooms' and direct conversations' messages, in id order, with
/// resends recognised by the sender's `client_id`. Owned by one thread (the history
/// writer), so every method takes `&mut self` where it may change anything.
pub trait HistoryBackend: Send + 'static {
    /// A conversation resolved once for an append or a page (the file backend's are
    /// keyed log names, computed with an HMAC).
    type Target: Send + 'static;
    /// What [`take_unsynced`](Self::take_unsynced) hands out.
    type Unsynced: PendingSync;

    /// The target of a message in room `id`.
    fn room_target(&self, id: u64) -> Self::Target;

    /// The target of a direct message between two canonical names (either order);
    /// [`HistoryError::InvalidName`] if a name contains NUL.
    fn direct_target(
        &self,
        a_canonical: &str,
        b_canonical: &str,
    ) -> Result<Self::Target, HistoryError>;

    /// Whether an append to `target` is cheap enough for the async runtime's thread
    /// (touches memory and at most one `write(2)`): else the writer moves the backend
    /// to the blocking pool for it.
    fn is_ready(&self, target: &Self::Target) -> bool;

    /// Appends `entry`, unless its sender already stored its `client_id` in that
    /// conversation ([`Appended::Duplicate`], nothing written). A direct message
    /// records each of the pair as the other's partner first.
    fn append(
        &mut self,
        target: &Self::Target,
        entry: &HistoryEntry,
    ) -> Result<Appended, HistoryError>;

    /// Each of `rooms` (in the order given), then each direct conversation of
    /// `canonical` (in first-contact order), each with its last
    /// `limit_per_conversation` entries, oldest first (capped by what the backend keeps
    /// at hand: the file backend's `tail_len`).
    fn recent_for_user(
        &mut self,
        canonical: &str,
        rooms: &[u64],
        limit_per_conversation: usize,
    ) -> Result<Vec<(Conversation, Vec<HistoryEntry>)>, HistoryError>;

    /// Up to `limit` messages of `target` with an id below `before_id` (0: the newest),
    /// oldest first, and whether none older exists.
    fn page(
        &mut self,
        target: &Self::Target,
        before_id: u64,
        limit: usize,
    ) -> Result<(Vec<HistoryEntry>, bool), HistoryError>;

    /// Deletes room `id`'s history (the room was deleted); none is not an error.
    fn delete_room(&mut self, id: u64) -> Result<(), HistoryError>;

    /// Makes everything appended so far durable (blocking), at shutdown or on request.
    fn flush(&mut self) -> Result<(), HistoryError>;

    /// Takes what was written since the last sync as work to run elsewhere; after
    /// this it counts as synced.
    fn take_unsynced(&mut self) -> Result<Self::Unsynced, HistoryError>;

    /// What the backend holds in memory (for the writer's stats).
    fn cache_stats(&self) -> CacheStats;

    /// Appends to room `id` (see [`append`](Self::append)).
    fn append_room(&mut self, id: u64, entry: &HistoryEntry) -> Result<Appended, HistoryError> {
        let target = self.room_target(id);
        self.append(&target, entry)
    }

    /// Appends a direct message between two canonical names (see
    /// [`append`](Self::append)).
    fn append_direct(
        &mut self,
        a_canonical: &str,
        b_canonical: &str,
        entry: &HistoryEntry,
    ) -> Result<Appended, HistoryError> {
        let target = self.direct_target(a_canonical, b_canonical)?;
        self.append(&target, entry)
    }
}

/// The audit log: who did what to whom, append-only (R3).
pub trait AuditTrail: Send {
    /// Appends `entry`, durably before returning `Ok`.
    fn append(&mut self, entry: &AuditEntry) -> Result<(), HistoryError>;

    /// Every entry, oldest first (the operator's tools and tests).
    fn entries(&self) -> Result<Vec<AuditEntry>, HistoryError>;
}

/// Each user's devices, as the journal of [`DeviceEvent`]s the devices service reads
/// at start and appends to on every login, departure, rename and logout.
pub trait DeviceJournal: Send {
    /// Every user's devices, as the events so far leave them.
    fn table(&mut self) -> Result<DeviceTable, HistoryError>;

    /// Appends `event`: durable before `Ok` when `durable` (a rename, a logout);
    /// otherwise a power loss may lose it (a "last seen"), never reorder it.
    fn append(&mut self, event: &DeviceEvent, durable: bool) -> Result<(), HistoryError>;

    /// Appends `events` in order, as one write where the backend can; all
    /// durable before `Ok` when `durable`.
    fn append_batch(&mut self, events: &[DeviceEvent], durable: bool) -> Result<(), HistoryError> {
        let last = events.len().saturating_sub(1);
        for (i, event) in events.iter().enumerate() {
            self.append(event, durable && i == last)?;
        }
        Ok(())
    }
}

/// How far each user has read each conversation, as the journal of marker moves.
pub trait ReadMarkerJournal: Send {
    /// Every user's markers, each the furthest id moved to.
    fn table(&mut self) -> Result<MarkerTable, HistoryError>;

    /// Appends a move; a power loss may lose the latest moves (not fsynced).
    fn append(&mut self, event: &MarkerMoved) -> Result<(), HistoryError>;
}

/// The live resume tokens' hashes, kept from a graceful stop to the next start.
pub trait TokenSnapshot: Send {
    /// The snapshot, consumed: a second `take` finds nothing (a token redeemed after
    /// a restart cannot come back from an old copy). None saved: empty.
    fn take(&mut self) -> Result<Vec<StoredToken>, StoreError>;

    /// Replaces the snapshot with `tokens`, durably.
    fn save(&mut self, tokens: Vec<StoredToken>) -> Result<(), StoreError>;
}
