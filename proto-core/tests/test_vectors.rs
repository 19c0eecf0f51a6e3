//! Reproduces the test vectors published in docs/PROTOCOL.md §Test vectors
//! from scripted randomness, and checks the document still carries them.
//!
//! Regenerate after a deliberate protocol change with
//! `SCHAT_WRITE_VECTORS=1 cargo test -p proto-core --test test_vectors`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;

use proto_core::frame::{decode_header, Decoded, HEADER_LEN, MAX_FRAME_BODY};
use proto_core::hello::{Transcript, SIGNATURE_BYTES};
use proto_core::key_exchange::ClientShares;
use proto_core::key_schedule::{next_traffic_secret, HandshakeSecrets, TrafficKeys};
use proto_core::message::ClientMessage;
use proto_core::*;
use rand_core::{CryptoRng, RngCore};

/// Serves each fill request from a scripted list, checking its length.
struct ScriptedRng(VecDeque<(&'static str, Vec<u8>)>);

impl ScriptedRng {
    fn new(script: &[(&'static str, u8, usize)]) -> Self {
        Self(
            script
                .iter()
                .map(|&(name, byte, len)| (name, vec![byte; len]))
                .collect(),
        )
    }
}

impl RngCore for ScriptedRng {
    fn next_u32(&mut self) -> u32 {
        unimplemented!("the core only calls fill_bytes")
    }
    fn next_u64(&mut self) -> u64 {
        unimplemented!("the core only calls fill_bytes")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let (name, bytes) = self.0.pop_front().expect("script exhausted");
        assert_eq!(bytes.len(), dest.len(), "draw {name} has the wrong length");
        dest.copy_from_slice(&bytes);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for ScriptedRng {}

const CLIENT_DRAWS: &[(&str, u8, usize)] = &[
    ("client_random", 0x01, 32),
    ("client_ffdhe_exponent", 0x02, 40),
    ("client_x25519_scalar", 0x03, 32),
    ("client_mlkem_d", 0x04, 32),
    ("client_mlkem_z", 0x05, 32),
    ("client_iv_0 (Finished)", 0x06, 16),
    ("client_iv_1 (first message)", 0x07, 16),
    ("client_iv_2 (Goodbye)", 0x08, 16),
    ("client_iv_3 (close_notify)", 0x09, 16),
];
const SERVER_DRAWS: &[(&str, u8, usize)] = &[
    ("server_random", 0x11, 32),
    ("server_ffdhe_exponent", 0x12, 40),
    ("server_x25519_scalar", 0x13, 32),
    ("server_mlkem_m", 0x14, 32),
    ("server_iv_0 (Finished)", 0x15, 16),
];
const SERVER_IDENTITY_SEED: u8 = 0x20;

fn frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(Decoded::Frame { consumed, .. }) = decode_header(bytes, MAX_FRAME_BODY) {
        out.push(bytes[..consumed].to_vec());
        bytes = &bytes[consumed..];
    }
    out
}

fn first_message() -> ClientMessage {
    ClientMessage::Ping { nonce: 1 }
}

/// The scripted handshake and first message, with the client's limits.
struct Handshaken {
    identity: Arc<ServerIdentity>,
    client: ClientConnection,
    server: ServerConnection,
    ch: Vec<u8>,
    flight: Vec<u8>,
    cf: Vec<u8>,
    first: Vec<u8>,
}

fn handshake(client_limits: Limits) -> Handshaken {
    let identity = Arc::new(ServerIdentity::from_seed(&[SERVER_IDENTITY_SEED; 32]));
    let mut config = ClientConfig::new(ServerTrust::Pinned(identity.public_key()));
    config.limits = client_limits;
    let client = ClientConnection::new(config, Box::new(ScriptedRng::new(CLIENT_DRAWS)));
    let server = ServerConnection::new(
        ServerConfig::new(identity.clone()),
        Box::new(ScriptedRng::new(SERVER_DRAWS)),
    );
    run_handshake(identity, client, server)
}

/// Moves the hello, the server's flight and the client's Finished, then the
/// client's first message, keeping each on the way.
fn run_handshake(
    identity: Arc<ServerIdentity>,
    mut client: ClientConnection,
    mut server: ServerConnection,
) -> Handshaken {
    let mut ch = Vec::new();
    client.drain_transmit(&mut ch);
    server.handle_input(&ch).unwrap();
    let mut flight = Vec::new();
    server.drain_transmit(&mut flight);
    client.handle_input(&flight).unwrap();
    let mut cf = Vec::new();
    client.drain_transmit(&mut cf);
    server.handle_input(&cf).unwrap();
    assert!(client.is_established() && server.is_established());
    client.send(&first_message()).unwrap();
    let mut first = Vec::new();
    client.drain_transmit(&mut first);
    server.handle_input(&first).unwrap();
    Handshaken {
        identity,
        client,
        server,
        ch,
        flight,
        cf,
        first,
    }
}

fn compute_vectors() -> String {
    let Handshaken {
        identity,
        mut client,
        server: _,
        ch,
        flight,
        cf,
        first,
    } = handshake(Limits::default());
    let server_frames = frames(&flight);
    let (sh, server_finished) = (&server_frames[0], &server_frames[1]);

    // Recompute the key schedule from the public flight and the scripted
    // client secrets, through the crate's public building blocks.
    let mut rng = ScriptedRng::new(CLIENT_DRAWS);
    let mut skip = [0u8; 32];
    rng.fill_bytes(&mut skip);
    let shares = ClientShares::generate(&mut rng);
    let body = &sh[HEADER_LEN..];
    let ikm = shares
        .finish(
            &body[34..34 + 384],
            body[418..450].try_into().unwrap(),
            &body[450..450 + 1088],
        )
        .unwrap();
    let mut t = Transcript::new();
    t.add(&ch);
    t.add(&sh[..sh.len() - SIGNATURE_BYTES]);
    let th_sig = t.current();
    let secrets = HandshakeSecrets::derive(&th_sig, &ikm);
    let ck = TrafficKeys::from_traffic_secret(&secrets.client_traffic);
    let sk = TrafficKeys::from_traffic_secret(&secrets.server_traffic);

    let mut out = String::new();
    let mut line = |name: &str, bytes: &[u8]| {
        writeln!(out, "{name} = {}", hex::encode(bytes)).unwrap();
    };
    line("server_identity_seed", &[SERVER_IDENTITY_SEED; 32]);
    line("server_identity_public", &identity.public_key().0);
    for (name, byte, len) in CLIENT_DRAWS.iter().chain(SERVER_DRAWS) {
        line(name.split(' ').next().unwrap(), &vec![*byte; *len]);
    }
    line("client_hello_frame", &ch);
    line("server_hello_frame", sh);
    line("shared_ffdhe", &ikm[..384]);
    line("shared_x25519", &ikm[384..416]);
    line("shared_mlkem", &ikm[416..448]);
    line("th_sig", &th_sig);
    line("client_traffic_secret_0", &secrets.client_traffic[..]);
    line("server_traffic_secret_0", &secrets.server_traffic[..]);
    line("client_finished_key", &secrets.client_finished[..]);
    line("server_finished_key", &secrets.server_finished[..]);
    line("exporter", &secrets.exporter[..]);
    assert_eq!(
        client.channel_binding().unwrap().expose(),
        &secrets.exporter[..],
        "the connection's channel binding is the exporter"
    );
    line("client_enc_key_0", &ck.enc[..]);
    line("client_mac_key_0", &ck.mac[..]);
    line("server_enc_key_0", &sk.enc[..]);
    line("server_mac_key_0", &sk.mac[..]);
    line("server_finished_record", server_finished);
    line("client_finished_record", &cf);
    line("first_message_plaintext", &first_message().encode());
    line("first_message_record", &first);
    // The client leaves: Goodbye, then close_notify (an Alert record, the
    // client's third record: sequence 2).
    client.send(&ClientMessage::Goodbye).unwrap();
    client.close();
    let mut leaving = Vec::new();
    client.drain_transmit(&mut leaving);
    let leaving = frames(&leaving);
    line("goodbye_record", &leaving[0]);
    line("close_notify_record", &leaving[1]);

    // The same session with a client whose generation holds 2 records
    // (key_update.max_records = 2): the Finished (record 0) and the Ping
    // (record 1) fill generation 0, so before sealing the Goodbye it seals a
    // KeyUpdate (record 2, the last of generation 0, client_iv_2), switches
    // to generation 1 and seals the Goodbye there (record 3, client_iv_3).
    let mut limits = Limits::default();
    limits.key_update.max_records = 2;
    let Handshaken {
        mut client,
        mut server,
        first: first_again,
        ..
    } = handshake(limits);
    assert_eq!(
        first_again, first,
        "the limit changes nothing before it is reached"
    );
    client.send(&ClientMessage::Goodbye).unwrap();
    let mut updated = Vec::new();
    client.drain_transmit(&mut updated);
    let updated = frames(&updated);
    assert_eq!(updated.len(), 2, "a KeyUpdate record, then the Goodbye");
    let mut received = Vec::new();
    server.handle_input(&updated.concat()).unwrap();
    while let Some(event) = server.poll_event() {
        received.push(event);
    }
    // The server opens the KeyUpdate, switches, and reads the Goodbye.
    assert_eq!(
        received,
        [
            ServerEvent::Connected,
            ServerEvent::Message(first_message()),
            ServerEvent::Message(ClientMessage::Goodbye)
        ]
    );
    let secret_1 = next_traffic_secret(&secrets.client_traffic);
    let ck1 = TrafficKeys::from_traffic_secret(&secret_1);
    line("key_update_record", &updated[0]);
    line("client_traffic_secret_1", &secret_1[..]);
    line("client_enc_key_1", &ck1.enc[..]);
    line("client_mac_key_1", &ck1.mac[..]);
    line("goodbye_record_generation_1", &updated[1]);
    writeln!(
        out,
        "server_fingerprint = {}",
        identity.public_key().fingerprint()
    )
    .unwrap();
    opaque_vectors(&secrets.exporter, &mut out);
    out
}

/// The OPAQUE server key file of the vectors: OPRF seed (64 × 0x30), AKE
/// private key 7 (a little-endian scalar), and the ristretto255 base point
/// as the fake-record public key.
fn opaque_server_setup() -> Vec<u8> {
    let mut setup = vec![0x30; 64];
    let mut sk = [0u8; 32];
    sk[0] = 7;
    setup.extend_from_slice(&sk);
    setup.extend_from_slice(
        &hex::decode("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76").unwrap(),
    );
    setup
}

const OPAQUE_DRAWS: &[(&str, u8, usize)] = &[
    // ServerKeys::from_bytes: the decoy record's filler (never on the wire).
    ("server_decoy_filler", 0x3f, 160),
    // Registration, client: the blind (64 bytes, reduced mod l).
    ("blind_registration", 0x41, 64),
    ("envelope_nonce", 0x42, 32),
    // Login, client: blind, then the key share's seed, then the nonce.
    ("blind_login", 0x43, 64),
    ("client_keyshare_seed", 0x44, 32),
    ("client_nonce", 0x45, 32),
    // Login, server: a fake record's masking key (drawn on every login,
    // discarded for a known user), the masking nonce, the key share's seed
    // and the nonce.
    ("server_fake_masking_key", 0x46, 64),
    ("masking_nonce", 0x47, 32),
    ("server_keyshare_seed", 0x48, 32),
    ("server_nonce", 0x49, 32),
];

/// Registration and login of "alice" (password "correct horse battery
/// staple", Argon2id m=19456 KiB t=2 p=1) over the connection above: the
/// AKE context is "SecureChat OPAQUE v1 " || exporter.
fn opaque_vectors(exporter: &[u8; 32], out: &mut String) {
    use proto_core::message::{ServerMessage, Username};
    use proto_core::opaque::{
        ClientLoginState, ClientRegistrationState, PasswordRecord, ServerKeys, Stretch,
    };
    let mut line = |name: &str, bytes: &[u8]| {
        writeln!(out, "{name} = {}", hex::encode(bytes)).unwrap();
    };
    let mut rng = ScriptedRng::new(OPAQUE_DRAWS);
    let binding = ChannelBinding::from_bytes(*exporter);
    let password = b"correct horse battery staple";
    let username = Username::new("alice").unwrap();
    let stretch = Stretch::RECOMMENDED.argon2id().unwrap();
    let setup = opaque_server_setup();
    let server = ServerKeys::from_bytes(&setup, &mut rng).unwrap();
    line("opaque_server_key_file", &setup);
    for (name, byte, len) in OPAQUE_DRAWS {
        line(name, &vec![*byte; *len]);
    }
    let (client, request) = ClientRegistrationState::start(&mut rng, password).unwrap();
    line(
        "register_start",
        &ClientMessage::RegisterStart {
            username: username.clone(),
            request: Box::new(request),
        }
        .encode(),
    );
    let response = server.registration_response(&request, "alice").unwrap();
    line(
        "register_response",
        &ServerMessage::RegisterResponse {
            response: Box::new(response),
        }
        .encode(),
    );
    let (upload, export_key) = client
        .finish(&mut rng, password, &response, "alice", &stretch)
        .unwrap();
    line(
        "register_finish",
        &ClientMessage::RegisterFinish {
            upload: Box::new(upload),
        }
        .encode(),
    );
    line("export_key", export_key.expose());
    let record = PasswordRecord::from_upload(&upload).unwrap();
    let (client, request) = ClientLoginState::start(&mut rng, password).unwrap();
    line(
        "login_start",
        &ClientMessage::LoginStart {
            username,
            request: Box::new(request),
        }
        .encode(),
    );
    let (state, response) = server
        .login_start(&mut rng, Some(&record), &request, "alice", &binding)
        .unwrap();
    line(
        "login_response",
        &ServerMessage::LoginResponse {
            response: Box::new(response),
        }
        .encode(),
    );
    let (finalization, login_export_key) = client
        .finish(&mut rng, password, &response, "alice", &binding, &stretch)
        .unwrap();
    assert_eq!(login_export_key.expose(), export_key.expose());
    line(
        "login_finish",
        &ClientMessage::LoginFinish {
            finalization: Box::new(finalization),
        }
        .encode(),
    );
    state.finish(&finalization, "alice", &binding).unwrap();
    assert!(rng.0.is_empty(), "every scripted draw is used");
}

const RESUMED_CLIENT_DRAWS: &[(&str, u8, usize)] = &[
    ("resumed_client_random", 0x31, 32),
    ("resumed_client_x25519_scalar", 0x33, 32),
    ("resumed_client_mlkem_d", 0x34, 32),
    ("resumed_client_mlkem_z", 0x35, 32),
    ("resumed_client_iv_0 (Finished)", 0x36, 16),
    ("resumed_client_iv_1 (first message)", 0x37, 16),
];
const RESUMED_SERVER_DRAWS: &[(&str, u8, usize)] = &[
    ("resumed_server_random", 0x41, 32),
    ("resumed_server_x25519_scalar", 0x43, 32),
    ("resumed_server_mlkem_m", 0x44, 32),
    ("resumed_server_iv_0 (Finished)", 0x45, 16),
];
const RESUME_TOKEN: [u8; 32] = [0x30; 32];

/// The server's key table of the resumed vectors: one key, found by its id.
#[derive(Debug)]
struct OneStoredKey(ResumptionPsk);

impl PskStore for OneStoredKey {
    fn find(&self, id: &[u8; 32]) -> Option<ResumptionPsk> {
        (self.0.id() == *id).then(|| self.0.clone())
    }
}

/// A resumed handshake with the same server identity and scripted
/// randomness, and the client's first message; the key schedule recomputed
/// from the public flight, the scripted secrets and the token alone.
fn compute_resumed_vectors() -> String {
    let identity = Arc::new(ServerIdentity::from_seed(&[SERVER_IDENTITY_SEED; 32]));
    let token = proto_core::message::ResumeToken::from_bytes(RESUME_TOKEN);
    let mut config = ClientConfig::new(ServerTrust::Pinned(identity.public_key()));
    config.resume = Some(ResumptionPsk::from_token(&token));
    let client = ClientConnection::new(config, Box::new(ScriptedRng::new(RESUMED_CLIENT_DRAWS)));
    // The server stores SHA-256 of the token; computed here independently.
    let digest = ring::digest::digest(&ring::digest::SHA256, &RESUME_TOKEN);
    let psk: [u8; 32] = digest.as_ref().try_into().unwrap();
    let mut server_config = ServerConfig::new(identity.clone());
    server_config.psks = Some(Arc::new(OneStoredKey(ResumptionPsk::from_token_hash(psk))));
    let server = ServerConnection::new(
        server_config,
        Box::new(ScriptedRng::new(RESUMED_SERVER_DRAWS)),
    );
    let Handshaken {
        client,
        ch: rh,
        flight,
        cf,
        first,
        ..
    } = run_handshake(identity, client, server);
    let server_frames = frames(&flight);
    let (sh, server_finished) = (&server_frames[0], &server_frames[1]);

    // psk id = HKDF-Expand-Label(psk, "psk id", "", 32), by hand.
    let prk = ring::hkdf::Prk::new_less_safe(ring::hkdf::HKDF_SHA256, &psk);
    let label = b"schat1 psk id";
    let info: [&[u8]; 4] = [&[0, 32], &[label.len() as u8], label, &[0]];
    let mut psk_id = [0u8; 32];
    prk.expand(&info, ring::hkdf::HKDF_SHA256)
        .unwrap()
        .fill(&mut psk_id)
        .unwrap();
    assert_eq!(&rh[HEADER_LEN + 34..HEADER_LEN + 66], &psk_id);

    let mut rng = ScriptedRng::new(RESUMED_CLIENT_DRAWS);
    let mut skip = [0u8; 32];
    rng.fill_bytes(&mut skip);
    let shares = ClientShares::generate_resumed(&mut rng);
    let body = &sh[HEADER_LEN..];
    let ikm = shares
        .finish_resumed(
            &ResumptionPsk::from_token(&token),
            body[34..66].try_into().unwrap(),
            &body[66..66 + 1088],
        )
        .unwrap();
    assert_eq!(&ikm[..32], &psk, "the key comes first in the IKM");
    let mut t = Transcript::for_mode(proto_core::hello::HandshakeMode::Resumed);
    t.add(&rh);
    t.add(&sh[..sh.len() - SIGNATURE_BYTES]);
    let th_sig = t.current();
    let secrets = HandshakeSecrets::derive(&th_sig, &ikm);
    let ck = TrafficKeys::from_traffic_secret(&secrets.client_traffic);
    let sk = TrafficKeys::from_traffic_secret(&secrets.server_traffic);
    assert_eq!(
        client.channel_binding().unwrap().expose(),
        &secrets.exporter[..]
    );

    let mut out = String::new();
    let mut line = |name: &str, bytes: &[u8]| {
        writeln!(out, "{name} = {}", hex::encode(bytes)).unwrap();
    };
    line("resume_token", &RESUME_TOKEN);
    line("psk", &psk);
    line("psk_id", &psk_id);
    for (name, byte, len) in RESUMED_CLIENT_DRAWS.iter().chain(RESUMED_SERVER_DRAWS) {
        line(name.split(' ').next().unwrap(), &vec![*byte; *len]);
    }
    line("resume_hello_frame", &rh);
    line("resumed_server_hello_frame", sh);
    line("resumed_shared_x25519", &ikm[32..64]);
    line("resumed_shared_mlkem", &ikm[64..96]);
    line("resumed_th_sig", &th_sig);
    line(
        "resumed_client_traffic_secret_0",
        &secrets.client_traffic[..],
    );
    line(
        "resumed_server_traffic_secret_0",
        &secrets.server_traffic[..],
    );
    line("resumed_client_finished_key", &secrets.client_finished[..]);
    line("resumed_server_finished_key", &secrets.server_finished[..]);
    line("resumed_exporter", &secrets.exporter[..]);
    line("resumed_client_enc_key_0", &ck.enc[..]);
    line("resumed_client_mac_key_0", &ck.mac[..]);
    line("resumed_server_enc_key_0", &sk.enc[..]);
    line("resumed_server_mac_key_0", &sk.mac[..]);
    line("resumed_server_finished_record", server_finished);
    line("resumed_client_finished_record", &cf);
    line("resumed_first_message_record", &first);
    out
}

const VECTORS_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/handshake-v2.txt"
);
const RESUMED_VECTORS_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/handshake-v2-resumed.txt"
);
const PROTOCOL_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");

#[test]
fn handshake_reproduces_the_published_vectors() {
    let computed = compute_vectors();
    if std::env::var_os("SCHAT_WRITE_VECTORS").is_some() {
        std::fs::write(VECTORS_PATH, &computed).unwrap();
    }
    let published = std::fs::read_to_string(VECTORS_PATH).expect("vectors file");
    for (want, got) in published.lines().zip(computed.lines()) {
        assert_eq!(want, got);
    }
    assert_eq!(published.lines().count(), computed.lines().count());
}

#[test]
fn a_resumed_handshake_reproduces_the_published_vectors() {
    let computed = compute_resumed_vectors();
    if std::env::var_os("SCHAT_WRITE_VECTORS").is_some() {
        std::fs::write(RESUMED_VECTORS_PATH, &computed).unwrap();
    }
    let published = std::fs::read_to_string(RESUMED_VECTORS_PATH).expect("vectors file");
    for (want, got) in published.lines().zip(computed.lines()) {
        assert_eq!(want, got);
    }
    assert_eq!(published.lines().count(), computed.lines().count());
}

#[test]
fn protocol_spec_carries_every_vector() {
    let spec = std::fs::read_to_string(PROTOCOL_MD).expect("docs/PROTOCOL.md");
    let spec: String = spec.split_whitespace().collect();
    let full = std::fs::read_to_string(VECTORS_PATH).unwrap();
    let resumed = std::fs::read_to_string(RESUMED_VECTORS_PATH).unwrap();
    for line in full.lines().chain(resumed.lines()) {
        let (name, value) = line.split_once(" = ").unwrap();
        assert!(
            spec.contains(value),
            "docs/PROTOCOL.md lacks the vector {name}"
        );
    }
}
