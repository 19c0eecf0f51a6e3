//! The login exchange from the client's side, sans-IO: what an answer to
//! `Register`, `Login` or `Resume` means, and what to do with the other
//! messages that may arrive before it (PROTOCOL.md: the server may Ping a
//! client whose login it holds back; it answers every request with
//! `AuthOk`, `AuthFailed`, an `Error`, or a `Goodbye` when it closes).
//!
//! The terminal and desktop clients (`client-core`), the load generator
//! and the integration tests all log in; they used to interpret the
//! answer three times, each a little differently. They now share
//! [`login_step`]. It lives here, not in `client-core`, because it is pure
//! message logic that the load generator needs without a UI client's
//! dependencies; the socket loop around it (send, read, answer the Ping)
//! stays with each caller, which owns its session type and its timeouts.

use crate::message::{
    AuthFailure, ClientMessage, ErrorCode, ErrorDetail, GoodbyeReason, ResumeToken, ServerMessage,
    Username,
};

/// The server's answer to a login request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginReply {
    /// Logged in as `username` (the account's registered form).
    Accepted {
        username: Username,
        resume_token: ResumeToken,
        token_lifetime_secs: u32,
    },
    /// Refused: wrong password, name taken, expired token...
    Refused(AuthFailure),
    /// Not answered: rate limited, server full, internal error...
    Error {
        code: ErrorCode,
        detail: ErrorDetail,
    },
    /// The server closed the connection instead of answering.
    Goodbye(GoodbyeReason),
}

impl LoginReply {
    /// A refused resume: the token expired or the server lost it (a crash).
    /// The password still works, on the same connection.
    #[must_use]
    pub fn is_expired_resume(&self) -> bool {
        matches!(self, LoginReply::Refused(AuthFailure::ResumeFailed))
    }
}

/// What to do with one message that arrived while waiting for the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// This is the answer.
    Reply(LoginReply),
    /// Send this (the Pong for a Ping), then keep waiting.
    Respond(ClientMessage),
    /// Not a possible answer to a login request.
    Unexpected(ServerMessage),
}

/// Interprets a message received while a login request is unanswered.
#[must_use]
pub fn login_step(msg: ServerMessage) -> LoginStep {
    match msg {
        ServerMessage::AuthOk {
            username,
            resume_token,
            token_lifetime_secs,
        } => LoginStep::Reply(LoginReply::Accepted {
            username,
            resume_token,
            token_lifetime_secs,
        }),
        ServerMessage::AuthFailed { reason } => LoginStep::Reply(LoginReply::Refused(reason)),
        ServerMessage::Error { code, detail } => {
            LoginStep::Reply(LoginReply::Error { code, detail })
        }
        ServerMessage::Goodbye { reason } => LoginStep::Reply(LoginReply::Goodbye(reason)),
        ServerMessage::Ping { nonce } => LoginStep::Respond(ClientMessage::Pong { nonce }),
        other => LoginStep::Unexpected(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_possible_answer_is_a_reply_and_a_ping_is_answered() {
        let token = ResumeToken::from_bytes([3; 32]);
        let username = Username::new("Ann").unwrap();
        assert_eq!(
            login_step(ServerMessage::AuthOk {
                username: username.clone(),
                resume_token: token.clone(),
                token_lifetime_secs: 60,
            }),
            LoginStep::Reply(LoginReply::Accepted {
                username,
                resume_token: token,
                token_lifetime_secs: 60
            })
        );
        let refused = login_step(ServerMessage::AuthFailed {
            reason: AuthFailure::ResumeFailed,
        });
        assert!(matches!(&refused, LoginStep::Reply(r) if r.is_expired_resume()));
        assert_eq!(
            login_step(ServerMessage::Goodbye {
                reason: GoodbyeReason::ServerShutdown
            }),
            LoginStep::Reply(LoginReply::Goodbye(GoodbyeReason::ServerShutdown))
        );
        assert!(matches!(
            login_step(ServerMessage::Error {
                code: ErrorCode::RateLimited,
                detail: ErrorDetail::empty(),
            }),
            LoginStep::Reply(LoginReply::Error {
                code: ErrorCode::RateLimited,
                ..
            })
        ));
        assert_eq!(
            login_step(ServerMessage::Ping { nonce: 9 }),
            LoginStep::Respond(ClientMessage::Pong { nonce: 9 })
        );
        assert!(matches!(
            login_step(ServerMessage::Pong { nonce: 1 }),
            LoginStep::Unexpected(ServerMessage::Pong { nonce: 1 })
        ));
    }
}
