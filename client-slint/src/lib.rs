//! # client-slint — SecureChat's desktop client
//!
//! A Slint window over `client_core`: the GUI renders events and forwards
//! input, nothing more. Connecting, trust on first use, reconnecting and
//! command parsing all live in `client_core`.
//!
//! - [`model`]: conversations, unread counts, read markers, who is online;
//!   fed with `ClientEvent`s, no Slint.
//! - [`timeline`]: a conversation as display rows (day separators, the
//!   "earlier messages" heading, the read marker).
//! - [`screens`]: which page shows, login errors in place, the trust and
//!   key-changed dialogs, leaving cleanly.
//! - [`password_dialog`]: the "Change password" dialog's checks and
//!   states, no Slint.
//! - [`backend`]: the only way to the network (`Connector`, `ChatBackend`),
//!   faked in tests; [`backend::route_input`] decides where typed text goes.
//! - [`view`]: copies models into the window's globals.
//! - [`app`]: the controller that wires callbacks, events and view.
//! - [`screen_probe`]: what the window shows, as text, for the end-to-end test.
//! - [`scripted_input`]: lines of standard input acted out as typing and
//!   clicks (`--stdin-actions`), for scripts and the end-to-end test.
//! - [`ui`]: the compiled `ui/main.slint` (pages, components, adapters).
//!
//! Threads: the tokio runtime that runs `client_core` has its own worker
//! threads; events reach the UI thread through Slint's event loop
//! (`slint::spawn_local`), so network work never blocks drawing.

pub mod app;
pub mod backend;
pub mod model;
pub mod password_dialog;
pub mod screen_probe;
pub mod screens;
pub mod scripted_input;
pub mod timeline;
pub mod view;

/// The generated Slint types (`MainWindow` and the adapter globals).
pub mod ui {
    slint::include_modules!();
}
