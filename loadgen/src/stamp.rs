//! The send stamp every load message starts with.
//!
//! All clients live in this one process, so one monotonic clock serves
//! sender and receiver: a stamp holds the nanoseconds from the run's shared
//! start instant (the *epoch*) to the moment the message was sent, and the
//! receiver subtracts it from its own reading of the same clock.
//!
//! Layout (ASCII, so it is valid chat text and survives any transport):
//! `{sent_ns:016x}{phase:04x}` followed by `.` padding to the wanted size.
//! The phase number lets a receiver tell a late message of an earlier step
//! (ramp mode) from one of the current step.

use std::time::{Duration, Instant};

/// Bytes taken by the stamp itself.
pub const STAMP_LEN: usize = 20;

/// A decoded send stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The workload phase (ramp step) the message belongs to; 1-based.
    pub phase: u16,
    /// Send time, in ns since the run's epoch.
    pub sent_ns: u64,
}

impl Stamp {
    /// A stamp for a message sent at `at`.
    pub fn at(epoch: Instant, at: Instant, phase: u16) -> Self {
        Self {
            phase,
            sent_ns: nanos_since(epoch, at),
        }
    }

    /// The message text: the stamp padded with `.` to `len` bytes (at least
    /// [`STAMP_LEN`]).
    pub fn to_text(self, len: usize) -> String {
        let mut text = String::with_capacity(len.max(STAMP_LEN));
        self.write_text(&mut text, len);
        text
    }

    /// Like [`Self::to_text`], reusing `out`'s allocation.
    pub fn write_text(self, out: &mut String, len: usize) {
        use std::fmt::Write;
        out.clear();
        // Writing to a String cannot fail.
        let _ = write!(out, "{:016x}{:04x}", self.sent_ns, self.phase);
        while out.len() < len {
            out.push('.');
        }
    }

    /// Reads the stamp at the start of `text`; `None` for any text that
    /// does not start with one (someone else chatting in the room).
    pub fn parse(text: &str) -> Option<Self> {
        Self::parse_bytes(text.as_bytes())
    }

    /// [`Self::parse`] on raw bytes (a protocol that carries text unchecked).
    pub fn parse_bytes(text: &[u8]) -> Option<Self> {
        let head = text.get(..STAMP_LEN)?;
        let mut value: u128 = 0;
        for &b in head {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            value = (value << 4) | u128::from(digit);
        }
        Some(Self {
            sent_ns: (value >> 16) as u64,
            phase: (value & 0xffff) as u16,
        })
    }

    /// Time from the send to `received_ns` (ns since the same
    /// epoch); zero if the clock readings cross (they cannot with one
    /// monotonic clock, but a foreign stamp could claim the future).
    pub fn latency(self, received_ns: u64) -> Duration {
        Duration::from_nanos(received_ns.saturating_sub(self.sent_ns))
    }
}

/// Nanoseconds from `epoch` to `at` (0 if `at` is earlier).
pub fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_through_text() {
        let stamp = Stamp {
            phase: 7,
            sent_ns: 123_456_789_012,
        };
        let text = stamp.to_text(64);
        assert_eq!(text.len(), 64);
        assert!(text.ends_with('.'));
        assert_eq!(Stamp::parse(&text), Some(stamp));
    }

    #[test]
    fn extreme_values_round_trip() {
        for stamp in [
            Stamp {
                phase: 0,
                sent_ns: 0,
            },
            Stamp {
                phase: u16::MAX,
                sent_ns: u64::MAX,
            },
        ] {
            assert_eq!(Stamp::parse(&stamp.to_text(STAMP_LEN)), Some(stamp));
        }
    }

    #[test]
    fn short_request_still_holds_the_whole_stamp() {
        let text = Stamp {
            phase: 1,
            sent_ns: 5,
        }
        .to_text(3);
        assert_eq!(text.len(), STAMP_LEN);
    }

    #[test]
    fn foreign_text_is_not_a_stamp() {
        assert_eq!(Stamp::parse("hello everyone, how are you today?"), None);
        assert_eq!(Stamp::parse("0000000000000001000"), None, "too short");
        assert_eq!(Stamp::parse("+000000000000001000112"), None, "sign");
        assert_eq!(
            Stamp::parse("00000000000000010001ABC"),
            Some(Stamp {
                phase: 1,
                sent_ns: 1
            })
        );
        assert_eq!(Stamp::parse("000000000000000A0001"), None, "upper-case hex");
        assert_eq!(Stamp::parse("ééééééééééééééééééééé"), None);
    }

    #[test]
    fn latency_is_receive_minus_send_on_one_clock() {
        let epoch = Instant::now();
        let sent = epoch + Duration::from_millis(10);
        let stamp = Stamp::at(epoch, sent, 1);
        let received_ns = nanos_since(epoch, sent + Duration::from_micros(250));
        assert_eq!(stamp.latency(received_ns), Duration::from_micros(250));
        assert_eq!(stamp.latency(0), Duration::ZERO);
    }
}
