#!/usr/bin/env bash
# Where the desktop client's login CPU goes (BENCHMARKS.md, issue 13): a
# server and an account on loopback, then `securechat-gui --connect` under
# Xvfb; when the screen probe shows the chat page, the CPU time of each of
# the GUI's threads (/proc/PID/task/*/stat; 10 ms ticks). The stretching
# runs on client-core's threads (`securechat-net`), never on the UI thread
# (`securechat-gui`, whose time is drawing).
#
#   scripts/gui-login-cpu.sh [RUNS]      (debug build; needs Xvfb)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
cargo build -q -p server -p cli -p client-slint
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
target/debug/securechat-server --data-dir "$work/data" --listen "127.0.0.1:$port" \
    >"$work/server.out" 2>"$work/server.log" &
for _ in $(seq 1 100); do grep -q listening "$work/server.out" && break; sleep 0.1; done
export SECURECHAT_PASSWORD="gui login cpu password"
target/debug/securechat-cli -s "127.0.0.1:$port" -u gui --register --accept-new-key \
    --known-servers "$work/known" --send "hello" >/dev/null
Xvfb :93 -screen 0 1280x800x24 >/dev/null 2>&1 &
sleep 1
tck=$(getconf CLK_TCK)
for run in $(seq 1 "$runs"); do
    rm -f "$work/probe"
    DISPLAY=:93 target/debug/securechat-gui --server "127.0.0.1:$port" --user gui \
        --known-servers "$work/known" --connect --screen-probe "$work/probe" \
        >/dev/null 2>"$work/gui.log" &
    gui=$!
    for _ in $(seq 1 600); do grep -q "page chat" "$work/probe" 2>/dev/null && break; sleep 0.05; done
    sleep 0.3
    echo "run $run (ms of CPU per thread, from start to the chat page):"
    for t in /proc/$gui/task/*; do
        read -r ut st <<<"$(awk '{print $14, $15}' "$t/stat")"
        echo "$(cat "$t/comm") $(( (ut + st) * 1000 / tck ))"
    done | awk '{a[$1] += $2} END {for (k in a) printf "  %-16s %5d\n", k, a[k]}'
    kill "$gui"; wait "$gui" 2>/dev/null || true
done
