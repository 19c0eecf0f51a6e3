//! One connection attempt: TCP (and TLS), the handshake with trust on
//! first use, then authentication.

use std::time::Duration;

use net::{ClientHandshake, ClientSession, ClientStream, MaybeTlsStream, NetError, SessionEvent};
use proto_core::message::{
    AuthFailure, ClientMessage, ErrorCode, Password, ResumeToken, ServerMessage, Username,
};
use proto_core::{AlertCode, ClientConfig, Error as ProtoError, HandshakeError, ServerTrust};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

use crate::events::{auth_failure_message, key_changed_warning, ClientEvent, CloseCause};
use crate::options::{AuthRequest, ClientOptions};

/// TCP connect, TLS and handshake must each finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The server may hold a login up to 30 s when it is being guessed at.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(45);

pub type Session = ClientSession<ClientStream>;

/// How an attempt failed.
#[derive(Debug)]
pub enum AttemptError {
    /// Worth trying again later (unreachable, dropped, timed out, full).
    Retry(String),
    /// Trying again cannot help (key changed, not trusted, refused login):
    /// what to tell the user, and why as a type.
    Fatal(String, CloseCause),
}

impl AttemptError {
    /// A fatal failure not covered by a more specific cause.
    fn failed(reason: impl Into<String>) -> Self {
        AttemptError::Fatal(reason.into(), CloseCause::Failed)
    }
}

/// A logged-in session.
pub struct Established {
    pub session: Session,
    pub username: String,
    pub token: ResumeToken,
}

/// Connects, verifies the server (asking the user at first contact through
/// `events`), and authenticates: with `resume` first if given, and with
/// the password on the same connection if the server no longer honours the
/// token (expired, or the server restarted after a crash).
pub async fn establish(
    options: &ClientOptions,
    events: &mpsc::UnboundedSender<ClientEvent>,
    resume: Option<ResumeToken>,
) -> Result<Established, AttemptError> {
    let mut session = handshake(options, events).await?;
    let resumed = match resume {
        Some(token) => Some(ask(&mut session, &ClientMessage::Resume { token }).await?),
        None => None,
    };
    let answer = match resumed {
        None
        | Some(ServerMessage::AuthFailed {
            reason: AuthFailure::ResumeFailed,
        }) => ask(&mut session, &credentials_message(&options.auth)?).await?,
        Some(answer) => answer,
    };
    match answer {
        ServerMessage::AuthOk {
            username,
            resume_token,
            ..
        } => Ok(Established {
            session,
            username: username.as_str().to_owned(),
            token: resume_token,
        }),
        ServerMessage::AuthFailed { reason } => {
            let _ = events.send(ClientEvent::AuthFailed {
                reason,
                message: auth_failure_message(reason).to_owned(),
            });
            Err(AttemptError::Fatal(
                auth_failure_message(reason).to_owned(),
                CloseCause::AuthFailed(reason),
            ))
        }
        ServerMessage::Error { code, detail } => match code {
            ErrorCode::RateLimited | ErrorCode::Internal | ErrorCode::ServerFull => Err(
                AttemptError::Retry(format!("server refused: {}", detail.as_str())),
            ),
            _ => Err(AttemptError::failed(format!(
                "server refused: {}",
                detail.as_str()
            ))),
        },
        ServerMessage::Goodbye { reason } => Err(AttemptError::Retry(format!(
            "the server ended the connection ({reason:?})"
        ))),
        other => Err(AttemptError::failed(format!(
            "unexpected answer to login (message type {})",
            other.tag()
        ))),
    }
}

/// Sends `request` and returns the server's answer (Pings answered).
async fn ask(
    session: &mut Session,
    request: &ClientMessage,
) -> Result<ServerMessage, AttemptError> {
    session
        .send(request)
        .await
        .map_err(|e| AttemptError::Retry(format!("connection lost: {e}")))?;
    timeout(AUTH_TIMEOUT, async {
        loop {
            match session.next_event().await {
                Ok(SessionEvent::Message(ServerMessage::Ping { nonce })) => {
                    let _ = session.send(&ClientMessage::Pong { nonce }).await;
                }
                Ok(SessionEvent::Message(m)) => return Ok(m),
                Ok(SessionEvent::Closed { .. }) => {
                    return Err(AttemptError::Retry(
                        "the server closed the connection".into(),
                    ))
                }
                Err(e) => return Err(AttemptError::Retry(format!("connection lost: {e}"))),
            }
        }
    })
    .await
    .map_err(|_| AttemptError::Retry("the server did not answer the login".into()))?
}

/// Turns the user's request into the protocol message, validating first.
fn credentials_message(req: &AuthRequest) -> Result<ClientMessage, AttemptError> {
    let username = Username::parse_normalizing(req.username()).map_err(|e| {
        AttemptError::Fatal(
            format!(
                "{}: {e}",
                auth_failure_message(AuthFailure::InvalidUsername)
            ),
            CloseCause::AuthFailed(AuthFailure::InvalidUsername),
        )
    })?;
    let password = Password::new(req.password().to_string())
        .map_err(|e| AttemptError::failed(format!("invalid password: {e}")))?;
    Ok(match req {
        AuthRequest::Login { .. } => ClientMessage::Login { username, password },
        AuthRequest::Register { .. } => ClientMessage::Register { username, password },
    })
}

async fn open_stream(options: &ClientOptions) -> Result<ClientStream, AttemptError> {
    let server = &options.server;
    let tcp = timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((server.host.as_str(), server.port)),
    )
    .await
    .map_err(|_| AttemptError::Retry(format!("server unreachable: {server} timed out")))?
    .map_err(|e| AttemptError::Retry(format!("server unreachable: {server}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &options.tls else {
        return Ok(MaybeTlsStream::Plain(tcp));
    };
    let config = net::tls::client_config(tls.ca_file.as_deref())
        .map_err(|e| AttemptError::failed(format!("TLS setup: {e}")))?;
    let name = net::tls::server_name(&server.host)
        .map_err(|e| AttemptError::failed(format!("TLS server name: {e}")))?;
    let stream = timeout(
        CONNECT_TIMEOUT,
        net::tls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| AttemptError::Retry("TLS handshake timed out".into()))?
    .map_err(|e| AttemptError::failed(format!("TLS handshake failed: {e}")))?;
    Ok(stream.into())
}

async fn handshake(
    options: &ClientOptions,
    events: &mpsc::UnboundedSender<ClientEvent>,
) -> Result<Session, AttemptError> {
    let server = &options.server;
    let pinned = options
        .known_servers
        .get(server)
        .map_err(|e| AttemptError::failed(format!("known servers file: {e}")))?;
    let trust = match (&options.fingerprint, &pinned) {
        (Some(fp), _) => ServerTrust::Fingerprint(*fp),
        (None, Some(fp)) => ServerTrust::Fingerprint(*fp),
        (None, None) => ServerTrust::FirstUse,
    };
    let stream = open_stream(options).await?;
    match net::connect(stream, ClientConfig::new(trust), CONNECT_TIMEOUT).await {
        Ok(ClientHandshake::Connected(session)) => {
            if pinned.is_none() {
                if let Some(fp) = &options.fingerprint {
                    pin(options, fp)?;
                }
            }
            Ok(session)
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
                    .map_err(|e| AttemptError::Retry(format!("handshake failed: {e}")))
            } else {
                pending.reject().await;
                Err(AttemptError::Fatal(
                    "you did not trust the server's key; nothing was sent".into(),
                    CloseCause::ServerKeyDeclined,
                ))
            }
        }
        Err(NetError::Protocol(ProtoError::ServerKeyChanged {
            expected,
            presented,
        })) => {
            let path = options.known_servers.path().to_path_buf();
            let warning = key_changed_warning(server, &expected, &presented, &path);
            let _ = events.send(ClientEvent::KeyChanged {
                server: server.clone(),
                pinned: expected,
                presented,
                known_servers: path,
                warning,
            });
            Err(AttemptError::Fatal(
                "the server's key has CHANGED; refused".into(),
                CloseCause::ServerKeyChanged,
            ))
        }
        Err(NetError::Protocol(ProtoError::AlertReceived(AlertCode::ServerFull))) => {
            Err(AttemptError::Retry(
                "server full: it is at its connection limit; try again later".into(),
            ))
        }
        Err(NetError::Protocol(ProtoError::AlertReceived(AlertCode::RateLimited))) => {
            Err(AttemptError::Retry(
                "the server is limiting connections from your address; try again later".into(),
            ))
        }
        Err(NetError::Protocol(e @ ProtoError::VersionAltered { .. })) => Err(AttemptError::Retry(
            format!("the connection was tampered with on the way to the server: {e}"),
        )),
        Err(NetError::Protocol(ProtoError::UnexpectedEof)) | Err(NetError::Closed) => Err(
            AttemptError::Retry("the server closed the connection during the handshake".into()),
        ),
        Err(NetError::Protocol(e @ ProtoError::VersionMismatch { .. })) => Err(
            AttemptError::failed(format!("the server speaks another protocol version: {e}")),
        ),
        Err(NetError::Protocol(
            e @ ProtoError::Handshake(HandshakeError::BadSignature | HandshakeError::BadFinished),
        )) => Err(AttemptError::Fatal(
            format!("handshake failed, the server could not prove its identity: {e}"),
            CloseCause::ServerIdentityUnproven,
        )),
        Err(NetError::Protocol(e)) => Err(AttemptError::failed(format!("handshake failed: {e}"))),
        Err(e) => Err(AttemptError::Retry(format!("handshake failed: {e}"))),
    }
}

fn pin(options: &ClientOptions, fp: &proto_core::Fingerprint) -> Result<(), AttemptError> {
    options
        .known_servers
        .pin(&options.server, fp)
        .map_err(|e| AttemptError::failed(format!("cannot save the server's key: {e}")))
}
