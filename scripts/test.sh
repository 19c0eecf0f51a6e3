#!/usr/bin/env bash
# The project's test command (README quick start, and what CI runs).
# Installs the Debian packages the GUI tests need (Xvfb, fonts) if missing,
# then builds every crate of the workspace once, with the lints, and runs
# every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-debian-packages.sh

# Lints ride on the test build: clippy-driver is rustc plus clippy's lints,
# and cargo runs it for the workspace's own crates only (dependencies are
# compiled by rustc as usual). So the workspace compiles once, not once
# for `cargo clippy` and again for `cargo test`; a warning fails the build.
# (`cargo clippy --workspace --all-targets -- -D warnings` checks the same.)
if ! command -v clippy-driver >/dev/null 2>&1; then
  rustup component add clippy
fi
export RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

cargo test --workspace --all-targets
