//! The client's state machine.

use std::collections::VecDeque;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;

use crate::common::{plaintext_alert_error, Common, ControlOutcome, FrameReader, Limits};
use crate::error::{Error, HandshakeError, PeerMisbehaved};
use crate::frame::{FrameType, HEADER_LEN};
use crate::hello::{signed_content, ClientHello, ServerHello, Transcript, RANDOM_BYTES};
use crate::identity::{ServerKey, ServerTrust};
use crate::key_exchange::ClientShares;
use crate::key_schedule::{finished_mac, HandshakeSecrets, Secret};
use crate::message::{ClientMessage, ServerMessage};
use crate::record::{ContentType, RecordOpener, RecordSealer};

/// How the client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub trust: ServerTrust,
    pub limits: Limits,
}

impl ClientConfig {
    pub fn new(trust: ServerTrust) -> Self {
        Self {
            trust,
            limits: Limits::default(),
        }
    }
}

/// What the client state machine reports to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// First contact: the server proved possession of this key, which the
    /// client has never seen. Call [`ClientConnection::accept_server_key`]
    /// (after asking the user and pinning it) or
    /// [`ClientConnection::reject_server_key`]. Nothing is sent meanwhile.
    ServerKeyUnknown(ServerKey),
    /// Handshake complete: keys confirmed both ways; messages may flow.
    Connected { server_key: ServerKey },
    /// A message from the server.
    Message(ServerMessage),
    /// The server sent close_notify; the session ended cleanly.
    Closed,
}

enum State {
    ExpectServerHello {
        shares: Box<ClientShares>,
        transcript: Transcript,
    },
    ExpectServerFinished {
        server_key: ServerKey,
        transcript: Transcript,
        client_finished_key: Secret,
        server_finished_key: Secret,
    },
    AwaitingTrust {
        server_key: ServerKey,
        client_finished: [u8; 32],
    },
    Established,
    Failed,
}

/// A client connection: bytes in, bytes and events out. See the crate
/// docs for the run-loop contract.
pub struct ClientConnection {
    reader: FrameReader,
    inner: Inner,
}

struct Inner {
    common: Common,
    trust: ServerTrust,
    state: State,
    events: VecDeque<ClientEvent>,
}

impl ClientConnection {
    /// Starts a handshake; the ClientHello is queued for sending at once.
    pub fn new(config: ClientConfig, mut rng: Box<dyn CryptoRngCore + Send>) -> Self {
        let mut random = [0u8; RANDOM_BYTES];
        rng.fill_bytes(&mut random);
        let shares = Box::new(ClientShares::generate(&mut *rng));
        let mut common = Common::new(rng, config.limits);
        let mut hello = Vec::new();
        ClientHello {
            random: &random,
            ffdhe: shares.ffdhe_public(),
            x25519: *shares.x25519_public(),
            mlkem_ek: shares.mlkem_encapsulation_key(),
        }
        .encode_frame(&mut hello);
        let mut transcript = Transcript::new();
        transcript.add(&hello);
        common.push_raw(&hello);
        Self {
            reader: FrameReader::default(),
            inner: Inner {
                common,
                trust: config.trust,
                state: State::ExpectServerHello { shares, transcript },
                events: VecDeque::new(),
            },
        }
    }

    /// Feeds bytes received from the transport. On error the connection is
    /// dead: flush [`Self::drain_transmit`] (it may hold an alert) and close.
    pub fn handle_input(&mut self, mut data: &[u8]) -> Result<(), Error> {
        self.inner.common.check()?;
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

    /// The transport reached end of stream. `Ok` only if the server said
    /// goodbye with close_notify first; otherwise `UnexpectedEof`.
    pub fn handle_eof(&mut self) -> Result<(), Error> {
        if !self.reader.is_empty() {
            return Err(self.inner.common.fail(Error::UnexpectedEof));
        }
        self.inner.common.handle_eof()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.inner.events.pop_front()
    }

    /// Moves every byte waiting to be sent onto the end of `out`.
    pub fn drain_transmit(&mut self, out: &mut Vec<u8>) {
        self.inner.common.drain_transmit(out);
    }

    pub fn wants_write(&self) -> bool {
        self.inner.common.wants_write()
    }

    pub fn is_established(&self) -> bool {
        matches!(self.inner.state, State::Established)
    }

    /// Accepts the key reported by `ServerKeyUnknown` (the application pins
    /// it). Sends the client Finished; `Connected` follows.
    pub fn accept_server_key(&mut self) -> Result<(), Error> {
        self.inner.common.check()?;
        match std::mem::replace(&mut self.inner.state, State::Failed) {
            State::AwaitingTrust {
                server_key,
                client_finished,
            } => self.inner.finish(server_key, client_finished),
            other => {
                self.inner.state = other;
                Err(Error::InvalidState("no server key is awaiting a decision"))
            }
        }
    }

    /// Declines the key reported by `ServerKeyUnknown`; the connection fails.
    pub fn reject_server_key(&mut self) -> Error {
        let err = match &self.inner.state {
            State::AwaitingTrust { server_key, .. } => {
                Error::ServerKeyRejected(server_key.fingerprint())
            }
            _ => Error::InvalidState("no server key is awaiting a decision"),
        };
        self.inner.state = State::Failed;
        self.inner.common.fail(err)
    }

    /// Encrypts and queues a message. Refused until the handshake is
    /// complete, so no credential can leave before the key is trusted.
    pub fn send(&mut self, msg: &ClientMessage) -> Result<(), Error> {
        if !self.is_established() {
            return Err(Error::InvalidState("handshake not complete"));
        }
        let bytes = msg.encode();
        self.inner.common.seal_application(&bytes)
    }

    /// Sends close_notify. The application sends `Goodbye` first.
    pub fn close(&mut self) {
        self.inner.common.close();
    }
}

impl Inner {
    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        let frame_type = FrameType::from_byte(frame[0])?;
        let body = &frame[HEADER_LEN..];
        match (&mut self.state, frame_type) {
            (State::ExpectServerHello { .. }, FrameType::ServerHello) => {
                self.handle_server_hello(frame)
            }
            (State::ExpectServerHello { .. }, FrameType::Alert) => Err(plaintext_alert_error(body)),
            (State::ExpectServerFinished { .. } | State::Established, FrameType::Record) => {
                self.handle_record(frame)
            }
            _ => Err(PeerMisbehaved::UnexpectedFrame { got: frame[0] }.into()),
        }
    }

    fn handle_server_hello(&mut self, frame: &[u8]) -> Result<(), Error> {
        let State::ExpectServerHello { shares, transcript } =
            std::mem::replace(&mut self.state, State::Failed)
        else {
            unreachable!("checked by handle_frame");
        };
        let mut transcript = transcript;
        let sh = ServerHello::decode(&frame[HEADER_LEN..])?;
        let unsigned_len = frame.len() - sh.signature.len();
        transcript.add(&frame[..unsigned_len]);
        let th_sig = transcript.current();
        if !sh.identity.verify(&signed_content(&th_sig), sh.signature) {
            return Err(HandshakeError::BadSignature.into());
        }
        // A valid signature by a key other than the expected one: refuse
        // before any key material is used or any credential could be sent.
        let presented = sh.identity.fingerprint();
        let expected = match self.trust {
            ServerTrust::Pinned(k) => Some(k.fingerprint()),
            ServerTrust::Fingerprint(fp) => Some(fp),
            ServerTrust::FirstUse => None,
        };
        if let Some(expected) = expected {
            if expected != presented {
                return Err(Error::ServerKeyChanged {
                    expected,
                    presented,
                });
            }
        }
        let ikm = shares.finish(sh.ffdhe, &sh.x25519, sh.mlkem_ct)?;
        let secrets = HandshakeSecrets::derive(&th_sig, &ikm);
        transcript.add(&frame[unsigned_len..]);
        self.common.sealer = Some(RecordSealer::new(secrets.client_traffic.clone()));
        self.common.opener = Some(RecordOpener::new(secrets.server_traffic.clone()));
        self.state = State::ExpectServerFinished {
            server_key: sh.identity,
            transcript,
            client_finished_key: secrets.client_finished,
            server_finished_key: secrets.server_finished,
        };
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
        // Copy out: `payload` borrows the opener's scratch buffer.
        let payload = payload.to_vec();
        if self.common.peer_closed {
            return Err(PeerMisbehaved::DataAfterClose.into());
        }
        match &mut self.state {
            State::ExpectServerFinished { .. } => self.handle_server_finished(ct, &payload),
            State::Established => match self.common.handle_control(ct, &payload)? {
                ControlOutcome::Application => {
                    let msg = ServerMessage::decode(&payload)?;
                    self.events.push_back(ClientEvent::Message(msg));
                    Ok(())
                }
                ControlOutcome::Handled => Ok(()),
                ControlOutcome::Closed => {
                    self.events.push_back(ClientEvent::Closed);
                    Ok(())
                }
            },
            _ => Err(PeerMisbehaved::UnexpectedContent { got: ct as u8 }.into()),
        }
    }

    fn handle_server_finished(&mut self, ct: ContentType, payload: &[u8]) -> Result<(), Error> {
        if ct != ContentType::Finished {
            if ct == ContentType::Alert {
                if let [code] = payload {
                    return Err(Error::AlertReceived(crate::error::AlertCode::from_byte(
                        *code,
                    )));
                }
            }
            return Err(PeerMisbehaved::UnexpectedContent { got: ct as u8 }.into());
        }
        let State::ExpectServerFinished {
            server_key,
            mut transcript,
            client_finished_key,
            server_finished_key,
        } = std::mem::replace(&mut self.state, State::Failed)
        else {
            unreachable!("checked by handle_record");
        };
        let expected = finished_mac(&server_finished_key, &transcript.current());
        if payload.len() != 32 || !bool::from(expected.ct_eq(payload)) {
            return Err(HandshakeError::BadFinished.into());
        }
        transcript.add(payload);
        let client_finished = finished_mac(&client_finished_key, &transcript.current());
        if matches!(self.trust, ServerTrust::FirstUse) {
            self.state = State::AwaitingTrust {
                server_key,
                client_finished,
            };
            self.events
                .push_back(ClientEvent::ServerKeyUnknown(server_key));
            Ok(())
        } else {
            self.finish(server_key, client_finished)
        }
    }

    fn finish(&mut self, server_key: ServerKey, client_finished: [u8; 32]) -> Result<(), Error> {
        self.common.seal(ContentType::Finished, &client_finished)?;
        self.trust = ServerTrust::Pinned(server_key);
        self.state = State::Established;
        self.events.push_back(ClientEvent::Connected { server_key });
        Ok(())
    }
}
