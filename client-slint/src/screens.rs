//! Which page is shown and what the login screen and dialogs say, driven
//! by the client's events: errors in place on the login screen, the
//! trust-on-first-use question, the key-changed warning, and leaving
//! cleanly. No Slint here; `app` applies the result.

use client_core::cause::auth_failure_text;
use client_core::events::key_changed_warning;
use client_core::{ClientEvent, ConnectionState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Login,
    Chat,
}

/// The fingerprint question on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPrompt {
    pub server: String,
    pub fingerprint: String,
}

/// What the app must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Nothing,
    /// The goodbye is done: end the program.
    Exit,
}

#[derive(Debug)]
pub struct Screens {
    page: Page,
    /// A client is running (connecting or connected).
    running: bool,
    /// The client has logged in at least once.
    logged_in: bool,
    /// The running client creates the account rather than logging in.
    registering: bool,
    /// The user asked to leave; waiting for `Closed`.
    quitting: bool,
    error: String,
    progress: String,
    trust: Option<TrustPrompt>,
    key_warning: Option<String>,
}

impl Default for Screens {
    fn default() -> Self {
        Self::new()
    }
}

impl Screens {
    pub fn new() -> Self {
        Self {
            page: Page::Login,
            running: false,
            logged_in: false,
            registering: false,
            quitting: false,
            error: String::new(),
            progress: String::new(),
            trust: None,
            key_warning: None,
        }
    }

    // ---- getters

    pub fn page(&self) -> Page {
        self.page
    }

    /// A client is running; the login buttons are disabled.
    pub fn busy(&self) -> bool {
        self.running
    }

    /// A login or registration is under way (the client connects, or runs
    /// Argon2id and waits for the server): the login page's spinner turns.
    /// Not while the fingerprint question waits for the user, nor once the
    /// attempt failed.
    pub fn logging_in(&self) -> bool {
        self.running && !self.logged_in && self.trust.is_none() && self.error.is_empty()
    }

    pub fn quitting(&self) -> bool {
        self.quitting
    }

    /// The error shown on the login screen.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// "Connecting to …" under the login buttons.
    pub fn progress(&self) -> &str {
        &self.progress
    }

    pub fn trust_prompt(&self) -> Option<&TrustPrompt> {
        self.trust.as_ref()
    }

    pub fn key_warning(&self) -> Option<&str> {
        self.key_warning.as_deref()
    }

    // ---- inputs

    /// The login form was refused before connecting (bad address, empty
    /// name).
    pub fn form_error(&mut self, message: String) {
        self.error = message;
    }

    /// A client was started for `server`, to log in or (`register`) to
    /// create the account.
    pub fn started(&mut self, server: &str, register: bool) {
        self.running = true;
        self.logged_in = false;
        self.registering = register;
        self.quitting = false;
        self.error.clear();
        self.progress = format!("Connecting to {server}…");
        self.key_warning = None;
    }

    pub fn handle_event(&mut self, event: &ClientEvent) -> Effect {
        match event {
            ClientEvent::State(ConnectionState::Connected) if !self.logged_in => {
                self.progress = if self.registering {
                    "Creating account…"
                } else {
                    "Logging in…"
                }
                .into();
            }
            ClientEvent::TrustQuestion {
                server,
                fingerprint,
                ..
            } => {
                self.progress = "Waiting for you to check the server's fingerprint…".into();
                self.trust = Some(TrustPrompt {
                    server: server.to_string(),
                    fingerprint: fingerprint.to_string(),
                });
            }
            ClientEvent::KeyChanged {
                server,
                pinned,
                presented,
                known_servers,
            } => {
                self.key_warning = Some(key_changed_warning(
                    server,
                    pinned,
                    presented,
                    known_servers,
                ));
                self.error = "Refused to connect: the server's identity key has changed".into();
                self.page = Page::Login;
            }
            ClientEvent::LoggedIn { .. } => {
                self.logged_in = true;
                self.page = Page::Chat;
                self.error.clear();
                self.progress.clear();
            }
            ClientEvent::AuthFailed { reason } => {
                self.error = auth_failure_text(*reason).to_owned();
                self.page = Page::Login;
            }
            ClientEvent::Closed { cause } => {
                let was_quitting = self.quitting;
                self.stopped();
                if was_quitting {
                    return Effect::Exit;
                }
                // An earlier event (auth failure, key change, trust refused)
                // may already have said why, better.
                if self.error.is_empty() {
                    self.error = if self.page == Page::Chat {
                        format!("Disconnected: {cause}")
                    } else {
                        // client-core gives up at once when the first
                        // connection fails ("server unreachable: …").
                        capitalized(&cause.to_string())
                    };
                }
                self.page = Page::Login;
            }
            _ => {}
        }
        Effect::Nothing
    }

    /// The user answered the fingerprint question.
    pub fn trust_answered(&mut self, trusted: bool) {
        self.trust = None;
        if trusted {
            self.progress = "Connecting…".into();
        } else {
            self.error = "Server not trusted: nothing was sent".into();
        }
    }

    pub fn key_warning_dismissed(&mut self) {
        self.key_warning = None;
    }

    /// The window's close button (or a quit command, or SIGTERM). Returns
    /// whether a goodbye is under way (the caller sends it and waits for
    /// `Closed`); otherwise the program can end now.
    pub fn quit_requested(&mut self) -> bool {
        if self.running {
            self.quitting = true;
        }
        self.quitting
    }

    fn stopped(&mut self) {
        self.running = false;
        self.quitting = false;
        self.trust = None;
        self.progress.clear();
    }
}

/// `text` with its first letter upper-cased, for messages shown on their own.
pub(crate) fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
