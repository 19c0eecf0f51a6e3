//! Cost of an OPAQUE registration and login on each side.
//! `cargo bench -p proto-core --bench opaque_login`; figures go to BENCHMARKS.md.
//!
//! The server's cost per login is `server login_start` + `server finish`;
//! the client's is `client login (Argon2id)`, of which the stretching is
//! nearly all (`client login (no stretching)` shows the rest).

use criterion::{criterion_group, criterion_main, Criterion};
use proto_core::opaque::{
    Argon2id, ClientLoginState, ClientRegistrationState, Identity, PasswordRecord, ServerKeys,
    Stretch,
};
use proto_core::ChannelBinding;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const USER: &str = "alice";
const PASSWORD: &[u8] = b"correct horse battery staple";

fn binding() -> ChannelBinding {
    ChannelBinding::from_bytes([5; 32])
}

fn registered(server: &ServerKeys, rng: &mut ChaCha20Rng) -> PasswordRecord {
    let (client, request) = ClientRegistrationState::<Argon2id>::start(rng, PASSWORD).unwrap();
    let response = server.registration_response(&request, USER).unwrap();
    let stretch = Stretch::RECOMMENDED.argon2id().unwrap();
    let (upload, _) = client
        .finish(rng, PASSWORD, &response, USER, &stretch)
        .unwrap();
    PasswordRecord::from_upload(&upload).unwrap()
}

fn server_side(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let server = ServerKeys::generate(&mut rng);
    let record = registered(&server, &mut rng);
    let (_, request) = ClientLoginState::<Argon2id>::start(&mut rng, PASSWORD).unwrap();
    let mut g = c.benchmark_group("opaque server");
    g.bench_function("login_start (known user)", |b| {
        b.iter(|| {
            server
                .login_start(&mut rng, Some(&record), &request, USER, &binding())
                .unwrap()
        })
    });
    g.bench_function("login_start (unknown user: fake record)", |b| {
        b.iter(|| {
            server
                .login_start(&mut rng, None, &request, "nobody", &binding())
                .unwrap()
        })
    });
    g.bench_function("finish (verify KE3)", |b| {
        b.iter_batched(
            || {
                let (_, request) = ClientLoginState::<Identity>::start(&mut rng, PASSWORD).unwrap();
                let (state, _) = server
                    .login_start(&mut rng, Some(&record), &request, USER, &binding())
                    .unwrap();
                state
            },
            // A wrong proof costs what a right one costs: one MAC.
            |state| state.finish(&[0; 64], USER, &binding()),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("registration_response", |b| {
        let (_, request) = ClientRegistrationState::<Argon2id>::start(&mut rng, PASSWORD).unwrap();
        b.iter(|| server.registration_response(&request, USER).unwrap())
    });
    g.finish();
}

fn client_side(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let server = ServerKeys::generate(&mut rng);
    let record = registered(&server, &mut rng);
    let mut g = c.benchmark_group("opaque client");
    g.sample_size(20);
    g.bench_function("login (Argon2id m=19 MiB, t=2)", |b| {
        let stretch = Stretch::RECOMMENDED.argon2id().unwrap();
        b.iter_batched(
            || {
                let (client, request) =
                    ClientLoginState::<Argon2id>::start(&mut rng, PASSWORD).unwrap();
                let (_, response) = server
                    .login_start(&mut rng, Some(&record), &request, USER, &binding())
                    .unwrap();
                (client, response)
            },
            |(client, response)| {
                let mut rng = ChaCha20Rng::seed_from_u64(3);
                client
                    .finish(&mut rng, PASSWORD, &response, USER, &binding(), &stretch)
                    .unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, server_side, client_side);
criterion_main!(benches);
