//! The SecureChat server (filled by issue 3).
