//! An in-process server (`server::start`) on 127.0.0.1:0 with its own
//! temporary data directory, plain or TLS, restartable on the same data.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use proto_core::Fingerprint;
use server::{Config, PasswordParams, RunningServer, ServerLimits, TlsFiles};

use crate::test_certificate::TestCertificate;
use crate::test_client::{Endpoint, TestClient};
use crate::values::PASSWORD;

/// How long a graceful shutdown may take before the test fails.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

/// The transport under the SecureChat protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls,
}

/// The server's defaults, except what would get in the way of tests that
/// open many connections from 127.0.0.1 and chat quickly. Tests about a
/// limit set that limit themselves.
pub fn test_limits() -> ServerLimits {
    ServerLimits {
        max_connections_per_ip: 1_000,
        max_unauthenticated_per_ip: 1_000,
        messages_per_second: 10_000,
        message_burst: 10_000,
        handshakes_per_ip_per_second: 10_000,
        handshake_burst_per_ip: 10_000,
        handshake_workers: 2,
        hash_workers: 2,
        // Presence at once: tests wait for it; the batching has its own.
        presence_interval: Duration::ZERO,
        ..ServerLimits::default()
    }
}

/// Argon2id at its cheapest (64 KiB, one pass): test logins exercise the
/// same code as real ones without paying 19 MiB and two passes each. Only
/// test servers use it; the server's own default is the OWASP minimum.
pub const TEST_PASSWORD_HASHING: PasswordParams = PasswordParams {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

/// How to start a [`TestServer`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub transport: Transport,
    pub limits: ServerLimits,
    pub history_replay: usize,
    pub token_lifetime: Duration,
    /// [`TEST_PASSWORD_HASHING`] unless a test needs the real cost.
    pub password_hashing: PasswordParams,
    /// Port 0 unless a test needs a particular address.
    pub listen: SocketAddr,
    /// Start from a private copy of this data directory (a fixture)
    /// instead of an empty one.
    pub data_from: Option<PathBuf>,
    /// The server's administrators (usernames).
    pub admins: Vec<String>,
}

impl ServerOptions {
    pub fn new(transport: Transport) -> Self {
        let defaults = Config::new("unused");
        Self {
            transport,
            limits: test_limits(),
            history_replay: defaults.history_replay,
            token_lifetime: defaults.token_lifetime,
            password_hashing: TEST_PASSWORD_HASHING,
            listen: "127.0.0.1:0".parse().expect("loopback address"),
            data_from: None,
            admins: Vec::new(),
        }
    }

    pub fn admins(mut self, names: &[&str]) -> Self {
        self.admins = names.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn history_replay(mut self, n: usize) -> Self {
        self.history_replay = n;
        self
    }

    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
}

/// A running in-process server and the data directory it owns.
pub struct TestServer {
    options: ServerOptions,
    data: tempfile::TempDir,
    cert: Option<TestCertificate>,
    running: Option<RunningServer>,
    addr: SocketAddr,
    fingerprint: Fingerprint,
}

impl TestServer {
    /// A server with [`test_limits`] over `transport`.
    pub async fn start(transport: Transport) -> Self {
        Self::start_with(ServerOptions::new(transport)).await
    }

    pub async fn start_with(options: ServerOptions) -> Self {
        let data = tempfile::tempdir().expect("temporary directory");
        if let Some(from) = &options.data_from {
            crate::fixtures::copy_private(from, &data.path().join("data"));
        }
        let cert = match options.transport {
            Transport::Plain => None,
            Transport::Tls => Some(TestCertificate::generate()),
        };
        let mut server = Self {
            options,
            data,
            cert,
            running: None,
            addr: "127.0.0.1:0".parse().expect("address"),
            fingerprint: Fingerprint([0; 32]),
        };
        if let Err(e) = server.try_start_again().await {
            panic!("the test server did not start: {e}");
        }
        server
    }

    /// The configuration the server is (re)started with.
    pub fn config(&self) -> Config {
        let mut config = Config::new(self.data_dir());
        config.listen = self.options.listen;
        config.tls = self.cert.as_ref().map(|c| TlsFiles {
            cert: c.cert.clone(),
            key: c.key.clone(),
        });
        config.limits = self.options.limits.clone();
        config.history_replay = self.options.history_replay;
        config.token_lifetime = self.options.token_lifetime;
        config.password_hashing = self.options.password_hashing;
        config.admins = self.options.admins.clone();
        config
    }

    /// `server::start` on the same data directory (the first start
    /// creates it). Err is `StartError`'s message.
    pub async fn try_start_again(&mut self) -> Result<(), String> {
        assert!(self.running.is_none(), "the server is already running");
        let running = server::start(self.config())
            .await
            .map_err(|e| e.to_string())?;
        self.addr = running.local_addr();
        self.fingerprint = running.fingerprint();
        assert_eq!(
            running.server_key().fingerprint(),
            self.fingerprint,
            "fingerprint() must be the fingerprint of server_key()"
        );
        self.running = Some(running);
        Ok(())
    }

    /// Graceful shutdown; fails the test if it takes longer than
    /// [`SHUTDOWN_BOUND`].
    pub async fn shutdown(&mut self) {
        let running = self.running.take().expect("the server is not running");
        if tokio::time::timeout(SHUTDOWN_BOUND, running.shutdown())
            .await
            .is_err()
        {
            panic!("the server did not shut down within {SHUTDOWN_BOUND:?}");
        }
    }

    /// Graceful shutdown, then start again on the same data directory (on
    /// a new port unless `listen` was fixed). The identity must persist.
    pub async fn restart(&mut self) {
        let before = self.fingerprint;
        self.shutdown().await;
        if let Err(e) = self.try_start_again().await {
            panic!("the server did not start again on its data directory: {e}");
        }
        assert_eq!(
            self.fingerprint, before,
            "the server's identity changed across a restart on the same data directory"
        );
    }

    /// Resumed handshakes the running server answered since it started.
    pub fn resumed_handshakes(&self) -> u64 {
        self.running
            .as_ref()
            .expect("the server is not running")
            .resumed_handshakes()
    }

    /// A client connected through a resumed handshake keyed by `token`.
    pub async fn try_connect_resumed(
        &self,
        label: &str,
        token: &proto_core::message::ResumeToken,
    ) -> Result<TestClient, net::NetError> {
        TestClient::try_connect_with(&self.endpoint(), label, Some(token)).await
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.path().join("data")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.addr,
            fingerprint: self.fingerprint,
            tls_ca: self.cert.as_ref().map(|c| c.cert.clone()),
            recv_buffer: None,
            source: None,
        }
    }

    /// A connected, not yet authenticated client.
    pub async fn connect(&self, label: &str) -> TestClient {
        TestClient::connect(&self.endpoint(), label).await
    }

    pub async fn try_connect(&self, label: &str) -> Result<TestClient, net::NetError> {
        TestClient::try_connect(&self.endpoint(), label).await
    }

    /// A client registered as `name` with [`PASSWORD`].
    pub async fn user(&self, name: &str) -> TestClient {
        let mut client = self.connect(name).await;
        client.register(name, PASSWORD).await;
        client
    }

    /// Registers `names` one after another; each earlier member reads the
    /// presence of each later one, so the group starts quiet.
    pub async fn group(&self, names: &[&str]) -> Vec<TestClient> {
        let mut clients: Vec<TestClient> = Vec::new();
        for name in names {
            let client = self.user(name).await;
            for other in &mut clients {
                other.expect_user_joined(name).await;
            }
            clients.push(client);
        }
        clients
    }
}
