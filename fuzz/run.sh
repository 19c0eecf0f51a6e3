#!/usr/bin/env bash
# Runs every fuzz target for N seconds each (default 600) on the nightly
# toolchain, growing the committed corpus. Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(record_decoder message_decoder server_state client_state server_established opaque_server)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t for ${secs}s"
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=8192 \
    -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 25
done
