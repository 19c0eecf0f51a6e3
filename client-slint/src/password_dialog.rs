//! The "Change password" dialog: what it checks before anything is sent
//! (the new password typed twice, long enough) and where it stands while
//! `client_core` runs the change (Argon2id on its own threads, then the
//! server). No Slint here; `app` reads the fields, `view` shows the state.

use client_core::{ClientEvent, PasswordChangeError};
use proto_core::login::MIN_PASSWORD_CHARS;
use zeroize::Zeroizing;

use crate::screens::capitalized;

/// Where the dialog stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PasswordDialog {
    #[default]
    Closed,
    /// Waiting for the user; `error` says why the last try failed ("" at
    /// first).
    Open { error: String },
    /// Sent to the client; waiting for `PasswordChanged` or
    /// `PasswordChangeFailed`. The buttons are disabled: a change under
    /// way cannot be taken back.
    Busy,
}

/// What is wrong with the form; nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormProblem {
    CurrentMissing,
    TooShort,
    Mismatch,
}

impl FormProblem {
    pub fn text(self) -> String {
        match self {
            FormProblem::CurrentMissing => "Enter your current password".into(),
            FormProblem::TooShort => {
                format!("The new password must have at least {MIN_PASSWORD_CHARS} characters")
            }
            FormProblem::Mismatch => "The new passwords do not match".into(),
        }
    }

    /// The new password must be typed again (twice); the current one is
    /// kept only when it was the one missing.
    pub fn clears_new_passwords(self) -> bool {
        !matches!(self, FormProblem::CurrentMissing)
    }
}

/// What the Change button leads to.
#[derive(Debug)]
pub enum Submit {
    /// The form is fine: send this; the dialog is busy.
    Send(PasswordChange),
    /// Nothing sent; the dialog shows why.
    Refused(FormProblem),
    /// The dialog is not waiting for input (closed, or busy).
    Ignored,
}

/// A checked form: what `ClientHandle::change_password` takes.
#[derive(Debug)]
pub struct PasswordChange {
    pub current: Zeroizing<String>,
    pub new: Zeroizing<String>,
}

impl PasswordDialog {
    // ---- getters

    pub fn is_open(&self) -> bool {
        *self != PasswordDialog::Closed
    }

    pub fn busy(&self) -> bool {
        *self == PasswordDialog::Busy
    }

    /// Why the last try failed, or "".
    pub fn error(&self) -> &str {
        match self {
            PasswordDialog::Open { error } => error,
            PasswordDialog::Closed | PasswordDialog::Busy => "",
        }
    }

    // ---- inputs

    /// The "Change password" button.
    pub fn open(&mut self) {
        if *self == PasswordDialog::Closed {
            *self = PasswordDialog::Open {
                error: String::new(),
            };
        }
    }

    /// The Cancel button; returns whether the dialog closed (not while a
    /// change is under way).
    pub fn cancel(&mut self) -> bool {
        match self {
            PasswordDialog::Busy => false,
            PasswordDialog::Open { .. } | PasswordDialog::Closed => {
                *self = PasswordDialog::Closed;
                true
            }
        }
    }

    /// The Change button: checks the form; if it is fine the dialog waits
    /// for the client and the change is to be sent.
    pub fn submit(
        &mut self,
        current: Zeroizing<String>,
        new: Zeroizing<String>,
        again: Zeroizing<String>,
    ) -> Submit {
        if !matches!(self, PasswordDialog::Open { .. }) {
            return Submit::Ignored;
        }
        let problem = if current.is_empty() {
            Some(FormProblem::CurrentMissing)
        } else if new.chars().count() < MIN_PASSWORD_CHARS {
            Some(FormProblem::TooShort)
        } else if new != again {
            Some(FormProblem::Mismatch)
        } else {
            None
        };
        if let Some(problem) = problem {
            *self = PasswordDialog::Open {
                error: problem.text(),
            };
            return Submit::Refused(problem);
        }
        *self = PasswordDialog::Busy;
        Submit::Send(PasswordChange { current, new })
    }

    /// The change could not be sent or did not happen: the dialog stays
    /// open with the reason.
    pub fn failed(&mut self, reason: &PasswordChangeError) {
        if self.busy() {
            *self = PasswordDialog::Open {
                error: capitalized(&reason.to_string()),
            };
        }
    }

    pub fn handle_event(&mut self, event: &ClientEvent) {
        match event {
            ClientEvent::PasswordChanged if self.busy() => *self = PasswordDialog::Closed,
            ClientEvent::PasswordChangeFailed { reason } => self.failed(reason),
            // The session is over; the login page shows why.
            ClientEvent::Closed { .. } => *self = PasswordDialog::Closed,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
