//! The outer framing: every byte on the wire belongs to a frame
//! `type: u8 || length: u32 BE || body[length]`.
//!
//! [`decode_header`] distinguishes "need more bytes" from "invalid", and
//! checks the length against the limit as soon as the 5-byte header is
//! present — before a single body byte is buffered (threat M1).

use crate::error::PeerMisbehaved;

/// Size of the frame header.
pub const HEADER_LEN: usize = 5;
/// The default and largest allowed frame body (64 KiB).
pub const MAX_FRAME_BODY: u32 = 65_536;
/// The smallest limit a configuration may set: the hellos must fit.
pub const MIN_FRAME_BODY: u32 = 2_048;

/// Frame types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    ClientHello = 0x01,
    ServerHello = 0x02,
    /// A client's hello resuming with a key from an earlier session.
    ResumeHello = 0x03,
    /// A plaintext alert, only before keys exist.
    Alert = 0x15,
    /// An encrypted record.
    Record = 0x17,
}

impl FrameType {
    pub fn from_byte(b: u8) -> Result<Self, PeerMisbehaved> {
        match b {
            0x01 => Ok(FrameType::ClientHello),
            0x02 => Ok(FrameType::ServerHello),
            0x03 => Ok(FrameType::ResumeHello),
            0x15 => Ok(FrameType::Alert),
            0x17 => Ok(FrameType::Record),
            other => Err(PeerMisbehaved::UnknownFrameType(other)),
        }
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub frame_type: FrameType,
    pub body_len: u32,
}

impl FrameHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let l = self.body_len.to_be_bytes();
        [self.frame_type as u8, l[0], l[1], l[2], l[3]]
    }

    /// Total frame length, header included.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }
}

/// Result of looking at the start of a byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Not enough bytes yet; at least `needed` more are required.
    Incomplete { needed: usize },
    /// A whole frame: `consumed` bytes (header + body) starting at 0.
    Frame {
        header: FrameHeader,
        consumed: usize,
    },
}

/// Parses a frame header (and reports whether the body is complete).
pub fn decode_header(buf: &[u8], max_body: u32) -> Result<Decoded, PeerMisbehaved> {
    if buf.is_empty() {
        return Ok(Decoded::Incomplete { needed: HEADER_LEN });
    }
    let frame_type = FrameType::from_byte(buf[0])?;
    if buf.len() < HEADER_LEN {
        return Ok(Decoded::Incomplete {
            needed: HEADER_LEN - buf.len(),
        });
    }
    let body_len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if body_len > max_body {
        return Err(PeerMisbehaved::FrameTooLarge {
            len: body_len,
            max: max_body,
        });
    }
    let header = FrameHeader {
        frame_type,
        body_len,
    };
    let total = header.frame_len();
    if buf.len() < total {
        return Ok(Decoded::Incomplete {
            needed: total - buf.len(),
        });
    }
    Ok(Decoded::Frame {
        header,
        consumed: total,
    })
}

/// Appends a frame to `out`.
pub fn encode_frame(frame_type: FrameType, body: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader {
        frame_type,
        body_len: body.len() as u32,
    };
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(body);
}

/// Reassembles frames from arbitrary chunks, buffering at most one frame.
#[derive(Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    frame_ready: bool,
}

impl FrameReader {
    /// Up to `N` bytes of the frame being read: what is buffered, then `data`.
    pub(crate) fn peek<const N: usize>(&self, data: &[u8]) -> ([u8; N], usize) {
        let mut out = [0u8; N];
        let buffered = if self.frame_ready {
            &[][..]
        } else {
            &self.buf[..]
        };
        let mut n = 0;
        for &b in buffered.iter().chain(data).take(N) {
            out[n] = b;
            n += 1;
        }
        (out, n)
    }

    /// Returns the next whole frame (header included), borrowing from
    /// `data` when it holds one entirely, else from the internal buffer.
    pub(crate) fn next<'s, 'd: 's>(
        &'s mut self,
        data: &mut &'d [u8],
        max_body: u32,
    ) -> Result<Option<&'s [u8]>, PeerMisbehaved> {
        if self.frame_ready {
            self.buf.clear();
            self.frame_ready = false;
        }
        if self.buf.is_empty() {
            if let Decoded::Frame { consumed, .. } = decode_header(data, max_body)? {
                let (frame, rest) = data.split_at(consumed);
                *data = rest;
                return Ok(Some(frame));
            }
        }
        loop {
            match decode_header(&self.buf, max_body)? {
                Decoded::Frame { .. } => {
                    self.frame_ready = true;
                    return Ok(Some(&self.buf));
                }
                Decoded::Incomplete { needed } => {
                    if data.is_empty() {
                        return Ok(None);
                    }
                    let take = needed.min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    *data = &data[take..];
                }
            }
        }
    }

    /// No partial frame is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty() || self.frame_ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_length_is_rejected_from_the_header_alone() {
        let buf = [0x17, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            decode_header(&buf, MAX_FRAME_BODY),
            Err(PeerMisbehaved::FrameTooLarge {
                len: u32::MAX,
                max: MAX_FRAME_BODY
            })
        );
        let just_over = (MAX_FRAME_BODY + 1).to_be_bytes();
        let buf = [0x17, just_over[0], just_over[1], just_over[2], just_over[3]];
        assert!(decode_header(&buf, MAX_FRAME_BODY).is_err());
    }

    #[test]
    fn incomplete_is_distinct_from_invalid() {
        assert_eq!(
            decode_header(&[0x17, 0], MAX_FRAME_BODY),
            Ok(Decoded::Incomplete { needed: 3 })
        );
        assert_eq!(
            decode_header(&[0x17, 0, 0, 0, 4, 1], MAX_FRAME_BODY),
            Ok(Decoded::Incomplete { needed: 3 })
        );
        assert_eq!(
            decode_header(&[0x99], MAX_FRAME_BODY),
            Err(PeerMisbehaved::UnknownFrameType(0x99))
        );
    }

    #[test]
    fn complete_frame_reports_bytes_consumed() {
        let mut out = Vec::new();
        encode_frame(FrameType::Alert, &[1, 2, 3], &mut out);
        out.push(0xee);
        assert_eq!(
            decode_header(&out, MAX_FRAME_BODY),
            Ok(Decoded::Frame {
                header: FrameHeader {
                    frame_type: FrameType::Alert,
                    body_len: 3
                },
                consumed: 8
            })
        );
    }
}
