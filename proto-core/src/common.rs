//! Machinery both state machines share: frame reassembly, record sealing
//! and opening, outgoing bytes, sticky errors and alerts.

use rand_core::CryptoRngCore;

use crate::error::{AlertCode, Error, PeerMisbehaved};
use crate::frame::{
    decode_header, encode_frame, Decoded, FrameType, HEADER_LEN, MAX_FRAME_BODY, MIN_FRAME_BODY,
};
use crate::hello::PROTOCOL_VERSION;
use crate::record::{
    ContentType, KeyUpdatePolicy, RecordOpener, RecordSealer, IV_LEN, RECORD_OVERHEAD,
};

/// Limits shared by both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame body accepted (and sent); at most 64 KiB, at least 2 KiB.
    pub max_frame_body: u32,
    /// When to ratchet sending keys.
    pub key_update: KeyUpdatePolicy,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_body: MAX_FRAME_BODY,
            key_update: KeyUpdatePolicy::default(),
        }
    }
}

impl Limits {
    pub(crate) fn clamped(mut self) -> Self {
        self.max_frame_body = self.max_frame_body.clamp(MIN_FRAME_BODY, MAX_FRAME_BODY);
        self.key_update.max_records = self.key_update.max_records.max(1);
        self
    }

    /// Largest application payload that fits in one record.
    pub fn max_payload(&self) -> usize {
        self.max_frame_body as usize - RECORD_OVERHEAD
    }
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

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty() || self.frame_ready
    }
}

pub(crate) struct Common {
    pub(crate) rng: Box<dyn CryptoRngCore + Send>,
    pub(crate) limits: Limits,
    pub(crate) sealer: Option<RecordSealer>,
    pub(crate) opener: Option<RecordOpener>,
    outgoing: Vec<u8>,
    error: Option<Error>,
    pub(crate) peer_closed: bool,
    pub(crate) local_closed: bool,
}

impl Common {
    pub(crate) fn new(rng: Box<dyn CryptoRngCore + Send>, limits: Limits) -> Self {
        Self {
            rng,
            limits: limits.clamped(),
            sealer: None,
            opener: None,
            outgoing: Vec::new(),
            error: None,
            peer_closed: false,
            local_closed: false,
        }
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records a fatal error, queues the matching alert, returns the error.
    pub(crate) fn fail(&mut self, err: Error) -> Error {
        if self.error.is_none() {
            if !err.came_from_peer() {
                self.send_alert(err.alert());
            }
            self.error = Some(err.clone());
        }
        err
    }

    fn send_alert(&mut self, code: AlertCode) {
        if self.local_closed {
            return;
        }
        self.local_closed = true;
        if self.sealer.is_some() {
            let _ = self.seal(ContentType::Alert, &[code.to_byte()]);
        } else {
            self.outgoing
                .extend_from_slice(&plaintext_alert_frame(code));
        }
    }

    pub(crate) fn push_raw(&mut self, bytes: &[u8]) {
        self.outgoing.extend_from_slice(bytes);
    }

    pub(crate) fn outgoing_mut(&mut self) -> &mut Vec<u8> {
        &mut self.outgoing
    }

    /// Seals one record under the current sending keys.
    pub(crate) fn seal(&mut self, ct: ContentType, payload: &[u8]) -> Result<(), Error> {
        let mut iv = [0u8; IV_LEN];
        self.rng.fill_bytes(&mut iv);
        let sealer = self
            .sealer
            .as_mut()
            .ok_or(Error::InvalidState("no sending keys yet"))?;
        sealer.seal(ct, payload, iv, &mut self.outgoing)?;
        Ok(())
    }

    /// Seals application data, ratcheting first if the policy says so.
    pub(crate) fn seal_application(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.check()?;
        if self.local_closed {
            return Err(Error::InvalidState("connection already closed"));
        }
        if payload.len() > self.limits.max_payload() {
            return Err(Error::InvalidState("message larger than the record limit"));
        }
        let due = self
            .sealer
            .as_ref()
            .is_some_and(|s| s.update_due(&self.limits.key_update));
        // A sealing failure (sequence space exhausted) is fatal and sticky.
        if due {
            if let Err(e) = self.seal(ContentType::KeyUpdate, &[]) {
                return Err(self.fail(e));
            }
            if let Some(s) = self.sealer.as_mut() {
                s.ratchet();
            }
        }
        self.seal(ContentType::Application, payload)
            .map_err(|e| self.fail(e))
    }

    /// Sends close_notify; afterwards nothing more can be sent.
    pub(crate) fn close(&mut self) {
        if self.error.is_none() && self.sealer.is_some() {
            self.send_alert(AlertCode::CloseNotify);
        }
        self.local_closed = true;
    }

    pub(crate) fn drain_transmit(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.outgoing);
        } else {
            out.append(&mut self.outgoing);
        }
    }

    pub(crate) fn wants_write(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Handles the control content types every established state accepts:
    /// [`ControlOutcome::Application`] means the payload is an application
    /// message for the caller to decode.
    pub(crate) fn handle_control(
        &mut self,
        ct: ContentType,
        payload: &[u8],
    ) -> Result<ControlOutcome, Error> {
        match ct {
            ContentType::Application => Ok(ControlOutcome::Application),
            ContentType::KeyUpdate => {
                if !payload.is_empty() {
                    return Err(PeerMisbehaved::MalformedControl.into());
                }
                if let Some(o) = self.opener.as_mut() {
                    o.ratchet();
                }
                Ok(ControlOutcome::Handled)
            }
            ContentType::Alert => {
                let [code] = payload else {
                    return Err(PeerMisbehaved::MalformedControl.into());
                };
                match AlertCode::from_byte(*code) {
                    AlertCode::CloseNotify => {
                        self.peer_closed = true;
                        Ok(ControlOutcome::Closed)
                    }
                    other => Err(Error::AlertReceived(other)),
                }
            }
            ContentType::Finished => {
                Err(PeerMisbehaved::UnexpectedContent { got: ct as u8 }.into())
            }
        }
    }

    /// EOF from the transport: clean only after the peer's close_notify.
    pub(crate) fn handle_eof(&mut self) -> Result<(), Error> {
        self.check()?;
        if self.peer_closed {
            Ok(())
        } else {
            Err(self.fail(Error::UnexpectedEof))
        }
    }
}

pub(crate) enum ControlOutcome {
    Application,
    Handled,
    Closed,
}

/// A whole plaintext alert frame (§6): what a side sends before it has keys,
/// and what a server sends a connection it refuses (`ServerFull`,
/// `RateLimited`) before closing it.
pub fn plaintext_alert_frame(code: AlertCode) -> [u8; HEADER_LEN + 3] {
    let mut out = Vec::with_capacity(HEADER_LEN + 3);
    let v = PROTOCOL_VERSION.to_be_bytes();
    encode_frame(FrameType::Alert, &[code.to_byte(), v[0], v[1]], &mut out);
    let mut frame = [0u8; HEADER_LEN + 3];
    frame.copy_from_slice(&out);
    frame
}

/// Parses a plaintext alert frame body into the error it reports.
pub(crate) fn plaintext_alert_error(body: &[u8]) -> Error {
    match body {
        // The peer refused the version we sent, yet speaks it: what it
        // received was not what we sent.
        [1, hi, lo] if u16::from_be_bytes([*hi, *lo]) == PROTOCOL_VERSION => {
            Error::VersionAltered {
                version: PROTOCOL_VERSION,
            }
        }
        [1, hi, lo] => Error::VersionMismatch {
            ours: PROTOCOL_VERSION,
            peer: u16::from_be_bytes([*hi, *lo]),
        },
        [code, _, _] => Error::AlertReceived(AlertCode::from_byte(*code)),
        _ => PeerMisbehaved::MalformedControl.into(),
    }
}
