//! Cost of one handshake on each side, and of sealing/opening a record.
//! `cargo bench -p proto-core --bench handshake_and_record`; figures go to BENCHMARKS.md.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use proto_core::message::ResumeToken;
use proto_core::record::{ContentType, RecordOpener, RecordSealer};
use proto_core::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroizing;

fn rng(seed: u64) -> Box<ChaCha20Rng> {
    Box::new(ChaCha20Rng::seed_from_u64(seed))
}

fn client_hello(seed: u64, config: &ClientConfig) -> (ClientConnection, Vec<u8>) {
    let mut c = ClientConnection::new(config.clone(), rng(seed));
    let mut out = Vec::new();
    c.drain_transmit(&mut out);
    (c, out)
}

/// The three steps of one handshake, each timed alone: the client's hello
/// (`hello` names it), the server's answer, the client's finish.
fn bench_handshake(
    c: &mut Criterion,
    group: &str,
    hello: &str,
    client: ClientConfig,
    server: ServerConfig,
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(30);
    g.bench_function(format!("{hello} (client keygen)"), |b| {
        let mut seed = 0;
        b.iter(|| {
            seed += 1;
            client_hello(seed, &client)
        })
    });
    g.bench_function(format!("server (process {hello}, answer)"), |b| {
        let (_, hello) = client_hello(1, &client);
        let mut seed = 100;
        b.iter_batched(
            || {
                seed += 1;
                ServerConnection::new(server.clone(), rng(seed))
            },
            |mut s| {
                s.handle_input(&hello).unwrap();
                let mut out = Vec::new();
                s.drain_transmit(&mut out);
                out
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("client (process server flight, Finished)", |b| {
        b.iter_batched(
            || {
                let (c, hello) = client_hello(7, &client);
                let mut s = ServerConnection::new(server.clone(), rng(8));
                s.handle_input(&hello).unwrap();
                let mut flight = Vec::new();
                s.drain_transmit(&mut flight);
                (c, flight)
            },
            |(mut c, flight)| {
                c.handle_input(&flight).unwrap();
                assert!(c.is_established());
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn handshake(c: &mut Criterion) {
    let id = Arc::new(ServerIdentity::from_seed(&[1; 32]));
    let client = ClientConfig::new(ServerTrust::Pinned(id.public_key()));
    bench_handshake(c, "handshake", "ClientHello", client, ServerConfig::new(id));
}

/// A store holding one key, as the server's token table would.
#[derive(Debug)]
struct OneKey(ResumptionPsk);

impl PskStore for OneKey {
    fn find(&self, id: &[u8; 32]) -> Option<ResumptionPsk> {
        (self.0.id() == *id).then(|| self.0.clone())
    }
}

/// The same three steps for a resumed handshake (no ffdhe3072).
fn resumed_handshake(c: &mut Criterion) {
    let id = Arc::new(ServerIdentity::from_seed(&[1; 32]));
    let psk = ResumptionPsk::from_token(&ResumeToken::from_bytes([3; 32]));
    let client = ClientConfig {
        resume: Some(psk.clone()),
        ..ClientConfig::new(ServerTrust::Pinned(id.public_key()))
    };
    let server = ServerConfig {
        psks: Some(Arc::new(OneKey(psk))),
        ..ServerConfig::new(id)
    };
    bench_handshake(c, "resumed handshake", "ResumeHello", client, server);
}

fn records(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    for size in [64usize, 1024, 16 * 1024] {
        let payload = vec![0x61u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("seal {size} B"), |b| {
            let mut sealer = RecordSealer::new(Zeroizing::new([5; 32]));
            let mut out = Vec::with_capacity(size + 64);
            b.iter(|| {
                out.clear();
                sealer
                    .seal(ContentType::Application, &payload, [9; 16], &mut out)
                    .unwrap();
            })
        });
        g.bench_function(format!("seal+open {size} B"), |b| {
            let mut sealer = RecordSealer::new(Zeroizing::new([5; 32]));
            let mut opener = RecordOpener::new(Zeroizing::new([5; 32]));
            let mut out = Vec::with_capacity(size + 64);
            b.iter(|| {
                out.clear();
                sealer
                    .seal(ContentType::Application, &payload, [9; 16], &mut out)
                    .unwrap();
                opener.open(&out, u64::MAX).unwrap().1.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, handshake, resumed_handshake, records);
criterion_main!(benches);
