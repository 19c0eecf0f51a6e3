//! State-machine tests: a client and a server driven in memory, with
//! messages tampered, dropped, replayed or reflected in flight.

use std::sync::Arc;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::error::{AlertCode, Error, HandshakeError, PeerMisbehaved};
use crate::frame::{decode_header, Decoded, HEADER_LEN, MAX_FRAME_BODY};
use crate::hello::{ServerHello, CLIENT_HELLO_BODY, SERVER_HELLO_BODY};
use crate::message::{ClientMessage, ServerMessage};
use crate::record::{ContentType, KeyUpdatePolicy, RecordSealer};
use crate::*;

fn rng(seed: u64) -> Box<ChaCha20Rng> {
    Box::new(ChaCha20Rng::seed_from_u64(seed))
}

fn identity(seed: u8) -> Arc<ServerIdentity> {
    Arc::new(ServerIdentity::from_seed(&[seed; 32]))
}

fn take(out: &mut impl FnMut(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    out(&mut v);
    v
}

fn client_out(c: &mut ClientConnection) -> Vec<u8> {
    take(&mut |v| c.drain_transmit(v))
}
fn server_out(s: &mut ServerConnection) -> Vec<u8> {
    take(&mut |v| s.drain_transmit(v))
}

/// Splits a byte stream into whole frames.
fn frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match decode_header(bytes, MAX_FRAME_BODY).unwrap() {
            Decoded::Frame { consumed, .. } => {
                out.push(bytes[..consumed].to_vec());
                bytes = &bytes[consumed..];
            }
            Decoded::Incomplete { .. } => panic!("partial frame"),
        }
    }
    out
}

struct Pair {
    client: ClientConnection,
    server: ServerConnection,
}

impl Pair {
    fn new(trust: ServerTrust, server_id: Arc<ServerIdentity>) -> Self {
        Self::with_limits(trust, server_id, Limits::default())
    }

    fn with_limits(trust: ServerTrust, server_id: Arc<ServerIdentity>, limits: Limits) -> Self {
        let client = ClientConnection::new(
            ClientConfig {
                trust,
                limits,
                resume: None,
            },
            rng(1),
        );
        let server = ServerConnection::new(
            ServerConfig {
                identity: server_id,
                limits,
                psks: None,
            },
            rng(2),
        );
        Self { client, server }
    }

    /// A pinned pair driven to Connected on both sides.
    fn connected() -> Self {
        let id = identity(7);
        let mut p = Pair::new(ServerTrust::Pinned(id.public_key()), id);
        p.drive();
        assert_eq!(
            p.client.poll_event(),
            Some(ClientEvent::Connected {
                server_key: identity(7).public_key()
            })
        );
        assert_eq!(p.server.poll_event(), Some(ServerEvent::Connected));
        p
    }

    /// Moves bytes both ways until nothing is left to send.
    fn drive(&mut self) {
        loop {
            let c = client_out(&mut self.client);
            let s = server_out(&mut self.server);
            if c.is_empty() && s.is_empty() {
                return;
            }
            if !c.is_empty() {
                self.server.handle_input(&c).unwrap();
            }
            if !s.is_empty() {
                self.client.handle_input(&s).unwrap();
            }
        }
    }
}

fn client_events(c: &mut ClientConnection) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}
fn server_events(s: &mut ServerConnection) -> Vec<ServerEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn first_use_asks_then_connects_and_messages_flow_both_ways() {
    let id = identity(7);
    let mut p = Pair::new(ServerTrust::FirstUse, id.clone());
    p.drive();
    assert_eq!(
        client_events(&mut p.client),
        vec![ClientEvent::ServerKeyUnknown(id.public_key())]
    );
    assert!(!p.client.is_established());
    assert!(
        p.client.send(&ClientMessage::Goodbye).is_err(),
        "sent before trust"
    );
    assert!(server_events(&mut p.server).is_empty());
    p.client.accept_server_key().unwrap();
    p.drive();
    assert_eq!(
        client_events(&mut p.client),
        vec![ClientEvent::Connected {
            server_key: id.public_key()
        }]
    );
    assert_eq!(server_events(&mut p.server), vec![ServerEvent::Connected]);

    p.client.send(&ClientMessage::Ping { nonce: 42 }).unwrap();
    p.server.send(&ServerMessage::Ping { nonce: 43 }).unwrap();
    p.drive();
    assert_eq!(
        server_events(&mut p.server),
        vec![ServerEvent::Message(ClientMessage::Ping { nonce: 42 })]
    );
    assert_eq!(
        client_events(&mut p.client),
        vec![ClientEvent::Message(ServerMessage::Ping { nonce: 43 })]
    );
}

#[test]
fn pinned_key_connects_without_asking() {
    let mut p = Pair::connected();
    assert!(p.client.is_established() && p.server.is_established());
    p.client.send(&ClientMessage::Goodbye).unwrap();
    p.drive();
    assert_eq!(
        server_events(&mut p.server),
        vec![ServerEvent::Message(ClientMessage::Goodbye)]
    );
}

#[test]
fn matching_fingerprint_connects_without_asking() {
    let id = identity(7);
    let mut p = Pair::new(ServerTrust::Fingerprint(id.public_key().fingerprint()), id);
    p.drive();
    assert!(p.client.is_established());
}

#[test]
fn changed_server_key_is_refused_before_the_client_sends_anything() {
    let pinned = identity(1).public_key();
    let mut p = Pair::new(ServerTrust::Pinned(pinned), identity(2));
    let hello = client_out(&mut p.client);
    p.server.handle_input(&hello).unwrap();
    let reply = server_out(&mut p.server);
    let err = p.client.handle_input(&reply).unwrap_err();
    assert_eq!(
        err,
        Error::ServerKeyChanged {
            expected: pinned.fingerprint(),
            presented: identity(2).public_key().fingerprint(),
        }
    );
    assert!(err.to_string().contains("CHANGED"));
    // The client sends only a plaintext handshake_failure alert: no record,
    // so no Finished and no credential.
    let out = client_out(&mut p.client);
    assert_eq!(
        out,
        vec![
            0x15,
            0,
            0,
            0,
            3,
            AlertCode::HandshakeFailure.to_byte(),
            0,
            2
        ]
    );
    assert!(p.client.send(&ClientMessage::Goodbye).is_err());
}

#[test]
fn wrong_fingerprint_is_refused() {
    let mut p = Pair::new(
        ServerTrust::Fingerprint(identity(9).public_key().fingerprint()),
        identity(2),
    );
    let hello = client_out(&mut p.client);
    p.server.handle_input(&hello).unwrap();
    let reply = server_out(&mut p.server);
    assert!(matches!(
        p.client.handle_input(&reply),
        Err(Error::ServerKeyChanged { .. })
    ));
}

#[test]
fn rejected_first_use_key_fails_and_tells_the_server() {
    let mut p = Pair::new(ServerTrust::FirstUse, identity(3));
    p.drive();
    let _ = client_events(&mut p.client);
    assert!(matches!(
        p.client.reject_server_key(),
        Error::ServerKeyRejected(_)
    ));
    let alert = client_out(&mut p.client);
    assert_eq!(
        p.server.handle_input(&alert),
        Err(Error::AlertReceived(AlertCode::HandshakeFailure))
    );
}

/// Runs the handshake up to the ServerHello and lets `alter` change the
/// server's flight (ServerHello frame + Finished record) before delivery.
fn server_flight_altered(alter: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
    let id = identity(7);
    let mut p = Pair::new(ServerTrust::Pinned(id.public_key()), id);
    let hello = client_out(&mut p.client);
    p.server.handle_input(&hello).unwrap();
    let mut flight = server_out(&mut p.server);
    alter(&mut flight);
    p.client.handle_input(&flight)
}

#[test]
fn every_bit_of_the_server_hello_is_authenticated() {
    // Sample bits across every field: version, random, ffdhe, X25519,
    // ML-KEM ciphertext, identity key, signature.
    let sh_len = HEADER_LEN + SERVER_HELLO_BODY;
    for byte in (HEADER_LEN..sh_len)
        .step_by(37)
        .chain([HEADER_LEN + 1, sh_len - 1])
    {
        let r = server_flight_altered(|f| f[byte] ^= 0x01);
        assert!(r.is_err(), "flip at byte {byte} accepted");
    }
}

#[test]
fn bad_signature_is_rejected() {
    let sh_len = HEADER_LEN + SERVER_HELLO_BODY;
    let r = server_flight_altered(|f| f[sh_len - 10] ^= 0x80);
    assert_eq!(r, Err(HandshakeError::BadSignature.into()));
}

#[test]
fn altered_algorithm_bytes_fail_the_signature_no_downgrade() {
    // Byte 7 is inside the server's random; byte 40 inside its ffdhe value.
    for byte in [
        HEADER_LEN + 7,
        HEADER_LEN + 40,
        HEADER_LEN + 2 + 32 + 384 + 5,
    ] {
        let r = server_flight_altered(|f| f[byte] ^= 0x10);
        assert_eq!(r, Err(HandshakeError::BadSignature.into()));
    }
}

#[test]
fn identity_key_swapped_in_transit_fails_the_signature() {
    let sh_len = HEADER_LEN + SERVER_HELLO_BODY;
    let other = identity(8).public_key();
    let r = server_flight_altered(|f| f[sh_len - 96..sh_len - 64].copy_from_slice(&other.0));
    // Pinned to identity(7): a swapped-in key is either a bad signature or
    // a changed key; either way the handshake ends.
    assert!(matches!(
        r,
        Err(Error::Handshake(HandshakeError::BadSignature) | Error::ServerKeyChanged { .. })
    ));
}

#[test]
fn signature_from_another_session_is_rejected() {
    // Session A's ServerHello delivered to session B's client (N8): the
    // client's fresh ephemerals are in the signed transcript.
    let id = identity(7);
    let mut a = Pair::new(ServerTrust::Pinned(id.public_key()), id.clone());
    let hello = client_out(&mut a.client);
    a.server.handle_input(&hello).unwrap();
    let flight_a = server_out(&mut a.server);

    let mut b_client = ClientConnection::new(
        ClientConfig::new(ServerTrust::Pinned(id.public_key())),
        rng(99),
    );
    let _ = client_out(&mut b_client);
    assert_eq!(
        b_client.handle_input(&flight_a),
        Err(HandshakeError::BadSignature.into())
    );
}

#[test]
fn replayed_client_handshake_does_not_establish_a_session() {
    // Record a client's whole first flight, then replay it to a new server.
    let id = identity(7);
    let mut client = ClientConnection::new(
        ClientConfig::new(ServerTrust::Pinned(id.public_key())),
        rng(5),
    );
    let mut server1 = ServerConnection::new(ServerConfig::new(id.clone()), rng(6));
    let hello = client_out(&mut client);
    server1.handle_input(&hello).unwrap();
    client.handle_input(&server_out(&mut server1)).unwrap();
    let finished = client_out(&mut client);
    server1.handle_input(&finished).unwrap();
    assert!(server1.is_established());

    let mut server2 = ServerConnection::new(ServerConfig::new(id), rng(7));
    server2.handle_input(&hello).unwrap();
    let _ = server_out(&mut server2);
    let r = server2.handle_input(&finished);
    assert!(
        matches!(
            r,
            Err(Error::PeerMisbehaved(PeerMisbehaved::BadRecordMac))
                | Err(Error::Handshake(HandshakeError::BadFinished))
        ),
        "{r:?}"
    );
    assert!(!server2.is_established());
}

#[test]
fn wrong_version_gets_a_clear_error_on_both_sides() {
    let mut client = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(1));
    let mut hello = client_out(&mut client);
    // A version-1 client (before rooms) meets this version-2 server.
    hello[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&1u16.to_be_bytes());
    let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
    assert_eq!(
        server.handle_input(&hello),
        Err(Error::VersionMismatch { ours: 2, peer: 1 })
    );
    // The server answers with a plaintext protocol_version alert naming its version.
    let alert = server_out(&mut server);
    assert_eq!(alert, vec![0x15, 0, 0, 0, 3, 1, 0, 2]);
    // A version-2 client that receives it sent version 2, so its hello was
    // altered on the way: it says so, not "peer speaks version 2, we speak 2".
    let mut other = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(3));
    let _ = client_out(&mut other);
    let err = other.handle_input(&alert).unwrap_err();
    assert_eq!(err, Error::VersionAltered { version: 2 });
    assert!(err.to_string().contains("altered in transit"), "{err}");
    assert!(
        client_out(&mut other).is_empty(),
        "no alert answers an alert"
    );
    // From a server of another version, the alert names that version.
    let mut other = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(3));
    let _ = client_out(&mut other);
    assert_eq!(
        other.handle_input(&[0x15, 0, 0, 0, 3, 1, 0, 1]),
        Err(Error::VersionMismatch { ours: 2, peer: 1 })
    );
    // A version-3 hello of a different length is still reported as a version problem.
    let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
    assert_eq!(
        server.handle_input(&[0x01, 0, 0, 0, 3, 0, 3, 0xaa]),
        Err(Error::VersionMismatch { ours: 2, peer: 3 })
    );
}

#[test]
fn invalid_ffdhe_values_in_client_hello_abort_the_handshake() {
    use crate::ffdhe::P_BYTES;
    let p = num_bigint::BigUint::from_bytes_be(&P_BYTES);
    let vals = [
        num_bigint::BigUint::from(0u32),
        num_bigint::BigUint::from(1u32),
        &p - 1u32,
        p.clone(),
        &p + 5u32,
    ];
    for v in vals {
        let mut client = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(1));
        let mut hello = client_out(&mut client);
        let enc = v.to_bytes_be();
        let field = &mut hello[HEADER_LEN + 34..HEADER_LEN + 34 + 384];
        field.fill(0);
        if enc.len() <= 384 {
            field[384 - enc.len()..].copy_from_slice(&enc);
        } else {
            field.fill(0xff);
        }
        let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
        assert_eq!(
            server.handle_input(&hello),
            Err(HandshakeError::InvalidFfdhePublic.into()),
            "value {v}"
        );
    }
}

#[test]
fn client_hello_of_the_wrong_length_is_rejected() {
    let mut client = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(1));
    let hello = client_out(&mut client);
    for delta in [-1i64, 1] {
        let body_len = (CLIENT_HELLO_BODY as i64 + delta) as usize;
        let mut h = vec![0x01];
        h.extend_from_slice(&(body_len as u32).to_be_bytes());
        let mut body = hello[HEADER_LEN..].to_vec();
        body.resize(body_len, 0);
        h.extend_from_slice(&body);
        let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
        assert_eq!(
            server.handle_input(&h),
            Err(HandshakeError::MalformedHello.into())
        );
    }
}

#[test]
fn low_order_x25519_share_aborts_the_handshake() {
    let mut client = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(1));
    let mut hello = client_out(&mut client);
    let off = HEADER_LEN + 2 + 32 + 384;
    hello[off..off + 32].fill(0);
    let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
    assert_eq!(
        server.handle_input(&hello),
        Err(HandshakeError::InvalidX25519Public.into())
    );
}

#[test]
fn malformed_mlkem_key_aborts_the_handshake() {
    let mut client = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(1));
    let mut hello = client_out(&mut client);
    let off = HEADER_LEN + 2 + 32 + 384 + 32;
    hello[off] = 0xff;
    hello[off + 1] = 0xff;
    let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
    assert_eq!(
        server.handle_input(&hello),
        Err(HandshakeError::InvalidMlKemKey.into())
    );
}

#[test]
fn tampered_server_finished_is_rejected() {
    let sh_len = HEADER_LEN + SERVER_HELLO_BODY;
    let r = server_flight_altered(|f| f[sh_len + HEADER_LEN + 20] ^= 1);
    assert_eq!(r, Err(PeerMisbehaved::BadRecordMac.into()));
}

fn one_record_from_server(p: &mut Pair, msg: &ServerMessage) -> Vec<u8> {
    p.server.send(msg).unwrap();
    server_out(&mut p.server)
}

#[test]
fn flipped_bit_in_any_record_field_ends_the_session_and_delivers_nothing() {
    let base = Pair::connected;
    let fields = [
        ("header type", 0usize),
        ("header length", 4),
        ("iv", HEADER_LEN + 3),
        ("ciphertext", HEADER_LEN + 16 + 2),
        ("tag", usize::MAX),
    ];
    for (name, off) in fields {
        let mut p = base();
        let mut rec = one_record_from_server(&mut p, &ServerMessage::Ping { nonce: 1 });
        let off = if off == usize::MAX {
            rec.len() - 1
        } else {
            off
        };
        rec[off] ^= 0x04;
        let r = p.client.handle_input(&rec);
        // A flipped header is either an unknown type, a length that leaves
        // the frame incomplete, or a MAC failure; never a delivery.
        let incomplete = r.is_ok();
        assert!(client_events(&mut p.client).is_empty(), "{name}: delivered");
        if incomplete {
            // The peer cannot complete the frame without failing the MAC.
            rec.resize(rec.len() + 64, 0);
            let r = p.client.handle_input(&rec[rec.len() - 64..]);
            assert!(
                r.is_err() || client_events(&mut p.client).is_empty(),
                "{name}"
            );
            assert!(
                p.client.handle_eof().is_err(),
                "{name}: truncated frame not an error"
            );
        } else {
            assert!(
                p.client.send(&ClientMessage::Goodbye).is_err(),
                "{name}: still open"
            );
        }
    }
}

#[test]
fn replayed_record_is_rejected() {
    let mut p = Pair::connected();
    let rec = one_record_from_server(&mut p, &ServerMessage::Ping { nonce: 1 });
    p.client.handle_input(&rec).unwrap();
    assert_eq!(client_events(&mut p.client).len(), 1);
    assert_eq!(
        p.client.handle_input(&rec),
        Err(PeerMisbehaved::BadRecordMac.into())
    );
    assert!(client_events(&mut p.client).is_empty());
}

#[test]
fn reordered_records_are_rejected() {
    let mut p = Pair::connected();
    let a = one_record_from_server(&mut p, &ServerMessage::Ping { nonce: 1 });
    let b = one_record_from_server(&mut p, &ServerMessage::Ping { nonce: 2 });
    assert_eq!(
        p.client.handle_input(&b),
        Err(PeerMisbehaved::BadRecordMac.into())
    );
    assert!(p.client.handle_input(&a).is_err(), "sticky error");
}

#[test]
fn dropped_record_is_detected_at_the_next_one() {
    let mut p = Pair::connected();
    let _dropped = one_record_from_server(&mut p, &ServerMessage::Ping { nonce: 1 });
    let next = one_record_from_server(&mut p, &ServerMessage::Ping { nonce: 2 });
    assert_eq!(
        p.client.handle_input(&next),
        Err(PeerMisbehaved::BadRecordMac.into())
    );
}

#[test]
fn truncated_session_is_reported_as_dropped_not_clean() {
    let mut p = Pair::connected();
    let rec = one_record_from_server(&mut p, &ServerMessage::Ping { nonce: 1 });
    // Half a record, then EOF.
    p.client.handle_input(&rec[..rec.len() / 2]).unwrap();
    assert_eq!(p.client.handle_eof(), Err(Error::UnexpectedEof));
    // Whole records but no close_notify, then EOF.
    let mut p = Pair::connected();
    assert_eq!(p.server.handle_eof(), Err(Error::UnexpectedEof));
}

#[test]
fn close_notify_then_eof_is_a_clean_end() {
    let mut p = Pair::connected();
    p.client.send(&ClientMessage::Goodbye).unwrap();
    p.client.close();
    p.drive();
    assert_eq!(
        server_events(&mut p.server),
        vec![
            ServerEvent::Message(ClientMessage::Goodbye),
            ServerEvent::Closed
        ]
    );
    assert_eq!(p.server.handle_eof(), Ok(()));
    assert!(p.client.send(&ClientMessage::Goodbye).is_err());
}

#[test]
fn oversized_length_is_rejected_before_buffering() {
    let mut p = Pair::connected();
    let r = p.server.handle_input(&[0x17, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        r,
        Err(PeerMisbehaved::FrameTooLarge {
            len: u32::MAX,
            max: MAX_FRAME_BODY
        }
        .into())
    );
    // A configured lower limit applies too.
    let id = identity(7);
    let limits = Limits {
        max_frame_body: 4096,
        ..Limits::default()
    };
    let mut p = Pair::with_limits(ServerTrust::Pinned(id.public_key()), id, limits);
    p.drive();
    let r = p.server.handle_input(&[0x17, 0, 0, 0x10, 0x01]);
    assert!(matches!(
        r,
        Err(Error::PeerMisbehaved(PeerMisbehaved::FrameTooLarge {
            len: 4097,
            max: 4096
        }))
    ));
}

#[test]
fn reflected_records_are_rejected() {
    let mut p = Pair::connected();
    p.client.send(&ClientMessage::Ping { nonce: 1 }).unwrap();
    let own = client_out(&mut p.client);
    assert_eq!(
        p.client.handle_input(&own),
        Err(PeerMisbehaved::BadRecordMac.into())
    );
}

#[test]
fn reflected_client_hello_is_rejected() {
    let mut client = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(1));
    let hello = client_out(&mut client);
    assert_eq!(
        client.handle_input(&hello),
        Err(PeerMisbehaved::UnexpectedFrame { got: 0x01 }.into())
    );
}

#[test]
fn application_data_before_finished_is_rejected() {
    let id = identity(7);
    let mut p = Pair::new(ServerTrust::Pinned(id.public_key()), id.clone());
    let hello = client_out(&mut p.client);
    p.server.handle_input(&hello).unwrap();
    let flight = server_out(&mut p.server);
    // A client that skips its Finished and sends a seq-0 Application record
    // under the right keys (recomputed from the same seeds).
    p.client.handle_input(&flight).unwrap();
    let _ = client_out(&mut p.client); // drop its Finished
    let secret = p.client_traffic_secret_for_test();
    let mut sealer = RecordSealer::new(secret);
    let mut forged = Vec::new();
    sealer
        .seal(
            ContentType::Application,
            &ClientMessage::Goodbye.encode(),
            [0u8; 16],
            &mut forged,
        )
        .unwrap();
    assert_eq!(
        p.server.handle_input(&forged),
        Err(PeerMisbehaved::UnexpectedContent { got: 0x03 }.into())
    );
    assert!(!p.server.is_established());
}

impl Pair {
    /// Recomputes the client traffic secret from the public transcript and
    /// the shares both sides drew (test-only; uses the same seeds).
    fn client_traffic_secret_for_test(&self) -> crate::key_schedule::Secret {
        // Re-run both sides' draws from the same seeds.
        let mut crng = rng(1);
        let mut random = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut *crng, &mut random);
        let shares = crate::key_exchange::ClientShares::generate(&mut *crng);
        let mut srng = rng(2);
        let mut srandom = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut *srng, &mut srandom);
        let ss = crate::key_exchange::ServerShares::respond(
            &mut *srng,
            shares.ffdhe_public(),
            shares.x25519_public(),
            shares.mlkem_encapsulation_key(),
        )
        .unwrap();
        let mut hello = Vec::new();
        crate::hello::ClientHello {
            random: &random,
            ffdhe: shares.ffdhe_public(),
            x25519: *shares.x25519_public(),
            mlkem_ek: shares.mlkem_encapsulation_key(),
        }
        .encode_frame(&mut hello);
        let mut sh = Vec::new();
        ServerHello {
            random: &srandom,
            ffdhe: &ss.ffdhe_public,
            x25519: ss.x25519_public,
            mlkem_ct: &ss.mlkem_ciphertext,
            identity: identity(7).public_key(),
            signature: &[],
        }
        .encode_unsigned_frame(&mut sh);
        let mut t = crate::hello::Transcript::new();
        t.add(&hello);
        t.add(&sh);
        crate::key_schedule::HandshakeSecrets::derive(&t.current(), &ss.ikm).client_traffic
    }
}

#[test]
fn keys_ratchet_forward_and_traffic_keeps_flowing() {
    let id = identity(7);
    let limits = Limits {
        key_update: KeyUpdatePolicy {
            max_records: 3,
            max_bytes: u64::MAX,
        },
        ..Limits::default()
    };
    let mut p = Pair::with_limits(ServerTrust::Pinned(id.public_key()), id, limits);
    p.drive();
    let _ = client_events(&mut p.client);
    let _ = server_events(&mut p.server);
    let mut sizes = Vec::new();
    for n in 0..20 {
        p.client.send(&ClientMessage::Ping { nonce: n }).unwrap();
        let bytes = client_out(&mut p.client);
        sizes.push(frames(&bytes).len());
        p.server.handle_input(&bytes).unwrap();
    }
    // Every third message carried a KeyUpdate record in front of it.
    assert!(sizes.iter().filter(|&&n| n == 2).count() >= 6, "{sizes:?}");
    let got: Vec<_> = server_events(&mut p.server);
    assert_eq!(got.len(), 20);
    assert_eq!(
        got[19],
        ServerEvent::Message(ClientMessage::Ping { nonce: 19 })
    );
}

#[test]
fn input_split_into_single_bytes_still_works() {
    let id = identity(7);
    let mut p = Pair::new(ServerTrust::Pinned(id.public_key()), id);
    let hello = client_out(&mut p.client);
    for b in &hello {
        p.server.handle_input(std::slice::from_ref(b)).unwrap();
    }
    let flight = server_out(&mut p.server);
    for b in &flight {
        p.client.handle_input(std::slice::from_ref(b)).unwrap();
    }
    assert!(p.client.is_established());
}

#[test]
fn a_client_hello_of_the_wrong_length_is_refused_from_its_first_seven_bytes() {
    // Header announcing 1,000 body bytes, then version 2: no need to wait
    // for the rest (or for the handshake deadline).
    let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
    let prefix = [0x01, 0, 0, 0x03, 0xe8, 0, 2];
    server.handle_cheap_input(&prefix[..6]).unwrap();
    assert!(!server.expensive_input_pending());
    assert_eq!(
        server.handle_cheap_input(&prefix[6..]),
        Err(Error::Handshake(HandshakeError::MalformedHello))
    );
    assert_eq!(
        server_out(&mut server),
        vec![
            0x15,
            0,
            0,
            0,
            3,
            AlertCode::HandshakeFailure.to_byte(),
            0,
            2
        ]
    );
    // Another version with another length: a version problem, at once.
    let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
    assert_eq!(
        server.handle_input(&[0x01, 0, 0, 0x03, 0xe8, 0, 9]),
        Err(Error::VersionMismatch { ours: 2, peer: 9 })
    );
    // A frame that is not a ClientHello at all is refused from its first byte.
    let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
    assert_eq!(
        server.handle_input(&[0x17]),
        Err(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedFrame {
            got: 0x17
        }))
    );
    // The right length, arriving byte by byte, is waited for.
    let mut client = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(1));
    let hello = client_out(&mut client);
    let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
    for (i, b) in hello.iter().enumerate() {
        server.handle_cheap_input(&[*b]).unwrap();
        assert_eq!(server.expensive_input_pending(), i + 1 == hello.len());
    }
    assert!(server_out(&mut server).is_empty(), "the hello waits");
    server.process_expensive_input().unwrap();
    assert!(!server_out(&mut server).is_empty(), "ServerHello sent");
}

#[test]
fn a_clients_plaintext_abort_after_the_server_hello_is_reported_as_its_alert() {
    // The client finds the server key changed and aborts with a plaintext
    // handshake_failure (it has no keys to seal it with).
    let mut p = Pair::new(ServerTrust::Pinned(identity(1).public_key()), identity(2));
    let hello = client_out(&mut p.client);
    p.server.handle_input(&hello).unwrap();
    let reply = server_out(&mut p.server);
    assert!(p.client.handle_input(&reply).is_err());
    let alert = client_out(&mut p.client);
    let err = p.server.handle_input(&alert).unwrap_err();
    assert_eq!(err, Error::AlertReceived(AlertCode::HandshakeFailure));
    assert_eq!(
        err.to_string(),
        "peer aborted the connection: handshake_failure"
    );
    assert!(
        server_out(&mut p.server).is_empty(),
        "no alert answers an alert"
    );
}

#[test]
fn a_refused_connection_learns_why_from_a_plaintext_alert() {
    for (code, byte) in [(AlertCode::ServerFull, 8), (AlertCode::RateLimited, 9)] {
        let frame = plaintext_alert_frame(code);
        assert_eq!(frame, [0x15, 0, 0, 0, 3, byte, 0, 2]);
        let mut client = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(1));
        let _ = client_out(&mut client);
        assert_eq!(client.handle_input(&frame), Err(Error::AlertReceived(code)));
    }
}

#[test]
fn cheap_input_stops_before_the_server_hello_and_keeps_the_bytes_behind_it() {
    let id = identity(7);
    let mut p = Pair::new(ServerTrust::Pinned(id.public_key()), id);
    let hello = client_out(&mut p.client);
    p.server.handle_cheap_input(&hello).unwrap();
    assert!(p.server.expensive_input_pending());
    assert!(server_out(&mut p.server).is_empty(), "no work done yet");
    p.server.process_expensive_input().unwrap();
    assert!(!p.server.expensive_input_pending());
    // ServerHello and the server Finished arrive in one read.
    let flight = server_out(&mut p.server);
    p.client.handle_cheap_input(&flight).unwrap();
    assert!(p.client.expensive_input_pending());
    assert_eq!(p.client.poll_event(), None);
    assert_eq!(p.client.server_key(), None);
    p.client.process_expensive_input().unwrap();
    assert_eq!(
        client_events(&mut p.client),
        vec![ClientEvent::Connected {
            server_key: identity(7).public_key()
        }],
        "the Finished kept behind the hello was processed too"
    );
    assert_eq!(p.client.server_key(), Some(identity(7).public_key()));
    p.drive();
    assert_eq!(server_events(&mut p.server), vec![ServerEvent::Connected]);
}

#[test]
fn more_input_while_the_hello_is_pending_is_refused_without_failing() {
    let id = identity(7);
    let mut p = Pair::new(ServerTrust::Pinned(id.public_key()), id);
    let hello = client_out(&mut p.client);
    p.server.handle_cheap_input(&hello).unwrap();
    assert_eq!(
        p.server.handle_cheap_input(&[0x17]),
        Err(Error::InvalidState("expensive input is pending"))
    );
    // handle_input runs the pending step first, so it still works.
    p.server.handle_input(&[]).unwrap();
    assert!(!server_out(&mut p.server).is_empty(), "ServerHello sent");
}

#[test]
fn eof_while_the_hello_is_pending_is_a_dropped_connection() {
    let mut client = ClientConnection::new(ClientConfig::new(ServerTrust::FirstUse), rng(1));
    let hello = client_out(&mut client);
    let mut server = ServerConnection::new(ServerConfig::new(identity(1)), rng(2));
    server.handle_cheap_input(&hello).unwrap();
    assert_eq!(server.handle_eof(), Err(Error::UnexpectedEof));
    assert!(
        server_out(&mut server).is_empty(),
        "no alert for a dropped peer"
    );
}

// ---- Resumed handshakes (docs/PROTOCOL.md §Resumed handshake) ----

/// A server's keys by id, as the server's resume-token table holds them.
#[derive(Debug, Default)]
struct Psks(Vec<ResumptionPsk>);

impl PskStore for Psks {
    fn find(&self, id: &[u8; 32]) -> Option<ResumptionPsk> {
        self.0.iter().find(|k| k.id() == *id).cloned()
    }
}

fn token(n: u8) -> crate::message::ResumeToken {
    crate::message::ResumeToken::from_bytes([n; 32])
}

/// A client resuming with `client_token` against a server holding the keys
/// of `server_tokens` (none: a server without a key store).
fn resumed_pair(client_token: u8, server_tokens: Option<&[u8]>) -> Pair {
    let id = identity(7);
    let psks = server_tokens.map(|tokens| {
        let keys = tokens.iter().map(|t| ResumptionPsk::from_token(&token(*t)));
        Arc::new(Psks(keys.collect())) as Arc<dyn PskStore>
    });
    let client = ClientConnection::new(
        ClientConfig {
            trust: ServerTrust::Pinned(id.public_key()),
            limits: Limits::default(),
            resume: Some(ResumptionPsk::from_token(&token(client_token))),
        },
        rng(1),
    );
    let server = ServerConnection::new(
        ServerConfig {
            identity: id,
            limits: Limits::default(),
            psks,
        },
        rng(2),
    );
    Pair { client, server }
}

#[test]
fn a_resumed_handshake_connects_without_ffdhe_and_messages_flow() {
    let mut p = resumed_pair(5, Some(&[4, 5]));
    let hello = client_out(&mut p.client);
    assert_eq!(hello[0], crate::frame::FrameType::ResumeHello as u8);
    assert_eq!(hello.len(), HEADER_LEN + crate::hello::RESUME_HELLO_BODY);
    p.server.handle_input(&hello).unwrap();
    let answer = server_out(&mut p.server);
    let first = &frames(&answer)[0];
    assert_eq!(first[0], crate::frame::FrameType::ServerHello as u8);
    assert_eq!(
        first.len(),
        HEADER_LEN + crate::hello::RESUMED_SERVER_HELLO_BODY,
        "no ffdhe value in the answer"
    );
    p.client.handle_input(&answer).unwrap();
    p.drive();
    assert_eq!(
        client_events(&mut p.client),
        vec![ClientEvent::Connected {
            server_key: identity(7).public_key()
        }]
    );
    assert_eq!(server_events(&mut p.server), vec![ServerEvent::Connected]);
    p.client.send(&ClientMessage::Ping { nonce: 1 }).unwrap();
    p.server.send(&ServerMessage::Ping { nonce: 2 }).unwrap();
    p.drive();
    assert_eq!(
        server_events(&mut p.server),
        vec![ServerEvent::Message(ClientMessage::Ping { nonce: 1 })]
    );
    assert_eq!(
        client_events(&mut p.client),
        vec![ClientEvent::Message(ServerMessage::Ping { nonce: 2 })]
    );
    // Both ends bind the same channel, and not the one of a full handshake.
    let resumed = p.client.channel_binding().unwrap();
    assert_eq!(
        resumed.expose(),
        p.server.channel_binding().unwrap().expose()
    );
}

#[test]
fn a_key_the_server_does_not_hold_is_refused_with_unknown_psk_in_plaintext() {
    for server_tokens in [Some(&[4u8][..]), Some(&[][..]), None] {
        let mut p = resumed_pair(5, server_tokens);
        let hello = client_out(&mut p.client);
        let err = p.server.handle_input(&hello).unwrap_err();
        assert_eq!(err, Error::Handshake(HandshakeError::UnknownPsk));
        let alert = server_out(&mut p.server);
        assert_eq!(alert[0], crate::frame::FrameType::Alert as u8, "plaintext");
        assert_eq!(
            p.client.handle_input(&alert).unwrap_err(),
            Error::AlertReceived(AlertCode::UnknownPsk)
        );
        assert!(client_events(&mut p.client).is_empty());
    }
}

/// A server that answers every id with the key of token 5.
#[derive(Debug)]
struct OneKey;

impl PskStore for OneKey {
    fn find(&self, _id: &[u8; 32]) -> Option<ResumptionPsk> {
        Some(ResumptionPsk::from_token(&token(5)))
    }
}

#[test]
fn the_key_enters_the_session_keys_so_a_client_without_it_cannot_finish() {
    // The client holds token 6's key; the server answers with token 5's
    // (what an eavesdropper who replays a real client's key id with shares
    // of its own gets): the server's Finished does not open or verify.
    let mut p = resumed_pair(6, None);
    p.server = ServerConnection::new(
        ServerConfig {
            identity: identity(7),
            limits: Limits::default(),
            psks: Some(Arc::new(OneKey)),
        },
        rng(2),
    );
    let hello = client_out(&mut p.client);
    p.server.handle_input(&hello).unwrap();
    let answer = server_out(&mut p.server);
    let err = p.client.handle_input(&answer).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PeerMisbehaved(PeerMisbehaved::BadRecordMac)
                | Error::Handshake(HandshakeError::BadFinished)
        ),
        "{err:?}"
    );
    assert!(client_events(&mut p.client).is_empty());
    assert!(server_events(&mut p.server).is_empty());
}

#[test]
fn a_resumed_handshake_still_proves_the_pinned_server_key() {
    let mut p = resumed_pair(5, Some(&[5]));
    // An impostor holding the key (a stolen token) but not the identity key.
    p.server = ServerConnection::new(
        ServerConfig {
            identity: identity(8),
            limits: Limits::default(),
            psks: Some(Arc::new(Psks(vec![ResumptionPsk::from_token(&token(5))]))),
        },
        rng(2),
    );
    let hello = client_out(&mut p.client);
    p.server.handle_input(&hello).unwrap();
    let answer = server_out(&mut p.server);
    assert!(matches!(
        p.client.handle_input(&answer).unwrap_err(),
        Error::ServerKeyChanged { .. }
    ));
}

#[test]
fn altered_resumed_hellos_fail() {
    // The client's X25519 share altered: the server's signature over the
    // transcript no longer verifies at the client.
    let mut p = resumed_pair(5, Some(&[5]));
    let mut hello = client_out(&mut p.client);
    let x_at = HEADER_LEN + 2 + crate::hello::RANDOM_BYTES + 32;
    hello[x_at] ^= 0x40;
    p.server.handle_input(&hello).unwrap();
    let answer = server_out(&mut p.server);
    assert_eq!(
        p.client.handle_input(&answer).unwrap_err(),
        Error::Handshake(HandshakeError::BadSignature)
    );

    // A resumed ServerHello given to a client that sent a full ClientHello
    // (and the other way round) is the wrong length.
    let mut resumed = resumed_pair(5, Some(&[5]));
    let hello = client_out(&mut resumed.client);
    resumed.server.handle_input(&hello).unwrap();
    let resumed_answer = server_out(&mut resumed.server);
    let id = identity(7);
    let mut full = Pair::new(ServerTrust::Pinned(id.public_key()), id);
    assert_eq!(
        full.client.handle_input(&resumed_answer).unwrap_err(),
        Error::Handshake(HandshakeError::MalformedHello)
    );
    let mut full = Pair::new(ServerTrust::Pinned(identity(7).public_key()), identity(7));
    let full_hello = client_out(&mut full.client);
    full.server.handle_input(&full_hello).unwrap();
    let full_answer = server_out(&mut full.server);
    let mut p = resumed_pair(5, Some(&[5]));
    let _ = client_out(&mut p.client);
    assert_eq!(
        p.client.handle_input(&full_answer).unwrap_err(),
        Error::Handshake(HandshakeError::MalformedHello)
    );

    // A ResumeHello relabelled as a ClientHello is refused by its length
    // from the header alone.
    let mut p = resumed_pair(5, Some(&[5]));
    let mut hello = client_out(&mut p.client);
    hello[0] = crate::frame::FrameType::ClientHello as u8;
    assert_eq!(
        p.server.handle_input(&hello).unwrap_err(),
        Error::Handshake(HandshakeError::MalformedHello)
    );
}

/// Counts its lookups.
#[derive(Debug, Default)]
struct CountingKeys(std::sync::atomic::AtomicUsize);

impl PskStore for CountingKeys {
    fn find(&self, id: &[u8; 32]) -> Option<ResumptionPsk> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = ResumptionPsk::from_token(&token(5));
        (key.id() == *id).then_some(key)
    }
}

#[test]
fn the_key_is_looked_up_on_the_cheap_path_and_an_unknown_one_is_refused_there() {
    for (client_token, known) in [(5u8, true), (6, false)] {
        let store = Arc::new(CountingKeys::default());
        let mut p = resumed_pair(client_token, None);
        p.server = ServerConnection::new(
            ServerConfig {
                identity: identity(7),
                limits: Limits::default(),
                psks: Some(store.clone()),
            },
            rng(2),
        );
        let hello = client_out(&mut p.client);
        let cheap = p.server.handle_cheap_input(&hello);
        let lookups = || store.0.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(lookups(), 1, "looked up before anything is deferred");
        if known {
            cheap.unwrap();
            assert!(p.server.expensive_input_pending());
            p.server.process_expensive_input().unwrap();
            assert_eq!(lookups(), 1, "not again on the expensive step");
            p.client.handle_input(&server_out(&mut p.server)).unwrap();
            p.drive();
            assert!(p.client.is_established() && p.server.is_established());
        } else {
            assert_eq!(
                cheap.unwrap_err(),
                Error::Handshake(HandshakeError::UnknownPsk)
            );
            assert!(!p.server.expensive_input_pending(), "nothing deferred");
        }
    }
}

#[test]
fn one_transmit_buffer_goes_back_and_forth_and_a_large_one_is_freed() {
    let mut p = Pair::connected();
    let mut out = Vec::new();
    // A burst of ten records makes a buffer with room for ten.
    for nonce in 0..10 {
        p.server.send(&ServerMessage::Ping { nonce }).unwrap();
    }
    p.server.drain_transmit(&mut out);
    let (buffer, room) = (out.as_ptr(), out.capacity());
    p.client.handle_input(&out).unwrap();
    p.server.recycle_transmit_buffer(&mut out, 4096);
    assert_eq!(out.capacity(), 0, "the written buffer went back");
    // Single records after it are sealed into that same allocation.
    for nonce in 10..13 {
        p.server.send(&ServerMessage::Ping { nonce }).unwrap();
        p.server.drain_transmit(&mut out);
        assert_eq!(
            (out.as_ptr(), out.capacity()),
            (buffer, room),
            "record {nonce} reused the buffer"
        );
        p.client.handle_input(&out).unwrap();
        p.server.recycle_transmit_buffer(&mut out, 4096);
    }
    assert_eq!(
        client_events(&mut p.client).len(),
        13,
        "every record arrived"
    );

    // A buffer over the limit is shrunk to it: the next record is sealed
    // into no more than that.
    p.server.send(&ServerMessage::Ping { nonce: 13 }).unwrap();
    p.server.drain_transmit(&mut out);
    assert_eq!(out.capacity(), room);
    let record = out.len();
    p.client.handle_input(&out).unwrap();
    p.server.recycle_transmit_buffer(&mut out, record);
    assert_eq!(out.capacity(), 0);
    p.server.send(&ServerMessage::Ping { nonce: 14 }).unwrap();
    p.server.drain_transmit(&mut out);
    assert!(
        out.capacity() < room,
        "{} bytes kept, of the {room} the burst needed",
        out.capacity()
    );
    p.client.handle_input(&out).unwrap();
    assert_eq!(
        client_events(&mut p.client).len(),
        2,
        "both records arrived"
    );
}

#[test]
fn a_buffer_emptied_into_a_partly_written_one_is_shrunk_too() {
    let mut p = Pair::connected();
    for nonce in 0..10 {
        p.server.send(&ServerMessage::Ping { nonce }).unwrap();
    }
    // Bytes still owed from before: the core's records are appended to
    // them, and its own buffer, emptied, keeps room for ten.
    let mut owed = vec![0u8];
    p.server.drain_transmit(&mut owed);
    p.server.recycle_transmit_buffer(&mut Vec::new(), 64);
    p.server.send(&ServerMessage::Ping { nonce: 10 }).unwrap();
    let mut out = Vec::new();
    p.server.drain_transmit(&mut out);
    assert!(
        out.capacity() < 5 * out.len(),
        "{} bytes kept for one record of {}",
        out.capacity(),
        out.len()
    );
}
