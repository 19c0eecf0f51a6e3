//! TLS 1.3 transport: rustls 0.23 with the ring provider only (never the
//! aws-lc-rs default), certificate loading from PEM, and an acceptor whose
//! certificate can be replaced while connections continue.
//!
//! TLS here protects the outer layer (hiding metadata, satisfying
//! middleboxes); the SecureChat handshake inside authenticates the server
//! on its own. Depend on rustls through this module's re-exports: a crate
//! that names `rustls` itself with default features pulls in aws-lc-rs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thiserror::Error;

pub use rustls;
pub use tokio_rustls;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why a TLS configuration could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a valid PEM certificate file: {source}", path.display())]
    BadCertificates { path: PathBuf, source: pem::Error },
    #[error("{}: contains no certificate", path.display())]
    NoCertificates { path: PathBuf },
    /// Deliberately without parser details: they could quote key bytes.
    #[error("{}: contains no valid PEM private key", path.display())]
    BadPrivateKey { path: PathBuf },
    /// Like OpenSSH, a private key that others can read is refused (threat S4).
    #[error("{}: private key is accessible by group or others (mode {mode:o}); chmod 600 it", path.display())]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |source: pem::Error| match source {
        pem::Error::Io(source) => TlsError::Io {
            path: path.to_owned(),
            source,
        },
        source => TlsError::BadCertificates {
            path: path.to_owned(),
            source,
        },
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    check_key_permissions(path)?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::Io(source) => TlsError::Io {
            path: path.to_owned(),
            source,
        },
        _ => TlsError::BadPrivateKey {
            path: path.to_owned(),
        },
    })
}

#[cfg(unix)]
fn check_key_permissions(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_permissions(_path: &Path) -> Result<(), TlsError> {
    Ok(())
}

/// A TLS 1.3-only server configuration from a PEM certificate chain (leaf
/// first) and a PEM private key (PKCS#8, PKCS#1 or SEC1), which must not be
/// accessible by group or others.
pub fn server_config_from_pem(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certificates(cert_path)?;
    let key = load_private_key(key_path)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// A TLS 1.3-only client configuration trusting the certificates in
/// `ca_file` (a self-hosted CA or a self-signed server certificate), or,
/// without one, the Mozilla root set compiled in from `webpki-roots` (same
/// behaviour on every system, no dependence on an installed CA bundle).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in load_certificates(path)? {
                roots.add(cert)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Parses a host name or IP address for SNI and certificate checking.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::InvalidServerName(host.to_owned()))
}

/// A TLS acceptor whose certificate can be replaced (on SIGHUP) without
/// touching established connections: each handshake takes the
/// configuration current at that moment, and connections keep the one
/// they started with.
#[derive(Debug)]
pub struct ReloadableTlsAcceptor {
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl ReloadableTlsAcceptor {
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            current: RwLock::new(config),
        }
    }

    /// Loads the initial certificate and key; see [`server_config_from_pem`].
    pub fn from_pem(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        Ok(Self::new(server_config_from_pem(cert_path, key_path)?))
    }

    /// Replaces the configuration for new connections. If the new files do
    /// not load, the old configuration stays and the error is returned.
    pub fn reload(&self, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
        let config = server_config_from_pem(cert_path, key_path)?;
        self.set(config);
        tracing::debug!("TLS certificate reloaded");
        Ok(())
    }

    /// Replaces the configuration for new connections.
    pub fn set(&self, config: Arc<rustls::ServerConfig>) {
        // A panic elsewhere cannot leave a half-written Arc: ignore poison.
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// An acceptor for one incoming connection, with the current
    /// certificate. Bound its `accept` with a timeout too: the TLS
    /// handshake comes before the SecureChat handshake deadline starts.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config())
    }
}
