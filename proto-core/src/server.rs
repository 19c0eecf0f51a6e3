//! The server's state machine.

use std::collections::VecDeque;
use std::sync::Arc;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;

use crate::common::{plaintext_alert_error, Common, ControlOutcome, FrameReader, Limits};
use crate::error::{Error, HandshakeError, PeerMisbehaved};
use crate::frame::{FrameType, HEADER_LEN};
use crate::hello::{
    client_hello_frame_len, signed_content, ClientHello, ServerHello, Transcript, RANDOM_BYTES,
};
use crate::identity::ServerIdentity;
use crate::key_exchange::ServerShares;
use crate::key_schedule::{finished_mac, HandshakeSecrets};
use crate::message::{ClientMessage, ServerMessage};
use crate::record::{ContentType, RecordOpener, RecordSealer};

/// How the server accepts connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub identity: Arc<ServerIdentity>,
    pub limits: Limits,
}

impl ServerConfig {
    pub fn new(identity: Arc<ServerIdentity>) -> Self {
        Self {
            identity,
            limits: Limits::default(),
        }
    }
}

/// What the server state machine reports to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The client's Finished verified: the session is established.
    Connected,
    /// A message from the client.
    Message(ClientMessage),
    /// The client sent close_notify.
    Closed,
}

enum State {
    ExpectClientHello,
    ExpectClientFinished { expected: [u8; 32] },
    Established,
    Failed,
}

/// A message encoded once and sealed for many connections (broadcast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedServerMessage(Vec<u8>);

impl EncodedServerMessage {
    pub fn new(msg: &ServerMessage) -> Self {
        Self(msg.encode())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&ServerMessage> for EncodedServerMessage {
    fn from(msg: &ServerMessage) -> Self {
        Self::new(msg)
    }
}

/// A server connection: bytes in, bytes and events out.
pub struct ServerConnection {
    reader: FrameReader,
    inner: Inner,
}

struct Inner {
    common: Common,
    identity: Arc<ServerIdentity>,
    state: State,
    events: VecDeque<ServerEvent>,
}

impl ServerConnection {
    pub fn new(config: ServerConfig, rng: Box<dyn CryptoRngCore + Send>) -> Self {
        Self {
            reader: FrameReader::default(),
            inner: Inner {
                common: Common::new(rng, config.limits),
                identity: config.identity,
                state: State::ExpectClientHello,
                events: VecDeque::new(),
            },
        }
    }

    /// Feeds received bytes. Processing a ClientHello costs two ffdhe3072
    /// exponentiations and an ML-KEM encapsulation (~3 ms): drivers run
    /// this off the latency-sensitive path while not yet established.
    pub fn handle_input(&mut self, mut data: &[u8]) -> Result<(), Error> {
        self.inner.common.check()?;
        if matches!(self.inner.state, State::ExpectClientHello) {
            let (prefix, n) = self.reader.peek::<{ HEADER_LEN + 2 }>(data);
            if let Err(e) = client_hello_frame_len(&prefix[..n]) {
                self.inner.state = State::Failed;
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
            if let Err(e) = self.inner.handle_frame(frame) {
                self.inner.state = State::Failed;
                return Err(self.inner.common.fail(e));
            }
        }
    }

    /// Whether `received` (the bytes from the client so far) is enough for
    /// [`handle_input`](Self::handle_input) to process the ClientHello or
    /// to refuse it. Drivers read until then before spending a CPU permit.
    pub fn first_flight_ready(received: &[u8]) -> bool {
        match client_hello_frame_len(received) {
            Ok(None) => false,
            Ok(Some(len)) => received.len() >= len,
            Err(_) => true,
        }
    }

    /// End of stream: `Ok` only after the client's close_notify.
    pub fn handle_eof(&mut self) -> Result<(), Error> {
        if !self.reader.is_empty() {
            return Err(self.inner.common.fail(Error::UnexpectedEof));
        }
        self.inner.common.handle_eof()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.inner.events.pop_front()
    }

    pub fn drain_transmit(&mut self, out: &mut Vec<u8>) {
        self.inner.common.drain_transmit(out);
    }

    pub fn wants_write(&self) -> bool {
        self.inner.common.wants_write()
    }

    pub fn is_established(&self) -> bool {
        matches!(self.inner.state, State::Established)
    }

    /// Whether the handshake is still in progress (the expensive part).
    pub fn is_handshaking(&self) -> bool {
        matches!(
            self.inner.state,
            State::ExpectClientHello | State::ExpectClientFinished { .. }
        )
    }

    pub fn send(&mut self, msg: &ServerMessage) -> Result<(), Error> {
        self.send_encoded(&EncodedServerMessage::new(msg))
    }

    /// Seals a pre-encoded message (encode once, seal per recipient).
    pub fn send_encoded(&mut self, msg: &EncodedServerMessage) -> Result<(), Error> {
        if !self.is_established() {
            return Err(Error::InvalidState("handshake not complete"));
        }
        self.inner.common.seal_application(&msg.0)
    }

    pub fn close(&mut self) {
        self.inner.common.close();
    }
}

impl Inner {
    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        let frame_type = FrameType::from_byte(frame[0])?;
        match (&self.state, frame_type) {
            (State::ExpectClientHello, FrameType::ClientHello) => self.handle_client_hello(frame),
            // A client that rejects our ServerHello (key changed, trust
            // declined, bad signature) has no keys yet: its alert is plaintext.
            (State::ExpectClientFinished { .. }, FrameType::Alert) => {
                Err(plaintext_alert_error(&frame[HEADER_LEN..]))
            }
            (State::ExpectClientFinished { .. } | State::Established, FrameType::Record) => {
                self.handle_record(frame)
            }
            _ => Err(PeerMisbehaved::UnexpectedFrame { got: frame[0] }.into()),
        }
    }

    fn handle_client_hello(&mut self, frame: &[u8]) -> Result<(), Error> {
        let ch = ClientHello::decode(&frame[HEADER_LEN..])?;
        let rng = &mut *self.common.rng;
        let mut random = [0u8; RANDOM_BYTES];
        rng.fill_bytes(&mut random);
        let shares = ServerShares::respond(rng, ch.ffdhe, &ch.x25519, ch.mlkem_ek)?;
        let mut transcript = Transcript::new();
        transcript.add(frame);
        let sh = ServerHello {
            random: &random,
            ffdhe: &shares.ffdhe_public,
            x25519: shares.x25519_public,
            mlkem_ct: &shares.mlkem_ciphertext,
            identity: self.identity.public_key(),
            signature: &[],
        };
        let out = self.common.outgoing_mut();
        let start = out.len();
        sh.encode_unsigned_frame(out);
        transcript.add(&out[start..]);
        let th_sig = transcript.current();
        let signature = self.identity.sign(&signed_content(&th_sig));
        out.extend_from_slice(&signature);
        transcript.add(&signature);

        let secrets = HandshakeSecrets::derive(&th_sig, &shares.ikm);
        self.common.sealer = Some(RecordSealer::new(secrets.server_traffic.clone()));
        self.common.opener = Some(RecordOpener::new(secrets.client_traffic.clone()));
        let server_finished = finished_mac(&secrets.server_finished, &transcript.current());
        self.common.seal(ContentType::Finished, &server_finished)?;
        transcript.add(&server_finished);
        let expected = finished_mac(&secrets.client_finished, &transcript.current());
        self.state = State::ExpectClientFinished { expected };
        Ok(())
    }

    fn handle_record(&mut self, frame: &[u8]) -> Result<(), Error> {
        let limit = self.common.limits.key_update.receive_limit();
        let opener = self
            .common
            .opener
            .as_mut()
            .ok_or(Error::InvalidState("no receiving keys"))?;
        let (ct, payload) = opener.open(frame, limit)?;
        let payload = payload.to_vec();
        if self.common.peer_closed {
            return Err(PeerMisbehaved::DataAfterClose.into());
        }
        match &self.state {
            State::ExpectClientFinished { expected } => {
                if ct == ContentType::Alert {
                    // A client that declines our key says so with an alert;
                    // a close_notify here just ends the attempt.
                    self.common.handle_control(ct, &payload)?;
                    self.events.push_back(ServerEvent::Closed);
                    return Ok(());
                }
                // Application data before Finished is refused (keys unconfirmed).
                if ct != ContentType::Finished {
                    return Err(PeerMisbehaved::UnexpectedContent { got: ct as u8 }.into());
                }
                if payload.len() != 32 || !bool::from(expected.ct_eq(&payload[..])) {
                    return Err(HandshakeError::BadFinished.into());
                }
                self.state = State::Established;
                self.events.push_back(ServerEvent::Connected);
                Ok(())
            }
            State::Established => match self.common.handle_control(ct, &payload)? {
                ControlOutcome::Application => {
                    let msg = ClientMessage::decode(&payload)?;
                    self.events.push_back(ServerEvent::Message(msg));
                    Ok(())
                }
                ControlOutcome::Handled => Ok(()),
                ControlOutcome::Closed => {
                    self.events.push_back(ServerEvent::Closed);
                    Ok(())
                }
            },
            _ => Err(PeerMisbehaved::UnexpectedContent { got: ct as u8 }.into()),
        }
    }
}
