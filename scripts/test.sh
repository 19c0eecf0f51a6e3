#!/usr/bin/env bash
# The project's test command (README quick start, and what CI runs).
# Installs the Debian packages the GUI tests need (Xvfb, fonts) if missing,
# then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-debian-packages.sh
cargo test --workspace --all-targets
