//! The window's only way to the network: a [`Connector`] starts a client
//! and a [`ChatBackend`] takes what the user typed. The real ones wrap
//! `client_core`; tests put fakes in their place.

use client_core::{parse_input, ClientEvent, ClientHandle, ClientOptions, ConversationRef, Input};
use zeroize::Zeroizing;

use crate::model::ConversationId;

/// What a running client accepts from the window.
pub trait ChatBackend {
    /// A line typed while `room` was shown: a message for it or a command.
    fn submit(&self, line: &str, room: &str);
    fn send_direct(&self, to: &str, text: &str);
    /// The user has seen `conversation` up to the message `up_to_id`: the
    /// read marker their other devices follow. No answer.
    fn mark_read(&self, conversation: &ConversationId, up_to_id: u64);
    /// Answered by `PasswordChanged` or `PasswordChangeFailed`.
    fn change_password(&self, current: Zeroizing<String>, new: Zeroizing<String>);
    /// Goodbye to the server, then `ClientEvent::Closed`.
    fn quit(&self);
}

impl ChatBackend for ClientHandle {
    fn submit(&self, line: &str, room: &str) {
        ClientHandle::submit(self, line, room)
    }

    fn send_direct(&self, to: &str, text: &str) {
        ClientHandle::send_direct(self, to, text)
    }

    fn mark_read(&self, conversation: &ConversationId, up_to_id: u64) {
        let conversation = match conversation {
            ConversationId::Room(room) => ConversationRef::Room(room.clone()),
            ConversationId::Direct(partner) => ConversationRef::Direct(partner.clone()),
        };
        ClientHandle::mark_read_up_to(self, conversation, up_to_id)
    }

    fn change_password(&self, current: Zeroizing<String>, new: Zeroizing<String>) {
        ClientHandle::change_password(self, current, new)
    }

    fn quit(&self) {
        ClientHandle::quit(self)
    }
}

/// Hands a batch of events to the window; returns false once the window
/// no longer wants this client's events (it was replaced or closed).
pub type Deliver = Box<dyn Fn(Vec<ClientEvent>) -> bool>;

/// Starts clients.
pub trait Connector {
    /// Starts a client; its events must reach `deliver` on the UI thread,
    /// never synchronously from inside this call.
    fn connect(&self, options: ClientOptions, deliver: Deliver) -> Box<dyn ChatBackend>;
}

/// The real thing: `client_core` on a tokio runtime owned elsewhere (its
/// own threads), events carried to Slint's event loop.
pub struct CoreConnector {
    runtime: tokio::runtime::Handle,
}

impl CoreConnector {
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        Self { runtime }
    }
}

/// Events handled per UI update: a history replay arrives in one go and
/// is drawn once, not once per line.
const BATCH: usize = 512;

impl Connector for CoreConnector {
    fn connect(&self, options: ClientOptions, deliver: Deliver) -> Box<dyn ChatBackend> {
        let (handle, mut events) = client_core::spawn(options, &self.runtime);
        // tokio's channels need no tokio runtime to be awaited: this future
        // runs on Slint's event loop, so the UI is updated on its thread.
        let pump = async move {
            while let Some(first) = events.recv().await {
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match events.try_recv() {
                        Ok(event) => batch.push(event),
                        Err(_) => break,
                    }
                }
                if !deliver(batch) {
                    break;
                }
            }
        };
        if let Err(e) = slint::spawn_local(pump) {
            eprintln!("securechat-gui: cannot receive events: {e}");
            handle.quit();
        }
        Box::new(handle)
    }
}

/// What to do with the text the user sent from a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// To `ChatBackend::submit`: room text or a command.
    Submit(String),
    Direct {
        to: String,
        text: String,
    },
    /// `#exit` or `/quit`: leave like the window's close button.
    Quit,
    Nothing,
}

/// In a room everything goes through the command parser; in a direct
/// conversation plain text goes to the partner, commands still work, and
/// `/history [N]` without a name pages that conversation.
pub fn route_input(conversation: &ConversationId, text: &str) -> Outgoing {
    match parse_input(text, conversation.room().unwrap_or("")) {
        Input::Empty => Outgoing::Nothing,
        Input::Quit => Outgoing::Quit,
        Input::History {
            conversation: ConversationRef::Room(shown),
            count,
        } if shown.is_empty() => match conversation {
            ConversationId::Direct(partner) => {
                Outgoing::Submit(format!("/history {partner} {count}"))
            }
            ConversationId::Room(_) => Outgoing::Submit(text.to_owned()),
        },
        Input::Room { text: body, .. } => match conversation {
            ConversationId::Room(_) => Outgoing::Submit(text.to_owned()),
            ConversationId::Direct(partner) => Outgoing::Direct {
                to: partner.clone(),
                text: body,
            },
        },
        _ => Outgoing::Submit(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_text_and_commands_go_to_the_parser() {
        let room = ConversationId::Room("#general".into());
        assert_eq!(route_input(&room, "hi"), Outgoing::Submit("hi".into()));
        assert_eq!(route_input(&room, "/who"), Outgoing::Submit("/who".into()));
        assert_eq!(route_input(&room, "  \n "), Outgoing::Nothing);
        assert_eq!(route_input(&room, "#exit"), Outgoing::Quit);
    }

    #[test]
    fn plain_text_in_a_direct_conversation_goes_to_the_partner() {
        let dm = ConversationId::Direct("李雷".into());
        assert_eq!(
            route_input(&dm, "line one\nline two\n"),
            Outgoing::Direct {
                to: "李雷".into(),
                text: "line one\nline two".into()
            }
        );
        assert_eq!(
            route_input(&dm, "//slash"),
            Outgoing::Direct {
                to: "李雷".into(),
                text: "/slash".into()
            }
        );
        assert_eq!(route_input(&dm, "/help"), Outgoing::Submit("/help".into()));
        assert_eq!(
            route_input(&dm, "/history 20"),
            Outgoing::Submit("/history 李雷 20".into()),
            "paging back pages this conversation"
        );
        assert_eq!(
            route_input(&dm, "/history #rust"),
            Outgoing::Submit("/history #rust".into())
        );
        assert_eq!(route_input(&dm, "/quit"), Outgoing::Quit);
    }
}
