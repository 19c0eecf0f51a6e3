//! A self-signed TLS certificate for `localhost`, as the operator would
//! hand it to the server: PEM files, the private key readable by its owner
//! only (the server refuses anything looser, SECURITY.md S4).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The server name clients check the certificate against.
pub const TLS_SERVER_NAME: &str = "localhost";

/// Certificate and key files in their own temporary directory. Clients
/// trust the certificate itself as their CA.
pub struct TestCertificate {
    _dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCertificate {
    pub fn generate() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec![TLS_SERVER_NAME.to_owned()])
            .expect("generate a self-signed certificate");
        let dir = tempfile::tempdir().expect("temporary directory");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).expect("write cert.pem");
        write_private(&key, ck.key_pair.serialize_pem().as_bytes());
        Self {
            _dir: dir,
            cert,
            key,
        }
    }
}

/// Writes a file created with mode 0600, so it is never readable by others.
pub fn write_private(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    file.write_all(bytes).expect("write private file");
}
