//! Building validated protocol values from test literals.

use proto_core::message::{MessageText, Password, RoomName, Username};

/// The password every test account uses unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

/// A valid username; panics on a literal the protocol refuses.
pub fn username(name: &str) -> Username {
    Username::new(name).unwrap_or_else(|e| panic!("test username {name:?} is invalid: {e}"))
}

/// A valid password.
pub fn password(secret: &str) -> Password {
    Password::new(secret.to_owned()).expect("test password is invalid")
}

/// A valid chat text.
pub fn text(s: &str) -> MessageText {
    MessageText::new(s).unwrap_or_else(|e| panic!("test text is invalid: {e}"))
}

/// A valid room name (with its `#`).
pub fn room(name: &str) -> RoomName {
    RoomName::new(name).unwrap_or_else(|e| panic!("test room {name:?} is invalid: {e}"))
}
