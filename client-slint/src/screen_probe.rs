//! What the window shows, as text, rewritten after every frame when the
//! GUI runs with `--screen-probe PATH`: the end-to-end test waits for what
//! a user would see (the join, the new messages, an unread badge) instead
//! of sleeping and hoping. Read from the window's globals, not the model,
//! so it describes what was handed to the renderer.
//!
//! It holds no message text: a message row is its kind, sender and
//! delivery mark; notices (joins, leaves, errors) are the client's own
//! words and names, and the header's title and topic are the room's, which
//! the window shows anyway.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slint::{ComponentHandle, Model};

use crate::ui::{AppState, ChatAdapter, DialogAdapter, LoginAdapter, MainWindow, Page, RowKind};

/// One line per fact, in screen order:
/// `page chat`, `login working` (the spinner turns),
/// `dialog change-password open|busy|error <reason>`, `dialog trust`,
/// `dialog key-changed`, `conversation <title> unread=<n>[ selected]`,
/// `title <title>` and `topic <topic>` (the open conversation's header,
/// on the chat page; a topic when there is one), `online <name>`,
/// `row <kind> <sender> [history] [status=<mark>]`,
/// `notice <kind> [<who> ]<text>`.
#[must_use]
pub fn describe(window: &MainWindow) -> String {
    let mut out = String::new();
    let page = match window.global::<AppState>().get_page() {
        Page::Login => "login",
        Page::Chat => "chat",
    };
    let _ = writeln!(out, "page {page}");
    if window.global::<LoginAdapter>().get_working() {
        let _ = writeln!(out, "login working");
    }
    let dialogs = window.global::<DialogAdapter>();
    if dialogs.get_password_visible() {
        let error = dialogs.get_password_error();
        if dialogs.get_password_busy() {
            let _ = writeln!(out, "dialog change-password busy");
        } else if error.is_empty() {
            let _ = writeln!(out, "dialog change-password open");
        } else {
            let _ = writeln!(out, "dialog change-password error {error}");
        }
    }
    if dialogs.get_trust_visible() {
        let _ = writeln!(out, "dialog trust");
    }
    if !dialogs.get_key_changed_warning().is_empty() {
        let _ = writeln!(out, "dialog key-changed");
    }
    let chat = window.global::<ChatAdapter>();
    for c in chat.get_conversations().iter() {
        let selected = if c.selected { " selected" } else { "" };
        let _ = writeln!(
            out,
            "conversation {} unread={}{selected}",
            c.title, c.unread
        );
    }
    if page == "chat" {
        let _ = writeln!(out, "title {}", chat.get_title());
        let topic = chat.get_topic();
        if !topic.is_empty() {
            let _ = writeln!(out, "topic {topic}");
        }
    }
    for u in chat.get_users().iter() {
        let _ = writeln!(out, "online {}", u.name);
    }
    for row in chat.get_rows().iter() {
        let kind = match row.kind {
            RowKind::Message => {
                let history = if row.history { " history" } else { "" };
                let status = if row.status.is_empty() {
                    String::new()
                } else {
                    format!(" status={}", row.status)
                };
                let _ = writeln!(out, "row message {}{history}{status}", row.sender);
                continue;
            }
            RowKind::Info => "info",
            RowKind::Join => "join",
            RowKind::Leave => "leave",
            RowKind::Error => "error",
            RowKind::Day | RowKind::Earlier | RowKind::Marker => continue,
        };
        let who = if row.sender.is_empty() {
            String::new()
        } else {
            format!("{} ", row.sender)
        };
        let _ = writeln!(out, "notice {kind} {who}{}", row.text);
    }
    out
}

/// Rewrites `path` (atomically: a temporary file, then a rename) after
/// every frame the window draws, or every 100 ms where the renderer cannot
/// report frames.
pub fn install(window: &MainWindow, path: PathBuf) {
    let weak = window.as_weak();
    let write = move || {
        if let Some(window) = weak.upgrade() {
            write_atomically(&path, &describe(&window));
        }
    };
    let on_frame = write.clone();
    let notified = window
        .window()
        .set_rendering_notifier(move |state, _| {
            if matches!(state, slint::RenderingState::AfterRendering) {
                on_frame();
            }
        })
        .is_ok();
    if !notified {
        let timer = slint::Timer::default();
        timer.start(
            slint::TimerMode::Repeated,
            Duration::from_millis(100),
            write,
        );
        // Lives as long as the event loop.
        std::mem::forget(timer);
    }
}

fn write_atomically(path: &Path, text: &str) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}
