//! Password registration and login with OPAQUE (RFC 9807), sans-IO.
//!
//! The password never leaves the client. The server keeps, per account, a
//! [`PasswordRecord`] (the client's OPAQUE public key, a masking key and an
//! envelope) that it cannot test a guess against without running the
//! protocol with a client; the memory-hard stretching (Argon2id) runs on
//! the client. docs/PROTOCOL.md §"Password authentication (OPAQUE)" gives
//! the messages byte by byte; `tests/opaque_rfc9807_vectors.rs` reproduces
//! the RFC's test vectors with this configuration.
//!
//! The configuration ([`Suite`]): OPRF ristretto255-SHA512, 3DH over
//! ristretto255 with SHA-512, and Argon2id as the key-stretching function
//! with the parameters of [`Stretch::RECOMMENDED`] (19 MiB, t = 2, p = 1).
//! Identities: the client's is its canonical (case-folded) username, the
//! server's is its OPAQUE public key (RFC 9807's default). The AKE context
//! is [`CONTEXT_LABEL`] followed by the connection's
//! [`ChannelBinding`]: a login run over one connection cannot be finished
//! over another (relayed by an impostor), because both MACs cover it.
//!
//! The client-side functions are generic over the key-stretching function
//! `K` so that the load generator can memoise it (the server's cost is what
//! it measures); every `Suite<K>` puts the same bytes on the wire.

use std::fmt;
use std::marker::PhantomData;

pub use opaque_ke::errors::InternalError as KsfError;
pub use opaque_ke::generic_array::typenum::U64;
pub use opaque_ke::generic_array::{ArrayLength, GenericArray};
pub use opaque_ke::ksf::{Identity, Ksf};
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialFinalization, CredentialRequest,
    CredentialResponse, Identifiers, RegistrationRequest, RegistrationResponse, RegistrationUpload,
    Ristretto255, ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup, TripleDh,
};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::connection::ChannelBinding;

/// `RegistrationRequest`: the blinded password (a ristretto255 element).
pub const REGISTRATION_REQUEST_LEN: usize = 32;
/// `RegistrationResponse`: the evaluated element and the server's OPAQUE
/// public key.
pub const REGISTRATION_RESPONSE_LEN: usize = 64;
/// `RegistrationUpload`, which is also the stored [`PasswordRecord`]: the
/// client's public key (32), masking key (64), envelope nonce (32) and
/// envelope MAC (64).
pub const REGISTRATION_UPLOAD_LEN: usize = 192;
/// `CredentialRequest` (KE1): blinded element, client nonce, client key share.
pub const CREDENTIAL_REQUEST_LEN: usize = 96;
/// `CredentialResponse` (KE2): evaluated element (32), masking nonce (32),
/// masked response (128), server nonce (32), server key share (32), server
/// MAC (64).
pub const CREDENTIAL_RESPONSE_LEN: usize = 320;
/// `CredentialFinalization` (KE3): the client's MAC.
pub const CREDENTIAL_FINALIZATION_LEN: usize = 64;
/// Length of the export key (SHA-512 output).
pub const EXPORT_KEY_LEN: usize = 64;

/// Starts the AKE context; the connection's channel binding follows it.
pub const CONTEXT_LABEL: &[u8] = b"SecureChat OPAQUE v1 ";

/// Argon2id, as every real client runs it.
pub type Argon2id = argon2::Argon2<'static>;

/// The OPAQUE configuration, over the key-stretching function `K`.
pub struct Suite<K = Argon2id>(PhantomData<K>);

impl<K: Ksf> opaque_ke::CipherSuite for Suite<K> {
    type OprfCs = Ristretto255;
    type KeyExchange = TripleDh<Ristretto255, sha2::Sha512>;
    type Ksf = K;
}

/// Argon2id costs of the client's key stretching. They are part of every
/// password's record: a client that stretches differently derives other
/// keys and cannot log in, so all clients use [`RECOMMENDED`](Self::RECOMMENDED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl Stretch {
    /// OWASP's minimum for Argon2id: m = 19 MiB, t = 2, p = 1.
    pub const RECOMMENDED: Stretch = Stretch {
        memory_kib: 19 * 1024,
        passes: 2,
        lanes: 1,
    };

    /// The cheapest costs Argon2id accepts (8 KiB, one pass): for tests of
    /// the protocol around the stretching, never for a real account.
    pub const CHEAPEST: Stretch = Stretch {
        memory_kib: 8,
        passes: 1,
        lanes: 1,
    };

    /// Argon2id with these costs (version 0x13, 64-byte output, the salt
    /// RFC 9807 leaves to the KSF: 16 zero bytes, as the OPRF output is
    /// already unique per user and server).
    pub fn argon2id(self) -> Result<Argon2id, OpaqueError> {
        let params = argon2::Params::new(self.memory_kib, self.passes, self.lanes, None)
            .map_err(|_| OpaqueError::Stretch)?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }
}

/// Why an OPAQUE step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpaqueError {
    /// A message or record does not decode (bad point, wrong length).
    #[error("malformed OPAQUE message")]
    Malformed,
    /// The other side's proof did not verify: the wrong password, another
    /// server, or a login relayed from another connection. Deliberately
    /// one case: the client cannot tell which.
    #[error("OPAQUE authentication failed")]
    AuthenticationFailed,
    /// The server sent back the client's own blinded element.
    #[error("the server reflected the blinded element")]
    Reflected,
    /// The key-stretching function failed (its parameters).
    #[error("password stretching failed")]
    Stretch,
}

impl<T> From<opaque_ke::errors::ProtocolError<T>> for OpaqueError {
    fn from(e: opaque_ke::errors::ProtocolError<T>) -> Self {
        use opaque_ke::errors::{InternalError, ProtocolError};
        match e {
            ProtocolError::InvalidLoginError => OpaqueError::AuthenticationFailed,
            ProtocolError::ReflectedValueError => OpaqueError::Reflected,
            ProtocolError::LibraryError(InternalError::KsfError) => OpaqueError::Stretch,
            _ => OpaqueError::Malformed,
        }
    }
}

/// OPAQUE's `export_key`: a key only a client that knows the password can
/// derive, the same at every login (RFC 9807 §6.3). Kept in memory for the
/// session, never sent or stored; later work derives a key-backup key from it.
pub struct ExportKey(Zeroizing<[u8; EXPORT_KEY_LEN]>);

impl ExportKey {
    pub fn expose(&self) -> &[u8; EXPORT_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for ExportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExportKey(<redacted>)")
    }
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

fn identifiers(username: &str) -> Identifiers<'_> {
    Identifiers {
        client: Some(username.as_bytes()),
        server: None,
    }
}

fn context(binding: &ChannelBinding) -> Zeroizing<Vec<u8>> {
    let mut c = Zeroizing::new(Vec::with_capacity(CONTEXT_LABEL.len() + 32));
    c.extend_from_slice(CONTEXT_LABEL);
    c.extend_from_slice(binding.expose());
    c
}

// ---------------------------------------------------------------- client

/// A registration the client has started: what it needs to finish it.
pub struct ClientRegistrationState<K: Ksf = Argon2id>(ClientRegistration<Suite<K>>);

impl<K: Ksf> ClientRegistrationState<K> {
    /// Blinds `password`: the state to keep, and the `RegistrationRequest`.
    pub fn start(
        rng: &mut impl CryptoRngCore,
        password: &[u8],
    ) -> Result<(Self, [u8; REGISTRATION_REQUEST_LEN]), OpaqueError> {
        let started = ClientRegistration::<Suite<K>>::start(rng, password)?;
        Ok((Self(started.state), array(&started.message.serialize())))
    }

    /// Stretches the OPRF output with `ksf` and seals the envelope for
    /// `username` (canonical form): the `RegistrationUpload` for the server,
    /// and the export key.
    pub fn finish(
        self,
        rng: &mut impl CryptoRngCore,
        password: &[u8],
        response: &[u8; REGISTRATION_RESPONSE_LEN],
        username: &str,
        ksf: &K,
    ) -> Result<([u8; REGISTRATION_UPLOAD_LEN], ExportKey), OpaqueError> {
        let response = RegistrationResponse::<Suite<K>>::deserialize(response)?;
        let finished = self.0.finish(
            rng,
            password,
            response,
            ClientRegistrationFinishParameters::new(identifiers(username), Some(ksf)),
        )?;
        Ok((
            array(&finished.message.serialize()),
            ExportKey(Zeroizing::new(array(&finished.export_key))),
        ))
    }
}

/// A login the client has started: what it needs to finish it.
pub struct ClientLoginState<K: Ksf = Argon2id>(ClientLogin<Suite<K>>);

impl<K: Ksf> ClientLoginState<K> {
    /// Blinds `password` and makes the first key-exchange message: the
    /// state to keep, and the `CredentialRequest` (KE1).
    pub fn start(
        rng: &mut impl CryptoRngCore,
        password: &[u8],
    ) -> Result<(Self, [u8; CREDENTIAL_REQUEST_LEN]), OpaqueError> {
        let started = ClientLogin::<Suite<K>>::start(rng, password)?;
        Ok((Self(started.state), array(&started.message.serialize())))
    }

    /// Opens the envelope and checks the server's MAC, which covers this
    /// connection's `binding`: the `CredentialFinalization` (KE3) and the
    /// export key, or [`OpaqueError::AuthenticationFailed`] (wrong
    /// password, another server, or a relayed login).
    pub fn finish(
        self,
        rng: &mut impl CryptoRngCore,
        password: &[u8],
        response: &[u8; CREDENTIAL_RESPONSE_LEN],
        username: &str,
        binding: &ChannelBinding,
        ksf: &K,
    ) -> Result<([u8; CREDENTIAL_FINALIZATION_LEN], ExportKey), OpaqueError> {
        let response = CredentialResponse::<Suite<K>>::deserialize(response)?;
        let context = context(binding);
        let finished = self.0.finish(
            rng,
            password,
            response,
            ClientLoginFinishParameters::new(Some(&context), identifiers(username), Some(ksf)),
        )?;
        Ok((
            array(&finished.message.serialize()),
            ExportKey(Zeroizing::new(array(&finished.export_key))),
        ))
    }
}

// ---------------------------------------------------------------- server

/// What the server stores per account instead of a password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordRecord([u8; REGISTRATION_UPLOAD_LEN]);

impl PasswordRecord {
    /// Checks a client's `RegistrationUpload` (its public key must be a
    /// valid ristretto255 element) and keeps it as the record.
    pub fn from_upload(upload: &[u8; REGISTRATION_UPLOAD_LEN]) -> Result<Self, OpaqueError> {
        RegistrationUpload::<Suite>::deserialize(upload)?;
        Ok(Self(*upload))
    }

    pub fn to_bytes(&self) -> [u8; REGISTRATION_UPLOAD_LEN] {
        self.0
    }

    fn parse(&self) -> Result<ServerRegistration<Suite>, OpaqueError> {
        Ok(ServerRegistration::finish(RegistrationUpload::deserialize(
            &self.0,
        )?))
    }
}

impl fmt::Debug for PasswordRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordRecord(<redacted>)")
    }
}

/// The server's long-term OPAQUE secret: the OPRF seed (from which each
/// account's OPRF key is derived), the AKE key pair, and the public key
/// used for unknown users' fake records. Losing it makes every password
/// record useless; it is a key file like the identity key.
pub struct ServerKeys {
    setup: ServerSetup<Suite>,
    /// Parsed for unknown users, so both paths decode one record.
    decoy: PasswordRecord,
}

/// A login the server has answered: what it needs to check the finish.
pub struct ServerLoginState(ServerLogin<Suite>);

impl fmt::Debug for ServerLoginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerLoginState(<redacted>)")
    }
}

impl ServerKeys {
    /// Fresh keys (the first start of a data directory).
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self::with_setup(ServerSetup::new(rng), rng)
    }

    /// Keys saved by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8], rng: &mut impl CryptoRngCore) -> Result<Self, OpaqueError> {
        let setup = ServerSetup::<Suite>::deserialize(bytes)?;
        if setup.serialize().len() != bytes.len() {
            return Err(OpaqueError::Malformed);
        }
        Ok(Self::with_setup(setup, rng))
    }

    fn with_setup(setup: ServerSetup<Suite>, rng: &mut impl CryptoRngCore) -> Self {
        // Any well-formed upload serves: only its decoding cost matters.
        let mut upload = [0u8; REGISTRATION_UPLOAD_LEN];
        upload[..32].copy_from_slice(&setup.keypair().public().serialize());
        rng.fill_bytes(&mut upload[32..]);
        Self {
            decoy: PasswordRecord(upload),
            setup,
        }
    }

    /// The bytes to keep in the key file.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.setup.serialize().to_vec())
    }

    /// Answers a `RegistrationRequest` for `username` (canonical form). It
    /// costs one scalar multiplication and stores nothing.
    pub fn registration_response(
        &self,
        request: &[u8; REGISTRATION_REQUEST_LEN],
        username: &str,
    ) -> Result<[u8; REGISTRATION_RESPONSE_LEN], OpaqueError> {
        let request = RegistrationRequest::<Suite>::deserialize(request)?;
        let started = ServerRegistration::start(&self.setup, request, username.as_bytes())?;
        Ok(array(&started.message.serialize()))
    }

    /// Answers a `CredentialRequest` for `username` (canonical form) over
    /// the connection with `binding`. `record` is `None` for an unknown
    /// user: the answer is then made from a fake record (RFC 9807 §10.9)
    /// and has the same length and the same cost, so the two cannot be
    /// told apart.
    pub fn login_start(
        &self,
        rng: &mut impl CryptoRngCore,
        record: Option<&PasswordRecord>,
        request: &[u8; CREDENTIAL_REQUEST_LEN],
        username: &str,
        binding: &ChannelBinding,
    ) -> Result<(ServerLoginState, [u8; CREDENTIAL_RESPONSE_LEN]), OpaqueError> {
        let request = CredentialRequest::<Suite>::deserialize(request)?;
        let parsed = record.unwrap_or(&self.decoy).parse()?;
        let password_file = record.map(|_| parsed);
        let context = context(binding);
        let started = ServerLogin::start(
            rng,
            &self.setup,
            password_file,
            request,
            username.as_bytes(),
            ServerLoginParameters {
                context: Some(&context),
                identifiers: identifiers(username),
            },
        )?;
        Ok((
            ServerLoginState(started.state),
            array(&started.message.serialize()),
        ))
    }

    /// Registers `password` for `username` on the client's behalf: the
    /// one-time migration of an account whose Argon2id hash the server
    /// has just verified. Runs the client's key stretching here.
    pub fn register_with_password(
        &self,
        rng: &mut impl CryptoRngCore,
        password: &[u8],
        username: &str,
        ksf: &Argon2id,
    ) -> Result<PasswordRecord, OpaqueError> {
        let (client, request) = ClientRegistrationState::<Argon2id>::start(rng, password)?;
        let response = self.registration_response(&request, username)?;
        let (upload, _export_key) = client.finish(rng, password, &response, username, ksf)?;
        PasswordRecord::from_upload(&upload)
    }
}

impl ServerLoginState {
    /// Checks the client's `CredentialFinalization` (KE3): `Ok` only if the
    /// client knew the password and ran the login over this connection.
    pub fn finish(
        self,
        finalization: &[u8; CREDENTIAL_FINALIZATION_LEN],
        username: &str,
        binding: &ChannelBinding,
    ) -> Result<(), OpaqueError> {
        let finalization = CredentialFinalization::<Suite>::deserialize(finalization)?;
        let context = context(binding);
        self.0.finish(
            finalization,
            ServerLoginParameters {
                context: Some(&context),
                identifiers: identifiers(username),
            },
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn rng(seed: u8) -> ChaCha20Rng {
        ChaCha20Rng::from_seed([seed; 32])
    }

    /// Cheap costs: these tests check the protocol, not Argon2id.
    fn ksf() -> Argon2id {
        Stretch::CHEAPEST.argon2id().unwrap()
    }

    fn binding(b: u8) -> ChannelBinding {
        ChannelBinding::from_bytes([b; 32])
    }

    fn register(server: &ServerKeys, password: &[u8], user: &str) -> PasswordRecord {
        let mut r = rng(1);
        let (client, request) = ClientRegistrationState::start(&mut r, password).unwrap();
        let response = server.registration_response(&request, user).unwrap();
        let (upload, _) = client
            .finish(&mut r, password, &response, user, &ksf())
            .unwrap();
        PasswordRecord::from_upload(&upload).unwrap()
    }

    /// Runs a login; the client and the server may see different
    /// bindings (a relay) and the client may type another password.
    fn login(
        server: &ServerKeys,
        record: Option<&PasswordRecord>,
        password: &[u8],
        user: &str,
        client_binding: u8,
        server_binding: u8,
    ) -> Result<ExportKey, OpaqueError> {
        let mut r = rng(2);
        let (client, request) = ClientLoginState::start(&mut r, password)?;
        let (state, response) =
            server.login_start(&mut r, record, &request, user, &binding(server_binding))?;
        let (finalization, export_key) = client.finish(
            &mut r,
            password,
            &response,
            user,
            &binding(client_binding),
            &ksf(),
        )?;
        state.finish(&finalization, user, &binding(server_binding))?;
        Ok(export_key)
    }

    #[test]
    fn the_right_password_logs_in_and_gives_the_same_export_key_every_time() {
        let server = ServerKeys::generate(&mut rng(9));
        let record = register(&server, b"correct horse", "alice");
        let first = login(&server, Some(&record), b"correct horse", "alice", 5, 5).unwrap();
        let second = login(&server, Some(&record), b"correct horse", "alice", 6, 6).unwrap();
        assert_eq!(first.expose(), second.expose());
    }

    #[test]
    fn a_wrong_password_an_unknown_user_and_another_name_all_fail_alike() {
        let server = ServerKeys::generate(&mut rng(9));
        let record = register(&server, b"correct horse", "alice");
        for result in [
            login(&server, Some(&record), b"wrong horse", "alice", 5, 5),
            login(&server, None, b"correct horse", "alice", 5, 5),
            // Bob's name with Alice's record: another OPRF key, another identity.
            login(&server, Some(&record), b"correct horse", "bob", 5, 5),
        ] {
            assert_eq!(result.unwrap_err(), OpaqueError::AuthenticationFailed);
        }
    }

    #[test]
    fn a_login_relayed_from_another_connection_fails() {
        let server = ServerKeys::generate(&mut rng(9));
        let record = register(&server, b"correct horse", "alice");
        // The client's connection and the server's differ: the client
        // refuses the server's MAC before sending its own.
        assert_eq!(
            login(&server, Some(&record), b"correct horse", "alice", 5, 6).unwrap_err(),
            OpaqueError::AuthenticationFailed
        );
    }

    /// Asked twice with the same blinded element, a known user's answer
    /// carries the same OPRF evaluation (its OPRF key is fixed): an unknown
    /// user's must too, or two probes would tell them apart. The rest of
    /// the answer is fresh every time, for both.
    #[test]
    fn an_unknown_users_answer_behaves_like_a_known_users_across_probes() {
        let server = ServerKeys::generate(&mut rng(9));
        let record = register(&server, b"correct horse", "alice");
        let (_, request) = ClientLoginState::<Argon2id>::start(&mut rng(4), b"x").unwrap();
        for (record, user) in [(Some(&record), "alice"), (None, "nobody")] {
            let answer = |seed| {
                server
                    .login_start(&mut rng(seed), record, &request, user, &binding(1))
                    .unwrap()
                    .1
            };
            let (first, second) = (answer(5), answer(6));
            assert_eq!(first[..32], second[..32], "{user}: the OPRF evaluation");
            assert_ne!(first[32..], second[32..], "{user}: nonces and key shares");
        }
        // And an unknown name's evaluation is its own, not another user's.
        let (_, alice) = server
            .login_start(&mut rng(7), Some(&record), &request, "alice", &binding(1))
            .unwrap();
        let (_, nobody) = server
            .login_start(&mut rng(7), None, &request, "nobody", &binding(1))
            .unwrap();
        assert_ne!(alice[..32], nobody[..32]);
    }

    #[test]
    fn keys_survive_a_round_trip_through_bytes_and_records_keep_working() {
        let server = ServerKeys::generate(&mut rng(9));
        let record = register(&server, b"correct horse", "alice");
        let reloaded = ServerKeys::from_bytes(&server.to_bytes(), &mut rng(10)).unwrap();
        login(&reloaded, Some(&record), b"correct horse", "alice", 1, 1).unwrap();
        assert!(ServerKeys::from_bytes(&server.to_bytes()[1..], &mut rng(10)).is_err());
        let mut longer = server.to_bytes().to_vec();
        longer.push(0);
        assert!(ServerKeys::from_bytes(&longer, &mut rng(10)).is_err());
    }

    #[test]
    fn a_server_side_migration_record_logs_in_with_the_clients_stretching() {
        let server = ServerKeys::generate(&mut rng(9));
        let record = server
            .register_with_password(&mut rng(11), b"old password", "carol", &ksf())
            .unwrap();
        login(&server, Some(&record), b"old password", "carol", 2, 2).unwrap();
    }

    #[test]
    fn malformed_points_are_refused_without_panicking() {
        let server = ServerKeys::generate(&mut rng(9));
        assert_eq!(
            server.registration_response(&[0xff; REGISTRATION_REQUEST_LEN], "alice"),
            Err(OpaqueError::Malformed)
        );
        // The identity element is not a valid blinded element either.
        assert!(server
            .registration_response(&[0; REGISTRATION_REQUEST_LEN], "alice")
            .is_err());
        assert!(server
            .login_start(
                &mut rng(1),
                None,
                &[0xff; CREDENTIAL_REQUEST_LEN],
                "alice",
                &binding(1)
            )
            .is_err());
        assert_eq!(
            PasswordRecord::from_upload(&[0xff; REGISTRATION_UPLOAD_LEN]),
            Err(OpaqueError::Malformed)
        );
    }

    #[test]
    fn message_lengths_are_the_published_ones() {
        let server = ServerKeys::generate(&mut rng(9));
        // ServerSetup: OPRF seed 64 + private key 32 + fake-record public key 32.
        assert_eq!(server.to_bytes().len(), 128);
    }
}
