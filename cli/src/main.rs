//! `securechat-cli`: the terminal client. Interactive at a shell; for
//! scripts, `--send TEXT` sends one message and leaves, and `--json` prints
//! every event as a JSON line. The exit status says how it ended ([`Exit`]).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use client_core::{
    parse_input, AuthRequest, ClientEvent, ClientOptions, CloseCause, Delivery, FatalCause,
    Fingerprint, Input, KnownServers, NoticeKind, ServerAddress, TlsOptions, GENERAL_ROOM,
};
use proto_core::message::RoomName;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

mod render;
mod rooms;

use rooms::CurrentRoom;

/// Environment variable a script can put the password in.
const PASSWORD_ENV: &str = "SECURECHAT_PASSWORD";
/// With `--change-password`: the new password.
const NEW_PASSWORD_ENV: &str = "SECURECHAT_NEW_PASSWORD";

/// The exit statuses; README.md ("Chatting from a terminal") and `--help`
/// list them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Left normally: `/quit`, `#exit`, end of input; `--send`: sent;
    /// `--change-password`: changed.
    Left = 0,
    /// The server refused the login or registration; `--change-password`:
    /// the password did not change.
    AuthFailed = 1,
    /// Bad arguments (clap exits with 2 too), or no password to use.
    Usage = 2,
    /// The server could not be reached, or the connection failed or was
    /// lost (and is not retried: before the first login, or `--send`).
    ConnectionFailed = 3,
    /// The server's identity was refused: its key changed (or is not the
    /// `--fingerprint` given), the user did not trust it, or the server
    /// could not prove it (bad signature or Finished); or it asked an
    /// account known to use OPAQUE for its password in the old form.
    ServerIdentity = 4,
    /// The server ended the session: another login took it over, or (with
    /// `--send`) it shut down or cut the client off.
    ClosedByServer = 5,
    /// Anything else: the handshake failed otherwise, TLS, the
    /// known-servers file, another protocol version.
    Failed = 6,
    /// `--send`: the server refused the message (rate limit, unknown
    /// recipient, storage failure) or never confirmed storing it.
    NotDelivered = 7,
}

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  left normally (/quit, #exit, end of input; --send: sent;
     --change-password: changed)
  1  login or registration refused; --change-password: not changed
  2  usage error: bad arguments, or no password
  3  server unreachable, or the connection failed or was lost
  4  server identity refused: changed key, wrong --fingerprint, not trusted,
     or not proven (bad signature); or it asked an OPAQUE account for its
     password in the pre-OPAQUE form
  5  closed by the server: logged in elsewhere; --send: shutdown, cut off
  6  other errors: handshake, TLS, known-servers file, protocol version
  7  --send: the message was refused, or its storage was not confirmed";

impl Exit {
    fn from_cause(cause: &CloseCause) -> Self {
        match cause {
            CloseCause::Left => Exit::Left,
            CloseCause::Fatal(FatalCause::AuthFailed(_) | FatalCause::InvalidUsername(_)) => {
                Exit::AuthFailed
            }
            CloseCause::ConnectionFailed(_) => Exit::ConnectionFailed,
            CloseCause::Fatal(
                FatalCause::ServerKeyChanged { .. }
                | FatalCause::ServerKeyDeclined
                | FatalCause::ServerIdentityUnproven(_)
                | FatalCause::LegacyLoginRefused { .. },
            ) => Exit::ServerIdentity,
            CloseCause::ClosedByServer(_) => Exit::ClosedByServer,
            CloseCause::Fatal(
                FatalCause::InvalidPassword(_)
                | FatalCause::StretchFailed
                | FatalCause::VersionMismatch(_)
                | FatalCause::Handshake(_)
                | FatalCause::KnownServers(_)
                | FatalCause::Pin(_)
                | FatalCause::TlsSetup(_)
                | FatalCause::TlsServerName(_)
                | FatalCause::TlsHandshake(_)
                | FatalCause::Refused(_)
                | FatalCause::UnexpectedAnswer { .. },
            ) => Exit::Failed,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "securechat-cli",
    version,
    about = "SecureChat terminal client",
    after_help = EXIT_STATUS_HELP
)]
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
    #[arg(long, requires = "send", conflicts_with = "room")]
    to: Option<String>,
    /// The room --send writes to, and the room shown first
    /// [default: --join's room, else #general].
    #[arg(long)]
    room: Option<String>,
    /// Join this room after logging in, creating it if it does not exist.
    #[arg(long)]
    join: Option<String>,
    /// This device's name in your device list [default: "cli on HOSTNAME"].
    #[arg(long)]
    device_name: Option<String>,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
    /// Log in, change the password, then leave (exit 0 if changed, 1 if
    /// not). The new password is the second line of standard input with
    /// --password-stdin, else $SECURECHAT_NEW_PASSWORD, else asked twice
    /// without echo. Other devices must log in again with the new one.
    #[arg(long, conflicts_with_all = ["send", "register"])]
    change_password: bool,
}

fn read_stdin_password(what: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what}"))?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// The new password of `--change-password`.
fn read_new_password(args: &Args) -> anyhow::Result<Zeroizing<String>> {
    if args.password_stdin {
        return read_stdin_password("new password");
    }
    if let Ok(p) = std::env::var(NEW_PASSWORD_ENV) {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no new password: use a terminal, ${NEW_PASSWORD_ENV} or --password-stdin");
    }
    let first = Zeroizing::new(rpassword::prompt_password("new password: ")?);
    let again = Zeroizing::new(rpassword::prompt_password("new password again: ")?);
    if first != again {
        bail!("the two new passwords differ");
    }
    Ok(first)
}

fn read_password(args: &Args) -> anyhow::Result<Zeroizing<String>> {
    if args.password_stdin {
        return read_stdin_password("password");
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
        Ok(exit) => exit.into(),
        // Only what happens before connecting fails here.
        Err(e) => {
            eprintln!("securechat-cli: {e:#}");
            Exit::Usage.into()
        }
    }
}

fn run() -> anyhow::Result<Exit> {
    let args = Args::parse();
    for name in [&args.room, &args.join].into_iter().flatten() {
        RoomName::parse_normalizing(name)
            .map_err(|e| anyhow::anyhow!("invalid room name {name:?}: {e}"))?;
    }
    let password = read_password(&args)?;
    let new_password = if args.change_password {
        Some(read_new_password(&args)?)
    } else {
        None
    };
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
    options.device = Some(
        client_core::DeviceIdentity::load_or_create(
            &options.known_servers,
            "cli",
            args.device_name.as_deref(),
        )
        .context("this device's id (beside the known-servers file)")?,
    );
    options.reconnect = args.send.is_none() && !args.change_password;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    Ok(runtime.block_on(chat(args, options, new_password)))
}

/// Standard input line by line, read on a thread of its own, started at
/// the first request and never joined: a read blocked on a terminal must
/// not hold up the exit. (tokio's stdin reads on the runtime's blocking
/// pool, and dropping the runtime waits for that read: for Enter.)
#[derive(Default)]
struct StdinLines {
    lines: Option<mpsc::Receiver<String>>,
}

impl StdinLines {
    /// The next line; `None` at the end of input (or a read error).
    /// Cancel-safe.
    async fn next_line(&mut self) -> Option<String> {
        self.lines.get_or_insert_with(read_stdin).recv().await
    }
}

fn read_stdin() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(1);
    let reader = move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(reader)
    {
        eprintln!("securechat-cli: cannot read standard input: {e}");
    }
    rx
}

async fn chat(args: Args, options: ClientOptions, new_password: Option<Zeroizing<String>>) -> Exit {
    let old_password = options.auth.password().clone();
    let (handle, mut events) = client_core::spawn(options, &tokio::runtime::Handle::current());
    // Interactive input: lines from stdin (not in --send or
    // --change-password mode).
    let interactive = args.send.is_none() && new_password.is_none();
    let mut new_password = new_password;
    // --change-password: None until the server answered.
    let mut changed: Option<bool> = None;
    let mut stdin = StdinLines::default();
    // --room, else --join's room, else #general.
    let first_room = args
        .room
        .as_deref()
        .or(args.join.as_deref())
        .unwrap_or(GENERAL_ROOM);
    let mut current = CurrentRoom::new(first_room);
    // --join: asked, not yet answered (a refusal ends a --send run).
    let mut joining = false;
    let prompt = interactive
        && !args.json
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal();
    // Read chat lines only once logged in: before that, stdin answers the
    // trust question.
    let mut stdin_open = false;
    let mut sent = false;
    // --send: the server confirmed the message is stored.
    let mut stored = false;
    let stdout = std::io::stdout();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let text = if args.json { render::json(&event) } else { render::human(&event) };
                current.see(&event);
                if let Some(text) = text {
                    let mut out = stdout.lock();
                    // Over the prompt, which is redrawn below.
                    let clear = if prompt && stdin_open { "\r\x1b[K" } else { "" };
                    let _ = writeln!(out, "{clear}{text}");
                    if prompt && stdin_open {
                        let _ = write!(out, "{}", current.prompt());
                    }
                    let _ = out.flush();
                }
                match event {
                    ClientEvent::TrustQuestion { server, fingerprint, reply } => {
                        let yes = args.accept_new_key
                            || ask_trust(&server, &fingerprint, args.json, &mut stdin).await;
                        let _ = reply.send(yes);
                    }
                    ClientEvent::HistoryDone => {
                        if let Some(new) = new_password.take() {
                            handle.change_password(old_password.clone(), new);
                        }
                        match &args.join {
                            // Once per run: a reconnect finds the user in it.
                            Some(room) if !joining && !current.is_member(room) => {
                                joining = true;
                                current.switch_on_join(room);
                                handle.join(room);
                            }
                            _ => {
                                if let (Some(text), false) = (&args.send, sent) {
                                    sent = true;
                                    send_once(&handle, &args, text, &current);
                                }
                            }
                        }
                    }
                    ClientEvent::RoomJoined(room) if joining
                        && args.join.as_deref().is_some_and(|j| rooms::same_room(j, &room.name)) =>
                    {
                        joining = false;
                        if let (Some(text), false) = (&args.send, sent) {
                            sent = true;
                            send_once(&handle, &args, text, &current);
                        }
                    }
                    ClientEvent::Notice { kind: NoticeKind::Error, .. }
                        if joining && args.send.is_some() =>
                    {
                        // The join was refused: nothing is sent.
                        joining = false;
                        handle.quit();
                    }
                    ClientEvent::LoggedIn { .. } => {
                        stdin_open = interactive && !args.password_stdin;
                    }
                    ClientEvent::Delivery { delivery: Delivery::Stored { .. }, .. } => stored = true,
                    ClientEvent::PasswordChanged => {
                        changed = Some(true);
                        handle.quit();
                    }
                    ClientEvent::PasswordChangeFailed { .. } => {
                        changed = Some(false);
                        handle.quit();
                    }
                    ClientEvent::Closed { .. } => break,
                    _ => {}
                }
            }
            line = stdin.next_line(), if stdin_open => match line {
                Some(line) => {
                    let input = parse_input(&line, current.name());
                    if let Input::Join(room) = &input {
                        current.switch_on_join(room);
                    }
                    let said = matches!(input, Input::Room { .. });
                    handle.submit(&line, current.name());
                    if said {
                        // Writing in a room means having read it.
                        handle.mark_read(current.name());
                    }
                    if prompt {
                        let mut out = stdout.lock();
                        let _ = write!(out, "{}", current.prompt());
                        let _ = out.flush();
                    }
                }
                // End of input: leave cleanly.
                None => {
                    stdin_open = false;
                    handle.quit();
                }
            },
        }
    }
    match handle.close_cause().as_ref().map(Exit::from_cause) {
        Some(Exit::Left) if args.change_password && changed != Some(true) => Exit::AuthFailed,
        // Only the server can end a --send run as "left" before it sent.
        Some(Exit::Left) if args.send.is_some() && !sent => Exit::Failed,
        Some(Exit::Left) if args.send.is_some() && !stored => Exit::NotDelivered,
        Some(exit) => exit,
        None => Exit::Failed, // the client task ended without a word
    }
}

/// `--send`'s message: to `--to`, else to the room.
fn send_once(handle: &client_core::ClientHandle, args: &Args, text: &str, current: &CurrentRoom) {
    match &args.to {
        Some(to) => handle.send_direct(to, text),
        None => handle.send_room(args.room.as_deref().unwrap_or(current.name()), text),
    }
    handle.quit();
}

/// Asks on the terminal whether to trust a new server key.
async fn ask_trust(
    server: &ServerAddress,
    fingerprint: &Fingerprint,
    json: bool,
    stdin: &mut StdinLines,
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
        Some(answer) => matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
        None => false,
    }
}
