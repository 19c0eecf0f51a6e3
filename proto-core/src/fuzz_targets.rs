//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the stable
//! corpus-replay test (`tests/fuzz_corpus.rs`), so CI on any toolchain runs
//! the fuzzers' code over the committed corpus. Each must never panic.

use std::sync::{Arc, OnceLock};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroizing;

use crate::frame::{decode_header, Decoded, MAX_FRAME_BODY};
use crate::message::{ClientMessage, ServerMessage};
use crate::record::{ContentType, RecordOpener, RecordSealer};
use crate::{
    ClientConfig, ClientConnection, ClientEvent, ServerConfig, ServerConnection, ServerEvent,
    ServerIdentity, ServerTrust,
};

fn rng(seed: u64) -> Box<ChaCha20Rng> {
    Box::new(ChaCha20Rng::seed_from_u64(seed))
}

fn identity() -> Arc<ServerIdentity> {
    static ID: OnceLock<Arc<ServerIdentity>> = OnceLock::new();
    ID.get_or_init(|| Arc::new(ServerIdentity::from_seed(&[0x42; 32])))
        .clone()
}

/// Record decoder. First byte 0: the rest is sealed with a fixed key and
/// must open to itself (reaches past the MAC). Otherwise the bytes are
/// parsed as frames and opened, which must fail cleanly or succeed.
pub fn record_decoder(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let secret = Zeroizing::new([7u8; 32]);
    let mut opener = RecordOpener::new(secret.clone());
    if mode == 0 {
        let mut sealer = RecordSealer::new(secret);
        let mut wire = Vec::new();
        if rest.len() + 64 > MAX_FRAME_BODY as usize {
            return;
        }
        sealer
            .seal(ContentType::Application, rest, [3; 16], &mut wire)
            .expect("sealing a bounded payload");
        let (ct, payload) = opener.open(&wire, u64::MAX).expect("own record opens");
        assert_eq!(ct, ContentType::Application);
        assert_eq!(payload, rest);
        return;
    }
    let mut bytes = rest;
    while let Ok(Decoded::Frame { consumed, .. }) = decode_header(bytes, MAX_FRAME_BODY) {
        let _ = opener.open(&bytes[..consumed], 1 << 20);
        bytes = &bytes[consumed..];
    }
}

/// Message decoder: decode both directions; what decodes must re-encode to
/// the same bytes.
pub fn message_decoder(data: &[u8]) {
    if let Ok(m) = ClientMessage::decode(data) {
        assert_eq!(m.encode(), data, "client message round trip");
    }
    if let Ok(m) = ServerMessage::decode(data) {
        assert_eq!(m.encode(), data, "server message round trip");
    }
}

/// A key store that answers every id with the same key, so the fuzzer
/// reaches a resumed handshake's key exchange without guessing an id.
#[derive(Debug)]
struct AnyId;

impl crate::PskStore for AnyId {
    fn find(&self, _id: &[u8; 32]) -> Option<crate::ResumptionPsk> {
        Some(crate::ResumptionPsk::from_token_hash([0x24; 32]))
    }
}

/// The server state machine fed arbitrary bytes, in chunks whose sizes the
/// first byte chooses (a ResumeHello's key is always found: see [`AnyId`]).
pub fn server_state(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let config = ServerConfig {
        psks: Some(Arc::new(AnyId)),
        ..ServerConfig::new(identity())
    };
    let mut server = ServerConnection::new(config, rng(1));
    for piece in rest.chunks(chunk) {
        if server.handle_input(piece).is_err() {
            break;
        }
        while server.poll_event().is_some() {}
    }
    let mut out = Vec::new();
    server.drain_transmit(&mut out);
    let _ = server.handle_eof();
}

/// The client state machine fed arbitrary bytes after a valid ServerHello
/// and Finished (an established, pinned session).
pub fn client_state(data: &[u8]) {
    static FLIGHT: OnceLock<Vec<u8>> = OnceLock::new();
    let flight = FLIGHT.get_or_init(|| {
        let mut c = new_client();
        let mut hello = Vec::new();
        c.drain_transmit(&mut hello);
        let mut s = ServerConnection::new(ServerConfig::new(identity()), rng(2));
        s.handle_input(&hello).expect("valid hello");
        let mut flight = Vec::new();
        s.drain_transmit(&mut flight);
        flight
    });
    let mut client = new_client();
    client.handle_input(flight).expect("valid flight");
    for piece in data.chunks(97) {
        if client.handle_input(piece).is_err() {
            break;
        }
        while client.poll_event().is_some() {}
    }
    let _ = client.handle_eof();
}

fn new_client() -> ClientConnection {
    ClientConnection::new(
        ClientConfig::new(ServerTrust::Pinned(identity().public_key())),
        rng(3),
    )
}

/// The server's established path, after a real handshake: the input is a
/// list of steps `kind: u8 || len: u16 BE || bytes[len]` (a short last step
/// takes what is left). Kind 0 feeds `bytes` to the server as they are; 1-4
/// seal them as the client would, as application data, a key update, an
/// alert or a Finished, so the fuzzer reaches past the MAC into message
/// decoding and the control records. An empty key update ratchets the
/// sealer, as a client's does.
pub fn server_established(data: &[u8]) {
    server_established_events(data);
}

/// [`server_established`], returning the server's events after `Connected`.
fn server_established_events(data: &[u8]) -> Vec<ServerEvent> {
    struct Handshake {
        hello: Vec<u8>,
        finished: Vec<u8>,
        sealer: RecordSealer,
    }
    static HANDSHAKE: OnceLock<Handshake> = OnceLock::new();
    let hs = HANDSHAKE.get_or_init(|| {
        let mut client = new_client();
        let mut hello = Vec::new();
        client.drain_transmit(&mut hello);
        let mut server = new_server();
        server.handle_input(&hello).expect("valid hello");
        let mut flight = Vec::new();
        server.drain_transmit(&mut flight);
        client.handle_input(&flight).expect("valid flight");
        assert!(matches!(
            client.poll_event(),
            Some(ClientEvent::Connected { .. })
        ));
        let mut finished = Vec::new();
        client.drain_transmit(&mut finished);
        let sealer = client
            .take_sealer()
            .expect("an established client has keys");
        Handshake {
            hello,
            finished,
            sealer,
        }
    });
    // The server's randomness is seeded, so it answers the cached hello
    // exactly as before and the cached Finished verifies.
    let mut server = new_server();
    server.handle_input(&hs.hello).expect("valid hello");
    server.handle_input(&hs.finished).expect("valid Finished");
    assert_eq!(server.poll_event(), Some(ServerEvent::Connected));
    let mut sealer = hs.sealer.clone();
    let mut events = Vec::new();
    let mut rest = data;
    let mut wire = Vec::new();
    while let Some((&kind, after)) = rest.split_first() {
        let len = match after {
            [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => after.len(),
        };
        let after = after.get(2..).unwrap_or(&[]);
        let (bytes, next) = after.split_at(len.min(after.len()));
        rest = next;
        wire.clear();
        let ct = match kind % 5 {
            0 => None,
            1 => Some(ContentType::Application),
            2 => Some(ContentType::KeyUpdate),
            3 => Some(ContentType::Alert),
            _ => Some(ContentType::Finished),
        };
        match ct {
            None => wire.extend_from_slice(bytes),
            Some(ct) => {
                if bytes.len() + 64 > MAX_FRAME_BODY as usize {
                    break;
                }
                sealer
                    .seal(ct, bytes, [5; 16], &mut wire)
                    .expect("sealing a bounded payload");
                if ct == ContentType::KeyUpdate && bytes.is_empty() {
                    sealer.ratchet();
                }
            }
        }
        if server.handle_input(&wire).is_err() {
            break;
        }
        events.extend(std::iter::from_fn(|| server.poll_event()));
    }
    let mut out = Vec::new();
    server.drain_transmit(&mut out);
    let _ = server.handle_eof();
    events
}

fn new_server() -> ServerConnection {
    ServerConnection::new(ServerConfig::new(identity()), rng(2))
}

/// The server's half of OPAQUE fed arbitrary client messages (malformed
/// points, wrong lengths, proofs that do not verify): the input is decoded
/// as a client message, and each OPAQUE one goes where the server would
/// send it — the registration response, the record check, a login start
/// for a known and an unknown user and the finish of that login, a real
/// login's finish against the input's proof. An input starting with 0xFF
/// is tried as a stored OPAQUE key file instead. Nothing may panic, and a
/// made-up proof must never verify.
pub fn opaque_server(data: &[u8]) {
    use crate::opaque::{
        ClientLoginState, ClientRegistrationState, Identity, PasswordRecord, ServerKeys,
        CREDENTIAL_FINALIZATION_LEN, CREDENTIAL_REQUEST_LEN,
    };
    use crate::ChannelBinding;

    struct Fixture {
        keys: ServerKeys,
        record: PasswordRecord,
        request: [u8; CREDENTIAL_REQUEST_LEN],
    }
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    let user = "alice";
    let binding = ChannelBinding::from_bytes([9; 32]);
    let fx = FIXTURE.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let keys = ServerKeys::generate(&mut rng);
        let (client, request) =
            ClientRegistrationState::<Identity>::start(&mut rng, b"password").expect("blind");
        let response = keys.registration_response(&request, user).expect("valid");
        let (upload, _) = client
            .finish(&mut rng, b"password", &response, user, &Identity)
            .expect("register");
        let record = PasswordRecord::from_upload(&upload).expect("valid upload");
        let (_, request) =
            ClientLoginState::<Identity>::start(&mut rng, b"password").expect("blind");
        Fixture {
            keys,
            record,
            request,
        }
    });
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    if let Some(key_file) = data.strip_prefix(&[0xFF]) {
        let _ = ServerKeys::from_bytes(key_file, &mut rng);
        return;
    }
    let Ok(msg) = ClientMessage::decode(data) else {
        return;
    };
    let login = |request: &[u8; CREDENTIAL_REQUEST_LEN], name: &str, rng: &mut ChaCha20Rng| {
        for record in [Some(&fx.record), None] {
            if let Ok((state, _)) = fx.keys.login_start(rng, record, request, name, &binding) {
                assert!(state
                    .finish(&[0; CREDENTIAL_FINALIZATION_LEN], name, &binding)
                    .is_err());
            }
        }
    };
    let finish = |finalization: &[u8; CREDENTIAL_FINALIZATION_LEN], rng: &mut ChaCha20Rng| {
        let (state, _) = fx
            .keys
            .login_start(rng, Some(&fx.record), &fx.request, user, &binding)
            .expect("a valid request");
        assert!(
            state.finish(finalization, user, &binding).is_err(),
            "a made-up proof verified"
        );
    };
    match msg {
        ClientMessage::RegisterStart { username, request } => {
            let _ = fx
                .keys
                .registration_response(&request, &username.canonical());
        }
        ClientMessage::RegisterFinish { upload } => {
            let _ = PasswordRecord::from_upload(&upload);
        }
        ClientMessage::LoginStart { username, request } => {
            login(&request, &username.canonical(), &mut rng);
        }
        ClientMessage::LoginFinish { finalization } => finish(&finalization, &mut rng),
        ClientMessage::ChangePasswordStart {
            request,
            registration_request,
        } => {
            login(&request, user, &mut rng);
            let _ = fx.keys.registration_response(&registration_request, user);
        }
        ClientMessage::ChangePasswordFinish {
            finalization,
            upload,
        } => {
            finish(&finalization, &mut rng);
            let _ = PasswordRecord::from_upload(&upload);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: u8, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn sealed_steps_reach_the_established_servers_message_decoding() {
        let ping = ClientMessage::Ping { nonce: 7 }.encode();
        let input = [step(1, &ping), step(2, &[]), step(1, &ping), step(3, &[0])].concat();
        assert_eq!(
            server_established_events(&input),
            vec![
                ServerEvent::Message(ClientMessage::Ping { nonce: 7 }),
                ServerEvent::Message(ClientMessage::Ping { nonce: 7 }),
                ServerEvent::Closed,
            ],
            "a key update and close_notify pass the MAC too"
        );
    }

    #[test]
    fn raw_steps_reach_the_server_unsealed_and_fail_its_mac_check() {
        let mut record = vec![0x17, 0, 0, 0, 50];
        record.resize(55, 0xab);
        let ping = ClientMessage::Ping { nonce: 1 }.encode();
        let input = [step(0, &record), step(1, &ping)].concat();
        assert_eq!(server_established_events(&input), vec![]);
    }
}
