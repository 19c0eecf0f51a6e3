//! What an operator can set: [`Config`] (where to listen, where the data
//! lives, TLS) and [`ServerLimits`] (every bound the server holds), with the
//! defaults a small deployment wants, and the TOML file that overrides them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::storage::PasswordParams;

/// The port the server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7878;
/// The data directory used unless told otherwise (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "securechat-data";

/// Everything the server needs to start.
#[derive(Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Holds the keys, the accounts file and `chat_histories/` (created 0700).
    pub data_dir: PathBuf,
    /// Wrap every connection in TLS 1.3 with this certificate chain and key.
    pub tls: Option<TlsFiles>,
    /// The storage key as 64 hex digits (from the environment), instead of
    /// `data_dir/storage.key`.
    pub storage_key_hex: Option<Zeroizing<String>>,
    /// Bounds on connections, rates and queues.
    pub limits: ServerLimits,
    /// Messages replayed per conversation at login.
    pub history_replay: usize,
    /// History written since the last fsync is fsynced this often (and at
    /// shutdown): what a power loss or kernel crash can lose at most.
    pub history_sync_interval: Duration,
    /// Bytes of loaded conversations (recent entries, resend keys, partner
    /// lists) the history keeps in memory between requests; least recently
    /// used ones are evicted beyond it and read from disk again when needed.
    pub history_cache_bytes: usize,
    /// How long a resume token stays valid.
    pub token_lifetime: Duration,
    /// Argon2id costs of new password hashes: the OWASP minimum unless
    /// set (test servers pick cheap ones; the binary never does by itself).
    pub password_hashing: PasswordParams,
    /// Accounts (usernames) that may disable and re-enable accounts, end
    /// their sessions and delete any room but `#general`.
    pub admins: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("tls", &self.tls)
            .field(
                "storage_key_hex",
                &self.storage_key_hex.as_ref().map(|_| "<redacted>"),
            )
            .field("limits", &self.limits)
            .field("history_replay", &self.history_replay)
            .field("history_sync_interval", &self.history_sync_interval)
            .field("history_cache_bytes", &self.history_cache_bytes)
            .field("token_lifetime", &self.token_lifetime)
            .field("password_hashing", &self.password_hashing)
            .field("admins", &self.admins)
            .finish()
    }
}

impl Config {
    /// Defaults everywhere, data in `data_dir`, listening on 127.0.0.1:7878.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            data_dir: data_dir.into(),
            tls: None,
            storage_key_hex: None,
            limits: ServerLimits::default(),
            history_replay: 50,
            history_sync_interval: Duration::from_secs(1),
            history_cache_bytes: crate::storage::history::DEFAULT_CACHE_BYTES,
            token_lifetime: Duration::from_secs(24 * 3600),
            password_hashing: PasswordParams::default(),
            admins: Vec::new(),
        }
    }

    /// The administrators' canonical names (a name that is not a valid
    /// username names nobody).
    pub fn admin_keys(&self) -> std::collections::HashSet<String> {
        self.admins
            .iter()
            .filter_map(|name| proto_core::message::Username::parse_normalizing(name).ok())
            .map(|name| name.canonical())
            .collect()
    }
}

/// The certificate chain and private key (PEM) for optional TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every bound the server holds. None of them lets one client hurt another:
/// each is per connection or per source address, or refuses the newcomer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Open connections at once (each holds a file descriptor).
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Connections not yet logged in (handshaking or authenticating), in
    /// total. When full, a newcomer evicts the oldest of them, so a
    /// slowloris from many addresses cannot crowd out logins.
    pub max_unauthenticated: usize,
    /// ... of which one IP address may hold this many.
    pub max_unauthenticated_per_ip: usize,
    /// From TCP accept to the client's Finished, TLS included (slowloris).
    pub handshake_timeout: Duration,
    /// From the end of the handshake to a successful login.
    pub auth_timeout: Duration,
    /// Nothing received for this long ends the session (Goodbye IdleTimeout).
    pub idle_timeout: Duration,
    /// The server pings a client it has not heard from for this long.
    pub ping_interval: Duration,
    /// Chat messages (room and direct) per second, per connection, sustained.
    pub messages_per_second: u32,
    /// ... and in a burst.
    pub message_burst: u32,
    /// Messages queued for one client before it counts as a slow consumer
    /// and is cut off.
    pub outbox_capacity: usize,
    /// One write to a client must finish within this, or it is cut off.
    pub write_timeout: Duration,
    /// New connections per second from one IP address, sustained ...
    pub handshakes_per_ip_per_second: u32,
    /// ... and in a burst.
    pub handshake_burst_per_ip: u32,
    /// Handshake cryptography running at once (on the blocking pool).
    pub handshake_workers: usize,
    /// Expensive account work at once: OPAQUE answers (~0.3 ms each) and
    /// the legacy logins' Argon2id checks (19 MiB each).
    pub hash_workers: usize,
    /// Room creations, joins and leaves per second, per connection,
    /// sustained (each notifies a room) ...
    pub room_requests_per_second: u32,
    /// ... and in a burst.
    pub room_request_burst: u32,
    /// Rooms on the server, rooms per user, members per room.
    pub rooms: crate::rooms::RoomLimits,
    /// Devices one user may be logged in from (at most 64).
    pub max_devices_per_user: usize,
    /// Presence (who came online, who went offline) goes out in batches,
    /// at most one per this interval: a storm of logins costs each
    /// session one message per interval, not one per login.
    pub presence_interval: Duration,
    /// Rooms with more members than this are told neither each presence
    /// change (at 19,000 members a reconnect storm would be 19,000
    /// batches a second) nor plain joins and leaves (each registration
    /// into `#general` a write per member online); their members ask
    /// (`Members`). Moderation notices still go to every member.
    pub presence_room_max_members: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        let half_the_cores = std::thread::available_parallelism()
            .map(|n| n.get() / 2)
            .unwrap_or(1)
            .max(1);
        Self {
            max_connections: 25_000,
            max_connections_per_ip: 64,
            max_unauthenticated: 1024,
            max_unauthenticated_per_ip: 16,
            handshake_timeout: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(120),
            ping_interval: Duration::from_secs(30),
            messages_per_second: 20,
            message_burst: 40,
            room_requests_per_second: 1,
            room_request_burst: 10,
            rooms: crate::rooms::RoomLimits::default(),
            max_devices_per_user: 10,
            presence_interval: crate::presence::DEFAULT_PRESENCE_INTERVAL,
            presence_room_max_members: crate::presence::DEFAULT_PRESENCE_ROOM_MAX_MEMBERS,
            outbox_capacity: 1024,
            write_timeout: Duration::from_secs(10),
            handshakes_per_ip_per_second: 10,
            handshake_burst_per_ip: 30,
            handshake_workers: half_the_cores,
            hash_workers: half_the_cores,
        }
    }
}

/// The TOML configuration file. Every key is optional; names follow
/// [`Config`] and [`ServerLimits`], durations are whole seconds with a
/// `_secs` suffix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub history_replay: Option<usize>,
    pub history_sync_ms: Option<u64>,
    pub history_cache_bytes: Option<usize>,
    pub token_lifetime_secs: Option<u64>,
    pub admins: Option<Vec<String>>,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub password_hashing: FilePasswordHashing,
}

/// The `[password_hashing]` table of [`FileConfig`]: Argon2id costs of
/// new hashes (m in KiB).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePasswordHashing {
    pub m_cost_kib: Option<u32>,
    pub t_cost: Option<u32>,
    pub p_cost: Option<u32>,
}

/// The `[limits]` table of [`FileConfig`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub max_unauthenticated: Option<usize>,
    pub max_unauthenticated_per_ip: Option<usize>,
    pub handshake_timeout_secs: Option<u64>,
    pub auth_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub ping_interval_secs: Option<u64>,
    pub messages_per_second: Option<u32>,
    pub message_burst: Option<u32>,
    pub outbox_capacity: Option<usize>,
    pub write_timeout_secs: Option<u64>,
    pub handshakes_per_ip_per_second: Option<u32>,
    pub handshake_burst_per_ip: Option<u32>,
    pub handshake_workers: Option<usize>,
    pub hash_workers: Option<usize>,
    pub room_requests_per_second: Option<u32>,
    pub room_request_burst: Option<u32>,
    pub max_rooms: Option<usize>,
    pub max_rooms_per_user: Option<usize>,
    pub max_members_per_room: Option<usize>,
    pub max_devices_per_user: Option<usize>,
    pub presence_interval_ms: Option<u64>,
    pub presence_room_max_members: Option<usize>,
    /// Accepted and ignored (with a warning): with OPAQUE the server never
    /// sees a password, so clients enforce the minimum (8 characters).
    pub min_password_chars: Option<usize>,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {name}: {message}")]
    Invalid {
        name: &'static str,
        message: &'static str,
    },
}

impl FileConfig {
    /// Reads and parses a TOML file; unknown keys are errors (typos must not
    /// silently leave a limit at its default).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Applies the settings present in the file to `config`.
    pub fn apply(self, config: &mut Config) {
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *slot = v;
            }
        }
        fn secs(slot: &mut Duration, value: Option<u64>) {
            set(slot, value.map(Duration::from_secs));
        }
        set(&mut config.listen, self.listen);
        set(&mut config.data_dir, self.data_dir);
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            config.tls = Some(TlsFiles { cert, key });
        }
        set(&mut config.history_replay, self.history_replay);
        set(
            &mut config.history_sync_interval,
            self.history_sync_ms.map(Duration::from_millis),
        );
        set(&mut config.history_cache_bytes, self.history_cache_bytes);
        secs(&mut config.token_lifetime, self.token_lifetime_secs);
        set(&mut config.admins, self.admins);
        let (h, f) = (&mut config.password_hashing, self.password_hashing);
        set(&mut h.m_cost_kib, f.m_cost_kib);
        set(&mut h.t_cost, f.t_cost);
        set(&mut h.p_cost, f.p_cost);
        let (l, f) = (&mut config.limits, self.limits);
        set(&mut l.max_connections, f.max_connections);
        set(&mut l.max_connections_per_ip, f.max_connections_per_ip);
        set(&mut l.max_unauthenticated, f.max_unauthenticated);
        set(
            &mut l.max_unauthenticated_per_ip,
            f.max_unauthenticated_per_ip,
        );
        secs(&mut l.handshake_timeout, f.handshake_timeout_secs);
        secs(&mut l.auth_timeout, f.auth_timeout_secs);
        secs(&mut l.idle_timeout, f.idle_timeout_secs);
        secs(&mut l.ping_interval, f.ping_interval_secs);
        set(&mut l.messages_per_second, f.messages_per_second);
        set(&mut l.message_burst, f.message_burst);
        set(&mut l.outbox_capacity, f.outbox_capacity);
        secs(&mut l.write_timeout, f.write_timeout_secs);
        set(
            &mut l.handshakes_per_ip_per_second,
            f.handshakes_per_ip_per_second,
        );
        set(&mut l.handshake_burst_per_ip, f.handshake_burst_per_ip);
        set(&mut l.handshake_workers, f.handshake_workers);
        set(&mut l.hash_workers, f.hash_workers);
        set(&mut l.room_requests_per_second, f.room_requests_per_second);
        set(&mut l.room_request_burst, f.room_request_burst);
        set(&mut l.rooms.max_rooms, f.max_rooms);
        set(&mut l.rooms.max_rooms_per_user, f.max_rooms_per_user);
        set(&mut l.rooms.max_members_per_room, f.max_members_per_room);
        set(&mut l.max_devices_per_user, f.max_devices_per_user);
        set(
            &mut l.presence_room_max_members,
            f.presence_room_max_members,
        );
        if let Some(ms) = f.presence_interval_ms {
            l.presence_interval = Duration::from_millis(ms);
        }
        if f.min_password_chars.is_some() {
            tracing::warn!(
                "[limits] min_password_chars is ignored: the server never sees passwords \
                 (OPAQUE); clients refuse passwords shorter than 8 characters"
            );
        }
    }
}

impl ServerLimits {
    /// Refuses settings that would make the server unusable rather than
    /// merely strict.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(bool, &'static str, &'static str); 13] = [
            (
                self.presence_interval <= Duration::from_secs(60),
                "presence_interval_ms",
                "must be at most 60000",
            ),
            (
                (1..=proto_core::message::MAX_DEVICES_PER_LIST)
                    .contains(&self.max_devices_per_user),
                "max_devices_per_user",
                "must be 1 to 64",
            ),
            (
                self.room_requests_per_second > 0 && self.room_request_burst > 0,
                "room_requests_per_second",
                "rate and burst must be at least 1",
            ),
            (
                self.rooms.max_rooms > 0
                    && self.rooms.max_rooms_per_user > 0
                    && self.rooms.max_members_per_room > 0,
                "max_rooms",
                "room caps must be at least 1",
            ),
            (
                self.max_unauthenticated > 0 && self.max_unauthenticated_per_ip > 0,
                "max_unauthenticated",
                "must be at least 1",
            ),
            (
                self.max_connections > 0,
                "max_connections",
                "must be at least 1",
            ),
            (
                self.max_connections_per_ip > 0,
                "max_connections_per_ip",
                "must be at least 1",
            ),
            (
                self.messages_per_second > 0 && self.message_burst > 0,
                "messages_per_second",
                "rate and burst must be at least 1",
            ),
            (
                self.handshakes_per_ip_per_second > 0 && self.handshake_burst_per_ip > 0,
                "handshakes_per_ip_per_second",
                "rate and burst must be at least 1",
            ),
            (
                self.outbox_capacity >= 16,
                "outbox_capacity",
                "must be at least 16",
            ),
            (
                self.handshake_workers > 0 && self.hash_workers > 0,
                "handshake_workers",
                "worker counts must be at least 1",
            ),
            (
                !self.ping_interval.is_zero() && self.ping_interval < self.idle_timeout,
                "ping_interval",
                "must be non-zero and shorter than idle_timeout",
            ),
            (
                !self.handshake_timeout.is_zero()
                    && !self.auth_timeout.is_zero()
                    && !self.write_timeout.is_zero(),
                "handshake_timeout",
                "timeouts must be non-zero",
            ),
        ];
        for (ok, name, message) in checks {
            if !ok {
                return Err(ConfigError::Invalid { name, message });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_override_defaults_and_unknown_keys_are_refused() {
        let file: FileConfig = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            history_replay = 7
            history_cache_bytes = 1048576
            [limits]
            max_connections_per_ip = 3
            idle_timeout_secs = 300
            "#,
        )
        .unwrap();
        let mut config = Config::new("d");
        file.apply(&mut config);
        assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.history_replay, 7);
        assert_eq!(config.history_cache_bytes, 1 << 20);
        assert_eq!(config.limits.max_connections_per_ip, 3);
        assert_eq!(config.limits.idle_timeout, Duration::from_secs(300));
        assert_eq!(config.limits.max_connections, 25_000);

        let typo = toml::from_str::<FileConfig>("[limits]\nmax_conections = 5\n");
        assert!(typo.is_err());
    }

    #[test]
    fn the_shipped_example_config_parses_and_matches_the_defaults() {
        let file: FileConfig =
            toml::from_str(include_str!("../../deploy/securechat.example.toml")).unwrap();
        let mut config = Config::new("securechat-data");
        file.apply(&mut config);
        let mut defaults = Config::new("securechat-data");
        defaults.limits.handshake_workers = config.limits.handshake_workers;
        defaults.limits.hash_workers = config.limits.hash_workers;
        assert_eq!(config.limits, defaults.limits);
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.history_replay, defaults.history_replay);
        assert_eq!(config.history_sync_interval, defaults.history_sync_interval);
        assert_eq!(config.history_cache_bytes, defaults.history_cache_bytes);
        assert_eq!(config.password_hashing, defaults.password_hashing);
    }

    #[test]
    fn password_hashing_costs_come_from_the_file() {
        let file: FileConfig =
            toml::from_str("[password_hashing]\nm_cost_kib = 64\nt_cost = 1\n").unwrap();
        let mut config = Config::new("d");
        file.apply(&mut config);
        assert_eq!(
            config.password_hashing,
            PasswordParams {
                m_cost_kib: 64,
                t_cost: 1,
                p_cost: 1
            }
        );
        assert_eq!(Config::new("d").password_hashing, PasswordParams::default());
    }

    #[test]
    fn defaults_are_valid_and_nonsense_is_refused() {
        ServerLimits::default().validate().unwrap();
        let mut bad = ServerLimits::default();
        bad.ping_interval = bad.idle_timeout;
        assert!(bad.validate().is_err());
        let bad = ServerLimits {
            max_connections: 0,
            ..ServerLimits::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn debug_output_hides_the_storage_key() {
        let mut config = Config::new("d");
        config.storage_key_hex = Some(Zeroizing::new("ab".repeat(32)));
        assert!(!format!("{config:?}").contains("abab"));
    }
}
