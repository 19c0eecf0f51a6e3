//! The two plaintext handshake messages, the transcript hash and the
//! signed content (docs/PROTOCOL.md §Handshake).

use crate::error::{Error, HandshakeError, PeerMisbehaved};
use crate::ffdhe::FFDHE3072_BYTES;
use crate::frame::{encode_frame, FrameType, HEADER_LEN, MAX_FRAME_BODY};
use crate::identity::ServerKey;
use crate::key_exchange::{MLKEM768_CT_BYTES, MLKEM768_EK_BYTES, X25519_BYTES};

/// The only protocol version this implementation speaks.
pub const PROTOCOL_VERSION: u16 = 2;

/// Absorbed first into the transcript: any change of version or algorithm
/// changes every key and the signed hash, so a downgrade cannot verify.
pub const PROTOCOL_NAME: &[u8] =
    b"SecureChat/1 ffdhe3072+X25519+ML-KEM-768 Ed25519 HKDF-SHA256 AES-256-CFB128 HMAC-SHA256";

/// Absorbed first instead of [`PROTOCOL_NAME`] by a resumed handshake,
/// whose resumption key takes the place of the ffdhe3072 exchange.
pub const PROTOCOL_NAME_RESUMED: &[u8] =
    b"SecureChat/1 psk+X25519+ML-KEM-768 Ed25519 HKDF-SHA256 AES-256-CFB128 HMAC-SHA256";

/// Context string of the server's signature (after 64 spaces, before 0x00).
pub const SIGNATURE_CONTEXT: &[u8] = b"SecureChat/1 server handshake signature";

pub const RANDOM_BYTES: usize = 32;
pub const SIGNATURE_BYTES: usize = 64;
pub const CLIENT_HELLO_BODY: usize =
    2 + RANDOM_BYTES + FFDHE3072_BYTES + X25519_BYTES + MLKEM768_EK_BYTES;
pub const SERVER_HELLO_BODY: usize =
    2 + RANDOM_BYTES + FFDHE3072_BYTES + X25519_BYTES + MLKEM768_CT_BYTES + 32 + SIGNATURE_BYTES;
/// Length of the resumption key's public id in a ResumeHello.
pub const PSK_ID_BYTES: usize = 32;
pub const RESUME_HELLO_BODY: usize =
    2 + RANDOM_BYTES + PSK_ID_BYTES + X25519_BYTES + MLKEM768_EK_BYTES;
/// A ServerHello answering a ResumeHello: the same fields without ffdhe.
pub const RESUMED_SERVER_HELLO_BODY: usize =
    2 + RANDOM_BYTES + X25519_BYTES + MLKEM768_CT_BYTES + 32 + SIGNATURE_BYTES;

/// Which handshake a connection runs: the full hybrid one, or the resumed
/// one (a key from an earlier session in place of ffdhe3072).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeMode {
    Full,
    Resumed,
}

/// ClientHello body: version || random || ffdhe Y || X25519 || ML-KEM ek.
pub struct ClientHello<'a> {
    pub random: &'a [u8],
    pub ffdhe: &'a [u8],
    pub x25519: [u8; X25519_BYTES],
    pub mlkem_ek: &'a [u8],
}

/// ResumeHello body: version || random || psk id || X25519 || ML-KEM ek.
pub struct ResumeHello<'a> {
    pub random: &'a [u8],
    pub psk_id: [u8; PSK_ID_BYTES],
    pub x25519: [u8; X25519_BYTES],
    pub mlkem_ek: &'a [u8],
}

/// ServerHello body: version || random || ffdhe Y || X25519 || ML-KEM ct
/// || identity key || signature. In answer to a ResumeHello, `ffdhe` is
/// empty and absent from the encoding.
pub struct ServerHello<'a> {
    pub random: &'a [u8],
    pub ffdhe: &'a [u8],
    pub x25519: [u8; X25519_BYTES],
    pub mlkem_ct: &'a [u8],
    pub identity: ServerKey,
    pub signature: &'a [u8],
}

fn check_version(body: &[u8]) -> Result<(), Error> {
    if body.len() < 2 {
        return Err(HandshakeError::MalformedHello.into());
    }
    let peer = u16::from_be_bytes([body[0], body[1]]);
    if peer != PROTOCOL_VERSION {
        return Err(Error::VersionMismatch {
            ours: PROTOCOL_VERSION,
            peer,
        });
    }
    Ok(())
}

/// What the first bytes from a client already tell, before its whole
/// ClientHello has arrived: `Ok(None)` needs more bytes, `Ok(Some(n))` the
/// frame is `n` bytes long (header included), `Err` the hello can be refused
/// now. A wrong length is known from the header and the version from the
/// two bytes after it, so a client cannot hold a connection until the
/// handshake deadline by announcing a hello it never completes.
pub fn client_hello_frame_len(prefix: &[u8]) -> Result<Option<usize>, Error> {
    let Some(&first) = prefix.first() else {
        return Ok(None);
    };
    let expected_body = match FrameType::from_byte(first)? {
        FrameType::ClientHello => CLIENT_HELLO_BODY,
        FrameType::ResumeHello => RESUME_HELLO_BODY,
        _ => return Err(PeerMisbehaved::UnexpectedFrame { got: first }.into()),
    };
    if prefix.len() < HEADER_LEN {
        return Ok(None);
    }
    let body_len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
    if body_len > MAX_FRAME_BODY {
        return Err(PeerMisbehaved::FrameTooLarge {
            len: body_len,
            max: MAX_FRAME_BODY,
        }
        .into());
    }
    let body_len = body_len as usize;
    if body_len == expected_body {
        return Ok(Some(HEADER_LEN + body_len));
    }
    if body_len < 2 {
        return Err(HandshakeError::MalformedHello.into());
    }
    match prefix.get(HEADER_LEN..HEADER_LEN + 2) {
        // The version decides the alert (protocol_version or decode_error).
        Some(version) => {
            check_version(version)?;
            Err(HandshakeError::MalformedHello.into())
        }
        None => Ok(None),
    }
}

struct Cursor<'a>(&'a [u8]);
impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn take32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.take(32));
        out
    }
}

impl<'a> ClientHello<'a> {
    /// Parses a ClientHello body: the version first, so a peer of another
    /// version gets `VersionMismatch` whatever the rest looks like.
    pub fn decode(body: &'a [u8]) -> Result<Self, Error> {
        check_version(body)?;
        if body.len() != CLIENT_HELLO_BODY {
            return Err(HandshakeError::MalformedHello.into());
        }
        let mut c = Cursor(&body[2..]);
        Ok(Self {
            random: c.take(RANDOM_BYTES),
            ffdhe: c.take(FFDHE3072_BYTES),
            x25519: c.take32(),
            mlkem_ek: c.take(MLKEM768_EK_BYTES),
        })
    }

    /// Appends the whole frame (header and body).
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(CLIENT_HELLO_BODY);
        body.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        body.extend_from_slice(self.random);
        body.extend_from_slice(self.ffdhe);
        body.extend_from_slice(&self.x25519);
        body.extend_from_slice(self.mlkem_ek);
        encode_frame(FrameType::ClientHello, &body, out);
    }
}

impl<'a> ResumeHello<'a> {
    /// Parses a ResumeHello body, the version first (as [`ClientHello::decode`]).
    pub fn decode(body: &'a [u8]) -> Result<Self, Error> {
        check_version(body)?;
        if body.len() != RESUME_HELLO_BODY {
            return Err(HandshakeError::MalformedHello.into());
        }
        let mut c = Cursor(&body[2..]);
        Ok(Self {
            random: c.take(RANDOM_BYTES),
            psk_id: c.take32(),
            x25519: c.take32(),
            mlkem_ek: c.take(MLKEM768_EK_BYTES),
        })
    }

    /// Appends the whole frame (header and body).
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(RESUME_HELLO_BODY);
        body.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        body.extend_from_slice(self.random);
        body.extend_from_slice(&self.psk_id);
        body.extend_from_slice(&self.x25519);
        body.extend_from_slice(self.mlkem_ek);
        encode_frame(FrameType::ResumeHello, &body, out);
    }
}

impl<'a> ServerHello<'a> {
    /// Parses the ServerHello of a `mode` handshake (the client knows which
    /// hello it sent, so which layout to expect).
    pub fn decode(body: &'a [u8], mode: HandshakeMode) -> Result<Self, Error> {
        check_version(body)?;
        let (expected, ffdhe_len) = match mode {
            HandshakeMode::Full => (SERVER_HELLO_BODY, FFDHE3072_BYTES),
            HandshakeMode::Resumed => (RESUMED_SERVER_HELLO_BODY, 0),
        };
        if body.len() != expected {
            return Err(HandshakeError::MalformedHello.into());
        }
        let mut c = Cursor(&body[2..]);
        Ok(Self {
            random: c.take(RANDOM_BYTES),
            ffdhe: c.take(ffdhe_len),
            x25519: c.take32(),
            mlkem_ct: c.take(MLKEM768_CT_BYTES),
            identity: ServerKey(c.take32()),
            signature: c.take(SIGNATURE_BYTES),
        })
    }

    /// The frame without its final 64-byte signature (what TH_sig covers).
    pub fn encode_unsigned_frame(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(SERVER_HELLO_BODY);
        body.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        body.extend_from_slice(self.random);
        body.extend_from_slice(self.ffdhe);
        body.extend_from_slice(&self.x25519);
        body.extend_from_slice(self.mlkem_ct);
        body.extend_from_slice(&self.identity.0);
        body.extend_from_slice(&[0u8; SIGNATURE_BYTES]);
        encode_frame(FrameType::ServerHello, &body, out);
        out.truncate(out.len() - SIGNATURE_BYTES);
    }
}

/// The running transcript hash: SHA-256 over PROTOCOL_NAME (or
/// PROTOCOL_NAME_RESUMED) || 0x00 || the handshake bytes in order.
#[derive(Clone)]
pub struct Transcript(ring::digest::Context);

impl Transcript {
    /// The transcript of a full handshake.
    pub fn new() -> Self {
        Self::for_mode(HandshakeMode::Full)
    }

    pub fn for_mode(mode: HandshakeMode) -> Self {
        let name = match mode {
            HandshakeMode::Full => PROTOCOL_NAME,
            HandshakeMode::Resumed => PROTOCOL_NAME_RESUMED,
        };
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(name);
        ctx.update(&[0]);
        Self(ctx)
    }

    pub fn add(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash of everything absorbed so far.
    pub fn current(&self) -> [u8; 32] {
        let d = self.0.clone().finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

impl Default for Transcript {
    fn default() -> Self {
        Self::new()
    }
}

/// 64 × 0x20 || SIGNATURE_CONTEXT || 0x00 || TH_sig (as TLS 1.3 §4.4.3).
pub fn signed_content(th_sig: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + SIGNATURE_CONTEXT.len() + 1 + 32);
    m.extend_from_slice(&[0x20; 64]);
    m.extend_from_slice(SIGNATURE_CONTEXT);
    m.push(0);
    m.extend_from_slice(th_sig);
    m
}
