#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| proto_core::fuzz_targets::opaque_server(data));
