#!/usr/bin/env bash
# Installs the Debian packages the GUI client and its tests need (Xvfb,
# ImageMagick for screenshots, fonts for CJK/Arabic/emoji, X11/GL runtime
# libraries). Idempotent: does nothing when all are present. Needs root or
# sudo only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t wanted < <(grep -v '^\s*#' client-slint/CI-PACKAGES.txt | grep -v '^\s*$')
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
