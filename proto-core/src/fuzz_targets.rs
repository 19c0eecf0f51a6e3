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
    ClientConfig, ClientConnection, ServerConfig, ServerConnection, ServerIdentity, ServerTrust,
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

/// The server state machine fed arbitrary bytes, in chunks whose sizes the
/// first byte chooses.
pub fn server_state(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut server = ServerConnection::new(ServerConfig::new(identity()), rng(1));
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
