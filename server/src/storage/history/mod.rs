//! Encrypted, append-only chat-history logs under `chat_histories/`, one per
//! conversation (`room.log`, `room-<hmac>.log`, `dm-<hmac>.log`) plus one per user listing their DM
//! partners (`partners-<hmac>.log`). No file name or byte on disk reveals a username or
//! text (S5).
//!
//! - `record_codec`: one sealed record, pure over bytes (`u32 BE length || nonce ||
//!   AES-256-GCM ciphertext || tag`, AAD = log id || record index).
//! - `log_file`: one log file: scan and authenticate, append, torn tails, fsync.
//! - `keyed_names`: which log a conversation is and the key that seals it.
//! - `entry`: what a record says ([`HistoryEntry`], partner records).
//! - `sender_keys`: the resend keys kept per sender and conversation.
//! - `conversation_cache`: the loaded logs, bounded by bytes, least recently used out.
//! - `store`: [`HistoryStore`], which ties them together.
//!
//! Appends: see [`Durability`]. The default, `WriteThrough`, is one `write(2)` per
//! append (survives kill -9 of the server). The server fsyncs what was written every
//! `history_sync_ms` (default 1 s; [`HistoryStore::take_unsynced`], off the writer) and
//! at shutdown ([`HistoryStore::flush`]); a log whose handle is closed (handle cap) or
//! that is evicted from the cache while written since the last fsync hands its handle to
//! that same periodic sync (at most 64 waiting; beyond, the close fsyncs at once). So a
//! power loss or kernel crash loses at most about a second. Measured before this
//! module was split (release, ~60-byte messages, 2026-12-01, a throwaway harness over
//! this API, not kept): write-through ~650k appends/s; the first load and replay of a
//! 100k-record log ~49 ms (every record is parsed for the resend keys), a cached replay
//! ~13 µs. (Earlier: buffered ~530k/s, fdatasync per append ~280/s.)
//!
//! Resends: a record carries the sender's `client_id` when it had one, and each loaded
//! log keeps, per sender, the `client_id` of their last [`KEYS_PER_SENDER`] keyed
//! messages (parsed from every record when the log is loaded, the text skipped), so a
//! message sent again after a reconnect, even across a restart or an eviction, is
//! answered with the first one's id instead of being stored twice
//! ([`Appended::Duplicate`]).
//!
//! Reading and memory: the first use of a conversation authenticates its whole file
//! once and keeps the last `tail_len` entries and the resend keys in memory; later
//! appends update them, so replay at login reads no file while the conversation stays
//! loaded. Loaded logs are bounded by [`HistoryConfig::cache_bytes`] (the server's
//! `history_cache_bytes`, default 64 MiB, counted as `conversation_cache` says): after
//! every request at most that much is held, least recently used logs evicted first;
//! while a request runs, the logs it uses (up to three for a direct message) are held
//! even beyond it. An evicted log is loaded again from its file on its next use. Open
//! file handles are capped separately by `max_open_files` (least recently used closed
//! first).

mod conversation_cache;
mod entry;
mod keyed_names;
pub(in crate::storage) mod log_file;
mod record_codec;
mod sender_keys;
mod store;

pub use entry::{Appended, Conversation, HistoryEntry};
pub use keyed_names::{DirectLogs, SEED_ROOM};
pub use log_file::Durability;
pub use record_codec::MAX_RECORD_LEN;
pub use sender_keys::KEYS_PER_SENDER;
pub use store::{
    AppendTarget, CacheStats, HistoryConfig, HistoryStore, UnsyncedLogs, DEFAULT_CACHE_BYTES,
    DEFAULT_MAX_OPEN_FILES, DEFAULT_TAIL_LEN,
};
