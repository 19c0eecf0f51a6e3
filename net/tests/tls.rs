//! The protocol over TLS 1.3 on loopback with certificates generated at
//! test time, certificate reload, and refusing bad key files.

mod fixtures;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fixtures::*;
use net::tls::{self, ReloadableTlsAcceptor, TlsConnector, TlsError};
use net::{ClientHandshake, ClientLink, ClientStream, LinkEvent, ServerStream};
use proto_core::message::{ClientMessage, ServerMessage};
use tokio::net::{TcpListener, TcpStream};

/// A self-signed certificate for `localhost` written as PEM files, the key
/// with mode 0600.
struct CertFiles {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
}

fn self_signed() -> CertFiles {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    write_private(&key, ck.key_pair.serialize_pem().as_bytes());
    CertFiles {
        der: ck.cert.der().to_vec(),
        _dir: dir,
        cert,
        key,
    }
}

fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Serves TLS + SecureChat on a loopback port: every session answers each
/// Ping with the same Ping until the client leaves.
async fn start_tls_server(acceptor: Arc<ReloadableTlsAcceptor>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls_acceptor = acceptor.acceptor();
            tokio::spawn(async move {
                let Ok(tls) = tls_acceptor.accept(tcp).await else {
                    return;
                };
                let stream = ServerStream::from(tls);
                let mut session = net::accept(stream, server_config(), &options())
                    .await
                    .unwrap();
                assert!(session.get_ref().is_tls());
                while let Ok(LinkEvent::Message(ClientMessage::Ping { nonce })) =
                    session.next_event().await
                {
                    session.send(&ServerMessage::Ping { nonce }).await.unwrap();
                }
            });
        }
    });
    addr
}

async fn tls_client(
    addr: std::net::SocketAddr,
    ca: &Path,
) -> Result<(ClientLink<ClientStream>, Vec<u8>), std::io::Error> {
    let connector = TlsConnector::from(tls::client_config(Some(ca)).unwrap());
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector
        .connect(tls::server_name("localhost").unwrap(), tcp)
        .await?;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let ClientHandshake::Connected(session) =
        net::connect(ClientStream::from(tls), pinned_config(), DEADLINE)
            .await
            .unwrap()
    else {
        panic!("pinned");
    };
    Ok((session, presented))
}

async fn ping(session: &mut ClientLink<ClientStream>, nonce: u64) {
    session.send(&ClientMessage::Ping { nonce }).await.unwrap();
    assert_eq!(
        session.next_event().await.unwrap(),
        LinkEvent::Message(ServerMessage::Ping { nonce })
    );
}

#[tokio::test]
async fn sessions_run_over_tls_with_a_self_signed_certificate_from_a_ca_file() {
    let a = self_signed();
    let acceptor = Arc::new(ReloadableTlsAcceptor::from_pem(&a.cert, &a.key).unwrap());
    let addr = start_tls_server(acceptor).await;
    let (mut session, presented) = tls_client(addr, &a.cert).await.unwrap();
    assert_eq!(presented, a.der);
    assert!(session.get_ref().is_tls());
    for nonce in 0..5 {
        ping(&mut session, nonce).await;
    }
    session.close(Some(&ClientMessage::Goodbye)).await.unwrap();
}

#[tokio::test]
async fn a_reloaded_certificate_serves_new_connections_while_old_sessions_continue() {
    let (a, b) = (self_signed(), self_signed());
    let acceptor = Arc::new(ReloadableTlsAcceptor::from_pem(&a.cert, &a.key).unwrap());
    let addr = start_tls_server(acceptor.clone()).await;
    let (mut old, presented) = tls_client(addr, &a.cert).await.unwrap();
    assert_eq!(presented, a.der);

    acceptor.reload(&b.cert, &b.key).unwrap();

    ping(&mut old, 1).await;
    let (mut new, presented) = tls_client(addr, &b.cert).await.unwrap();
    assert_eq!(presented, b.der);
    ping(&mut new, 2).await;
    assert!(
        tls_client(addr, &a.cert).await.is_err(),
        "a client trusting only the old certificate must now fail"
    );
    ping(&mut old, 3).await;
}

#[tokio::test]
async fn a_failed_reload_keeps_the_previous_certificate() {
    let a = self_signed();
    let acceptor = Arc::new(ReloadableTlsAcceptor::from_pem(&a.cert, &a.key).unwrap());
    let before = acceptor.config();

    let missing = a.cert.with_file_name("missing.pem");
    assert!(matches!(
        acceptor.reload(&missing, &a.key),
        Err(TlsError::Io { .. })
    ));
    let garbage = a.cert.with_file_name("garbage.pem");
    write_private(&garbage, b"not a key\n");
    assert!(matches!(
        acceptor.reload(&a.cert, &garbage),
        Err(TlsError::BadPrivateKey { .. })
    ));
    assert!(matches!(
        acceptor.reload(&garbage, &a.key),
        Err(TlsError::NoCertificates { .. })
    ));
    assert!(Arc::ptr_eq(&before, &acceptor.config()));

    let addr = start_tls_server(acceptor).await;
    let (mut session, presented) = tls_client(addr, &a.cert).await.unwrap();
    assert_eq!(presented, a.der);
    ping(&mut session, 1).await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_private_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let a = self_signed();
    std::fs::set_permissions(&a.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = tls::server_config_from_pem(&a.cert, &a.key).unwrap_err();
    assert!(
        matches!(err, TlsError::KeyPermissions { mode: 0o644, .. }),
        "{err}"
    );
}

#[test]
fn server_and_client_configs_offer_tls13_only() {
    let a = self_signed();
    let server = tls::server_config_from_pem(&a.cert, &a.key).unwrap();
    let client = tls::client_config(None).unwrap();
    for suites in [
        &server.crypto_provider().cipher_suites,
        &client.crypto_provider().cipher_suites,
    ] {
        assert!(!suites.is_empty());
        assert!(suites
            .iter()
            .all(|s| s.version() == &tls::rustls::version::TLS13));
    }
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    let a = self_signed();
    assert!(matches!(
        tls::client_config(Some(&a.key)),
        Err(TlsError::NoCertificates { .. })
    ));
    assert!(matches!(
        tls::server_name("not a host name"),
        Err(TlsError::InvalidServerName(_))
    ));
}
