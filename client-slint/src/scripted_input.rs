//! `--stdin-actions`: lines of standard input acted out as the user would,
//! for scripts and the end-to-end test. `type TEXT` sends TEXT from the
//! message box of the open conversation (commands included); `open TITLE`
//! opens the conversation listed as TITLE (a room with or without its
//! `#`), as a click on it does. Both go through the window's own
//! callbacks, so they take the user's path and nothing else.

use slint::{ComponentHandle, Model};

use crate::ui::{ChatAdapter, MainWindow};

/// Acts out one line; says why when it cannot.
pub fn perform(window: &MainWindow, line: &str) -> Result<(), String> {
    let chat = window.global::<ChatAdapter>();
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(text) = line.strip_prefix("type ") {
        return if chat.invoke_send(text.into()) {
            Ok(())
        } else {
            Err("not logged in: nothing sent".into())
        };
    }
    if let Some(title) = line.strip_prefix("open ") {
        let wanted = title.trim();
        let index = chat.get_conversations().iter().position(|c| {
            c.title == wanted || wanted.strip_prefix('#').is_some_and(|t| c.title == t)
        });
        return match index.and_then(|i| i32::try_from(i).ok()) {
            Some(index) => {
                chat.invoke_select_conversation(index);
                Ok(())
            }
            None => Err(format!("no conversation {wanted:?}")),
        };
    }
    Err(format!(
        "unknown action {line:?} (type TEXT, or open TITLE)"
    ))
}

/// Reads standard input on a thread of its own and acts each line out on
/// the UI thread, in order, until the input ends.
pub fn install(window: &MainWindow) {
    use std::io::BufRead;
    let weak = window.as_weak();
    let reader = std::thread::Builder::new()
        .name("stdin-actions".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let acted = weak.upgrade_in_event_loop(move |window| {
                    if let Err(e) = perform(&window, &line) {
                        eprintln!("securechat-gui: --stdin-actions: {e}");
                    }
                });
                if acted.is_err() {
                    break;
                }
            }
        });
    if let Err(e) = reader {
        eprintln!("securechat-gui: cannot read standard input: {e}");
    }
}
