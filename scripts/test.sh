#!/usr/bin/env bash
# The project's test command (README quick start, and what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
