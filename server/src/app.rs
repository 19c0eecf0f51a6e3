//! Starting and stopping a server: open the data directory and its keys
//! and stores, bind, run the accept loop; on shutdown say goodbye to
//! everyone, flush history and save the resume tokens.
//!
//! This is where the storage backend is chosen: the file backend (the
//! `storage` file types in the data directory), handed to the services as
//! their `storage` traits.

use std::net::SocketAddr;
use std::sync::Arc;

use net::tls::{ReloadableTlsAcceptor, TlsError};
use proto_core::{Fingerprint, ServerConfig, ServerIdentity, ServerKey};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::accounts::{Accounts, AccountsConfig};
use crate::clock::now_ms;
use crate::config::{Config, ConfigError, TlsFiles};
use crate::history::{self, HistoryTask};
use crate::hub::Hub;
use crate::listener::Listener;
use crate::rooms::{RoomDirectory, Rooms};
use crate::session::Shared;
use crate::storage::devices_log::DevicesLog;
use crate::storage::opaque_key_file;
use crate::storage::read_markers_log::ReadMarkersLog;
use crate::storage::token_snapshot::TokenFile;
use crate::storage::{
    AccountStore, AuditLog, CredentialStore, DataDir, DataDirError, HistoryConfig, HistoryError,
    HistoryStore, KeyFileError, RoomsLog, StoreError, TokenSnapshot,
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error("SECURECHAT_STORAGE_KEY must be exactly 64 hex digits")]
    StorageKeyFormat,
    #[error(transparent)]
    Accounts(#[from] StoreError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running server. Dropping it without [`shutdown`](Self::shutdown)
/// leaves the accept loop running until the runtime stops.
pub struct RunningServer {
    local_addr: SocketAddr,
    identity: Arc<ServerIdentity>,
    shutdown_tx: watch::Sender<bool>,
    listener: JoinHandle<()>,
    shared: Arc<Shared>,
    history_task: HistoryTask,
    tls: Option<(Arc<ReloadableTlsAcceptor>, TlsFiles)>,
    /// Where the resume tokens are saved at shutdown.
    token_snapshot: Box<dyn TokenSnapshot>,
    resumed_handshakes: Arc<std::sync::atomic::AtomicU64>,
}

/// The storage key: from the environment-provided hex if given, else the
/// key file (generated at first start).
fn storage_key(config: &Config, dir: &DataDir) -> Result<Zeroizing<[u8; 32]>, StartError> {
    match &config.storage_key_hex {
        Some(hex_key) => {
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(hex_key.trim(), &mut key[..])
                .map_err(|_| StartError::StorageKeyFormat)?;
            Ok(key)
        }
        None => {
            let loaded = dir.load_or_generate_storage_key()?;
            if loaded.generated {
                tracing::info!(path = %dir.storage_key_path().display(), "generated a new storage key");
            }
            Ok(loaded.secret)
        }
    }
}

/// Loads (or at first start creates) the identity key of `data_dir`.
pub fn load_identity(dir: &DataDir) -> Result<(ServerIdentity, bool), StartError> {
    let seed = dir.load_or_generate_identity_seed()?;
    Ok((ServerIdentity::from_seed(&seed.secret), seed.generated))
}

/// Opens everything, binds and starts accepting.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    config.limits.validate()?;
    config
        .password_hashing
        .validate()
        .map_err(|message| ConfigError::Invalid {
            name: "password_hashing",
            message,
        })?;
    let dir = DataDir::open_or_create(&config.data_dir)?;
    let (identity, generated) = load_identity(&dir)?;
    let identity = Arc::new(identity);
    if generated {
        tracing::info!(fingerprint = %identity.public_key().fingerprint(), "generated a new server identity key");
    }
    let storage_key = storage_key(&config, &dir)?;
    // Accounts first: a tampered store stops the start before anything is written.
    let store = CredentialStore::open(dir.accounts_path(), &storage_key)?;
    let history_store = HistoryStore::open_with_config(
        dir.chat_histories_dir(),
        &storage_key,
        HistoryConfig {
            tail_len: config.history_replay.max(1),
            cache_bytes: config.history_cache_bytes,
            ..HistoryConfig::default()
        },
    )?;
    let mut token_snapshot = TokenFile::new(&dir.resume_tokens_path(), &storage_key);
    let tokens = match token_snapshot.take() {
        Ok(t) => t,
        Err(e) => {
            // Losing tokens costs users one password login; refusing to
            // start over it would cost everyone the server.
            tracing::warn!(error = %e, "resume tokens not restored");
            Vec::new()
        }
    };
    let (opaque_keys, generated) =
        opaque_key_file::load_or_generate(&dir.opaque_key_path(), &storage_key)?;
    if generated {
        tracing::info!("generated the OPAQUE server key (back it up with the data directory)");
    }
    let legacy = store.legacy_count();
    if legacy > 0 {
        tracing::info!(
            accounts = legacy,
            "accounts still hold a pre-OPAQUE Argon2id hash; each is replaced at its next password login"
        );
    }
    let rooms_log = RoomsLog::open_or_start(&dir.rooms_path(), &storage_key, || {
        RoomDirectory::initial_events(
            AccountStore::accounts(&store)
                .into_iter()
                .map(|a| a.canonical),
        )
    })?;
    let rooms = Rooms::with_journal(rooms_log, config.limits.rooms)?;
    tracing::info!(rooms = rooms.len(), "rooms loaded");
    let audit = AuditLog::open(&dir.audit_path(), &storage_key)?;
    let devices = crate::devices::Devices::with_journal(
        DevicesLog::open_keeping_table(&dir.devices_path(), &storage_key)?,
        config.limits.max_devices_per_user,
    )?;
    let accounts = Accounts::new(
        store,
        tokens,
        opaque_keys,
        AccountsConfig {
            password_hashing: config.password_hashing,
            hash_workers: config.limits.hash_workers,
            token_lifetime: config.token_lifetime,
        },
    );
    let tls = match &config.tls {
        Some(files) => Some((
            Arc::new(ReloadableTlsAcceptor::from_pem(&files.cert, &files.key)?),
            files.clone(),
        )),
        None => None,
    };
    // Ids continue above anything in history: milliseconds since the epoch,
    // times 1024, leaves room for 1024 messages per ms without overlap.
    let (history, history_task) = history::spawn(
        history_store,
        now_ms().saturating_mul(1024),
        config.history_sync_interval,
    );
    let tcp = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = tcp.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let hub = Hub::with_presence_interval(config.limits.presence_interval);
    let shared = Arc::new(Shared {
        hub,
        accounts,
        rooms,
        audit: std::sync::Mutex::new(Box::new(audit)),
        devices,
        read_markers: crate::read_markers::ReadMarkers::with_journal(ReadMarkersLog::open(
            &dir.read_markers_path(),
            &storage_key,
        )?)?,
        admins: config.admin_keys(),
        history,
        limits: config.limits.clone(),
        history_replay: config.history_replay,
        shutdown: shutdown_rx.clone(),
    });
    let resumed_handshakes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let listener = Listener {
        tcp,
        tls: tls.as_ref().map(|(a, _)| Arc::clone(a)),
        protocol: ServerConfig {
            psks: Some(Arc::new(ResumeTokenKeys {
                shared: Arc::clone(&shared),
                found: Arc::clone(&resumed_handshakes),
            })),
            ..ServerConfig::new(Arc::clone(&identity))
        },
        shared: Arc::clone(&shared),
        cpu_permits: Arc::new(Semaphore::new(config.limits.handshake_workers)),
    };
    tokio::spawn(presence_task(Arc::clone(&shared), shutdown_rx.clone()));
    tokio::spawn(devices_task(Arc::clone(&shared), shutdown_rx.clone()));
    let listener = tokio::spawn(listener.run(shutdown_rx));
    tracing::info!(
        addr = %local_addr,
        tls = tls.is_some(),
        accounts = shared.accounts.count(),
        fingerprint = %identity.public_key().fingerprint(),
        "listening"
    );
    Ok(RunningServer {
        local_addr,
        identity,
        shutdown_tx,
        listener,
        shared,
        history_task,
        tls,
        token_snapshot: Box::new(token_snapshot),
        resumed_handshakes,
    })
}

/// Resumed handshakes find their keys among the live resume tokens.
struct ResumeTokenKeys {
    shared: Arc<Shared>,
    /// Keys found: resumed handshakes answered.
    found: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for ResumeTokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeTokenKeys")
    }
}

impl proto_core::PskStore for ResumeTokenKeys {
    fn find(&self, id: &[u8; 32]) -> Option<proto_core::ResumptionPsk> {
        let key = self.shared.accounts.resumption_key(id)?;
        self.found
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(key)
    }
}

impl RunningServer {
    /// Resumed handshakes answered since the start (a ResumeHello whose
    /// key this server held).
    pub fn resumed_handshakes(&self) -> u64 {
        self.resumed_handshakes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What clients pin.
    pub fn server_key(&self) -> ServerKey {
        self.identity.public_key()
    }

    /// The fingerprint users compare.
    pub fn fingerprint(&self) -> Fingerprint {
        self.server_key().fingerprint()
    }

    /// Logged-in users right now.
    pub fn online_count(&self) -> usize {
        self.shared.hub.len()
    }

    /// Re-reads the TLS certificate and key (SIGHUP). Open connections keep
    /// theirs; a file that does not load leaves the old one in use.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        match &self.tls {
            Some((acceptor, files)) => acceptor.reload(&files.cert, &files.key),
            None => Ok(()),
        }
    }

    /// Stops accepting, sends every client `Goodbye ServerShutdown`, waits
    /// (bounded) for the sessions, flushes history, saves resume tokens.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.shared.hub.begin_shutdown();
        let _ = self.shutdown_tx.send(true);
        if let Err(e) = self.listener.await {
            tracing::error!(error = %e, "accept loop failed");
        }
        if let Err(e) = self.shared.history.flush().await {
            tracing::error!(error = %e, "history flush failed");
        }
        // The sessions' last "last seen" times (errors are logged there).
        let shared = Arc::clone(&self.shared);
        let _ = tokio::task::spawn_blocking(move || shared.devices.flush()).await;
        let tokens = self.shared.accounts.token_snapshot();
        let mut snapshot = self.token_snapshot;
        let saved = tokio::task::spawn_blocking(move || snapshot.save(tokens)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "resume tokens not saved"),
            Err(e) => tracing::error!(error = %e, "resume token writer failed"),
        }
        // The last History handles go with `shared`; then the writer exits.
        drop(self.shared);
        self.history_task.join().await;
        tracing::info!("stopped");
    }
}

/// How often the device list's changed "last seen" times are written.
const DEVICES_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes the device list's batch of changed records every
/// [`DEVICES_FLUSH_INTERVAL`], on the blocking pool, until shutdown.
async fn devices_task(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(DEVICES_FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let shared = Arc::clone(&shared);
        // Errors are logged by `flush`, and the records stay unwritten.
        let _ = tokio::task::spawn_blocking(move || shared.devices.flush()).await;
    }
}

/// Sends the hub's presence batches when they are due, until shutdown.
async fn presence_task(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let deadline = shared.hub.presence_deadline();
        tokio::select! {
            _ = shutdown.changed() => return,
            () = shared.hub.presence_recorded() => {}
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        if *shutdown.borrow() {
            return;
        }
        shared
            .hub
            .flush_presence(std::time::Instant::now(), |room| shared.room_is_quiet(room));
    }
}
