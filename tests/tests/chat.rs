//! The chat suite over plain TCP: three or more clients, broadcast, direct
//! messages, join/leave notices, shutdown, history, takeover, resume.
//! The same scenarios run over TLS in `tls.rs`.

tests::chat_suite!(tests::Transport::Plain);
