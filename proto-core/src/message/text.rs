//! Chat text and error details: what may be sent and how untrusted text is
//! shown (SECURITY.md L1, L3).

use core::fmt;

use crate::message::codec::{Reader, Sink, U16_BYTES};
use crate::message::error::{MessageError, TextError};

/// Maximum length of a chat message's text in bytes of UTF-8.
///
/// The largest power of two for which a full [`HistoryBatch`] still fits
/// [`MAX_MESSAGE_BYTES`]; see `server_message.rs` for the arithmetic.
///
/// [`HistoryBatch`]: crate::message::ServerMessage::HistoryBatch
/// [`MAX_MESSAGE_BYTES`]: crate::message::MAX_MESSAGE_BYTES
pub const MAX_TEXT_BYTES: usize = 4096;
/// Maximum length of an error's detail in bytes of UTF-8.
pub const MAX_ERROR_DETAIL_BYTES: usize = 256;
pub(crate) const MAX_TEXT_WIRE_BYTES: usize = U16_BYTES + MAX_TEXT_BYTES;
pub(crate) const MIN_TEXT_WIRE_BYTES: usize = U16_BYTES + 1;

/// The text of a chat message.
///
/// Rules (checked by the constructor and by decoding):
/// - 1 to [`MAX_TEXT_BYTES`] bytes of UTF-8;
/// - no control character except `\n`: U+0000–U+0009, U+000B–U+001F,
///   U+007F and U+0080–U+009F are rejected (so no `\r`, tab or ESC);
/// - no bidi embedding/override/isolate controls U+202A–U+202E,
///   U+2066–U+2069 (a line cannot be made to render in another order);
/// - not blank: at least one character that is neither whitespace
///   (`char::is_whitespace`) nor zero-width (U+200B–U+200D, U+2060, U+FEFF).
///
/// Other characters, including emoji with ZWJ sequences and the bidi marks
/// U+200E/U+200F/U+061C that right-to-left text needs, are allowed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessageText(String);

impl MessageText {
    pub fn new(s: &str) -> Result<Self, TextError> {
        if s.is_empty() {
            return Err(TextError::Empty);
        }
        check_chars(s, MAX_TEXT_BYTES)?;
        if s.chars().all(is_blank_char) {
            return Err(TextError::Blank);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        let s = r.str("text", MAX_TEXT_BYTES)?;
        Ok(Self::new(s)?)
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        out.str(&self.0);
    }
}

/// The human-readable detail of a server error.
///
/// Same character rules as [`MessageText`], but 0 to
/// [`MAX_ERROR_DETAIL_BYTES`] bytes and it may be empty or blank: the
/// [`ErrorCode`](crate::message::ErrorCode) is what a client acts on.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct ErrorDetail(String);

impl ErrorDetail {
    pub fn new(s: &str) -> Result<Self, TextError> {
        check_chars(s, MAX_ERROR_DETAIL_BYTES)?;
        Ok(Self(s.to_owned()))
    }

    /// No detail.
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        let s = r.str("detail", MAX_ERROR_DETAIL_BYTES)?;
        Ok(Self::new(s)?)
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        out.str(&self.0);
    }
}

pub(crate) fn check_chars(s: &str, max: usize) -> Result<(), TextError> {
    if s.len() > max {
        return Err(TextError::TooLong { max });
    }
    match s.chars().find(|&c| is_forbidden_text_char(c)) {
        Some(c) => Err(TextError::ForbiddenChar {
            code_point: u32::from(c),
        }),
        None => Ok(()),
    }
}

/// C0 except `\n`, DEL, C1, bidi embedding/override/isolate controls.
fn is_forbidden_text_char(c: char) -> bool {
    (c != '\n' && is_control(c)) || is_bidi_control(c)
}

/// C0 (U+0000–U+001F), DEL (U+007F) and C1 (U+0080–U+009F).
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1F}' | '\u{7F}'..='\u{9F}')
}

/// LRE, RLE, PDF, LRO, RLO (U+202A–U+202E) and LRI, RLI, FSI, PDI
/// (U+2066–U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn is_blank_char(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

/// Renders untrusted text so that it cannot drive a terminal or reorder a
/// line: every C0 control (including `\n`, `\t`, ESC), DEL, C1 control, bidi
/// embedding/override/isolate control and the line/paragraph separators
/// U+2028/U+2029 become a visible `\u{..}` escape (lower-case hex, as Rust's
/// `char::escape_unicode`). Everything else is copied unchanged.
///
/// For display and logs, not a reversible encoding: a user could type the
/// six characters `\u{1b}` literally. A client showing multi-line chat text
/// splits it on `\n` first and escapes each line.
pub fn escape_for_display(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_control(c) || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

impl fmt::Debug for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MessageText").field(&self.0).finish()
    }
}

impl fmt::Debug for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ErrorDetail").field(&self.0).finish()
    }
}

impl TryFrom<&str> for MessageText {
    type Error = TextError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<&str> for ErrorDetail {
    type Error = TextError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(c: char) -> TextError {
        TextError::ForbiddenChar {
            code_point: u32::from(c),
        }
    }

    #[test]
    fn text_with_emoji_newlines_and_rtl_is_accepted() {
        for s in [
            "hi",
            "line one\nline two",
            "👩‍👩‍👧 family",
            "مرحبا \u{200F}123",
            "  padded  ",
            "\n\nx",
        ] {
            assert_eq!(MessageText::new(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn text_of_max_bytes_is_accepted_and_one_more_rejected() {
        assert!(MessageText::new(&"a".repeat(MAX_TEXT_BYTES)).is_ok());
        assert!(MessageText::new(&"😀".repeat(MAX_TEXT_BYTES / 4)).is_ok());
        assert_eq!(
            MessageText::new(&"a".repeat(MAX_TEXT_BYTES + 1)),
            Err(TextError::TooLong {
                max: MAX_TEXT_BYTES
            })
        );
    }

    #[test]
    fn empty_text_is_rejected() {
        assert_eq!(MessageText::new(""), Err(TextError::Empty));
    }

    #[test]
    fn whitespace_only_text_is_rejected() {
        for s in [
            " ",
            "\n",
            " \n \n",
            "\u{3000}",
            "\u{200B}",
            "\u{FEFF}\u{A0}",
        ] {
            assert_eq!(MessageText::new(s), Err(TextError::Blank), "{s:?}");
        }
    }

    #[test]
    fn c0_controls_other_than_newline_in_text_are_rejected() {
        for c in ('\u{0}'..='\u{1F}').filter(|&c| c != '\n') {
            assert_eq!(MessageText::new(&format!("a{c}b")), Err(forbidden(c)));
        }
    }

    #[test]
    fn escape_sequence_in_text_is_rejected() {
        assert_eq!(
            MessageText::new("\u{1b}[2J\u{1b}[Hfake"),
            Err(forbidden('\u{1b}'))
        );
    }

    #[test]
    fn del_and_c1_controls_in_text_are_rejected() {
        for c in '\u{7F}'..='\u{9F}' {
            assert_eq!(MessageText::new(&format!("a{c}b")), Err(forbidden(c)));
        }
    }

    #[test]
    fn bidi_override_in_text_is_rejected() {
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(MessageText::new(&format!("a{c}b")), Err(forbidden(c)));
        }
    }

    #[test]
    fn error_detail_may_be_empty_but_follows_text_char_rules() {
        assert_eq!(ErrorDetail::new("").unwrap(), ErrorDetail::empty());
        assert!(ErrorDetail::new(&"x".repeat(MAX_ERROR_DETAIL_BYTES)).is_ok());
        assert_eq!(
            ErrorDetail::new(&"x".repeat(MAX_ERROR_DETAIL_BYTES + 1)),
            Err(TextError::TooLong {
                max: MAX_ERROR_DETAIL_BYTES
            })
        );
        assert_eq!(ErrorDetail::new("a\u{1b}"), Err(forbidden('\u{1b}')));
        assert_eq!(ErrorDetail::new("\u{202E}"), Err(forbidden('\u{202E}')));
    }

    #[test]
    fn escape_for_display_makes_controls_visible() {
        assert_eq!(
            escape_for_display("a\u{1b}[31mb\nc\td\u{7f}\u{85}"),
            "a\\u{1b}[31mb\\u{a}c\\u{9}d\\u{7f}\\u{85}"
        );
        assert_eq!(
            escape_for_display("user\u{202E}gpj.exe\u{2066}\u{2028}"),
            "user\\u{202e}gpj.exe\\u{2066}\\u{2028}"
        );
    }

    #[test]
    fn escape_for_display_keeps_ordinary_text() {
        let s = "Zoë 李雷 علي 👩‍👩‍👧 \u{200F} \\ \"q\"";
        assert_eq!(escape_for_display(s), s);
    }

    #[test]
    fn escape_for_display_output_has_no_controls() {
        let all: String = ('\u{0}'..='\u{3000}').collect();
        let escaped = escape_for_display(&all);
        assert!(!escaped.chars().any(|c| is_control(c) || is_bidi_control(c)));
    }
}
