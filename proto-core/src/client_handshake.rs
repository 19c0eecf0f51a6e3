//! The client's side of a connection: its configuration, its events and its
//! handshake states. Everything after the handshake is in `connection.rs`.

use std::collections::VecDeque;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;

use crate::connection::{plaintext_alert_error, sealed, CommonState, Connection, Limits, Side};
use crate::error::{AlertCode, Error, HandshakeError, PeerMisbehaved};
use crate::frame::{FrameType, HEADER_LEN};
use crate::hello::{
    signed_content, ClientHello, HandshakeMode, ResumeHello, ServerHello, Transcript, RANDOM_BYTES,
};
use crate::identity::{ServerKey, ServerTrust};
use crate::key_exchange::ClientShares;
use crate::key_schedule::{finished_mac, HandshakeSecrets, Secret};
use crate::message::{ClientMessage, ServerMessage};
use crate::record::{ContentType, RecordOpener, RecordSealer};
use crate::resumption::ResumptionPsk;

/// How the client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub trust: ServerTrust,
    pub limits: Limits,
    /// Resume with this key (from the resume token the client holds): a
    /// ResumeHello without the ffdhe3072 exchange. A server that does not
    /// hold the key answers `AlertReceived(UnknownPsk)`; connect again
    /// without it.
    pub resume: Option<ResumptionPsk>,
}

impl ClientConfig {
    pub fn new(trust: ServerTrust) -> Self {
        Self {
            trust,
            limits: Limits::default(),
            resume: None,
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

/// A client connection: bytes in, bytes and events out. See the crate
/// docs for the run-loop contract.
pub type ClientConnection = Connection<ClientSide>;

/// The client's handshake state inside a [`ClientConnection`].
pub struct ClientSide {
    trust: ServerTrust,
    state: State,
    /// The key the handshake verified, kept after a later failure too.
    verified_key: Option<ServerKey>,
}

enum State {
    ExpectServerHello {
        shares: Box<ClientShares>,
        transcript: Transcript,
        resume: Option<ResumptionPsk>,
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

impl Connection<ClientSide> {
    /// Starts a handshake; the ClientHello (or, with `config.resume`, the
    /// ResumeHello) is queued for sending at once. Generating the key
    /// shares costs an ffdhe3072 exponentiation and an ML-KEM key
    /// generation (about a millisecond); a resumed one skips the former.
    pub fn new(config: ClientConfig, mut rng: Box<dyn CryptoRngCore + Send>) -> Self {
        let mut random = [0u8; RANDOM_BYTES];
        rng.fill_bytes(&mut random);
        let mut hello = Vec::new();
        let (shares, mode) = match &config.resume {
            None => {
                let shares = Box::new(ClientShares::generate(&mut *rng));
                ClientHello {
                    random: &random,
                    ffdhe: shares.ffdhe_public(),
                    x25519: *shares.x25519_public(),
                    mlkem_ek: shares.mlkem_encapsulation_key(),
                }
                .encode_frame(&mut hello);
                (shares, HandshakeMode::Full)
            }
            Some(psk) => {
                let shares = Box::new(ClientShares::generate_resumed(&mut *rng));
                ResumeHello {
                    random: &random,
                    psk_id: psk.id(),
                    x25519: *shares.x25519_public(),
                    mlkem_ek: shares.mlkem_encapsulation_key(),
                }
                .encode_frame(&mut hello);
                (shares, HandshakeMode::Resumed)
            }
        };
        let mut common = CommonState::new(rng, config.limits);
        let mut transcript = Transcript::for_mode(mode);
        transcript.add(&hello);
        common.push_raw(&hello);
        let side = ClientSide {
            trust: config.trust,
            state: State::ExpectServerHello {
                shares,
                transcript,
                resume: config.resume,
            },
            verified_key: None,
        };
        Connection::from_parts(common, side)
    }

    /// The server's identity key, once the handshake has completed (and
    /// still after the connection ends).
    pub fn server_key(&self) -> Option<ServerKey> {
        self.side().verified_key
    }

    /// Accepts the key reported by `ServerKeyUnknown` (the application pins
    /// it). Sends the client Finished; `Connected` follows.
    pub fn accept_server_key(&mut self) -> Result<(), Error> {
        self.check()?;
        if !matches!(self.side().state, State::AwaitingTrust { .. }) {
            return Err(Error::InvalidState("no server key is awaiting a decision"));
        }
        self.with_side(|side, common, events| {
            let State::AwaitingTrust {
                server_key,
                client_finished,
            } = std::mem::replace(&mut side.state, State::Failed)
            else {
                unreachable!("checked above");
            };
            side.finish(common, events, server_key, client_finished)
        })
    }

    /// Declines the key reported by `ServerKeyUnknown`; the connection fails.
    pub fn reject_server_key(&mut self) -> Error {
        let err = match &self.side().state {
            State::AwaitingTrust { server_key, .. } => {
                Error::ServerKeyRejected(server_key.fingerprint())
            }
            _ => Error::InvalidState("no server key is awaiting a decision"),
        };
        self.fail(err)
    }
}

impl Side for ClientSide {
    type Event = ClientEvent;
    type Outgoing = ClientMessage;
}

impl sealed::SideStates for ClientSide {
    fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    fn set_failed(&mut self) {
        self.state = State::Failed;
    }

    fn is_expensive(&self, frame_type: u8) -> bool {
        matches!(self.state, State::ExpectServerHello { .. })
            && frame_type == FrameType::ServerHello as u8
    }

    fn handle_handshake_frame(
        &mut self,
        frame: &[u8],
        common: &mut CommonState,
        events: &mut VecDeque<ClientEvent>,
    ) -> Result<(), Error> {
        let frame_type = FrameType::from_byte(frame[0])?;
        match (&self.state, frame_type) {
            (State::ExpectServerHello { .. }, FrameType::ServerHello) => {
                self.handle_server_hello(frame, common)
            }
            (State::ExpectServerHello { .. }, FrameType::Alert) => {
                Err(plaintext_alert_error(&frame[HEADER_LEN..]))
            }
            (State::ExpectServerFinished { .. }, FrameType::Record) => {
                let (ct, payload) = common.open_record(frame)?;
                self.handle_server_finished(ct, &payload, common, events)
            }
            _ => Err(PeerMisbehaved::UnexpectedFrame { got: frame[0] }.into()),
        }
    }

    fn message_event(payload: &[u8]) -> Result<ClientEvent, Error> {
        Ok(ClientEvent::Message(ServerMessage::decode(payload)?))
    }

    fn closed_event() -> ClientEvent {
        ClientEvent::Closed
    }

    fn encode(msg: &ClientMessage) -> Vec<u8> {
        msg.encode()
    }
}

impl ClientSide {
    fn handle_server_hello(&mut self, frame: &[u8], common: &mut CommonState) -> Result<(), Error> {
        let State::ExpectServerHello {
            shares,
            transcript,
            resume,
        } = std::mem::replace(&mut self.state, State::Failed)
        else {
            unreachable!("checked by handle_handshake_frame");
        };
        let mut transcript = transcript;
        let mode = match resume {
            None => HandshakeMode::Full,
            Some(_) => HandshakeMode::Resumed,
        };
        let sh = ServerHello::decode(&frame[HEADER_LEN..], mode)?;
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
        let ikm = match &resume {
            None => shares.finish(sh.ffdhe, &sh.x25519, sh.mlkem_ct)?,
            Some(psk) => shares.finish_resumed(psk, &sh.x25519, sh.mlkem_ct)?,
        };
        let secrets = HandshakeSecrets::derive(&th_sig, &ikm);
        transcript.add(&frame[unsigned_len..]);
        common.sealer = Some(RecordSealer::new(secrets.client_traffic.clone()));
        common.opener = Some(RecordOpener::new(secrets.server_traffic.clone()));
        common.exporter = Some(secrets.exporter.clone());
        self.state = State::ExpectServerFinished {
            server_key: sh.identity,
            transcript,
            client_finished_key: secrets.client_finished,
            server_finished_key: secrets.server_finished,
        };
        Ok(())
    }

    fn handle_server_finished(
        &mut self,
        ct: ContentType,
        payload: &[u8],
        common: &mut CommonState,
        events: &mut VecDeque<ClientEvent>,
    ) -> Result<(), Error> {
        if ct != ContentType::Finished {
            if ct == ContentType::Alert {
                if let [code] = payload {
                    return Err(Error::AlertReceived(AlertCode::from_byte(*code)));
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
            unreachable!("checked by handle_handshake_frame");
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
            events.push_back(ClientEvent::ServerKeyUnknown(server_key));
            Ok(())
        } else {
            self.finish(common, events, server_key, client_finished)
        }
    }

    fn finish(
        &mut self,
        common: &mut CommonState,
        events: &mut VecDeque<ClientEvent>,
        server_key: ServerKey,
        client_finished: [u8; 32],
    ) -> Result<(), Error> {
        common.seal(ContentType::Finished, &client_finished)?;
        self.trust = ServerTrust::Pinned(server_key);
        self.verified_key = Some(server_key);
        self.state = State::Established;
        events.push_back(ClientEvent::Connected { server_key });
        Ok(())
    }
}
