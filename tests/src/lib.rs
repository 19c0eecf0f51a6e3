//! # tests — SecureChat end to end
//!
//! Real servers on loopback port 0, real clients through `net`, nothing
//! mocked. The harness:
//! - [`test_server`] — [`TestServer`]: an in-process server
//!   (`server::start`) on a temporary data directory with limits tuned for
//!   tests ([`test_limits`]), plain or TLS ([`Transport`]), restartable on
//!   the same data directory.
//! - [`test_client`] — [`TestClient`]: a client pinned to the server's
//!   fingerprint with `register`/`login`/`resume`, chat helpers, `recv()`
//!   bounded by [`RECV_TIMEOUT`] and `expect_*` helpers that answer the
//!   server's Pings and fail the test with a clear message.
//! - [`test_certificate`] — a self-signed certificate for `localhost`
//!   written as PEM files (key 0600).
//! - [`server_process`] — [`ServerProcess`]: the real binary, its
//!   `listening on` line parsed, stopped with SIGKILL or SIGTERM.
//! - [`scenarios`] — the chat scenarios, written once and run over plain
//!   TCP (`tests/chat.rs`) and TLS (`tests/tls.rs`) via [`chat_suite!`].
//! - [`values`] — usernames, room names, passwords and texts from test literals.
//! - [`fixtures`] — committed data directories (one made before OPAQUE).
//!
//! Timeouts in this crate are failure bounds, never synchronisation: every
//! wait is for a message, a closed stream or an exited process.
#![forbid(unsafe_code)]

pub mod fixtures;
pub mod scenarios;
pub mod server_process;
pub mod tampering_proxy;
pub mod test_certificate;
pub mod test_client;
pub mod test_server;
pub mod values;

pub use server_process::ServerProcess;
pub use tampering_proxy::TamperingProxy;
pub use test_certificate::TestCertificate;
pub use test_client::{Endpoint, LoginInfo, SessionEnd, TestClient, END_BOUND, RECV_TIMEOUT};
pub use test_server::{test_limits, ServerOptions, TestServer, Transport, TEST_PASSWORD_HASHING};
pub use values::{password, room, text, username, PASSWORD};

/// Defines one `#[tokio::test]` per scenario in [`scenarios`], all run over
/// `$transport`, so the plain and TLS suites cannot drift apart.
#[macro_export]
macro_rules! chat_suite {
    ($transport:expr) => {
        $crate::chat_suite!(@each $transport;
            broadcast_reaches_everyone_but_the_sender,
            direct_message_reaches_only_its_target,
            direct_message_to_an_unknown_user_is_refused,
            joins_are_announced_and_who_is_online_lists_everyone,
            exit_is_announced_to_the_others_as_exit,
            a_dropped_connection_is_announced_as_dropped,
            server_shutdown_says_goodbye_to_everyone,
            history_is_replayed_after_reconnect,
            a_second_login_replaces_the_first,
            resume_token_works_once_is_rotated_and_is_revoked_by_goodbye,
            chat_before_login_is_refused,
            wrong_password_and_unknown_user_get_the_same_answer,
        );
    };
    (@each $transport:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::scenarios::$name($transport).await;
            }
        )*
    };
}
