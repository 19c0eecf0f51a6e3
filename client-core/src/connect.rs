//! One connection attempt: TCP (and TLS), the handshake with trust on
//! first use, then authentication.

use std::time::Duration;

use net::{ClientHandshake, ClientLink, ClientStream, LinkEvent, MaybeTlsStream, NetError};
use proto_core::login::{login_step, ExchangeStep, LoginReply, LoginStep, PasswordExchange};
use proto_core::message::{AuthFailure, ClientMessage, ErrorCode, Password, ResumeToken, Username};
use proto_core::opaque::ExportKey;
use proto_core::{
    AlertCode, ClientConfig, Error as ProtoError, HandshakeError, ResumptionPsk, ServerTrust,
};
use rand_core::OsRng;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

use std::sync::Arc;

use crate::cause::{FatalCause, RetryCause, ServerRefusal};
use crate::events::ClientEvent;
use crate::options::{AuthRequest, ClientOptions};

/// TCP connect, TLS and handshake must each finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The server may hold a login up to 30 s when it is being guessed at.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(45);

pub type Link = ClientLink<ClientStream>;

/// How an attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttemptError {
    /// Worth trying again later (unreachable, dropped, timed out, full).
    #[error("{0}")]
    Retry(RetryCause),
    /// Trying again cannot help (key changed, not trusted, refused login).
    #[error("{0}")]
    Fatal(FatalCause),
}

impl From<RetryCause> for AttemptError {
    fn from(cause: RetryCause) -> Self {
        AttemptError::Retry(cause)
    }
}

impl From<FatalCause> for AttemptError {
    fn from(cause: FatalCause) -> Self {
        AttemptError::Fatal(cause)
    }
}

/// A logged-in session.
pub struct Established {
    pub link: Link,
    pub username: String,
    pub token: ResumeToken,
    /// OPAQUE's export key when this login used the password over OPAQUE
    /// (not after a resume, nor the one-time login that migrates an
    /// account made before OPAQUE).
    pub export_key: Option<ExportKey>,
}

/// Connects, verifies the server (asking the user at first contact through
/// `events`), and authenticates: with `resume` first if given, and with
/// the password on the same connection if the server no longer honours the
/// token (expired, or the server restarted after a crash).
///
/// With a token, the handshake is a resumed one (its key comes from the
/// token, and the costly ffdhe3072 exchange is skipped on both sides). A
/// server that no longer holds the token says so at once (`unknown_psk`);
/// then a full handshake follows on a new connection, and the password.
pub async fn establish(
    options: &ClientOptions,
    events: &mpsc::UnboundedSender<ClientEvent>,
    resume: Option<ResumeToken>,
) -> Result<Established, AttemptError> {
    let psk = resume.as_ref().map(ResumptionPsk::from_token);
    let (mut session, resume) = match handshake(options, events, psk).await? {
        Some(session) => (session, resume),
        None => {
            let session = handshake(options, events, None)
                .await?
                .ok_or(RetryCause::ClosedDuringHandshake)?;
            (session, None)
        }
    };
    if let Some(device) = &options.device {
        let claim = ClientMessage::SetDevice {
            id: device.id,
            name: device.name.clone(),
        };
        session
            .queue(&claim)
            .map_err(|e| RetryCause::Lost(Arc::new(e)))?;
    }
    let resumed = match resume {
        Some(token) => Some(ask(&mut session, &ClientMessage::Resume { token }).await?),
        None => None,
    };
    let (answer, export_key) = match resumed {
        Some(answer) if !answer.is_expired_resume() => (answer, None),
        _ => password_exchange(&mut session, options).await?,
    };
    match answer {
        LoginReply::Accepted {
            username,
            resume_token,
            ..
        } => Ok(Established {
            link: session,
            username: username.as_str().to_owned(),
            token: resume_token,
            export_key,
        }),
        LoginReply::Refused(reason) => {
            let _ = events.send(ClientEvent::AuthFailed { reason });
            Err(FatalCause::AuthFailed(reason).into())
        }
        LoginReply::Error { code, detail } => {
            let refusal = ServerRefusal {
                code,
                detail: detail.as_str().to_owned(),
            };
            match code {
                ErrorCode::RateLimited | ErrorCode::Internal | ErrorCode::ServerFull => {
                    Err(RetryCause::Refused(refusal).into())
                }
                _ => Err(FatalCause::Refused(refusal).into()),
            }
        }
        LoginReply::Goodbye(reason) => Err(RetryCause::EndedByServer(reason).into()),
    }
}

/// Sends `request` and returns the server's answer (Pings answered).
async fn ask(session: &mut Link, request: &ClientMessage) -> Result<LoginReply, AttemptError> {
    session
        .send(request)
        .await
        .map_err(|e| RetryCause::Lost(Arc::new(e)))?;
    timeout(AUTH_TIMEOUT, async {
        loop {
            match session.next_event().await {
                Ok(LinkEvent::Message(m)) => match login_step(m) {
                    LoginStep::Reply(reply) => return Ok(reply),
                    LoginStep::Respond(pong) => {
                        let _ = session.send(&pong).await;
                    }
                    LoginStep::Unexpected(other) => {
                        return Err(FatalCause::UnexpectedAnswer { tag: other.tag() }.into())
                    }
                },
                Ok(LinkEvent::Closed { .. }) => return Err(RetryCause::Closed.into()),
                Err(e) => return Err(RetryCause::Lost(Arc::new(e)).into()),
            }
        }
    })
    .await
    .map_err(|_| RetryCause::LoginTimedOut)?
}

/// Registers or logs in with the password over OPAQUE (the password never
/// leaves this process; see `proto_core::login::PasswordExchange`). The
/// key stretching runs on a blocking thread, off the event loop.
async fn password_exchange(
    session: &mut Link,
    options: &ClientOptions,
) -> Result<(LoginReply, Option<ExportKey>), AttemptError> {
    let req = &options.auth;
    let username =
        Username::parse_normalizing(req.username()).map_err(FatalCause::InvalidUsername)?;
    let password =
        Password::new(req.password().to_string()).map_err(FatalCause::InvalidPassword)?;
    let ksf = options
        .stretch
        .argon2id()
        .map_err(|_| FatalCause::StretchFailed)?;
    let binding = session.channel_binding().clone();
    let canonical = username.canonical();
    let known = &options.known_servers;
    let opaque_before = known
        .is_opaque_account(&options.server, &canonical)
        .map_err(|e| FatalCause::KnownServers(Arc::new(e)))?;
    let started = match req {
        AuthRequest::Login { .. } => {
            PasswordExchange::login(&mut OsRng, username, password, ksf, binding)
        }
        AuthRequest::Register { .. } => {
            PasswordExchange::register(&mut OsRng, username, password, ksf, binding)
        }
    };
    let (mut exchange, first) = match started {
        Ok(started) => started,
        Err(reason) => return Ok((LoginReply::Refused(reason), None)),
    };
    if opaque_before {
        exchange.refuse_legacy_login();
    }
    session
        .send(&first)
        .await
        .map_err(|e| RetryCause::Lost(Arc::new(e)))?;
    timeout(AUTH_TIMEOUT, async {
        loop {
            let msg = match session.next_event().await {
                Ok(LinkEvent::Message(m)) => m,
                Ok(LinkEvent::Closed { .. }) => return Err(RetryCause::Closed.into()),
                Err(e) => return Err(RetryCause::Lost(Arc::new(e)).into()),
            };
            let step = if PasswordExchange::<proto_core::opaque::Argon2id>::is_expensive(&msg) {
                let (back, step) = tokio::task::spawn_blocking(move || {
                    let step = exchange.handle(&mut OsRng, msg);
                    (exchange, step)
                })
                .await
                .map_err(|_| FatalCause::StretchFailed)?;
                exchange = back;
                step
            } else {
                exchange.handle(&mut OsRng, msg)
            };
            match step {
                ExchangeStep::Send(next) => session
                    .send(&next)
                    .await
                    .map_err(|e| RetryCause::Lost(Arc::new(e)))?,
                ExchangeStep::Done(reply, export_key) => {
                    if export_key.is_some() && matches!(reply, LoginReply::Accepted { .. }) {
                        // Never again the version-1 login for this account
                        // here. Failing to write this loses only that.
                        let _ = known.remember_opaque_account(&options.server, &canonical);
                    }
                    return Ok((reply, export_key));
                }
                ExchangeStep::LegacyRefused => {
                    return Err(FatalCause::LegacyLoginRefused {
                        server: options.server.clone(),
                    }
                    .into())
                }
                ExchangeStep::Refused => {
                    return Ok((LoginReply::Refused(AuthFailure::LoginFailed), None))
                }
                ExchangeStep::Unexpected(other) => {
                    return Err(FatalCause::UnexpectedAnswer { tag: other.tag() }.into())
                }
            }
        }
    })
    .await
    .map_err(|_| RetryCause::LoginTimedOut)?
}

async fn open_stream(options: &ClientOptions) -> Result<ClientStream, AttemptError> {
    let server = &options.server;
    let tcp = timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((server.host.as_str(), server.port)),
    )
    .await
    .map_err(|_| RetryCause::ConnectTimedOut {
        server: server.clone(),
    })?
    .map_err(|e| RetryCause::Unreachable {
        server: server.clone(),
        error: Arc::new(e),
    })?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &options.tls else {
        return Ok(MaybeTlsStream::Plain(tcp));
    };
    let config = net::tls::client_config(tls.ca_file.as_deref())
        .map_err(|e| FatalCause::TlsSetup(Arc::new(e)))?;
    let name =
        net::tls::server_name(&server.host).map_err(|e| FatalCause::TlsServerName(Arc::new(e)))?;
    let stream = timeout(
        CONNECT_TIMEOUT,
        net::tls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| RetryCause::TlsTimedOut)?
    .map_err(|e| FatalCause::TlsHandshake(Arc::new(e)))?;
    Ok(stream.into())
}

/// The handshake, resumed with `resume` if given. `Ok(None)`: the server
/// does not hold that key (start again without it).
async fn handshake(
    options: &ClientOptions,
    events: &mpsc::UnboundedSender<ClientEvent>,
    resume: Option<ResumptionPsk>,
) -> Result<Option<Link>, AttemptError> {
    let server = &options.server;
    let pinned = options
        .known_servers
        .get(server)
        .map_err(|e| FatalCause::KnownServers(Arc::new(e)))?;
    let trust = match (&options.fingerprint, &pinned) {
        (Some(fp), _) => ServerTrust::Fingerprint(*fp),
        (None, Some(fp)) => ServerTrust::Fingerprint(*fp),
        (None, None) => ServerTrust::FirstUse,
    };
    let stream = open_stream(options).await?;
    let config = ClientConfig {
        resume,
        ..ClientConfig::new(trust)
    };
    match net::connect(stream, config, CONNECT_TIMEOUT).await {
        Ok(ClientHandshake::Connected(session)) => {
            if pinned.is_none() {
                if let Some(fp) = &options.fingerprint {
                    pin(options, fp)?;
                }
            }
            Ok(Some(session))
        }
        Ok(ClientHandshake::NeedsTrust(pending)) => {
            let fingerprint = pending.fingerprint();
            let (reply, answer) = oneshot::channel();
            let _ = events.send(ClientEvent::TrustQuestion {
                server: server.clone(),
                fingerprint,
                reply,
            });
            if answer.await.unwrap_or(false) {
                pin(options, &fingerprint)?;
                pending
                    .accept()
                    .await
                    .map(Some)
                    .map_err(|e| RetryCause::Handshake(Arc::new(e)).into())
            } else {
                pending.reject().await;
                Err(FatalCause::ServerKeyDeclined.into())
            }
        }
        Err(NetError::Protocol(ProtoError::ServerKeyChanged {
            expected,
            presented,
        })) => {
            let _ = events.send(ClientEvent::KeyChanged {
                server: server.clone(),
                pinned: expected,
                presented,
                known_servers: options.known_servers.path().to_path_buf(),
            });
            Err(FatalCause::ServerKeyChanged {
                pinned: expected,
                presented,
            }
            .into())
        }
        Err(NetError::Protocol(ProtoError::AlertReceived(AlertCode::ServerFull))) => {
            Err(RetryCause::ServerFull.into())
        }
        Err(NetError::Protocol(ProtoError::AlertReceived(AlertCode::RateLimited))) => {
            Err(RetryCause::RateLimited.into())
        }
        Err(NetError::Protocol(ProtoError::AlertReceived(AlertCode::UnknownPsk))) => Ok(None),
        Err(NetError::Protocol(e @ ProtoError::VersionAltered { .. })) => {
            Err(RetryCause::Tampered(e).into())
        }
        Err(NetError::Protocol(ProtoError::UnexpectedEof)) | Err(NetError::Closed) => {
            Err(RetryCause::ClosedDuringHandshake.into())
        }
        Err(NetError::Protocol(e @ ProtoError::VersionMismatch { .. })) => {
            Err(FatalCause::VersionMismatch(e).into())
        }
        Err(NetError::Protocol(
            e @ ProtoError::Handshake(HandshakeError::BadSignature | HandshakeError::BadFinished),
        )) => Err(FatalCause::ServerIdentityUnproven(e).into()),
        Err(NetError::Protocol(e)) => Err(FatalCause::Handshake(e).into()),
        Err(e) => Err(RetryCause::Handshake(Arc::new(e)).into()),
    }
}

fn pin(options: &ClientOptions, fp: &proto_core::Fingerprint) -> Result<(), AttemptError> {
    options
        .known_servers
        .pin(&options.server, fp)
        .map_err(|e| FatalCause::Pin(Arc::new(e)).into())
}
