//! The real `securechat-server` binary as a child process: started with a
//! TOML config, its one stdout line `securechat-server listening on ADDR
//! fingerprint FP` parsed, stopped with SIGKILL (a crash) or SIGTERM.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use proto_core::Fingerprint;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::test_client::Endpoint;

/// How long the binary may take to print its listening line, or to exit.
pub const PROCESS_BOUND: Duration = Duration::from_secs(30);

/// Writes a config file for a server on 127.0.0.1:0 with data in
/// `data_dir` and limits that let one test open many connections from
/// 127.0.0.1 (like [`crate::test_limits`]), and Argon2id at
/// [`crate::TEST_PASSWORD_HASHING`]'s costs.
pub fn write_config(path: &Path, data_dir: &Path) {
    write_config_with(path, data_dir, "");
}

/// [`write_config`] with more top-level settings (`key = value` lines).
pub fn write_config_with(path: &Path, data_dir: &Path, top_level: &str) {
    let data_dir = data_dir.to_str().expect("UTF-8 temporary path");
    assert!(!data_dir.contains('\''), "path unusable in a TOML literal");
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n\
         data_dir = '{data_dir}'\n\
         {top_level}\n\
         [limits]\n\
         max_connections_per_ip = 1000\n\
         max_unauthenticated_per_ip = 1000\n\
         messages_per_second = 10000\n\
         message_burst = 10000\n\
         handshakes_per_ip_per_second = 10000\n\
         handshake_burst_per_ip = 10000\n\
         handshake_workers = 2\n\
         hash_workers = 2\n\
         presence_interval_ms = 0\n\
         [password_hashing]\n\
         m_cost_kib = {m}\n\
         t_cost = {t}\n\
         p_cost = {p}\n",
        m = crate::TEST_PASSWORD_HASHING.m_cost_kib,
        t = crate::TEST_PASSWORD_HASHING.t_cost,
        p = crate::TEST_PASSWORD_HASHING.p_cost,
    );
    std::fs::write(path, toml).expect("write the server config");
}

/// The binary with a clean environment (no SECURECHAT_* from outside).
pub fn command(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    for var in [
        "SECURECHAT_DATA_DIR",
        "SECURECHAT_LISTEN",
        "SECURECHAT_CONFIG",
        "SECURECHAT_STORAGE_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// Runs the binary to completion (for `fingerprint`, `init`): status,
/// stdout, stderr.
pub async fn run_to_exit(exe: &Path, args: &[&OsStr]) -> (ExitStatus, String, String) {
    let mut cmd = command(exe);
    cmd.args(args);
    let out = tokio::time::timeout(PROCESS_BOUND, cmd.output())
        .await
        .unwrap_or_else(|_| {
            panic!("securechat-server {args:?} did not exit within {PROCESS_BOUND:?}")
        })
        .expect("run securechat-server");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How a start failed: the process exited before it printed the
/// listening line.
#[derive(Debug)]
pub struct StartFailure {
    pub status: ExitStatus,
    pub stderr: String,
}

/// A running server process.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
    log: PathBuf,
    stdout_drain: JoinHandle<()>,
}

impl ServerProcess {
    /// `securechat-server run --config CONFIG`, logs (stderr) to `log`.
    pub async fn start(exe: &Path, config: &Path, log: &Path) -> Self {
        match Self::try_start(exe, config, log).await {
            Ok(p) => p,
            Err(f) => panic!(
                "securechat-server exited with {} before listening; stderr:\n{}",
                f.status, f.stderr
            ),
        }
    }

    pub async fn try_start(exe: &Path, config: &Path, log: &Path) -> Result<Self, StartFailure> {
        let log_file = std::fs::File::create(log).expect("create the server log");
        let mut cmd = command(exe);
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = cmd.spawn().expect("spawn securechat-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = match tokio::time::timeout(PROCESS_BOUND, lines.next_line()).await {
            Ok(line) => line.expect("read the server's stdout"),
            Err(_) => {
                let _ = child.start_kill();
                panic!(
                    "securechat-server printed no line within {PROCESS_BOUND:?}; stderr:\n{}",
                    read_log(log)
                );
            }
        };
        let Some(line) = first else {
            let status = wait_bounded(&mut child).await;
            return Err(StartFailure {
                status,
                stderr: read_log(log),
            });
        };
        let (addr, fingerprint) = parse_listening_line(&line);
        // Keep reading so that a later print never meets a closed pipe.
        let stdout_drain =
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            addr,
            fingerprint,
            log: log.to_owned(),
            stdout_drain,
        })
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.addr,
            fingerprint: self.fingerprint,
            tls_ca: None,
            recv_buffer: None,
            source: None,
        }
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// SIGKILL: the server gets no chance to flush or say goodbye.
    pub async fn kill9(mut self) {
        self.child.start_kill().expect("SIGKILL the server");
        wait_bounded(&mut self.child).await;
        self.stdout_drain.abort();
    }

    /// SIGTERM, then the exit status; fails the test if the server has not
    /// exited within [`PROCESS_BOUND`].
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().expect("the server is still running");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {pid} failed");
        let status = wait_bounded(&mut self.child).await;
        self.stdout_drain.abort();
        status
    }
}

async fn wait_bounded(child: &mut Child) -> ExitStatus {
    match tokio::time::timeout(PROCESS_BOUND, child.wait()).await {
        Ok(status) => status.expect("wait for the server"),
        Err(_) => {
            let _ = child.start_kill();
            panic!("securechat-server did not exit within {PROCESS_BOUND:?}");
        }
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `securechat-server listening on ADDR fingerprint FP`, exactly.
pub fn parse_listening_line(line: &str) -> (SocketAddr, Fingerprint) {
    let words: Vec<&str> = line.split(' ').collect();
    match words.as_slice() {
        ["securechat-server", "listening", "on", addr, "fingerprint", fp] => {
            let addr = addr
                .parse()
                .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
            let fp = fp
                .parse()
                .unwrap_or_else(|e| panic!("bad fingerprint in {line:?}: {e}"));
            (addr, fp)
        }
        _ => panic!(
            "expected `securechat-server listening on ADDR fingerprint FP` on stdout, got {line:?}"
        ),
    }
}
