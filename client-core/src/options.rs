//! How to reach a server and who to be there.

use std::path::PathBuf;

use proto_core::opaque::Stretch;
use proto_core::Fingerprint;
use zeroize::Zeroizing;

use crate::address::ServerAddress;
use crate::known_servers::KnownServers;

/// TLS around the protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A CA certificate (PEM) to trust; `None` uses the bundled web roots.
    pub ca_file: Option<PathBuf>,
}

/// Log in or create the account first.
#[derive(Clone)]
pub enum AuthRequest {
    Login {
        username: String,
        password: Zeroizing<String>,
    },
    Register {
        username: String,
        password: Zeroizing<String>,
    },
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, username) = match self {
            AuthRequest::Login { username, .. } => ("Login", username),
            AuthRequest::Register { username, .. } => ("Register", username),
        };
        f.debug_struct(kind)
            .field("username", username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl AuthRequest {
    pub fn username(&self) -> &str {
        match self {
            AuthRequest::Login { username, .. } | AuthRequest::Register { username, .. } => {
                username
            }
        }
    }

    pub fn password(&self) -> &Zeroizing<String> {
        match self {
            AuthRequest::Login { password, .. } | AuthRequest::Register { password, .. } => {
                password
            }
        }
    }
}

/// Everything a client needs to run.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub server: ServerAddress,
    pub tls: Option<TlsOptions>,
    /// Given by the user out of band: no question asked; pinned on success.
    pub fingerprint: Option<Fingerprint>,
    pub known_servers: KnownServers,
    pub auth: AuthRequest,
    /// Reconnect after a dropped connection (off for one-shot scripts).
    pub reconnect: bool,
    /// The password's key stretching (Argon2id). Part of every account's
    /// OPAQUE record: leave it at [`Stretch::RECOMMENDED`], which every
    /// SecureChat client uses; a test may lower it for accounts it makes.
    pub stretch: Stretch,
    /// Which device this is (`SetDevice` before every login); `None`
    /// names none (the server counts such logins as one device, id 0).
    pub device: Option<crate::device::DeviceIdentity>,
}

impl ClientOptions {
    /// No TLS, the default known-servers file, reconnecting.
    pub fn new(server: ServerAddress, auth: AuthRequest) -> Self {
        Self {
            server,
            tls: None,
            fingerprint: None,
            known_servers: KnownServers::default_location(),
            auth,
            reconnect: true,
            stretch: Stretch::RECOMMENDED,
            device: None,
        }
    }
}
