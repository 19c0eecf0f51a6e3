//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/<target>/`)
//! through the same entry points the fuzzers run, on the stable toolchain.

use std::path::Path;

use proto_core::fuzz_targets;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            run(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "empty corpus for {target}");
    n
}

#[test]
fn record_decoder_corpus_replays_without_panic() {
    replay("record_decoder", fuzz_targets::record_decoder);
}

#[test]
fn message_decoder_corpus_replays_without_panic() {
    replay("message_decoder", fuzz_targets::message_decoder);
}

#[test]
fn server_state_corpus_replays_without_panic() {
    replay("server_state", fuzz_targets::server_state);
}

#[test]
fn client_state_corpus_replays_without_panic() {
    replay("client_state", fuzz_targets::client_state);
}

#[test]
fn server_established_corpus_replays_without_panic() {
    replay("server_established", fuzz_targets::server_established);
}

#[test]
fn opaque_server_corpus_replays_without_panic() {
    replay("opaque_server", fuzz_targets::opaque_server);
}
