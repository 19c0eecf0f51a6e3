//! Typed errors of the storage layer.
//!
//! Every error that concerns a file names its path (paths hold no secrets: file names
//! under `chat_histories/` are keyed hashes). No error carries a key, password,
//! password hash or message text.

use std::io;
use std::path::PathBuf;

/// Why the data directory could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    #[error("cannot use data directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Like OpenSSH with an unprotected private key: the server refuses to start.
    #[error(
        "{path} is accessible by group or others (mode {mode:03o}); \
         refusing to start: run `chmod {wanted:03o} {path}`"
    )]
    PermissionsTooOpen {
        path: PathBuf,
        mode: u32,
        wanted: u32,
    },
    #[error("{path} should be a {expected} but is not (symlinks are refused)")]
    WrongFileType {
        path: PathBuf,
        expected: &'static str,
    },
}

/// Why a key file could not be loaded or generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    #[error("cannot read or write key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "key file {path} is accessible by group or others (mode {mode:03o}); \
         refusing to use it: run `chmod 600 {path}`"
    )]
    PermissionsTooOpen { path: PathBuf, mode: u32 },
    #[error("key file {path} holds {found} bytes, expected {expected}; refusing to use it")]
    WrongLength {
        path: PathBuf,
        found: u64,
        expected: usize,
    },
    #[error("key file {path} is not a regular file (symlinks are refused)")]
    NotARegularFile { path: PathBuf },
    #[error("the operating system's random number generator failed")]
    Random,
}

/// Why the encrypted credential store could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot read or write credential store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Fails authentication or does not parse: never overwritten, the server refuses to start.
    #[error(
        "credential store {path} is corrupt, was tampered with, or the storage key is wrong; \
         refusing to use or overwrite it"
    )]
    Corrupt { path: PathBuf },
    #[error("credential store {path} has unsupported version {found}")]
    UnsupportedVersion { path: PathBuf, found: u64 },
    #[error("a cryptographic primitive failed (OS randomness or key derivation)")]
    Crypto,
    #[error("no such account")]
    UnknownAccount,
}

/// Why a registration was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    #[error("the username is already taken")]
    NameTaken,
    /// Nothing was registered: the account is neither in memory nor on disk.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("password longer than {max} bytes")]
    TooLong { max: usize },
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("Argon2 failed: {0}")]
    Argon2(argon2::Error),
    #[error("cannot encode the password hash: {0}")]
    Encoding(argon2::password_hash::Error),
}

/// Why a chat-history operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("cannot read or write history log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A record that is not the last one fails authentication or does not parse: the
    /// log was tampered with (flipped, swapped, reordered or dropped records).
    #[error("history log {path} is corrupt or was tampered with at record {index}")]
    Corrupt { path: PathBuf, index: u64 },
    #[error("history record of {len} bytes exceeds the maximum of {max}")]
    RecordTooLarge { len: usize, max: usize },
    #[error("canonical usernames must not contain NUL")]
    InvalidName,
    /// The thread that owns the logs has stopped (shutdown or a panic).
    #[error("the history writer has stopped")]
    WriterStopped,
    #[error("a cryptographic primitive failed (OS randomness or key derivation)")]
    Crypto,
}

/// Any storage error, for a server that only reports why it cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    History(#[from] HistoryError),
}
