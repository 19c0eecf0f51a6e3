//! A user's devices on the wire: the name a user gives a device, and what
//! the device list says about each.

use core::fmt;

use crate::message::codec::{Reader, Sink, U16_BYTES, U64_BYTES};
use crate::message::error::{MessageError, TextError};
use crate::message::text::check_chars;

/// Maximum length of a device's name in bytes of UTF-8.
pub const MAX_DEVICE_NAME_BYTES: usize = 64;
/// Maximum length of an address in a device list (an IPv6 address in text).
pub const MAX_ADDRESS_BYTES: usize = 45;
pub(crate) const MAX_DEVICE_INFO_BYTES: usize = U64_BYTES
    + U16_BYTES
    + MAX_DEVICE_NAME_BYTES
    + U64_BYTES
    + U16_BYTES
    + MAX_ADDRESS_BYTES
    + 1
    + 1;
pub(crate) const MIN_DEVICE_INFO_BYTES: usize =
    U64_BYTES + U16_BYTES + 1 + U64_BYTES + U16_BYTES + 1 + 1;

/// The name a user gives a device ("laptop", "cli on server"): 1 to
/// [`MAX_DEVICE_NAME_BYTES`] bytes, one line, the text character rules,
/// not blank.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceName(String);

impl DeviceName {
    pub fn new(s: &str) -> Result<Self, TextError> {
        if s.is_empty() {
            return Err(TextError::Empty);
        }
        check_chars(s, MAX_DEVICE_NAME_BYTES)?;
        if s.contains('\n') {
            return Err(TextError::ForbiddenChar { code_point: 0x0A });
        }
        if s.chars().all(char::is_whitespace) {
            return Err(TextError::Blank);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        let s = r.str("device name", MAX_DEVICE_NAME_BYTES)?;
        Ok(Self::new(s)?)
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        out.str(&self.0);
    }
}

impl fmt::Debug for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// One device of the user, as `DeviceList` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceInfo {
    /// The id the device chose (random, kept by the client).
    pub id: u64,
    pub name: DeviceName,
    /// When the server last saw it log in or leave (ms since the epoch).
    pub last_seen_ms: u64,
    /// The address it last connected from, as text (≤ 45 bytes, ASCII).
    pub address: String,
    pub online: bool,
    /// The device that asked.
    pub current: bool,
}

impl DeviceInfo {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            id: r.u64()?,
            name: DeviceName::decode(r)?,
            last_seen_ms: r.u64()?,
            address: {
                let s = r.str("address", MAX_ADDRESS_BYTES)?;
                if !s.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(MessageError::InvalidText(TextError::ForbiddenChar {
                        code_point: s
                            .chars()
                            .find(|c| !c.is_ascii_graphic())
                            .map_or(0, u32::from),
                    }));
                }
                s.to_owned()
            },
            online: r.bool("online")?,
            current: r.bool("current")?,
        })
    }

    pub(crate) fn encode(&self, out: &mut impl Sink) {
        out.u64(self.id);
        self.name.encode(out);
        out.u64(self.last_seen_ms);
        // An address is made by the server from a socket address; anything
        // longer is cut (never happens for IPv4 or IPv6 text).
        let address = &self.address[..self.address.len().min(MAX_ADDRESS_BYTES)];
        out.str(address);
        out.bool(self.online);
        out.bool(self.current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_one_line_and_not_blank() {
        assert!(DeviceName::new("laptop").is_ok());
        assert!(DeviceName::new("cli on server 🖥").is_ok());
        assert_eq!(DeviceName::new(""), Err(TextError::Empty));
        assert_eq!(DeviceName::new("   "), Err(TextError::Blank));
        assert!(DeviceName::new("a\nb").is_err());
        assert!(DeviceName::new("\u{1b}[2J").is_err());
        assert!(DeviceName::new(&"x".repeat(MAX_DEVICE_NAME_BYTES + 1)).is_err());
    }
}
