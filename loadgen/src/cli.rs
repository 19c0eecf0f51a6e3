//! Command-line interface: the target, run-wide options and one subcommand
//! per workload.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use proto_core::message::MAX_TEXT_BYTES;
use proto_core::Fingerprint;

use crate::accounts::DEFAULT_SEED;
use crate::stamp::STAMP_LEN;

#[derive(Debug, Parser)]
#[command(
    name = "securechat-load",
    version,
    about = "Drives a SecureChat server with many real clients and measures it",
    after_help = "Accounts load00000, load00001, ... are registered on first use and \
                  reused by later runs (same --seed). Raise the server's per-connection \
                  and per-IP limits first: scripts/load.sh does."
)]
pub struct Cli {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Target")]
pub struct TargetArgs {
    /// The protocol to speak: SecureChat's own, or IRC (for side-by-side
    /// runs against an IRC daemon; `idle`, `room` and `ramp` only).
    #[arg(long, global = true, value_enum, default_value_t = Protocol::Securechat)]
    pub protocol: Protocol,
    /// IRC: the channel every client joins.
    #[arg(long, global = true, default_value = "#bench")]
    pub channel: String,
    /// IRC diagnostic: ACK received data at once (TCP_QUICKACK after every
    /// read), taking the daemon's Nagle + delayed-ACK stalls out of the
    /// latency. Real clients do not do this.
    #[arg(long, global = true)]
    pub irc_quickack: bool,
    /// Server address.
    #[arg(long, global = true, default_value = "127.0.0.1:7878")]
    pub addr: SocketAddr,
    /// Expected server key fingerprint (SHA256:...); without it the first
    /// key seen is trusted for the whole run.
    #[arg(long, global = true)]
    pub fingerprint: Option<Fingerprint>,
    /// Server process id, for its memory (VmRSS) and CPU time.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Wrap connections in TLS.
    #[arg(long, global = true)]
    pub tls: bool,
    /// CA (or self-signed) certificate to trust for --tls.
    #[arg(long, global = true, requires = "tls")]
    pub ca: Option<PathBuf>,
    /// Name to verify the certificate against (default: the address's IP).
    #[arg(long, global = true, requires = "tls")]
    pub server_name: Option<String>,
    /// Spread connections over source addresses 127.0.0.1 ..= 127.0.0.N
    /// (loopback targets only), each with its own ephemeral ports.
    #[arg(long, global = true, default_value_t = 8,
          value_parser = clap::value_parser!(u8).range(1..=254))]
    pub sources: u8,
    /// Seconds allowed for TCP connect + TLS + protocol handshake.
    #[arg(long, global = true, default_value = "30", value_parser = parse_secs)]
    pub handshake_timeout: Duration,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Run")]
pub struct RunArgs {
    /// Seed the account passwords are derived from.
    #[arg(long, global = true, default_value = DEFAULT_SEED)]
    pub seed: String,
    /// Connections joining (handshake + login) at once.
    #[arg(long, global = true, default_value_t = 32)]
    pub join_concurrency: usize,
    /// Registrations at once (each stretches its password with Argon2id in
    /// this tool, once per account, and writes the server's account file).
    #[arg(long, global = true, default_value_t = 4)]
    pub register_concurrency: usize,
    /// Whether clients try Login or Register first. `auto` logs in the last
    /// account of the range once: if it exists, every client logs in (and
    /// registers only if that fails); if not, every client registers first
    /// (and logs in on NameTaken). Failed logins are throttled per source
    /// address by the server, so a first run must not fail thousands.
    #[arg(long, global = true, value_enum, default_value_t = AccountOrder::Auto)]
    pub accounts: AccountOrder,
    /// Seconds allowed from sending credentials to the end of the login burst.
    #[arg(long, global = true, default_value = "120", value_parser = parse_secs)]
    pub login_timeout: Duration,
    /// Runtime worker threads (default: one per core).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of the table.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

/// See [`TargetArgs::protocol`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Securechat,
    Irc,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Securechat => "securechat",
            Protocol::Irc => "irc",
        }
    }
}

/// See [`RunArgs::accounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccountOrder {
    Auto,
    LoginFirst,
    RegisterFirst,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Log in N clients and hold them; server memory per connection.
    Idle(IdleArgs),
    /// N clients in the room, S of them sending: end-to-end latency.
    Room(RoomArgs),
    /// Room mode stepping the send rate up until p99 passes a threshold.
    Ramp(RampArgs),
    /// Protocol handshakes as fast as C workers can (no login).
    Handshakes(StormArgs),
    /// Password logins (handshake + Login + Goodbye) as fast as C workers can.
    Logins(LoginArgs),
    /// N clients log in, then all drop their connections at once and come
    /// back with their resume tokens: how long until all are back, and
    /// what it does to a room chatting meanwhile (in its own room).
    Reconnect(ReconnectArgs),
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Idle(_) => "idle",
            Mode::Room(_) => "room",
            Mode::Ramp(_) => "ramp",
            Mode::Handshakes(_) => "handshakes",
            Mode::Logins(_) => "logins",
            Mode::Reconnect(_) => "reconnect",
        }
    }
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Clients to log in.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub clients: usize,
    /// Seconds to hold them once all are in.
    #[arg(long, short = 't', default_value = "30", value_parser = parse_secs)]
    pub duration: Duration,
}

/// Who is in the room and what they send.
#[derive(Debug, Args, Clone)]
pub struct RoomShape {
    /// Clients in the room.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub clients: usize,
    /// How many of them send.
    #[arg(long, short = 's', default_value_t = 10)]
    pub senders: usize,
    /// Message size in bytes (the first 20 are the send stamp).
    #[arg(long, short = 'b', default_value_t = 64)]
    pub bytes: usize,
    /// Seconds to wait after sending stops for messages still in flight.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub drain: Duration,
    /// Spread the clients over this many rooms (`#load0`, `#load1`, …;
    /// client k in room k % ROOMS, senders likewise), each message going to
    /// its room only. 0: everyone in `#general`.
    #[arg(long, default_value_t = 0)]
    pub rooms: usize,
}

#[derive(Debug, Args)]
pub struct RoomArgs {
    #[command(flatten)]
    pub shape: RoomShape,
    /// Messages per second per sender.
    #[arg(long, short = 'r', default_value_t = 1.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, short = 't', default_value = "30", value_parser = parse_secs)]
    pub duration: Duration,
}

#[derive(Debug, Args)]
pub struct RampArgs {
    #[command(flatten)]
    pub shape: RoomShape,
    /// Messages per second per sender in the first step.
    #[arg(long, default_value_t = 1.0)]
    pub start_rate: f64,
    /// Each step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    pub step_factor: f64,
    /// Seconds of sending per step.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub step_secs: Duration,
    /// Stop once a step's p99 latency exceeds this many milliseconds.
    #[arg(long, default_value_t = 100.0)]
    pub p99_ms: f64,
    /// ... or once it loses more than this fraction of deliveries.
    #[arg(long, default_value_t = 0.001)]
    pub max_loss: f64,
    /// ... or once senders fall this many milliseconds behind their
    /// schedule (the offered load was not really offered: the server
    /// stopped reading, or this machine ran out of CPU).
    #[arg(long, default_value_t = 100.0)]
    pub max_lag_ms: f64,
    /// Never schedule more than this many messages per second per sender.
    #[arg(long)]
    pub max_rate: Option<f64>,
    /// At most this many steps.
    #[arg(long, default_value_t = 30)]
    pub max_steps: u16,
}

/// A room workload running underneath a storm, to show what the storm does
/// to chat latency.
#[derive(Debug, Args, Clone)]
pub struct BackgroundRoom {
    /// Clients in the background room (0: none).
    #[arg(long, default_value_t = 0)]
    pub room_clients: usize,
    /// Senders among them.
    #[arg(long, default_value_t = 10)]
    pub room_senders: usize,
    /// Messages per second per sender.
    #[arg(long, default_value_t = 1.0)]
    pub room_rate: f64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    pub room_bytes: usize,
    /// Seconds to wait after sending stops for messages in flight.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub room_drain: Duration,
}

impl BackgroundRoom {
    pub fn shape(&self) -> Option<RoomShape> {
        (self.room_clients > 0).then_some(RoomShape {
            clients: self.room_clients,
            senders: self.room_senders,
            bytes: self.room_bytes,
            drain: self.room_drain,
            rooms: 0,
        })
    }
}

#[derive(Debug, Args)]
pub struct StormArgs {
    /// Operations in flight at once.
    #[arg(long, short = 'c', default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds to keep going.
    #[arg(long, short = 't', default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    #[command(flatten)]
    pub room: BackgroundRoom,
}

#[derive(Debug, Args)]
pub struct ReconnectArgs {
    /// Clients that drop and come back (in `#general`).
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub clients: usize,
    /// Seconds to wait for all of them to be back.
    #[arg(long, default_value = "60", value_parser = parse_secs)]
    pub within: Duration,
    /// The room the background room's clients join and write to (so the
    /// reconnecting clients in `#general` do not receive its messages).
    #[arg(long, default_value = "#bench")]
    pub room_name: String,
    #[command(flatten)]
    pub room: BackgroundRoom,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub storm: StormArgs,
    /// First account index used by the login workers (worker w logs in as
    /// account base + w; default: just past the background room's).
    #[arg(long)]
    pub login_base: Option<usize>,
}

/// Seconds as an integer or decimal ("30", "0.5").
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is not a usable duration"))
}

impl Cli {
    /// Cross-field checks clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.run.join_concurrency == 0 || self.run.register_concurrency == 0 {
            return Err("concurrency limits must be at least 1".into());
        }
        if self.run.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        if self.target.protocol == Protocol::Irc {
            self.validate_irc()?;
        } else if self.target.irc_quickack {
            return Err("--irc-quickack needs --protocol irc".into());
        }
        match &self.mode {
            Mode::Idle(a) => {
                positive("--duration", a.duration)?;
                if a.clients == 0 {
                    return Err("--clients must be at least 1".into());
                }
            }
            Mode::Room(a) => {
                check_shape(&a.shape, "")?;
                check_rate("--rate", a.rate)?;
                positive("--duration", a.duration)?;
            }
            Mode::Ramp(a) => {
                check_shape(&a.shape, "")?;
                check_rate("--start-rate", a.start_rate)?;
                positive("--step-secs", a.step_secs)?;
                if !(a.step_factor > 1.0 && a.step_factor.is_finite()) {
                    return Err("--step-factor must be greater than 1".into());
                }
                if !a.p99_ms.is_finite() || a.p99_ms <= 0.0 {
                    return Err("--p99-ms must be positive".into());
                }
                if !a.max_lag_ms.is_finite() || a.max_lag_ms <= 0.0 {
                    return Err("--max-lag-ms must be positive".into());
                }
                if !(0.0..=1.0).contains(&a.max_loss) {
                    return Err("--max-loss is a fraction between 0 and 1".into());
                }
                if let Some(max) = a.max_rate {
                    check_rate("--max-rate", max)?;
                }
                if a.max_steps == 0 {
                    return Err("--max-steps must be at least 1".into());
                }
            }
            Mode::Handshakes(a) => check_storm(a)?,
            Mode::Logins(a) => check_storm(&a.storm)?,
            Mode::Reconnect(a) => {
                if a.clients == 0 {
                    return Err("--clients must be at least 1".into());
                }
                positive("--within", a.within)?;
                if let Some(shape) = a.room.shape() {
                    check_shape(&shape, "room-")?;
                    check_rate("--room-rate", a.room.room_rate)?;
                }
                proto_core::message::RoomName::new(&a.room_name)
                    .map_err(|e| format!("--room-name: {e}"))?;
            }
        }
        Ok(())
    }

    /// What IRC mode cannot do or carry.
    fn validate_irc(&self) -> Result<(), String> {
        if !crate::transport::irc::valid_channel(&self.target.channel) {
            return Err(format!(
                "--channel `{}` is not a channel name (#name, at most {} bytes)",
                self.target.channel,
                crate::transport::irc::MAX_CHANNEL_BYTES
            ));
        }
        if self.rooms() > 1 {
            return Err("--rooms needs --protocol securechat".into());
        }
        let bytes = match &self.mode {
            Mode::Idle(_) => None,
            Mode::Room(a) => Some(a.shape.bytes),
            Mode::Ramp(a) => Some(a.shape.bytes),
            Mode::Handshakes(_) | Mode::Logins(_) | Mode::Reconnect(_) => {
                return Err(format!(
                    "--protocol irc runs idle, room and ramp, not {}",
                    self.mode.name()
                ))
            }
        };
        let max = crate::transport::irc::MAX_TEXT_BYTES;
        if bytes.is_some_and(|b| b > max) {
            return Err(format!(
                "--bytes must be at most {max} with --protocol irc (a line is 512 bytes)"
            ));
        }
        Ok(())
    }

    /// Load rooms the run's main clients are spread over (0: `#general`).
    pub fn rooms(&self) -> usize {
        match &self.mode {
            Mode::Room(a) => a.shape.rooms,
            Mode::Ramp(a) => a.shape.rooms,
            _ => 0,
        }
    }

    /// Most connections the run holds open at once.
    pub fn max_connections(&self) -> usize {
        match &self.mode {
            Mode::Idle(a) => a.clients,
            Mode::Room(a) => a.shape.clients,
            Mode::Ramp(a) => a.shape.clients,
            Mode::Handshakes(a) => a.concurrency + a.room.room_clients,
            Mode::Logins(a) => a.storm.concurrency + a.storm.room.room_clients,
            Mode::Reconnect(a) => a.clients + a.room.room_clients,
        }
    }
}

fn positive(name: &str, d: Duration) -> Result<(), String> {
    if d.is_zero() {
        return Err(format!("{name} must be positive"));
    }
    Ok(())
}

fn check_rate(name: &str, rate: f64) -> Result<(), String> {
    // Below one message per 1000 s the schedule is meaningless.
    if !(rate.is_finite() && rate >= 0.001) {
        return Err(format!(
            "{name} must be a positive number of messages per second"
        ));
    }
    Ok(())
}

fn check_shape(shape: &RoomShape, prefix: &str) -> Result<(), String> {
    if shape.clients < 2 {
        return Err(format!(
            "--{prefix}clients must be at least 2 (someone has to receive)"
        ));
    }
    if shape.senders == 0 || shape.senders > shape.clients {
        return Err(format!(
            "--{prefix}senders must be between 1 and --{prefix}clients"
        ));
    }
    if shape.rooms > crate::member::MAX_LOAD_ROOMS {
        return Err(format!(
            "--rooms must be at most {}",
            crate::member::MAX_LOAD_ROOMS
        ));
    }
    if shape.rooms > 1 && shape.senders % shape.rooms != 0 {
        return Err("--senders must be a multiple of --rooms (the same in every room)".into());
    }
    if !(STAMP_LEN..=MAX_TEXT_BYTES).contains(&shape.bytes) {
        return Err(format!(
            "--{prefix}bytes must be between {STAMP_LEN} (the stamp) and {MAX_TEXT_BYTES}"
        ));
    }
    Ok(())
}

fn check_storm(a: &StormArgs) -> Result<(), String> {
    if a.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    positive("--duration", a.duration)?;
    if let Some(shape) = a.room.shape() {
        check_shape(&shape, "room-")?;
        check_rate("--room-rate", a.room.room_rate)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("securechat-load").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        cli.validate()?;
        Ok(cli)
    }

    #[test]
    fn idle_defaults() {
        let cli = parse(&["idle"]).unwrap();
        assert_eq!(cli.target.addr, "127.0.0.1:7878".parse().unwrap());
        assert_eq!(cli.target.sources, 8);
        assert_eq!(cli.run.seed, DEFAULT_SEED);
        assert!(!cli.run.json && !cli.target.tls);
        assert_eq!(cli.run.accounts, AccountOrder::Auto);
        match cli.mode {
            Mode::Idle(a) => {
                assert_eq!(a.clients, 1000);
                assert_eq!(a.duration, Duration::from_secs(30));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn global_options_may_follow_the_mode() {
        let fp = "SHA256:".to_owned() + &"A".repeat(43);
        let cli = parse(&[
            "room",
            "-n",
            "20",
            "-s",
            "5",
            "-r",
            "2.5",
            "-b",
            "100",
            "-t",
            "10",
            "--addr",
            "127.0.0.1:9000",
            "--fingerprint",
            &fp,
            "--server-pid",
            "42",
            "--json",
            "--seed",
            "s3cret",
        ])
        .unwrap();
        assert_eq!(cli.target.addr.port(), 9000);
        assert!(cli.target.fingerprint.is_some());
        assert_eq!(cli.target.server_pid, Some(42));
        assert!(cli.run.json);
        assert_eq!(cli.run.seed, "s3cret");
        match cli.mode {
            Mode::Room(a) => {
                assert_eq!(
                    (a.shape.clients, a.shape.senders, a.shape.bytes),
                    (20, 5, 100)
                );
                assert_eq!(a.rate, 2.5);
                assert_eq!(a.duration, Duration::from_secs(10));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_fingerprint_and_sources_are_rejected() {
        assert!(parse(&["idle", "--fingerprint", "SHA256:nope"]).is_err());
        assert!(parse(&["idle", "--sources", "0"]).is_err());
        assert!(parse(&["idle", "--sources", "255"]).is_err());
        assert!(parse(&["idle", "--sources", "254"]).is_ok());
    }

    #[test]
    fn account_order_is_chosen_by_name() {
        let cli = parse(&["idle", "--accounts", "register-first"]).unwrap();
        assert_eq!(cli.run.accounts, AccountOrder::RegisterFirst);
        let cli = parse(&["--accounts", "login-first", "idle"]).unwrap();
        assert_eq!(cli.run.accounts, AccountOrder::LoginFirst);
        assert!(parse(&["idle", "--accounts", "sometimes"]).is_err());
    }

    #[test]
    fn ca_requires_tls() {
        assert!(parse(&["idle", "--ca", "ca.pem"]).is_err());
        let cli = parse(&["idle", "--tls", "--ca", "ca.pem"]).unwrap();
        assert_eq!(cli.target.ca, Some(PathBuf::from("ca.pem")));
    }

    #[test]
    fn room_shape_is_checked() {
        assert!(
            parse(&["room", "-n", "1", "-s", "1"]).is_err(),
            "nobody to receive"
        );
        assert!(
            parse(&["room", "-n", "5", "-s", "6"]).is_err(),
            "more senders than clients"
        );
        assert!(parse(&["room", "-n", "5", "-s", "0"]).is_err());
        assert!(
            parse(&["room", "-b", "19"]).is_err(),
            "smaller than the stamp"
        );
        assert!(
            parse(&["room", "-b", "4097"]).is_err(),
            "larger than a message"
        );
        assert!(parse(&["room", "-b", "20"]).is_ok());
        assert!(parse(&["room", "-r", "0"]).is_err());
        assert!(parse(&["room", "-r", "inf"]).is_err());
        assert!(parse(&["room", "-t", "0"]).is_err());
        assert!(parse(&["room", "-t", "-1"]).is_err());
    }

    #[test]
    fn ramp_options() {
        let cli = parse(&[
            "ramp",
            "--start-rate",
            "2",
            "--step-factor",
            "2",
            "--p99-ms",
            "20",
        ])
        .unwrap();
        match cli.mode {
            Mode::Ramp(a) => {
                assert_eq!((a.start_rate, a.step_factor, a.p99_ms), (2.0, 2.0, 20.0));
                assert_eq!(a.step_secs, Duration::from_secs(10));
                assert_eq!(a.max_rate, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["ramp", "--step-factor", "1"]).is_err());
        assert!(parse(&["ramp", "--max-loss", "2"]).is_err());
        assert!(parse(&["ramp", "--p99-ms", "0"]).is_err());
    }

    #[test]
    fn storms_with_and_without_a_background_room() {
        let cli = parse(&["handshakes", "-c", "16", "-t", "0.5"]).unwrap();
        assert_eq!(cli.max_connections(), 16);
        match &cli.mode {
            Mode::Handshakes(a) => {
                assert_eq!(a.duration, Duration::from_millis(500));
                assert!(a.room.shape().is_none());
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&[
            "logins",
            "-c",
            "4",
            "--room-clients",
            "50",
            "--room-senders",
            "5",
            "--login-base",
            "900",
        ])
        .unwrap();
        assert_eq!(cli.max_connections(), 54);
        match &cli.mode {
            Mode::Logins(a) => {
                assert_eq!(a.login_base, Some(900));
                let shape = a.storm.room.shape().unwrap();
                assert_eq!((shape.clients, shape.senders), (50, 5));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["logins", "--room-clients", "3", "--room-senders", "4"]).is_err());
        assert!(parse(&["handshakes", "-c", "0"]).is_err());
    }

    #[test]
    fn irc_protocol_runs_room_workloads_only() {
        let cli = parse(&["--protocol", "irc", "room", "-n", "10", "-s", "2"]).unwrap();
        assert_eq!(cli.target.protocol, Protocol::Irc);
        assert_eq!(cli.target.channel, "#bench");
        assert_eq!(
            parse(&["idle"]).unwrap().target.protocol,
            Protocol::Securechat
        );
        let cli = parse(&["ramp", "--protocol", "irc", "--channel", "#load"]).unwrap();
        assert_eq!(cli.target.channel, "#load");
        assert!(parse(&["idle", "--protocol", "irc"]).is_ok());
        assert!(parse(&["handshakes", "--protocol", "irc"]).is_err());
        assert!(parse(&["logins", "--protocol", "irc"]).is_err());
        assert!(parse(&["room", "--protocol", "irc", "--channel", "bench"]).is_err());
        assert!(parse(&["room", "--protocol", "irc", "-b", "401"]).is_err());
        assert!(parse(&["room", "--protocol", "irc", "-b", "400"]).is_ok());
        assert!(
            parse(&["room", "-b", "401"]).is_ok(),
            "SecureChat takes more"
        );
        assert!(parse(&["room", "--protocol", "smtp"]).is_err());
        assert!(parse(&["room", "--protocol", "irc", "--irc-quickack"]).is_ok());
        assert!(parse(&["room", "--irc-quickack"]).is_err());
    }

    #[test]
    fn seconds_parse_as_decimals() {
        assert_eq!(parse_secs("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_secs("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_secs("abc").is_err());
        assert!(parse_secs("-3").is_err());
        assert!(parse_secs("NaN").is_err());
    }
}
