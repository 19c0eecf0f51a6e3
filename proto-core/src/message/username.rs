//! Usernames: what may be registered, shown and compared (SECURITY.md L1, L2).

use core::fmt;

use unicode_normalization::{is_nfc, UnicodeNormalization};

use crate::message::codec::{Reader, Sink, U16_BYTES};
use crate::message::error::{MessageError, UsernameError};

/// A validated username.
///
/// Rules (checked by every constructor and by decoding):
/// - 1 to [`MAX_USERNAME_CHARS`] Unicode scalar values;
/// - in NFC (rejected, not silently changed, so what is stored is what the
///   user typed; UIs may call [`Username::parse_normalizing`]);
/// - every character is `char::is_alphanumeric()` (Unicode `Alphabetic` or
///   general category `Nd`/`Nl`/`No`) or one of `_` `-` `.`.
///
/// The character set excludes by construction whitespace, every `Cc`/`Cf`
/// character, bidi controls (U+202A–202E, U+2066–2069) and zero-width
/// characters (U+200B–200D, U+2060, U+FEFF).
///
/// `==` and `Hash` compare the displayed form; two accounts that differ only
/// in case are the same user, which [`Username::same_user`] and
/// [`Username::canonical`] decide.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

/// Maximum length of a username in Unicode scalar values.
pub const MAX_USERNAME_CHARS: usize = 32;
/// Maximum encoded length of a username in bytes (32 four-byte characters).
pub const MAX_USERNAME_BYTES: usize = MAX_USERNAME_CHARS * 4;
/// Largest encoding of a username on the wire: u16 length + bytes.
pub(crate) const MAX_USERNAME_WIRE_BYTES: usize = U16_BYTES + MAX_USERNAME_BYTES;
/// Smallest encoding of a username on the wire: u16 length + one byte.
pub(crate) const MIN_USERNAME_WIRE_BYTES: usize = U16_BYTES + 1;

impl Username {
    /// Validates `s` exactly as given.
    pub fn new(s: &str) -> Result<Self, UsernameError> {
        validate(s)?;
        Ok(Self(s.to_owned()))
    }

    /// NFC-normalizes `s`, then validates it. For UIs, where an input method
    /// may produce decomposed text; never used on the wire.
    pub fn parse_normalizing(s: &str) -> Result<Self, UsernameError> {
        // Bound the work before normalizing: NFC never grows text past 3x,
        // and a valid name is at most MAX_USERNAME_BYTES.
        if s.len() > MAX_USERNAME_BYTES * 3 {
            return Err(UsernameError::TooLong {
                max: MAX_USERNAME_CHARS,
            });
        }
        let normalized: String = s.nfc().collect();
        Self::new(&normalized)
    }

    /// The name as the user registered it; safe to display as is.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive comparison key: NFC of `to_lowercase()` of the
    /// name (Unicode default lower-casing, no locale). "ZOË" and "zoë" have
    /// the same key. Servers use it to refuse a registration that differs
    /// from an existing name only in case and to look accounts up; it is a
    /// key, not necessarily a valid `Username` itself.
    pub fn canonical(&self) -> String {
        self.0.to_lowercase().nfc().collect()
    }

    /// Whether `self` and `other` name the same account (equal
    /// [`canonical`](Self::canonical) keys).
    pub fn same_user(&self, other: &Username) -> bool {
        self.0 == other.0 || self.canonical() == other.canonical()
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        let s = r.str("username", MAX_USERNAME_BYTES)?;
        Ok(Self::new(s)?)
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        out.str(&self.0);
    }
}

fn validate(s: &str) -> Result<(), UsernameError> {
    if s.is_empty() {
        return Err(UsernameError::Empty);
    }
    if s.len() > MAX_USERNAME_BYTES || s.chars().count() > MAX_USERNAME_CHARS {
        return Err(UsernameError::TooLong {
            max: MAX_USERNAME_CHARS,
        });
    }
    // Before the character check, so that a decomposed name (whose
    // combining marks are not allowed on their own) is reported as fixable by
    // normalizing. Controls and format characters are NFC-stable, so they
    // still reach the character check.
    if !is_nfc(s) {
        return Err(UsernameError::NotNfc);
    }
    if let Some(c) = s.chars().find(|&c| !is_username_char(c)) {
        return Err(UsernameError::ForbiddenChar {
            code_point: u32::from(c),
        });
    }
    Ok(())
}

fn is_username_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Username").field(&self.0).finish()
    }
}

/// Usernames contain no controls, so they display as they are.
impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Username {
    type Error = UsernameError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(s: &str) -> UsernameError {
        Username::new(s).expect_err(s)
    }

    fn forbidden(c: char) -> UsernameError {
        UsernameError::ForbiddenChar {
            code_point: u32::from(c),
        }
    }

    #[test]
    fn ascii_and_non_ascii_names_are_accepted() {
        for name in [
            "alice", "Bob_2", "a.b-c", "Zoë", "李雷", "علي", "Ж", "٣٤", "x",
        ] {
            assert_eq!(Username::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn thirty_two_chars_are_accepted_and_thirty_three_rejected() {
        assert!(Username::new(&"a".repeat(32)).is_ok());
        assert!(Username::new(&"ë".repeat(32)).is_ok());
        assert_eq!(
            rejected(&"a".repeat(33)),
            UsernameError::TooLong { max: 32 }
        );
        assert_eq!(
            rejected(&"ë".repeat(33)),
            UsernameError::TooLong { max: 32 }
        );
    }

    #[test]
    fn thirty_two_four_byte_chars_are_accepted() {
        let name = "\u{20000}".repeat(32);
        assert_eq!(name.len(), MAX_USERNAME_BYTES);
        assert!(Username::new(&name).is_ok());
    }

    #[test]
    fn empty_username_is_rejected() {
        assert_eq!(rejected(""), UsernameError::Empty);
    }

    #[test]
    fn non_nfc_username_is_rejected_but_parse_normalizing_accepts_it() {
        assert_eq!(rejected("e\u{301}"), UsernameError::NotNfc);
        assert_eq!(rejected("Zoe\u{308}"), UsernameError::NotNfc);
        let n = Username::parse_normalizing("Zoe\u{308}").unwrap();
        assert_eq!(n.as_str(), "Zoë");
        assert_eq!(
            Username::parse_normalizing("e\u{301}").unwrap().as_str(),
            "é"
        );
    }

    #[test]
    fn parse_normalizing_still_rejects_forbidden_chars() {
        assert_eq!(
            Username::parse_normalizing("a\u{202E}b").unwrap_err(),
            forbidden('\u{202E}')
        );
        assert!(Username::parse_normalizing(&"a".repeat(1000)).is_err());
    }

    #[test]
    fn canonical_is_case_insensitive() {
        let upper = Username::new("ZOË").unwrap();
        let lower = Username::new("zoë").unwrap();
        assert_ne!(upper, lower, "== compares the displayed form");
        assert_eq!(upper.canonical(), "zoë");
        assert_eq!(upper.canonical(), lower.canonical());
        assert!(upper.same_user(&lower));
        assert!(!upper.same_user(&Username::new("zoe").unwrap()));
    }

    #[test]
    fn canonical_is_nfc() {
        // U+0130 lower-cases to "i" + U+0307, which NFC keeps decomposed;
        // the key must still be NFC.
        let u = Username::new("\u{130}").unwrap();
        assert!(is_nfc(&u.canonical()));
    }

    #[test]
    fn whitespace_in_username_is_rejected() {
        for c in [' ', '\t', '\u{A0}', '\u{3000}', '\u{2028}', '\u{2029}'] {
            assert_eq!(rejected(&format!("a{c}b")), forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn newline_and_c0_controls_in_username_are_rejected() {
        for c in ('\u{0}'..='\u{1F}').chain(['\u{7F}']) {
            assert_eq!(rejected(&format!("a{c}b")), forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn c1_controls_in_username_are_rejected() {
        for c in '\u{80}'..='\u{9F}' {
            assert_eq!(rejected(&format!("a{c}b")), forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn bidi_override_in_username_is_rejected() {
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(rejected(&format!("admin{c}")), forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn bidi_marks_in_username_are_rejected() {
        for c in ['\u{200E}', '\u{200F}', '\u{61C}'] {
            assert_eq!(rejected(&format!("a{c}b")), forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn zero_width_chars_in_username_are_rejected() {
        for c in ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'] {
            assert_eq!(rejected(&format!("ad{c}min")), forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn other_format_chars_in_username_are_rejected() {
        // Soft hyphen, Arabic number sign, a tag character (all Cf) and a
        // variation selector (Mn, invisible).
        for c in ['\u{AD}', '\u{600}', '\u{E0041}', '\u{FE0F}'] {
            assert_eq!(rejected(&format!("a{c}b")), forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn punctuation_symbols_and_emoji_in_username_are_rejected() {
        for c in ['@', '/', '\\', ':', '<', '\'', '"', '😀', '€', '\u{301}'] {
            assert!(Username::new(&format!("a{c}")).is_err(), "{c:?}");
        }
    }

    #[test]
    fn private_use_and_unassigned_in_username_are_rejected() {
        for c in ['\u{E000}', '\u{10FFFD}', '\u{378}'] {
            assert_eq!(rejected(&format!("a{c}")), forbidden(c), "{c:?}");
        }
    }

    #[test]
    fn username_error_does_not_echo_the_character() {
        let msg = rejected("a\u{1b}[31m").to_string();
        assert!(!msg.contains('\u{1b}'));
        assert!(msg.contains("U+001B"));
    }
}
