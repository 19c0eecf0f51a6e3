//! `securechat-gui`: the SecureChat desktop client.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use client_core::{Fingerprint, TlsOptions};
use client_slint::app::{App, Settings};
use client_slint::backend::CoreConnector;
use slint::ComponentHandle;
use zeroize::Zeroizing;

/// The password is read from this variable, never from a flag (argv is
/// world-readable).
const PASSWORD_ENV: &str = "SECURECHAT_PASSWORD";

#[derive(Debug, Parser)]
#[command(
    name = "securechat-gui",
    version,
    about = "SecureChat desktop client",
    after_help = "The password can be given in SECURECHAT_PASSWORD (never as a flag)."
)]
struct Cli {
    /// Server address (host or host:port), filled into the login form.
    #[arg(long, env = "SECURECHAT_SERVER")]
    server: Option<String>,
    /// User name, filled into the login form.
    #[arg(long, env = "SECURECHAT_USER")]
    user: Option<String>,
    /// Log in (or with --register, create the account) at start.
    #[arg(long)]
    connect: bool,
    /// With --connect: register instead of logging in.
    #[arg(long, requires = "connect")]
    register: bool,
    /// The server's fingerprint (SHA256:...), checked instead of asking.
    #[arg(long)]
    fingerprint: Option<Fingerprint>,
    /// Known-servers file [default: in the user's config directory].
    #[arg(long)]
    known_servers: Option<PathBuf>,
    /// Wrap the connection in TLS.
    #[arg(long)]
    tls: bool,
    /// With --tls: a CA certificate (PEM) to trust instead of the web roots.
    #[arg(long, requires = "tls")]
    ca_file: Option<PathBuf>,
    /// Send TEXT to the room once logged in (repeatable; for scripts and tests).
    #[arg(long, value_name = "TEXT")]
    send_after_login: Vec<String>,
    /// Act out each line of standard input as the user would: `type TEXT`
    /// sends TEXT from the message box of the open conversation (commands
    /// included), `open TITLE` opens the conversation listed as TITLE (for
    /// scripts and the end-to-end test).
    #[arg(long)]
    stdin_actions: bool,
    /// Once logged in, change the password to $SECURECHAT_NEW_PASSWORD
    /// through the Change password dialog (for the end-to-end test).
    #[arg(long, hide = true)]
    change_password_after_login: bool,
    /// Describe what the window shows in PATH after every frame (for the
    /// end-to-end test; no message text).
    #[arg(long, value_name = "PATH", hide = true)]
    screen_probe: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = Settings {
        server: cli.server,
        username: cli.user,
        password: std::env::var(PASSWORD_ENV).ok().map(Zeroizing::new),
        register: cli.register,
        connect: cli.connect,
        fingerprint: cli.fingerprint,
        known_servers: cli.known_servers,
        tls: cli.tls.then_some(TlsOptions {
            ca_file: cli.ca_file,
        }),
        send_after_login: cli.send_after_login,
        change_password_after_login: cli
            .change_password_after_login
            .then(|| {
                let current = std::env::var(PASSWORD_ENV).ok()?;
                let new = std::env::var("SECURECHAT_NEW_PASSWORD").ok()?;
                Some((Zeroizing::new(current), Zeroizing::new(new)))
            })
            .flatten(),
    };
    // Network work runs on this runtime's own thread, never on the UI's.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("securechat-net")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("securechat-gui: cannot start the network thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = match App::new(
        Box::new(CoreConnector::new(runtime.handle().clone())),
        settings,
    ) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("securechat-gui: cannot open a window: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = cli.screen_probe {
        client_slint::screen_probe::install(app.window(), path);
    }
    if cli.stdin_actions {
        client_slint::scripted_input::install(app.window());
    }
    close_on_signals(&runtime, app.window().as_weak());
    let result = app.run();
    drop(app);
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("securechat-gui: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM and Ctrl+C close the window like its X button: goodbye first.
fn close_on_signals(
    runtime: &tokio::runtime::Runtime,
    window: slint::Weak<client_slint::ui::MainWindow>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    runtime.spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = window.upgrade_in_event_loop(|window| {
                window
                    .window()
                    .dispatch_event(slint::platform::WindowEvent::CloseRequested);
            });
        }
    });
}
