//! Passwords as carried by `Register` and `Login` (SECURITY.md M6, S5).

use core::fmt;

use zeroize::Zeroize;

use crate::message::codec::{Reader, Sink, U16_BYTES};
use crate::message::error::{MessageError, PasswordError};

/// Maximum length of a password in bytes of UTF-8. Bounds the Argon2 input
/// (M6) and the size of `Register`.
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub(crate) const MAX_PASSWORD_WIRE_BYTES: usize = U16_BYTES + MAX_PASSWORD_BYTES;

/// A password: 1 to [`MAX_PASSWORD_BYTES`] bytes of UTF-8, any character
/// except U+0000. No normalization is applied: the server hashes the bytes.
///
/// `Debug` prints `Password(***)`; there is no `Display`. The heap buffer is
/// zeroized on drop, and on rejection by [`Password::new`]. Copies the caller
/// makes (input fields, encoded messages) are the caller's to wipe.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Takes ownership so that no unwiped copy is left behind; a rejected
    /// input is wiped before the error is returned.
    pub fn new(mut s: String) -> Result<Self, PasswordError> {
        match validate(&s) {
            Ok(()) => Ok(Self(s)),
            Err(e) => {
                s.zeroize();
                Err(e)
            }
        }
    }

    /// The password, for hashing or sending. Avoid copying it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        let s = r.str("password", MAX_PASSWORD_BYTES)?;
        validate(s)?;
        Ok(Self(s.to_owned()))
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        out.str(&self.0);
    }
}

fn validate(s: &str) -> Result<(), PasswordError> {
    if s.is_empty() {
        return Err(PasswordError::Empty);
    }
    if s.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong {
            max: MAX_PASSWORD_BYTES,
        });
    }
    if s.contains('\0') {
        return Err(PasswordError::ContainsNul);
    }
    Ok(())
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_debug_does_not_leak() {
        let p = Password::new("hunter2-secret".to_owned()).unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert_eq!(format!("{p:#?}"), "Password(***)");
    }

    #[test]
    fn password_limits() {
        assert!(Password::new("x".to_owned()).is_ok());
        assert!(Password::new("ü".repeat(512)).is_ok());
        assert!(Password::new(" spaces\tand\ncontrols\u{1b} ok ".to_owned()).is_ok());
        assert_eq!(Password::new(String::new()), Err(PasswordError::Empty));
        assert_eq!(
            Password::new("x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::TooLong {
                max: MAX_PASSWORD_BYTES
            })
        );
    }

    #[test]
    fn nul_in_password_is_rejected() {
        assert_eq!(
            Password::new("ab\0cd".to_owned()),
            Err(PasswordError::ContainsNul)
        );
    }

    #[test]
    fn password_error_does_not_echo_the_password() {
        let e = MessageError::from(Password::new("topsecret\0".to_owned()).unwrap_err());
        assert!(!e.to_string().contains("topsecret"));
        assert!(!format!("{e:?}").contains("topsecret"));
    }
}
