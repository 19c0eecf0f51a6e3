//! Tokio adapters running `proto-core` over TCP or TLS (filled by issue 3).
