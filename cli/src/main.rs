//! `securechat-cli`: the terminal client. Interactive at a shell; for
//! scripts, `--send TEXT` sends one message and leaves, and `--json` prints
//! every event as a JSON line.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use client_core::{
    AuthRequest, ClientEvent, ClientOptions, Fingerprint, KnownServers, ServerAddress, TlsOptions,
};
use tokio::io::AsyncBufReadExt;
use zeroize::Zeroizing;

mod render;

/// Environment variable a script can put the password in.
const PASSWORD_ENV: &str = "SECURECHAT_PASSWORD";

#[derive(Debug, Parser)]
#[command(name = "securechat-cli", version, about = "SecureChat terminal client")]
struct Args {
    /// Server address: host, host:port or [ipv6]:port.
    #[arg(
        long,
        short,
        env = "SECURECHAT_SERVER",
        default_value = "127.0.0.1:7878"
    )]
    server: ServerAddress,
    /// Username.
    #[arg(long, short, env = "SECURECHAT_USER")]
    user: String,
    /// Create the account instead of logging in.
    #[arg(long)]
    register: bool,
    /// Read the password from the first line of standard input (else
    /// $SECURECHAT_PASSWORD, else a prompt without echo).
    #[arg(long)]
    password_stdin: bool,
    /// The server's fingerprint (SHA256:...), obtained out of band: no
    /// question on first use; pinned on success.
    #[arg(long)]
    fingerprint: Option<Fingerprint>,
    /// Trust a server seen for the first time without asking (scripts;
    /// like ssh's accept-new). A CHANGED key is still refused.
    #[arg(long)]
    accept_new_key: bool,
    /// Wrap the connection in TLS.
    #[arg(long)]
    tls: bool,
    /// CA certificate (PEM) for TLS; default: the bundled web roots.
    #[arg(long, requires = "tls")]
    ca: Option<PathBuf>,
    /// Known-servers file [default: ~/.config/securechat/known_servers].
    #[arg(long)]
    known_servers: Option<PathBuf>,
    /// Send this one message after logging in, then leave.
    #[arg(long)]
    send: Option<String>,
    /// With --send: send it as a direct message to this user.
    #[arg(long, requires = "send")]
    to: Option<String>,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
}

fn read_password(args: &Args) -> anyhow::Result<Zeroizing<String>> {
    if args.password_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password")?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
        return Ok(trimmed);
    }
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: use a terminal, ${PASSWORD_ENV} or --password-stdin");
    }
    let p = rpassword::prompt_password(format!("password for {}: ", args.user))?;
    Ok(Zeroizing::new(p))
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("securechat-cli: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let password = read_password(&args)?;
    let auth = if args.register {
        AuthRequest::Register {
            username: args.user.clone(),
            password,
        }
    } else {
        AuthRequest::Login {
            username: args.user.clone(),
            password,
        }
    };
    let mut options = ClientOptions::new(args.server.clone(), auth);
    options.fingerprint = args.fingerprint;
    options.tls = args.tls.then(|| TlsOptions {
        ca_file: args.ca.clone(),
    });
    if let Some(path) = &args.known_servers {
        options.known_servers = KnownServers::at(path.clone());
    }
    options.reconnect = args.send.is_none();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(chat(args, options))
}

async fn chat(args: Args, options: ClientOptions) -> anyhow::Result<ExitCode> {
    let (handle, mut events) = client_core::spawn(options, &tokio::runtime::Handle::current());
    // Interactive input: lines from stdin (not in --send mode).
    let interactive = args.send.is_none();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    // Read chat lines only once logged in: before that, stdin answers the
    // trust question.
    let mut stdin_open = false;
    let mut sent = false;
    let mut failed = false;
    let stdout = std::io::stdout();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let text = if args.json { render::json(&event) } else { render::human(&event) };
                if let Some(text) = text {
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "{text}");
                    let _ = out.flush();
                }
                match event {
                    ClientEvent::TrustQuestion { server, fingerprint, reply } => {
                        let yes = args.accept_new_key
                            || ask_trust(&server, &fingerprint, args.json, &mut stdin).await;
                        let _ = reply.send(yes);
                    }
                    ClientEvent::HistoryDone => {
                        if let (Some(text), false) = (&args.send, sent) {
                            sent = true;
                            match &args.to {
                                Some(to) => handle.send_direct(to, text),
                                None => handle.send_room(text),
                            }
                            handle.quit();
                        }
                    }
                    ClientEvent::LoggedIn { .. } => {
                        stdin_open = interactive && !args.password_stdin;
                    }
                    ClientEvent::AuthFailed { .. } | ClientEvent::KeyChanged { .. } => failed = true,
                    ClientEvent::Closed { .. } => break,
                    _ => {}
                }
            }
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => handle.submit(&line),
                // End of input: leave cleanly.
                _ => {
                    stdin_open = false;
                    handle.quit();
                }
            },
        }
    }
    Ok(if failed || (args.send.is_some() && !sent) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Asks on the terminal whether to trust a new server key.
async fn ask_trust(
    server: &ServerAddress,
    fingerprint: &Fingerprint,
    json: bool,
    stdin: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>,
) -> bool {
    if json || !std::io::stdin().is_terminal() {
        eprintln!(
            "securechat-cli: {server} is not known (fingerprint {fingerprint}); \
             refusing without a terminal to ask. Use --fingerprint or --accept-new-key."
        );
        return false;
    }
    let question = format!(
        "The server {server} is not known yet.\n\
         Its fingerprint is {fingerprint}\n\
         Compare it with the one the server's operator gave you.\n\
         Trust this server and remember it? [y/N] "
    );
    eprint!("{question}");
    match stdin.next_line().await {
        Ok(Some(answer)) => matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
        _ => false,
    }
}
