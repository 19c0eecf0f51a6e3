//! The `securechat-server` command line: `run` (the default), `init`,
//! `fingerprint`. Settings come from defaults, then the TOML file, then
//! flags and environment variables; the storage key may come from
//! `SECURECHAT_STORAGE_KEY` (never from a flag: argv is world-readable).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use zeroize::Zeroizing;

use crate::config::{Config, FileConfig, TlsFiles, DEFAULT_DATA_DIR};
use crate::storage::{key_files, DataDir};

/// Environment variable holding the storage key as 64 hex digits.
pub const STORAGE_KEY_ENV: &str = "SECURECHAT_STORAGE_KEY";

#[derive(Debug, Parser)]
#[command(
    name = "securechat-server",
    version,
    about = "SecureChat server: encrypted group chat with accounts and history",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Run(RunArgs),
    /// Create the data directory and keys if missing; print the fingerprint.
    Init(DirArgs),
    /// Print the fingerprint clients will see (never creates a key).
    Fingerprint(DirArgs),
}

#[derive(Debug, Args, Default)]
struct DirArgs {
    /// TOML configuration file.
    #[arg(long, env = "SECURECHAT_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (keys, accounts, chat_histories/) [default: ./securechat-data].
    #[arg(long, env = "SECURECHAT_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
struct RunArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long, env = "SECURECHAT_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// TLS certificate chain (PEM); with --tls-key, wraps every connection in TLS 1.3.
    #[arg(long, env = "SECURECHAT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, mode 0600).
    #[arg(long, env = "SECURECHAT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Messages replayed per conversation at login.
    #[arg(long)]
    history_replay: Option<usize>,
    /// Open connections at once.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Open connections per source address.
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// Chat messages per second per connection.
    #[arg(long)]
    messages_per_second: Option<u32>,
}

impl DirArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::new(DEFAULT_DATA_DIR);
        if let Some(path) = &self.config {
            FileConfig::load(path)?.apply(&mut config);
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }
}

impl RunArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = self.dir.config()?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls = Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        if let Some(n) = self.history_replay {
            config.history_replay = n;
        }
        if let Some(n) = self.max_connections {
            config.limits.max_connections = n;
        }
        if let Some(n) = self.max_connections_per_ip {
            config.limits.max_connections_per_ip = n;
        }
        if let Some(n) = self.messages_per_second {
            config.limits.messages_per_second = n;
            config.limits.message_burst = config.limits.message_burst.max(n);
        }
        if let Ok(key) = std::env::var(STORAGE_KEY_ENV) {
            config.storage_key_hex = Some(Zeroizing::new(key));
        }
        Ok(config)
    }
}

/// The whole binary: parse, run, map errors to a message and exit code 1.
pub fn cli_main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Init(args)) => init(args),
        Some(Command::Fingerprint(args)) => fingerprint(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("securechat-server: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, not in a log file or pipe.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("securechat")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Handlers first: a signal right after the line below must already
        // mean a graceful stop, not the default instant death.
        let signals = Signals::install()?;
        let server = crate::start(config).await?;
        println!(
            "securechat-server listening on {} fingerprint {}",
            server.local_addr(),
            server.fingerprint()
        );
        signals.wait_for_stop(&server).await;
        server.shutdown().await;
        Ok(())
    })
}

/// The signals the server handles.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
        })
    }

    /// Returns on SIGINT or SIGTERM; reloads TLS on SIGHUP.
    async fn wait_for_stop(mut self, server: &crate::RunningServer) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => match server.reload_tls() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded (if TLS is on)"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the old certificate"),
                },
            }
        }
    }
}

fn init(args: DirArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let dir = DataDir::open_or_create(&config.data_dir)?;
    let (identity, generated) = crate::app::load_identity(&dir)?;
    if std::env::var_os(STORAGE_KEY_ENV).is_none() {
        dir.load_or_generate_storage_key()?;
    }
    println!(
        "{} {}",
        if generated { "created" } else { "existing" },
        dir.path().display()
    );
    println!("fingerprint {}", identity.public_key().fingerprint());
    Ok(())
}

fn fingerprint(args: DirArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let path = config
        .data_dir
        .join(crate::storage::data_dir::IDENTITY_KEY_FILE);
    if !path.exists() {
        bail!(
            "no identity key at {} (run `securechat-server init` or start the server once)",
            path.display()
        );
    }
    let seed = key_files::load(&path)?;
    let identity = proto_core::ServerIdentity::from_seed(&seed);
    println!("{}", identity.public_key().fingerprint());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nhistory_replay = 3\n").unwrap();
        let cli = Cli::try_parse_from([
            "securechat-server",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:2",
        ])
        .unwrap();
        let config = cli.run.config().unwrap();
        assert_eq!(config.listen, "127.0.0.1:2".parse().unwrap());
        assert_eq!(config.history_replay, 3);
    }

    #[test]
    fn tls_needs_both_files() {
        assert!(Cli::try_parse_from(["securechat-server", "--tls-cert", "c.pem"]).is_err());
        let cli = Cli::try_parse_from([
            "securechat-server",
            "run",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Run(_))));
    }
}
