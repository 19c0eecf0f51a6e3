//! The SecureChat server. So far: its storage layer (data directory, key
//! files, encrypted credential store, Argon2id passwords, encrypted history
//! logs). The network side (rooms, limits, the binary) arrives with issue 3.
#![forbid(unsafe_code)]

pub mod storage;
