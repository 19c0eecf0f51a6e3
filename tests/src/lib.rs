//! End-to-end tests over loopback (filled by issue 3).
