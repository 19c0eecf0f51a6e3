//! The login exchange from the client's side, sans-IO: what an answer to
//! a login request means, and what to do with the other messages that may
//! arrive before it (PROTOCOL.md: the server may Ping a client whose login
//! it holds back; it answers every request with `AuthOk`, `AuthFailed`, an
//! `Error`, or a `Goodbye` when it closes). [`PasswordExchange`] runs the
//! OPAQUE registration or login (two round trips, and the one-time
//! version-1 login of an account made before OPAQUE), [`PasswordChange`]
//! a password change.
//!
//! The terminal and desktop clients (`client-core`), the load generator
//! and the integration tests all log in; they used to interpret the
//! answer three times, each a little differently. They now share
//! [`login_step`]. It lives here, not in `client-core`, because it is pure
//! message logic that the load generator needs without a UI client's
//! dependencies; the socket loop around it (send, read, answer the Ping)
//! stays with each caller, which owns its session type and its timeouts.

use rand_core::CryptoRngCore;

use crate::connection::ChannelBinding;
use crate::message::{
    AuthFailure, ClientMessage, ErrorCode, ErrorDetail, GoodbyeReason, Password, ResumeToken,
    ServerMessage, Username,
};
use crate::opaque::{Argon2id, ClientLoginState, ClientRegistrationState, ExportKey, Ksf};

/// Shortest password a client registers, in characters. The server cannot
/// check it (it never sees the password), so every client does.
pub const MIN_PASSWORD_CHARS: usize = 8;

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

/// What a [`PasswordExchange`] or [`PasswordChange`] does with a message.
#[derive(Debug)]
pub enum ExchangeStep {
    /// Send this (the next step, or a Pong), then keep feeding messages.
    Send(ClientMessage),
    /// Finished: the answer, and the export key when OPAQUE ran.
    Done(LoginReply, Option<ExportKey>),
    /// The server's proof did not verify: the wrong password, or not the
    /// server the password was registered with (an impostor, or a login
    /// relayed from another connection). Nothing was sent; the answer is
    /// [`AuthFailure::LoginFailed`], as the server would have said.
    Refused,
    /// The server asked for the version-1 login (the password itself) for
    /// an account this client knows has logged in with OPAQUE before
    /// ([`PasswordExchange::refuse_legacy_login`]): nothing was sent. An
    /// honest server never asks that; an impostor harvesting passwords
    /// would.
    LegacyRefused,
    /// Not a possible answer at this point.
    Unexpected(ServerMessage),
}

enum ExchangeState<K: Ksf> {
    Registering(ClientRegistrationState<K>),
    LoggingIn(Box<ClientLoginState<K>>),
    /// The finish (or the version-1 login) is sent: the answer comes next.
    Answering,
    /// A state taken by a step that failed.
    Spent,
}

/// A registration or password login over OPAQUE (docs/PROTOCOL.md
/// §"Password authentication"), from the client's side.
///
/// Feeding the server's `RegisterResponse` or `LoginResponse` runs the
/// key stretching (Argon2id, tens of milliseconds): callers on an event
/// loop feed those on a blocking thread ([`Self::is_expensive`]).
pub struct PasswordExchange<K: Ksf = Argon2id> {
    username: Username,
    /// The canonical form: the OPAQUE identity and the OPRF key's name.
    canonical: String,
    password: Password,
    ksf: K,
    binding: ChannelBinding,
    state: ExchangeState<K>,
    /// From the finish, handed out with a successful answer.
    export_key: Option<ExportKey>,
    /// Whether `LegacyLoginRequired` may be followed.
    legacy_allowed: bool,
}

impl<K: Ksf> PasswordExchange<K> {
    /// Starts registering `username` with `password`: the exchange and its
    /// first message. A password shorter than [`MIN_PASSWORD_CHARS`] is
    /// refused here, as the server cannot.
    pub fn register(
        rng: &mut impl CryptoRngCore,
        username: Username,
        password: Password,
        ksf: K,
        binding: ChannelBinding,
    ) -> Result<(Self, ClientMessage), AuthFailure> {
        if password.expose().chars().count() < MIN_PASSWORD_CHARS {
            return Err(AuthFailure::WeakPassword);
        }
        let (state, request) = ClientRegistrationState::start(rng, password.expose().as_bytes())
            .map_err(|_| AuthFailure::LoginFailed)?;
        let msg = ClientMessage::RegisterStart {
            username: username.clone(),
            request: Box::new(request),
        };
        Ok((
            Self::new(
                username,
                password,
                ksf,
                binding,
                ExchangeState::Registering(state),
            ),
            msg,
        ))
    }

    /// Starts logging in as `username` with `password`.
    pub fn login(
        rng: &mut impl CryptoRngCore,
        username: Username,
        password: Password,
        ksf: K,
        binding: ChannelBinding,
    ) -> Result<(Self, ClientMessage), AuthFailure> {
        let (state, request) = ClientLoginState::start(rng, password.expose().as_bytes())
            .map_err(|_| AuthFailure::LoginFailed)?;
        let msg = ClientMessage::LoginStart {
            username: username.clone(),
            request: Box::new(request),
        };
        let state = ExchangeState::LoggingIn(Box::new(state));
        Ok((Self::new(username, password, ksf, binding, state), msg))
    }

    fn new(
        username: Username,
        password: Password,
        ksf: K,
        binding: ChannelBinding,
        state: ExchangeState<K>,
    ) -> Self {
        Self {
            canonical: username.canonical(),
            username,
            password,
            ksf,
            binding,
            state,
            export_key: None,
            legacy_allowed: true,
        }
    }

    /// Refuses to send the password itself if the server asks for the
    /// version-1 login: for an account the client has seen log in with
    /// OPAQUE on this server (whose record therefore exists there).
    pub fn refuse_legacy_login(&mut self) {
        self.legacy_allowed = false;
    }

    /// Whether feeding `msg` runs the key stretching.
    pub fn is_expensive(msg: &ServerMessage) -> bool {
        matches!(
            msg,
            ServerMessage::RegisterResponse { .. } | ServerMessage::LoginResponse { .. }
        )
    }

    /// Feeds one message from the server.
    pub fn handle(&mut self, rng: &mut impl CryptoRngCore, msg: ServerMessage) -> ExchangeStep {
        let state = std::mem::replace(&mut self.state, ExchangeState::Spent);
        match (state, msg) {
            (ExchangeState::Registering(client), ServerMessage::RegisterResponse { response }) => {
                let password = self.password.expose().as_bytes();
                match client.finish(rng, password, &response, &self.canonical, &self.ksf) {
                    Ok((upload, export_key)) => {
                        self.state = ExchangeState::Answering;
                        self.export_key = Some(export_key);
                        ExchangeStep::Send(ClientMessage::RegisterFinish {
                            upload: Box::new(upload),
                        })
                    }
                    Err(_) => ExchangeStep::Refused,
                }
            }
            (ExchangeState::LoggingIn(client), ServerMessage::LoginResponse { response }) => {
                let password = self.password.expose().as_bytes();
                match client.finish(
                    rng,
                    password,
                    &response,
                    &self.canonical,
                    &self.binding,
                    &self.ksf,
                ) {
                    Ok((finalization, export_key)) => {
                        self.state = ExchangeState::Answering;
                        self.export_key = Some(export_key);
                        ExchangeStep::Send(ClientMessage::LoginFinish {
                            finalization: Box::new(finalization),
                        })
                    }
                    // The wrong password, another server, a relay; or a
                    // response that does not even decode.
                    Err(_) => ExchangeStep::Refused,
                }
            }
            // An account made before OPAQUE: the server verifies the
            // password the old way, once, and replaces its hash.
            (ExchangeState::LoggingIn(_), ServerMessage::LegacyLoginRequired)
                if !self.legacy_allowed =>
            {
                ExchangeStep::LegacyRefused
            }
            (ExchangeState::LoggingIn(_), ServerMessage::LegacyLoginRequired) => {
                self.state = ExchangeState::Answering;
                ExchangeStep::Send(ClientMessage::Login {
                    username: self.username.clone(),
                    password: self.password.clone(),
                })
            }
            (state, msg) => {
                let answering = matches!(state, ExchangeState::Answering);
                self.state = state;
                match login_step(msg) {
                    LoginStep::Respond(pong) => ExchangeStep::Send(pong),
                    LoginStep::Reply(reply) => {
                        let accepted = matches!(reply, LoginReply::Accepted { .. });
                        let key = if accepted && answering {
                            self.export_key.take()
                        } else {
                            None
                        };
                        ExchangeStep::Done(reply, key)
                    }
                    LoginStep::Unexpected(other) => ExchangeStep::Unexpected(other),
                }
            }
        }
    }
}

/// What a [`PasswordChange`] does with a message.
#[derive(Debug)]
pub enum ChangeStep {
    /// Send this, then keep feeding the answers.
    Send(ClientMessage),
    /// Changed: this session's new token (every other one was revoked)
    /// and the export key of the new password.
    Changed {
        resume_token: ResumeToken,
        token_lifetime_secs: u32,
        export_key: ExportKey,
    },
    /// The old password is wrong (checked on the client: the server's
    /// proof did not verify). Nothing was sent.
    WrongPassword,
    /// The server refused (`AuthFailed`, or an `Error`).
    Failed(LoginReply),
    /// Not part of the password change: handle it as usual.
    NotMine(ServerMessage),
}

/// A password change (logged in): an OPAQUE login with the old password
/// and a registration of the new one, in one round trip.
pub struct PasswordChange<K: Ksf = Argon2id> {
    canonical: String,
    old: Password,
    new: Password,
    ksf: K,
    binding: ChannelBinding,
    started: Option<(ClientLoginState<K>, ClientRegistrationState<K>)>,
    export_key: Option<ExportKey>,
}

impl<K: Ksf> PasswordChange<K> {
    /// Starts changing `username`'s password from `old` to `new`. A new
    /// password shorter than [`MIN_PASSWORD_CHARS`] is refused here.
    pub fn start(
        rng: &mut impl CryptoRngCore,
        username: &Username,
        old: Password,
        new: Password,
        ksf: K,
        binding: ChannelBinding,
    ) -> Result<(Self, ClientMessage), AuthFailure> {
        if new.expose().chars().count() < MIN_PASSWORD_CHARS {
            return Err(AuthFailure::WeakPassword);
        }
        let (login, request) = ClientLoginState::start(rng, old.expose().as_bytes())
            .map_err(|_| AuthFailure::LoginFailed)?;
        let (registration, registration_request) =
            ClientRegistrationState::start(rng, new.expose().as_bytes())
                .map_err(|_| AuthFailure::LoginFailed)?;
        let msg = ClientMessage::ChangePasswordStart {
            request: Box::new(request),
            registration_request: Box::new(registration_request),
        };
        Ok((
            Self {
                canonical: username.canonical(),
                old,
                new,
                ksf,
                binding,
                started: Some((login, registration)),
                export_key: None,
            },
            msg,
        ))
    }

    /// The new password (for reconnecting with it once changed).
    pub fn new_password(&self) -> &Password {
        &self.new
    }

    /// Whether feeding `msg` runs the key stretching (twice).
    pub fn is_expensive(msg: &ServerMessage) -> bool {
        matches!(msg, ServerMessage::ChangePasswordResponse { .. })
    }

    /// Feeds one message from the server.
    pub fn handle(&mut self, rng: &mut impl CryptoRngCore, msg: ServerMessage) -> ChangeStep {
        match msg {
            ServerMessage::ChangePasswordResponse {
                response,
                registration_response,
            } => {
                let Some((login, registration)) = self.started.take() else {
                    return ChangeStep::NotMine(ServerMessage::ChangePasswordResponse {
                        response,
                        registration_response,
                    });
                };
                let Ok((finalization, _)) = login.finish(
                    rng,
                    self.old.expose().as_bytes(),
                    &response,
                    &self.canonical,
                    &self.binding,
                    &self.ksf,
                ) else {
                    return ChangeStep::WrongPassword;
                };
                let Ok((upload, export_key)) = registration.finish(
                    rng,
                    self.new.expose().as_bytes(),
                    &registration_response,
                    &self.canonical,
                    &self.ksf,
                ) else {
                    // The old password verified, so this is the server's
                    // answer for the new one that does not decode.
                    return ChangeStep::Failed(LoginReply::Error {
                        code: ErrorCode::InvalidMessage,
                        detail: ErrorDetail::new("malformed registration response")
                            .unwrap_or_else(|_| ErrorDetail::empty()),
                    });
                };
                self.export_key = Some(export_key);
                ChangeStep::Send(ClientMessage::ChangePasswordFinish {
                    finalization: Box::new(finalization),
                    upload: Box::new(upload),
                })
            }
            ServerMessage::PasswordChanged {
                resume_token,
                token_lifetime_secs,
            } => match self.export_key.take() {
                Some(export_key) => ChangeStep::Changed {
                    resume_token,
                    token_lifetime_secs,
                    export_key,
                },
                None => ChangeStep::NotMine(ServerMessage::PasswordChanged {
                    resume_token,
                    token_lifetime_secs,
                }),
            },
            ServerMessage::AuthFailed { reason } => ChangeStep::Failed(LoginReply::Refused(reason)),
            ServerMessage::Error { code, detail }
                if matches!(
                    code,
                    ErrorCode::Unsupported
                        | ErrorCode::InvalidMessage
                        | ErrorCode::RateLimited
                        | ErrorCode::Internal
                ) =>
            {
                ChangeStep::Failed(LoginReply::Error { code, detail })
            }
            other => ChangeStep::NotMine(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opaque::{PasswordRecord, ServerKeys, Stretch};
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::from_seed([7; 32])
    }

    fn ksf() -> Argon2id {
        Stretch::CHEAPEST.argon2id().unwrap()
    }

    fn binding() -> ChannelBinding {
        ChannelBinding::from_bytes([3; 32])
    }

    fn pw(s: &str) -> Password {
        Password::new(s.to_owned()).unwrap()
    }

    fn accepted() -> ServerMessage {
        ServerMessage::AuthOk {
            username: Username::new("Ann").unwrap(),
            resume_token: ResumeToken::from_bytes([1; 32]),
            token_lifetime_secs: 60,
        }
    }

    /// Registers "Ann" against `server` the way the server would answer.
    fn register(server: &ServerKeys, password: &str) -> (PasswordRecord, ExportKey) {
        let mut r = rng();
        let (mut exchange, first) = PasswordExchange::register(
            &mut r,
            Username::new("Ann").unwrap(),
            pw(password),
            ksf(),
            binding(),
        )
        .unwrap();
        let ClientMessage::RegisterStart { username, request } = first else {
            panic!("{first:?}");
        };
        assert_eq!(username.as_str(), "Ann");
        let response = server.registration_response(&request, "ann").unwrap();
        let step = exchange.handle(
            &mut r,
            ServerMessage::RegisterResponse {
                response: Box::new(response),
            },
        );
        let ExchangeStep::Send(ClientMessage::RegisterFinish { upload }) = step else {
            panic!("{step:?}");
        };
        let record = PasswordRecord::from_upload(&upload).unwrap();
        let ExchangeStep::Done(LoginReply::Accepted { .. }, Some(key)) =
            exchange.handle(&mut r, accepted())
        else {
            panic!("no export key after registering");
        };
        (record, key)
    }

    fn login(server: &ServerKeys, record: &PasswordRecord, password: &str) -> ExchangeStep {
        let mut r = rng();
        let (mut exchange, first) = PasswordExchange::login(
            &mut r,
            Username::new("ANN").unwrap(),
            pw(password),
            ksf(),
            binding(),
        )
        .unwrap();
        let ClientMessage::LoginStart { request, .. } = first else {
            panic!("{first:?}");
        };
        let (state, response) = server
            .login_start(&mut r, Some(record), &request, "ann", &binding())
            .unwrap();
        // A Ping while the server holds the login is answered.
        assert!(matches!(
            exchange.handle(&mut r, ServerMessage::Ping { nonce: 4 }),
            ExchangeStep::Send(ClientMessage::Pong { nonce: 4 })
        ));
        match exchange.handle(
            &mut r,
            ServerMessage::LoginResponse {
                response: Box::new(response),
            },
        ) {
            ExchangeStep::Send(ClientMessage::LoginFinish { finalization }) => {
                state.finish(&finalization, "ann", &binding()).unwrap();
                exchange.handle(&mut r, accepted())
            }
            other => other,
        }
    }

    #[test]
    fn a_registered_password_logs_in_with_the_same_export_key_in_any_letter_case() {
        let server = ServerKeys::generate(&mut rng());
        let (record, at_registration) = register(&server, "correct horse");
        let ExchangeStep::Done(LoginReply::Accepted { .. }, Some(at_login)) =
            login(&server, &record, "correct horse")
        else {
            panic!("login failed");
        };
        assert_eq!(at_registration.expose(), at_login.expose());
    }

    #[test]
    fn a_wrong_password_is_refused_on_the_client_without_sending_a_finish() {
        let server = ServerKeys::generate(&mut rng());
        let (record, _) = register(&server, "correct horse");
        assert!(matches!(
            login(&server, &record, "wrong horse"),
            ExchangeStep::Refused
        ));
    }

    #[test]
    fn a_short_password_is_refused_before_registering() {
        let result = PasswordExchange::register(
            &mut rng(),
            Username::new("Ann").unwrap(),
            pw("seven77"),
            ksf(),
            binding(),
        );
        assert!(matches!(result, Err(AuthFailure::WeakPassword)));
    }

    #[test]
    fn a_legacy_account_gets_the_version_1_login_once_asked() {
        let mut r = rng();
        let (mut exchange, _) = PasswordExchange::login(
            &mut r,
            Username::new("Ann").unwrap(),
            pw("old password"),
            ksf(),
            binding(),
        )
        .unwrap();
        let step = exchange.handle(&mut r, ServerMessage::LegacyLoginRequired);
        let ExchangeStep::Send(ClientMessage::Login { username, password }) = step else {
            panic!("{step:?}");
        };
        assert_eq!(
            (username.as_str(), password.expose()),
            ("Ann", "old password")
        );
        // The answer ends it, with no export key (OPAQUE did not run).
        assert!(matches!(
            exchange.handle(&mut r, accepted()),
            ExchangeStep::Done(LoginReply::Accepted { .. }, None)
        ));
    }

    #[test]
    fn a_client_that_knows_the_account_is_opaque_never_sends_the_password() {
        let mut r = rng();
        let (mut exchange, _) = PasswordExchange::login(
            &mut r,
            Username::new("Ann").unwrap(),
            pw("correct horse"),
            ksf(),
            binding(),
        )
        .unwrap();
        exchange.refuse_legacy_login();
        assert!(matches!(
            exchange.handle(&mut r, ServerMessage::LegacyLoginRequired),
            ExchangeStep::LegacyRefused
        ));
    }

    #[test]
    fn a_password_change_checks_the_old_password_on_the_client() {
        let server = ServerKeys::generate(&mut rng());
        let (record, _) = register(&server, "correct horse");
        let ann = Username::new("Ann").unwrap();
        for (old, works) in [("wrong horse", false), ("correct horse", true)] {
            let mut r = rng();
            let (mut change, first) =
                PasswordChange::start(&mut r, &ann, pw(old), pw("new battery"), ksf(), binding())
                    .unwrap();
            let ClientMessage::ChangePasswordStart {
                request,
                registration_request,
            } = first
            else {
                panic!("{first:?}");
            };
            let (state, response) = server
                .login_start(&mut r, Some(&record), &request, "ann", &binding())
                .unwrap();
            let registration_response = server
                .registration_response(&registration_request, "ann")
                .unwrap();
            // Chat traffic meanwhile is not the change's.
            assert!(matches!(
                change.handle(&mut r, ServerMessage::Pong { nonce: 1 }),
                ChangeStep::NotMine(ServerMessage::Pong { nonce: 1 })
            ));
            let step = change.handle(
                &mut r,
                ServerMessage::ChangePasswordResponse {
                    response: Box::new(response),
                    registration_response: Box::new(registration_response),
                },
            );
            if !works {
                assert!(matches!(step, ChangeStep::WrongPassword), "{step:?}");
                continue;
            }
            let ChangeStep::Send(ClientMessage::ChangePasswordFinish {
                finalization,
                upload,
            }) = step
            else {
                panic!("{step:?}");
            };
            state.finish(&finalization, "ann", &binding()).unwrap();
            let new_record = PasswordRecord::from_upload(&upload).unwrap();
            assert!(matches!(
                change.handle(
                    &mut r,
                    ServerMessage::PasswordChanged {
                        resume_token: ResumeToken::from_bytes([2; 32]),
                        token_lifetime_secs: 60,
                    }
                ),
                ChangeStep::Changed { .. }
            ));
            assert!(matches!(
                login(&server, &new_record, "new battery"),
                ExchangeStep::Done(LoginReply::Accepted { .. }, Some(_))
            ));
            assert!(matches!(
                login(&server, &new_record, "correct horse"),
                ExchangeStep::Refused
            ));
        }
    }

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
