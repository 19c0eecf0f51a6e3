//! # loadgen — the SecureChat load generator (`securechat-load`)
//!
//! Opens many real client connections (real handshakes, encryption and
//! accounts) from one process, puts them in the room and measures what the
//! server delivers. One tokio task per connection on a multi-threaded
//! runtime; each task keeps its own counters and latency histogram, merged
//! by a coordinator between phases, so nothing on the receive path is
//! shared or locked.
//!
//! ## Modes
//! - `idle`: log N clients in and hold them; server RSS per connection.
//! - `room`: N in the room, S sending R msgs/s of B bytes for T seconds;
//!   end-to-end latency percentiles, deliveries/s, lost messages.
//! - `ramp`: `room` with the rate stepped up until p99 passes a threshold.
//! - `handshakes` / `logins`: connection storms with C workers, optionally
//!   over a background room to show what they do to chat latency.
//! - `reconnect`: N clients log in, then all drop their connections at
//!   once and come back with their resume tokens: the time until all are
//!   back in their rooms, with a background room chatting in a room of
//!   its own (`--room-name`, default `#bench`) meanwhile.
//!
//! Every mode reports this process's CPU time and the server's (`/proc`),
//! so a reader can tell which side was the bottleneck.
//!
//! ## Table of contents
//! - [`cli`]: arguments and their validation.
//! - [`modes`]: the workloads behind each subcommand.
//! - [`fleet`]: the coordinator: joins members, runs phases, merges results.
//! - [`member`]: one connection's task and its sans-IO state machine.
//! - [`storm`]: back-to-back handshakes or logins on C workers.
//! - [`transport`]: the protocol-independent connection traits;
//!   [`transport::securechat`], the real client stack;
//!   [`transport::irc`], an IRC client for side-by-side runs against an
//!   IRC daemon (`--protocol irc`: idle, room and ramp); and
//!   [`transport::dialer`], TCP from spread source addresses plus TLS.
//! - [`accounts`]: `load00000`-style names and seed-derived passwords.
//! - [`stamp`]: the send timestamp at the start of every message.
//! - [`latency`]: per-task histograms and their merge.
//! - [`proc_stats`]: CPU time and RSS from `/proc`.
//! - [`fd_limit`]: raising RLIMIT_NOFILE.
//! - [`report`]: the result object, as JSON or a table.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod cli;
pub mod fd_limit;
pub mod fleet;
pub mod latency;
pub mod member;
pub mod modes;
pub mod proc_stats;
pub mod report;
pub mod stamp;
pub mod storm;
pub mod transport;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

/// The whole `securechat-load` binary.
pub fn cli_main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = cli.validate() {
        cli::Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit();
    }
    let threads = cli
        .run
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        // Handshake key generation runs on the blocking pool; more threads
        // than cores there would only fight the workers for CPU.
        .max_blocking_threads(threads.max(2))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("securechat-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(modes::run(&cli, threads));
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(report) => {
            if cli.run.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("securechat-load: cannot encode the report: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.to_table());
            }
            match &report.error {
                None => ExitCode::SUCCESS,
                Some(e) => {
                    eprintln!("securechat-load: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("securechat-load: {e}");
            ExitCode::FAILURE
        }
    }
}
