//! The server's side of a connection: its configuration, its events and its
//! handshake states. Everything after the handshake is in `connection.rs`.

use std::collections::VecDeque;
use std::sync::Arc;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;

use crate::connection::{plaintext_alert_error, sealed, CommonState, Connection, Limits, Side};
use crate::error::{Error, HandshakeError, PeerMisbehaved};
use crate::frame::{FrameType, HEADER_LEN};
use crate::hello::{
    client_hello_frame_len, signed_content, ClientHello, HandshakeMode, ResumeHello, ServerHello,
    Transcript, RANDOM_BYTES,
};
use crate::identity::ServerIdentity;
use crate::key_exchange::ServerShares;
use crate::key_schedule::{finished_mac, HandshakeSecrets};
use crate::message::{ClientMessage, ServerMessage};
use crate::record::{ContentType, RecordOpener, RecordSealer};
use crate::resumption::{PskStore, ResumptionPsk};

/// How the server accepts connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub identity: Arc<ServerIdentity>,
    pub limits: Limits,
    /// Where resumed handshakes find their keys; without one, every
    /// ResumeHello is refused with `unknown_psk`.
    pub psks: Option<Arc<dyn PskStore>>,
}

impl ServerConfig {
    pub fn new(identity: Arc<ServerIdentity>) -> Self {
        Self {
            identity,
            limits: Limits::default(),
            psks: None,
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

/// A server connection: bytes in, bytes and events out. Processing the
/// ClientHello costs two ffdhe3072 exponentiations and an ML-KEM
/// encapsulation (~3 ms), a ResumeHello an X25519 exchange, an ML-KEM
/// encapsulation and a signature (~0.15 ms): adapters run either off the
/// latency-sensitive path ([`Connection::handle_cheap_input`]).
pub type ServerConnection = Connection<ServerSide>;

/// The server's handshake state inside a [`ServerConnection`].
pub struct ServerSide {
    identity: Arc<ServerIdentity>,
    psks: Option<Arc<dyn PskStore>>,
    /// The key a deferred ResumeHello named, found on the cheap path.
    resume_key: Option<ResumptionPsk>,
    state: State,
}

enum State {
    ExpectClientHello,
    ExpectClientFinished { expected: [u8; 32] },
    Established,
    Failed,
}

impl Connection<ServerSide> {
    pub fn new(config: ServerConfig, rng: Box<dyn CryptoRngCore + Send>) -> Self {
        let side = ServerSide {
            identity: config.identity,
            psks: config.psks,
            resume_key: None,
            state: State::ExpectClientHello,
        };
        Connection::from_parts(CommonState::new(rng, config.limits), side)
    }

    /// Seals a pre-encoded message (encode once, seal per recipient).
    pub fn send_encoded(&mut self, msg: &EncodedServerMessage) -> Result<(), Error> {
        self.send_payload(&msg.0)
    }
}

impl Side for ServerSide {
    type Event = ServerEvent;
    type Outgoing = ServerMessage;
}

impl sealed::SideStates for ServerSide {
    fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    fn set_failed(&mut self) {
        self.state = State::Failed;
    }

    fn is_expensive(&self, frame_type: u8) -> bool {
        matches!(self.state, State::ExpectClientHello)
            && (frame_type == FrameType::ClientHello as u8
                || frame_type == FrameType::ResumeHello as u8)
    }

    /// A ResumeHello's key is looked up here, on the caller's thread: the
    /// store may take a lock that the session tasks take too, and the rest
    /// of the hello runs on a background thread that must not hold it
    /// (a preempted low-priority holder would stall them). An unknown key
    /// is refused at once, without deferring anything.
    fn before_expensive(&mut self, frame: &[u8]) -> Result<(), Error> {
        if matches!(self.state, State::ExpectClientHello)
            && frame[0] == FrameType::ResumeHello as u8
        {
            let rh = ResumeHello::decode(&frame[HEADER_LEN..])?;
            let key = self.psks.as_ref().and_then(|store| store.find(&rh.psk_id));
            self.resume_key = Some(key.ok_or(HandshakeError::UnknownPsk)?);
        }
        Ok(())
    }

    /// A wrong type, length or version is known from the first seven bytes
    /// (see [`client_hello_frame_len`]).
    fn refuse_early(&self, prefix: &[u8]) -> Result<(), Error> {
        if matches!(self.state, State::ExpectClientHello) {
            client_hello_frame_len(prefix)?;
        }
        Ok(())
    }

    fn handle_handshake_frame(
        &mut self,
        frame: &[u8],
        common: &mut CommonState,
        events: &mut VecDeque<ServerEvent>,
    ) -> Result<(), Error> {
        let frame_type = FrameType::from_byte(frame[0])?;
        match (&self.state, frame_type) {
            (State::ExpectClientHello, FrameType::ClientHello) => {
                self.handle_client_hello(frame, common)
            }
            (State::ExpectClientHello, FrameType::ResumeHello) => {
                self.handle_resume_hello(frame, common)
            }
            // A client that rejects our ServerHello (key changed, trust
            // declined, bad signature) has no keys yet: its alert is plaintext.
            (State::ExpectClientFinished { .. }, FrameType::Alert) => {
                Err(plaintext_alert_error(&frame[HEADER_LEN..]))
            }
            (State::ExpectClientFinished { expected }, FrameType::Record) => {
                let expected = *expected;
                let (ct, payload) = common.open_record(frame)?;
                self.handle_client_finished(expected, ct, &payload, common, events)
            }
            _ => Err(PeerMisbehaved::UnexpectedFrame { got: frame[0] }.into()),
        }
    }

    fn message_event(payload: &[u8]) -> Result<ServerEvent, Error> {
        Ok(ServerEvent::Message(ClientMessage::decode(payload)?))
    }

    fn closed_event() -> ServerEvent {
        ServerEvent::Closed
    }

    fn encode(msg: &ServerMessage) -> Vec<u8> {
        msg.encode()
    }
}

impl ServerSide {
    fn handle_client_hello(&mut self, frame: &[u8], common: &mut CommonState) -> Result<(), Error> {
        let ch = ClientHello::decode(&frame[HEADER_LEN..])?;
        let rng = &mut *common.rng;
        let mut random = [0u8; RANDOM_BYTES];
        rng.fill_bytes(&mut random);
        let shares = ServerShares::respond(rng, ch.ffdhe, &ch.x25519, ch.mlkem_ek)?;
        self.answer(frame, HandshakeMode::Full, &random, &shares, common)
    }

    /// A resumed handshake: the key the hello names, found by
    /// `before_expensive` (every frame deferred passed through it), stands
    /// in for ffdhe.
    fn handle_resume_hello(&mut self, frame: &[u8], common: &mut CommonState) -> Result<(), Error> {
        let rh = ResumeHello::decode(&frame[HEADER_LEN..])?;
        let psk = self.resume_key.take().ok_or(HandshakeError::UnknownPsk)?;
        let rng = &mut *common.rng;
        let mut random = [0u8; RANDOM_BYTES];
        rng.fill_bytes(&mut random);
        let shares = ServerShares::respond_resumed(rng, &psk, &rh.x25519, rh.mlkem_ek)?;
        self.answer(frame, HandshakeMode::Resumed, &random, &shares, common)
    }

    /// The signed ServerHello and the server's Finished, for either mode.
    fn answer(
        &mut self,
        client_hello: &[u8],
        mode: HandshakeMode,
        random: &[u8; RANDOM_BYTES],
        shares: &ServerShares,
        common: &mut CommonState,
    ) -> Result<(), Error> {
        let mut transcript = Transcript::for_mode(mode);
        transcript.add(client_hello);
        let sh = ServerHello {
            random,
            ffdhe: &shares.ffdhe_public,
            x25519: shares.x25519_public,
            mlkem_ct: &shares.mlkem_ciphertext,
            identity: self.identity.public_key(),
            signature: &[],
        };
        let out = common.outgoing_mut();
        let start = out.len();
        sh.encode_unsigned_frame(out);
        transcript.add(&out[start..]);
        let th_sig = transcript.current();
        let signature = self.identity.sign(&signed_content(&th_sig));
        out.extend_from_slice(&signature);
        transcript.add(&signature);

        let secrets = HandshakeSecrets::derive(&th_sig, &shares.ikm);
        common.sealer = Some(RecordSealer::new(secrets.server_traffic.clone()));
        common.opener = Some(RecordOpener::new(secrets.client_traffic.clone()));
        common.exporter = Some(secrets.exporter.clone());
        let server_finished = finished_mac(&secrets.server_finished, &transcript.current());
        common.seal(ContentType::Finished, &server_finished)?;
        transcript.add(&server_finished);
        let expected = finished_mac(&secrets.client_finished, &transcript.current());
        self.state = State::ExpectClientFinished { expected };
        Ok(())
    }

    fn handle_client_finished(
        &mut self,
        expected: [u8; 32],
        ct: ContentType,
        payload: &[u8],
        common: &mut CommonState,
        events: &mut VecDeque<ServerEvent>,
    ) -> Result<(), Error> {
        if ct == ContentType::Alert {
            // A client that declines our key says so with an alert;
            // a close_notify here just ends the attempt.
            common.handle_control(ct, payload)?;
            events.push_back(ServerEvent::Closed);
            return Ok(());
        }
        // Application data before Finished is refused (keys unconfirmed).
        if ct != ContentType::Finished {
            return Err(PeerMisbehaved::UnexpectedContent { got: ct as u8 }.into());
        }
        if payload.len() != 32 || !bool::from(expected.ct_eq(payload)) {
            return Err(HandshakeError::BadFinished.into());
        }
        self.state = State::Established;
        events.push_back(ServerEvent::Connected);
        Ok(())
    }
}
