//! RFC 9807 (OPAQUE) Appendix C real test vectors 1 and 2 (OPRF
//! ristretto255-SHA512, 3DH over ristretto255 with SHA-512, KSF Identity,
//! context "OPAQUE-POC"), reproduced through opaque-ke's public API only.
//!
//! The hex below is copied from the RFC text (draft-irtf-cfrg-opaque-18, the
//! draft published as RFC 9807; Appendix D.1.1 and D.1.2 there), keeping the
//! RFC's line breaks so each value can be compared with the text by eye.
//!
//! The RFC's random inputs reach opaque-ke through a scripted RNG, one per
//! protocol step, that must be drained exactly by that step: a test that
//! passed while opaque-ke drew more, fewer or other bytes than we think it
//! does would prove nothing.

use opaque_ke::ksf::Identity;
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, Identifiers, ServerLogin, ServerLoginParameters,
    ServerRegistration, ServerSetup,
};
use rand_core::{CryptoRng, RngCore};

/// SecureChat's configuration with the RFC vectors' KSF (Identity): the
/// vectors check the OPRF, the envelope and the 3DH; Argon2id (which real
/// clients run) has its own vectors in RFC 9106 and no OPAQUE ones.
type Suite = proto_core::opaque::Suite<Identity>;

/// Hands out exactly the scripted bytes, in order, and panics past their end.
struct ScriptedRng {
    step: &'static str,
    bytes: Vec<u8>,
    pos: usize,
}

impl ScriptedRng {
    fn new(step: &'static str, parts: &[&[u8]]) -> Self {
        Self {
            step,
            bytes: parts.concat(),
            pos: 0,
        }
    }

    fn assert_drained(&self) {
        assert_eq!(
            self.pos,
            self.bytes.len(),
            "{}: {} scripted random bytes left unused",
            self.step,
            self.bytes.len() - self.pos
        );
    }
}

impl RngCore for ScriptedRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let end = self.pos + dest.len();
        assert!(
            end <= self.bytes.len(),
            "{}: asked for {} random bytes, {} scripted bytes left",
            self.step,
            dest.len(),
            self.bytes.len() - self.pos
        );
        dest.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for ScriptedRng {}

struct Vector {
    client_identity: Option<&'static str>,
    server_identity: Option<&'static str>,
    oprf_seed: &'static str,
    credential_identifier: &'static str,
    password: &'static str,
    envelope_nonce: &'static str,
    masking_nonce: &'static str,
    server_private_key: &'static str,
    server_public_key: &'static str,
    server_nonce: &'static str,
    client_nonce: &'static str,
    client_keyshare_seed: &'static str,
    server_keyshare_seed: &'static str,
    blind_registration: &'static str,
    blind_login: &'static str,
    // Intermediate values that are visible through the public API.
    client_public_key: &'static str,
    envelope: &'static str,
    // Outputs.
    registration_request: &'static str,
    registration_response: &'static str,
    registration_upload: &'static str,
    ke1: &'static str,
    ke2: &'static str,
    ke3: &'static str,
    export_key: &'static str,
    session_key: &'static str,
}

/// Context "OPAQUE-POC".
const CONTEXT: &str = "4f50415155452d504f43";

// Inputs and outputs shared by vectors 1 and 2 (identical in the RFC text).
const OPRF_SEED: &str = concat!(
    "f433d0227b0b9dd54f7c4422b600e764e47fb503f1f9a0f0a47c6606b0",
    "54a7fdc65347f1a08f277e22358bbabe26f823fca82c7848e9a75661f4ec5d5c1989e",
    "f",
);
const CREDENTIAL_IDENTIFIER: &str = "31323334";
const PASSWORD: &str = "436f7272656374486f72736542617474657279537461706c65";
const ENVELOPE_NONCE: &str = concat!(
    "ac13171b2f17bc2c74997f0fce1e1f35bec6b91fe2e12dbd323d2",
    "3ba7a38dfec",
);
const MASKING_NONCE: &str = concat!(
    "38fe59af0df2c79f57b8780278f5ae47355fe1f817119041951c80",
    "f612fdfc6d",
);
const SERVER_PRIVATE_KEY: &str = concat!(
    "47451a85372f8b3537e249d7b54188091fb18edde78094b43",
    "e2ba42b5eb89f0d",
);
const SERVER_PUBLIC_KEY: &str = concat!(
    "b2fe7af9f48cc502d016729d2fe25cdd433f2c4bc904660b2a",
    "382c9b79df1a78",
);
const SERVER_NONCE: &str = concat!(
    "71cd9960ecef2fe0d0f7494986fa3d8b2bb01963537e60efb13981e",
    "138e3d4a1",
);
const CLIENT_NONCE: &str = concat!(
    "da7e07376d6d6f034cfa9bb537d11b8c6b4238c334333d1f0aebb38",
    "0cae6a6cc",
);
const CLIENT_KEYSHARE_SEED: &str = concat!(
    "82850a697b42a505f5b68fcdafce8c31f0af2b581f063cf",
    "1091933541936304b",
);
const SERVER_KEYSHARE_SEED: &str = concat!(
    "05a4f54206eef1ba2f615bc0aa285cb22f26d1153b5b40a",
    "1e85ff80da12f982f",
);
const BLIND_REGISTRATION: &str = concat!(
    "76cfbfe758db884bebb33582331ba9f159720ca8784a2a070",
    "a265d9c2d6abe01",
);
const BLIND_LOGIN: &str = concat!(
    "6ecc102d2e7a7cf49617aad7bbe188556792d4acd60a1a8a8d2b65d4",
    "b0790308",
);
const CLIENT_PUBLIC_KEY: &str = concat!(
    "76a845464c68a5d2f7e442436bb1424953b17d3e2e289ccbac",
    "cafb57ac5c3675",
);
const REGISTRATION_REQUEST: &str = concat!(
    "5059ff249eb1551b7ce4991f3336205bde44a105a032e74",
    "7d21bf382e75f7a71",
);
const REGISTRATION_RESPONSE: &str = concat!(
    "7408a268083e03abc7097fc05b587834539065e86fb0c7",
    "b6342fcf5e01e5b019b2fe7af9f48cc502d016729d2fe25cdd433f2c4bc904660b2a3",
    "82c9b79df1a78",
);
const KE1: &str = concat!(
    "c4dedb0ba6ed5d965d6f250fbe554cd45cba5dfcce3ce836e4aee778aa3cd44d",
    "da7e07376d6d6f034cfa9bb537d11b8c6b4238c334333d1f0aebb380cae6a6cc6e29b",
    "ee50701498605b2c085d7b241ca15ba5c32027dd21ba420b94ce60da326",
);
const EXPORT_KEY: &str = concat!(
    "1ef15b4fa99e8a852412450ab78713aad30d21fa6966c9b8c9fb3262a",
    "970dc62950d4dd4ed62598229b1b72794fc0335199d9f7fcc6eaedde92cc04870e63f",
    "16",
);

const fn shared_inputs() -> Vector {
    Vector {
        client_identity: None,
        server_identity: None,
        oprf_seed: OPRF_SEED,
        credential_identifier: CREDENTIAL_IDENTIFIER,
        password: PASSWORD,
        envelope_nonce: ENVELOPE_NONCE,
        masking_nonce: MASKING_NONCE,
        server_private_key: SERVER_PRIVATE_KEY,
        server_public_key: SERVER_PUBLIC_KEY,
        server_nonce: SERVER_NONCE,
        client_nonce: CLIENT_NONCE,
        client_keyshare_seed: CLIENT_KEYSHARE_SEED,
        server_keyshare_seed: SERVER_KEYSHARE_SEED,
        blind_registration: BLIND_REGISTRATION,
        blind_login: BLIND_LOGIN,
        client_public_key: CLIENT_PUBLIC_KEY,
        envelope: "",
        registration_request: REGISTRATION_REQUEST,
        registration_response: REGISTRATION_RESPONSE,
        registration_upload: "",
        ke1: KE1,
        ke2: "",
        ke3: "",
        export_key: EXPORT_KEY,
        session_key: "",
    }
}

/// OPAQUE-3DH Real Test Vector 1: no identities (they default to the public keys).
const VECTOR_1: Vector = Vector {
    envelope: concat!(
        "ac13171b2f17bc2c74997f0fce1e1f35bec6b91fe2e12dbd323d23ba7a3",
        "8dfec634b0f5b96109c198a8027da51854c35bee90d1e1c781806d07d49b76de6a28b",
        "8d9e9b6c93b9f8b64d16dddd9c5bfb5fea48ee8fd2f75012a8b308605cdd8ba5",
    ),
    registration_upload: concat!(
        "76a845464c68a5d2f7e442436bb1424953b17d3e2e289ccb",
        "accafb57ac5c36751ac5844383c7708077dea41cbefe2fa15724f449e535dd7dd562e",
        "66f5ecfb95864eadddec9db5874959905117dad40a4524111849799281fefe3c51fa8",
        "2785c5ac13171b2f17bc2c74997f0fce1e1f35bec6b91fe2e12dbd323d23ba7a38dfe",
        "c634b0f5b96109c198a8027da51854c35bee90d1e1c781806d07d49b76de6a28b8d9e",
        "9b6c93b9f8b64d16dddd9c5bfb5fea48ee8fd2f75012a8b308605cdd8ba5",
    ),
    ke2: concat!(
        "7e308140890bcde30cbcea28b01ea1ecfbd077cff62c4def8efa075aabcbb471",
        "38fe59af0df2c79f57b8780278f5ae47355fe1f817119041951c80f612fdfc6dd6ec6",
        "0bcdb26dc455ddf3e718f1020490c192d70dfc7e403981179d8073d1146a4f9aa1ced",
        "4e4cd984c657eb3b54ced3848326f70331953d91b02535af44d9fedc80188ca46743c",
        "52786e0382f95ad85c08f6afcd1ccfbff95e2bdeb015b166c6b20b92f832cc6df01e0",
        "b86a7efd92c1c804ff865781fa93f2f20b446c8371b671cd9960ecef2fe0d0f749498",
        "6fa3d8b2bb01963537e60efb13981e138e3d4a1c4f62198a9d6fa9170c42c3c71f197",
        "1b29eb1d5d0bd733e40816c91f7912cc4a660c48dae03e57aaa38f3d0cffcfc21852e",
        "bc8b405d15bd6744945ba1a93438a162b6111699d98a16bb55b7bdddfe0fc5608b23d",
        "a246e7bd73b47369169c5c90",
    ),
    ke3: concat!(
        "4455df4f810ac31a6748835888564b536e6da5d9944dfea9e34defb9575fe5e2",
        "661ef61d2ae3929bcf57e53d464113d364365eb7d1a57b629707ca48da18e442",
    ),
    session_key: concat!(
        "42afde6f5aca0cfa5c163763fbad55e73a41db6b41bc87b8e7b62214",
        "a8eedc6731fa3cb857d657ab9b3764b89a84e91ebcb4785166fbb02cedfcbdfda215b",
        "96f",
    ),
    ..shared_inputs()
};

/// OPAQUE-3DH Real Test Vector 2: client identity "alice", server identity "bob".
const VECTOR_2: Vector = Vector {
    client_identity: Some("616c696365"),
    server_identity: Some("626f62"),
    envelope: concat!(
        "ac13171b2f17bc2c74997f0fce1e1f35bec6b91fe2e12dbd323d23ba7a3",
        "8dfec1ac902dc5589e9a5f0de56ad685ea8486210ef41449cd4d8712828913c5d2b68",
        "0b2b3af4a26c765cff329bfb66d38ecf1d6cfa9e7a73c222c6efe0d9520f7d7c",
    ),
    registration_upload: concat!(
        "76a845464c68a5d2f7e442436bb1424953b17d3e2e289ccb",
        "accafb57ac5c36751ac5844383c7708077dea41cbefe2fa15724f449e535dd7dd562e",
        "66f5ecfb95864eadddec9db5874959905117dad40a4524111849799281fefe3c51fa8",
        "2785c5ac13171b2f17bc2c74997f0fce1e1f35bec6b91fe2e12dbd323d23ba7a38dfe",
        "c1ac902dc5589e9a5f0de56ad685ea8486210ef41449cd4d8712828913c5d2b680b2b",
        "3af4a26c765cff329bfb66d38ecf1d6cfa9e7a73c222c6efe0d9520f7d7c",
    ),
    ke2: concat!(
        "7e308140890bcde30cbcea28b01ea1ecfbd077cff62c4def8efa075aabcbb471",
        "38fe59af0df2c79f57b8780278f5ae47355fe1f817119041951c80f612fdfc6dd6ec6",
        "0bcdb26dc455ddf3e718f1020490c192d70dfc7e403981179d8073d1146a4f9aa1ced",
        "4e4cd984c657eb3b54ced3848326f70331953d91b02535af44d9fea502150b67fe367",
        "95dd8914f164e49f81c7688a38928372134b7dccd50e09f8fed9518b7b2f94835b3c4",
        "fe4c8475e7513f20eb97ff0568a39caee3fd6251876f71cd9960ecef2fe0d0f749498",
        "6fa3d8b2bb01963537e60efb13981e138e3d4a1c4f62198a9d6fa9170c42c3c71f197",
        "1b29eb1d5d0bd733e40816c91f7912cc4a292371e7809a9031743e943fb3b56f51de9",
        "03552fc91fba4e7419029951c3970b2e2f0a9dea218d22e9e4e0000855bb6421aa361",
        "0d6fc0f4033a6517030d4341",
    ),
    ke3: concat!(
        "7a026de1d6126905736c3f6d92463a08d209833eb793e46d0f7f15b3e0f62c76",
        "43763c02bbc6b8d3d15b63250cae98171e9260f1ffa789750f534ac11a0176d5",
    ),
    session_key: concat!(
        "ae7951123ab5befc27e62e63f52cf472d6236cb386c968cc47b7e34f",
        "866aa4bc7638356a73cfce92becf39d6a7d32a1861f12130e824241fe6cab34fbd471",
        "a57",
    ),
    ..shared_inputs()
};

/// Decodes `value` and checks it has the length RFC 9807 gives `name` for
/// this suite (Nh = Nm = Nx = 64, Npk = Nsk = Nok = Nn = 32), so a value
/// clipped or doubled while copying fails here rather than somewhere obscure.
fn unhex(name: &str, value: &str, expected_len: usize) -> Vec<u8> {
    let bytes = hex::decode(value).unwrap_or_else(|e| panic!("{name}: bad hex: {e}"));
    assert_eq!(bytes.len(), expected_len, "{name}: length");
    bytes
}

/// Compares as hex so a mismatch prints like the RFC text.
fn assert_hex(name: &str, actual: &[u8], expected: &[u8]) {
    assert_eq!(hex::encode(actual), hex::encode(expected), "{name}");
}

/// Ristretto255's random scalar (voprf's `random_scalar`, curve25519-dalek's
/// `Scalar::random`) draws 64 bytes and reduces them mod the group order. The
/// RFC's blinds are canonical little-endian scalars, so blind || 32 zero bytes
/// reduces to the blind itself.
fn wide_scalar(scalar: &[u8]) -> Vec<u8> {
    [scalar, &[0u8; 32]].concat()
}

fn run(v: &Vector) {
    const NH: usize = 64;
    const NN: usize = 32;
    const NPK: usize = 32;
    const NSK: usize = 32;
    const NOK: usize = 32;
    const ENVELOPE: usize = NN + NH;

    let context = unhex("context", CONTEXT, 10);
    let client_identity = v
        .client_identity
        .map(|s| unhex("client_identity", s, s.len() / 2));
    let server_identity = v
        .server_identity
        .map(|s| unhex("server_identity", s, s.len() / 2));
    let oprf_seed = unhex("oprf_seed", v.oprf_seed, NH);
    let credential_identifier = unhex("credential_identifier", v.credential_identifier, 4);
    let password = unhex("password", v.password, 25);
    let envelope_nonce = unhex("envelope_nonce", v.envelope_nonce, NN);
    let masking_nonce = unhex("masking_nonce", v.masking_nonce, NN);
    let server_private_key = unhex("server_private_key", v.server_private_key, NSK);
    let server_public_key = unhex("server_public_key", v.server_public_key, NPK);
    let server_nonce = unhex("server_nonce", v.server_nonce, NN);
    let client_nonce = unhex("client_nonce", v.client_nonce, NN);
    let client_keyshare_seed = unhex("client_keyshare_seed", v.client_keyshare_seed, NSK);
    let server_keyshare_seed = unhex("server_keyshare_seed", v.server_keyshare_seed, NSK);
    let blind_registration = unhex("blind_registration", v.blind_registration, NOK);
    let blind_login = unhex("blind_login", v.blind_login, NOK);
    let client_public_key = unhex("client_public_key", v.client_public_key, NPK);
    let envelope = unhex("envelope", v.envelope, ENVELOPE);
    let registration_request = unhex("registration_request", v.registration_request, NOK);
    let registration_response = unhex("registration_response", v.registration_response, NOK + NPK);
    let registration_upload = unhex(
        "registration_upload",
        v.registration_upload,
        NPK + NH + ENVELOPE,
    );
    let ke1 = unhex("KE1", v.ke1, NOK + NN + NPK);
    let ke2 = unhex("KE2", v.ke2, NOK + NN + (NPK + ENVELOPE) + NN + NPK + NH);
    let ke3 = unhex("KE3", v.ke3, NH);
    let export_key = unhex("export_key", v.export_key, NH);
    let session_key = unhex("session_key", v.session_key, NH);

    let identifiers = Identifiers {
        client: client_identity.as_deref(),
        server: server_identity.as_deref(),
    };

    // ServerSetup serializes as oprf_seed || server_private_key || dummy_pk;
    // the public key is derived from the private one. dummy_pk only stands in
    // for unregistered users' records, which these vectors never touch, so the
    // server's own public key (a valid point) fills the slot.
    let server_setup = ServerSetup::<Suite>::deserialize(
        &[&oprf_seed[..], &server_private_key, &server_public_key].concat(),
    )
    .expect("RFC server setup");
    assert_hex(
        "server_public_key is derived from server_private_key",
        server_setup.keypair().public().serialize().as_slice(),
        &server_public_key,
    );

    // Registration.
    let mut rng = ScriptedRng::new(
        "client registration start",
        &[&wide_scalar(&blind_registration)],
    );
    let client_reg = ClientRegistration::<Suite>::start(&mut rng, &password).unwrap();
    rng.assert_drained();
    assert_hex(
        "registration_request",
        client_reg.message.serialize().as_slice(),
        &registration_request,
    );

    let server_reg = ServerRegistration::<Suite>::start(
        &server_setup,
        client_reg.message,
        &credential_identifier,
    )
    .unwrap();
    assert_hex(
        "registration_response",
        server_reg.message.serialize().as_slice(),
        &registration_response,
    );

    let mut rng = ScriptedRng::new("client registration finish", &[&envelope_nonce]);
    let client_reg_finish = client_reg
        .state
        .finish(
            &mut rng,
            &password,
            server_reg.message,
            ClientRegistrationFinishParameters::new(identifiers, None),
        )
        .unwrap();
    rng.assert_drained();
    let upload = client_reg_finish.message.serialize();
    assert_hex(
        "registration_upload",
        upload.as_slice(),
        &registration_upload,
    );
    assert_hex("client_public_key", &upload[..NPK], &client_public_key);
    assert_hex("envelope", &upload[NPK + NH..], &envelope);
    assert_hex(
        "export_key at registration",
        client_reg_finish.export_key.as_slice(),
        &export_key,
    );
    let password_file = ServerRegistration::<Suite>::finish(client_reg_finish.message);

    // Login. opaque-ke derives each 3DH key share from a 32-byte seed with
    // DeriveDiffieHellmanKeyPair, as the RFC does, so the RFC's keyshare seeds
    // are fed as they are.
    let mut rng = ScriptedRng::new(
        "client login start",
        &[
            &wide_scalar(&blind_login),
            &client_keyshare_seed,
            &client_nonce,
        ],
    );
    let client_login = ClientLogin::<Suite>::start(&mut rng, &password).unwrap();
    rng.assert_drained();
    assert_hex("KE1", client_login.message.serialize().as_slice(), &ke1);

    let server_params = ServerLoginParameters {
        context: Some(&context),
        identifiers,
    };
    // ServerLogin::start always builds a fake record (to stay constant-time
    // whether or not the user exists) and draws its 64-byte masking key
    // first, even when the real record is used; those bytes go nowhere.
    let fake_masking_key = [0u8; NH];
    let mut rng = ScriptedRng::new(
        "server login start",
        &[
            &fake_masking_key,
            &masking_nonce,
            &server_keyshare_seed,
            &server_nonce,
        ],
    );
    let server_login = ServerLogin::start(
        &mut rng,
        &server_setup,
        Some(password_file),
        client_login.message,
        &credential_identifier,
        server_params.clone(),
    )
    .unwrap();
    rng.assert_drained();
    assert_hex("KE2", server_login.message.serialize().as_slice(), &ke2);

    // The client's last step draws no randomness: an empty script proves it.
    let mut rng = ScriptedRng::new("client login finish", &[]);
    let client_finish = client_login
        .state
        .finish(
            &mut rng,
            &password,
            server_login.message,
            ClientLoginFinishParameters::new(Some(&context), identifiers, None),
        )
        .unwrap();
    rng.assert_drained();
    assert_hex("KE3", client_finish.message.serialize().as_slice(), &ke3);
    assert_hex(
        "export_key at login",
        client_finish.export_key.as_slice(),
        &export_key,
    );
    assert_hex(
        "client session_key",
        client_finish.session_key.as_slice(),
        &session_key,
    );
    assert_hex(
        "server_public_key recovered from the envelope",
        client_finish.server_s_pk.serialize().as_slice(),
        &server_public_key,
    );

    let server_finish = server_login
        .state
        .finish(client_finish.message, server_params)
        .unwrap();
    assert_hex(
        "server session_key",
        server_finish.session_key.as_slice(),
        &session_key,
    );
}

#[test]
fn rfc9807_real_vector_1_is_reproduced() {
    run(&VECTOR_1);
}

#[test]
fn rfc9807_real_vector_2_with_identities_is_reproduced() {
    run(&VECTOR_2);
}
