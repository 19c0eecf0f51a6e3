use client_core::{ClientEvent, CloseCause, PasswordChangeError};
use zeroize::Zeroizing;

use super::*;

fn z(text: &str) -> Zeroizing<String> {
    Zeroizing::new(text.to_owned())
}

fn open() -> PasswordDialog {
    let mut dialog = PasswordDialog::default();
    dialog.open();
    dialog
}

/// Opens the dialog and submits a valid form.
fn busy() -> PasswordDialog {
    let mut dialog = open();
    let submit = dialog.submit(z("old password"), z("new password"), z("new password"));
    assert!(matches!(submit, Submit::Send(_)), "{submit:?}");
    dialog
}

fn refused(current: &str, new: &str, again: &str) -> (PasswordDialog, FormProblem) {
    let mut dialog = open();
    match dialog.submit(z(current), z(new), z(again)) {
        Submit::Refused(problem) => (dialog, problem),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_dialog_starts_closed_and_opens_without_an_error() {
    let mut dialog = PasswordDialog::default();
    assert!(!dialog.is_open());
    dialog.open();
    assert!(dialog.is_open() && !dialog.busy());
    assert_eq!(dialog.error(), "");
}

#[test]
fn a_valid_form_is_sent_and_the_dialog_waits() {
    let mut dialog = open();
    match dialog.submit(z("old password"), z("pässwörd"), z("pässwörd")) {
        Submit::Send(change) => {
            assert_eq!(change.current.as_str(), "old password");
            assert_eq!(change.new.as_str(), "pässwörd");
        }
        other => panic!("expected the change to be sent, got {other:?}"),
    }
    assert!(dialog.is_open() && dialog.busy());
    assert_eq!(dialog.error(), "");
}

#[test]
fn different_new_passwords_are_refused_before_sending() {
    let (dialog, problem) = refused("old password", "new password", "new passw0rd");
    assert_eq!(problem, FormProblem::Mismatch);
    assert!(problem.clears_new_passwords());
    assert_eq!(dialog.error(), "The new passwords do not match");
    assert!(!dialog.busy(), "the form can be used again");
}

#[test]
fn a_new_password_under_the_minimum_is_refused_counting_characters() {
    let short = "x".repeat(proto_core::login::MIN_PASSWORD_CHARS - 1);
    let (dialog, problem) = refused("old password", &short, &short);
    assert_eq!(problem, FormProblem::TooShort);
    assert_eq!(
        dialog.error(),
        format!(
            "The new password must have at least {} characters",
            proto_core::login::MIN_PASSWORD_CHARS
        )
    );
    // Eight characters, more bytes: long enough.
    let mut dialog = open();
    let submit = dialog.submit(z("old"), z("ééééçççç"), z("ééééçççç"));
    assert!(matches!(submit, Submit::Send(_)), "{submit:?}");
}

#[test]
fn a_missing_current_password_is_refused_and_keeps_the_new_ones() {
    let (dialog, problem) = refused("", "new password", "new password");
    assert_eq!(problem, FormProblem::CurrentMissing);
    assert!(!problem.clears_new_passwords());
    assert_eq!(dialog.error(), "Enter your current password");
}

#[test]
fn a_success_closes_the_dialog() {
    let mut dialog = busy();
    dialog.handle_event(&ClientEvent::PasswordChanged);
    assert!(!dialog.is_open());
    assert_eq!(dialog, PasswordDialog::Closed);
}

#[test]
fn a_failure_keeps_the_dialog_open_with_the_reason() {
    let mut dialog = busy();
    dialog.handle_event(&ClientEvent::PasswordChangeFailed {
        reason: PasswordChangeError::WrongPassword,
    });
    assert!(dialog.is_open() && !dialog.busy());
    assert_eq!(dialog.error(), "The current password is wrong");
    // Fixed and sent again: the old reason goes.
    let submit = dialog.submit(z("right one"), z("new password"), z("new password"));
    assert!(matches!(submit, Submit::Send(_)), "{submit:?}");
    assert_eq!(dialog.error(), "");
}

#[test]
fn cancel_closes_an_open_dialog_but_not_a_change_under_way() {
    let mut dialog = open();
    assert!(dialog.cancel());
    assert!(!dialog.is_open());
    let mut dialog = busy();
    assert!(!dialog.cancel());
    assert!(dialog.busy());
}

#[test]
fn the_change_button_does_nothing_while_busy_or_closed() {
    let mut dialog = busy();
    let submit = dialog.submit(z("a"), z("b"), z("c"));
    assert!(matches!(submit, Submit::Ignored), "{submit:?}");
    assert!(dialog.busy());
    let mut closed = PasswordDialog::default();
    let submit = closed.submit(z("a"), z("new password"), z("new password"));
    assert!(matches!(submit, Submit::Ignored), "{submit:?}");
    assert!(!closed.is_open());
}

#[test]
fn answers_to_no_change_of_ours_leave_the_dialog_alone() {
    let mut dialog = open();
    dialog.handle_event(&ClientEvent::PasswordChanged);
    dialog.handle_event(&ClientEvent::PasswordChangeFailed {
        reason: PasswordChangeError::InProgress,
    });
    assert_eq!(
        dialog,
        PasswordDialog::Open {
            error: String::new()
        }
    );
}

#[test]
fn the_session_ending_closes_the_dialog() {
    let mut dialog = busy();
    dialog.handle_event(&ClientEvent::Closed {
        cause: CloseCause::Left,
    });
    assert!(!dialog.is_open());
}
