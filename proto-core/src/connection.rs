//! One connection type for both sides: frame reassembly, record sealing and
//! opening, the established path, outgoing bytes, sticky errors and alerts
//! live here once; each [`Side`] adds only its handshake states
//! (`client_handshake.rs`, `server_handshake.rs`).

use std::collections::VecDeque;
use std::fmt;

use rand_core::CryptoRngCore;

use crate::error::{AlertCode, Error, PeerMisbehaved};
use crate::frame::{
    decode_header, encode_frame, Decoded, FrameReader, FrameType, HEADER_LEN, MAX_FRAME_BODY,
    MIN_FRAME_BODY,
};
use crate::hello::PROTOCOL_VERSION;
use crate::key_schedule::Secret;
use crate::record::{
    ContentType, KeyUpdatePolicy, RecordOpener, RecordSealer, IV_LEN, RECORD_OVERHEAD,
};

/// A secret unique to one connection, known to its two ends only: what
/// binds an OPAQUE login to the connection it ran over.
#[derive(Clone)]
pub struct ChannelBinding(Secret);

impl ChannelBinding {
    /// A binding from raw bytes (tests, and the fuzz targets).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(zeroize::Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChannelBinding(<redacted>)")
    }
}

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

/// Which end of a connection: [`ClientSide`](crate::ClientSide) or
/// [`ServerSide`](crate::ServerSide). Sealed: the protocol has two sides.
pub trait Side: sealed::SideStates + Send + 'static {
    /// What this side reports to its application.
    type Event: fmt::Debug + Clone + PartialEq + Eq + Send;
    /// What this side sends once established.
    type Outgoing;
}

pub(crate) mod sealed {
    use super::*;

    /// The side-specific half of a connection: its handshake states. Every
    /// method is called only while the connection has no sticky error.
    pub trait SideStates: Sized {
        /// Whether the handshake completed (keys confirmed both ways).
        fn is_established(&self) -> bool;
        /// Marks the handshake state dead after a fatal error.
        fn set_failed(&mut self);
        /// Whether processing a whole frame of this type now costs
        /// milliseconds of CPU (a hello's key agreement and signature).
        fn is_expensive(&self, frame_type: u8) -> bool;
        /// Refuses a first flight from its first bytes, before it is whole
        /// (`prefix` holds up to `HEADER_LEN + 2` bytes of the frame being
        /// read). Most states accept anything here.
        fn refuse_early(&self, _prefix: &[u8]) -> Result<(), Error> {
            Ok(())
        }
        /// The cheap part of an expensive frame, on the caller's thread
        /// before the frame is deferred (a server looks up a resumed
        /// handshake's key here, so no lock is taken on the background
        /// thread that runs the rest). Most sides do nothing.
        fn before_expensive(&mut self, _frame: &[u8]) -> Result<(), Error> {
            Ok(())
        }
        /// Handles a frame the established path does not (hellos, plaintext
        /// alerts, the handshake's records, anything unexpected).
        fn handle_handshake_frame(
            &mut self,
            frame: &[u8],
            common: &mut CommonState,
            events: &mut VecDeque<<Self as Side>::Event>,
        ) -> Result<(), Error>
        where
            Self: Side;
        /// Decodes an application payload from the peer into an event.
        fn message_event(payload: &[u8]) -> Result<<Self as Side>::Event, Error>
        where
            Self: Side;
        /// The event for the peer's close_notify.
        fn closed_event() -> <Self as Side>::Event
        where
            Self: Side;
        /// Encodes an outgoing message into an application payload.
        fn encode(msg: &<Self as Side>::Outgoing) -> Vec<u8>
        where
            Self: Side;
    }
}

/// A connection: bytes in, bytes and events out. See the crate docs for
/// the run-loop contract; [`ClientConnection`](crate::ClientConnection) and
/// [`ServerConnection`](crate::ServerConnection) name the two sides.
pub struct Connection<S: Side> {
    reader: FrameReader,
    /// A whole frame whose processing is expensive, followed by whatever
    /// arrived after it; empty when nothing is deferred.
    deferred: Vec<u8>,
    inner: Inner<S>,
}

struct Inner<S: Side> {
    common: CommonState,
    side: S,
    events: VecDeque<S::Event>,
}

impl<S: Side> Connection<S> {
    pub(crate) fn from_parts(common: CommonState, side: S) -> Self {
        Self {
            reader: FrameReader::default(),
            deferred: Vec::new(),
            inner: Inner {
                common,
                side,
                events: VecDeque::new(),
            },
        }
    }

    pub(crate) fn side(&self) -> &S {
        &self.inner.side
    }

    /// The sticky error, if the connection has failed.
    pub(crate) fn check(&self) -> Result<(), Error> {
        self.inner.common.check()
    }

    /// Runs `f` on the side state with the shared state; a returned error
    /// is fatal and sticky.
    pub(crate) fn with_side<T>(
        &mut self,
        f: impl FnOnce(&mut S, &mut CommonState, &mut VecDeque<S::Event>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let Inner {
            common,
            side,
            events,
        } = &mut self.inner;
        f(side, common, events).map_err(|e| {
            side.set_failed();
            common.fail(e)
        })
    }

    /// This side's sending keys, taken out: the fuzz targets seal arbitrary
    /// records as this side would, reaching past the peer's MAC check.
    #[cfg(feature = "internals")]
    pub(crate) fn take_sealer(&mut self) -> Option<RecordSealer> {
        self.inner.common.sealer.take()
    }

    /// Records a fatal error from the application's side (a declined key).
    pub(crate) fn fail(&mut self, err: Error) -> Error {
        self.inner.side.set_failed();
        self.inner.common.fail(err)
    }

    /// Feeds bytes received from the transport and processes every whole
    /// frame in them, the expensive ones included. On error the connection
    /// is dead: flush [`Self::drain_transmit`] (it may hold an alert) and
    /// close.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), Error> {
        while self.expensive_input_pending() {
            self.process_expensive_input()?;
        }
        self.handle_cheap_input(data)?;
        while self.expensive_input_pending() {
            self.process_expensive_input()?;
        }
        Ok(())
    }

    /// [`Self::handle_input`] minus the expensive step: processes frames
    /// until a whole one arrives whose processing costs milliseconds of CPU
    /// (the peer's hello: key agreement and a signature), and keeps that
    /// frame and the bytes after it. [`Self::expensive_input_pending`] then
    /// says so, and an adapter runs [`Self::process_expensive_input`] where
    /// such work belongs (a blocking thread behind a semaphore). Refused
    /// with `InvalidState` while that step is pending.
    pub fn handle_cheap_input(&mut self, mut data: &[u8]) -> Result<(), Error> {
        self.inner.common.check()?;
        if self.expensive_input_pending() {
            return Err(Error::InvalidState("expensive input is pending"));
        }
        let (prefix, n) = self.reader.peek::<{ HEADER_LEN + 2 }>(data);
        if n > 0 {
            if let Err(e) = self.inner.side.refuse_early(&prefix[..n]) {
                self.inner.side.set_failed();
                return Err(self.inner.common.fail(e));
            }
        }
        let max = self.inner.common.limits.max_frame_body;
        loop {
            let frame = match self.reader.next(&mut data, max) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.inner.common.fail(e.into())),
            };
            if self.inner.side.is_expensive(frame[0]) {
                if let Err(e) = self.inner.side.before_expensive(frame) {
                    self.inner.side.set_failed();
                    return Err(self.inner.common.fail(e));
                }
                self.deferred.reserve_exact(frame.len() + data.len());
                self.deferred.extend_from_slice(frame);
                self.deferred.extend_from_slice(data);
                return Ok(());
            }
            if let Err(e) = self.inner.handle_frame(frame) {
                self.inner.side.set_failed();
                return Err(self.inner.common.fail(e));
            }
        }
    }

    /// Whether a whole frame waits whose processing is expensive: the next
    /// input step is [`Self::process_expensive_input`], not more bytes.
    pub fn expensive_input_pending(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Processes the frame [`Self::handle_cheap_input`] kept back, then the
    /// bytes that arrived after it. Does nothing if none is pending.
    pub fn process_expensive_input(&mut self) -> Result<(), Error> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        self.inner.common.check()?;
        let deferred = std::mem::take(&mut self.deferred);
        let len = match decode_header(&deferred, MAX_FRAME_BODY) {
            Ok(Decoded::Frame { consumed, .. }) => consumed,
            _ => unreachable!("only whole frames are deferred"),
        };
        let (frame, rest) = deferred.split_at(len);
        if let Err(e) = self.inner.handle_frame(frame) {
            self.inner.side.set_failed();
            return Err(self.inner.common.fail(e));
        }
        self.handle_cheap_input(rest)
    }

    /// The transport reached end of stream. `Ok` only if the peer said
    /// goodbye with close_notify first; otherwise `UnexpectedEof`.
    pub fn handle_eof(&mut self) -> Result<(), Error> {
        if !self.reader.is_empty() || self.expensive_input_pending() {
            return Err(self.inner.common.fail(Error::UnexpectedEof));
        }
        self.inner.common.handle_eof()
    }

    /// The next event for the application, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<S::Event> {
        self.inner.events.pop_front()
    }

    /// Moves every byte waiting to be sent onto the end of `out`.
    pub fn drain_transmit(&mut self, out: &mut Vec<u8>) {
        self.inner.common.drain_transmit(out);
    }

    /// Takes back a transmit buffer whose bytes have all been written, to
    /// seal the next records into, unless the connection already holds a
    /// larger one; the other is freed, and `buf` is left empty with no
    /// capacity. If nothing waits to be sent, the buffer kept is shrunk to
    /// `keep_at_most` bytes of capacity if it had more.
    ///
    /// `drain_transmit` hands its buffer over whole when `out` is empty
    /// (and empties its own, keeping the capacity, when `out` is not), so a
    /// caller that writes and clears `out` each time would otherwise keep
    /// two buffers going back and forth, each as large as the largest burst
    /// it ever carried (the handshake's flight, ~3 KiB); with this it keeps
    /// one, and an idle connection holds at most `keep_at_most` bytes for
    /// sending.
    pub fn recycle_transmit_buffer(&mut self, buf: &mut Vec<u8>, keep_at_most: usize) {
        let own = &mut self.inner.common.outgoing;
        if own.is_empty() {
            if own.capacity() < buf.capacity() {
                buf.clear();
                std::mem::swap(own, buf);
            }
            own.shrink_to(keep_at_most);
        }
        *buf = Vec::new();
    }

    /// Whether bytes wait to be sent.
    pub fn wants_write(&self) -> bool {
        self.inner.common.wants_write()
    }

    /// Whether the handshake completed: keys confirmed both ways.
    pub fn is_established(&self) -> bool {
        self.inner.side.is_established()
    }

    /// This connection's channel binding, once the handshake is complete:
    /// a secret both ends derive from the handshake and nobody else knows
    /// (docs/PROTOCOL.md §Key schedule, `exporter`).
    pub fn channel_binding(&self) -> Option<ChannelBinding> {
        if !self.is_established() {
            return None;
        }
        self.inner
            .common
            .exporter
            .as_ref()
            .map(|secret| ChannelBinding(secret.clone()))
    }

    /// Encrypts and queues a message. Refused until the handshake is
    /// complete, so no credential can leave before the key is trusted.
    pub fn send(&mut self, msg: &S::Outgoing) -> Result<(), Error> {
        self.send_payload(&S::encode(msg))
    }

    pub(crate) fn send_payload(&mut self, payload: &[u8]) -> Result<(), Error> {
        if !self.is_established() {
            return Err(Error::InvalidState("handshake not complete"));
        }
        self.inner.common.seal_application(payload)
    }

    /// Sends close_notify; afterwards nothing more can be sent. The
    /// application sends its goodbye message first.
    pub fn close(&mut self) {
        self.inner.common.close();
    }
}

impl<S: Side> Inner<S> {
    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        let frame_type = FrameType::from_byte(frame[0])?;
        if frame_type == FrameType::Record && self.side.is_established() {
            return self.handle_established_record(frame);
        }
        self.side
            .handle_handshake_frame(frame, &mut self.common, &mut self.events)
    }

    fn handle_established_record(&mut self, frame: &[u8]) -> Result<(), Error> {
        let (ct, payload) = self.common.open_record(frame)?;
        match self.common.handle_control(ct, &payload)? {
            ControlOutcome::Application => self.events.push_back(S::message_event(&payload)?),
            ControlOutcome::Handled => {}
            ControlOutcome::Closed => self.events.push_back(S::closed_event()),
        }
        Ok(())
    }
}

/// The state both sides share: randomness, limits, keys, outgoing bytes,
/// the sticky error and who has closed.
pub struct CommonState {
    pub(crate) rng: Box<dyn CryptoRngCore + Send>,
    pub(crate) limits: Limits,
    pub(crate) sealer: Option<RecordSealer>,
    pub(crate) opener: Option<RecordOpener>,
    pub(crate) exporter: Option<Secret>,
    outgoing: Vec<u8>,
    error: Option<Error>,
    pub(crate) peer_closed: bool,
    pub(crate) local_closed: bool,
}

impl CommonState {
    pub(crate) fn new(rng: Box<dyn CryptoRngCore + Send>, limits: Limits) -> Self {
        Self {
            rng,
            limits: limits.clamped(),
            sealer: None,
            opener: None,
            exporter: None,
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
    fn seal_application(&mut self, payload: &[u8]) -> Result<(), Error> {
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

    /// Opens one record under the current receiving keys. Anything after
    /// the peer's close_notify is refused.
    pub(crate) fn open_record(&mut self, frame: &[u8]) -> Result<(ContentType, Vec<u8>), Error> {
        let limit = self.limits.key_update.receive_limit();
        let opener = self
            .opener
            .as_mut()
            .ok_or(Error::InvalidState("no receiving keys"))?;
        let (ct, payload) = opener.open(frame, limit)?;
        // Copy out: `payload` borrows the opener's scratch buffer.
        let payload = payload.to_vec();
        if self.peer_closed {
            return Err(PeerMisbehaved::DataAfterClose.into());
        }
        Ok((ct, payload))
    }

    /// Sends close_notify; afterwards nothing more can be sent.
    fn close(&mut self) {
        if self.error.is_none() && self.sealer.is_some() {
            self.send_alert(AlertCode::CloseNotify);
        }
        self.local_closed = true;
    }

    fn drain_transmit(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.outgoing);
        } else {
            out.append(&mut self.outgoing);
        }
    }

    fn wants_write(&self) -> bool {
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
    fn handle_eof(&mut self) -> Result<(), Error> {
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
