#!/usr/bin/env bash
# Reproduces every figure of issue 5, in order, and says where each landed.
#
#   scripts/bench-all.sh [--quick] [--idle-clients N] [--only LIST] [--out DIR]
#
#   1 idle      N logged-in connections held for 20 s: server memory per
#               connection (default 19,000: this container's hard open-file
#               limit is 20,000 per process and cannot be raised)
#   2 fanout    a room of 1,000, 10 senders, the rate x1.5 every 10 s step
#               from 10 msgs/s per sender until p99 > 100 ms, loss or send
#               lag: the most deliveries/s within bounds
#   3 latency   a room of 100, all sending 10 msgs/s (1,000 msgs/s in) of
#               64 B for 30 s: latency percentiles
#   4 storms    handshakes/s (8 workers) and logins/s (4 workers) for 20 s
#               each, over a room of 100 chatting at 100 msgs/s, with that
#               room's p99 measured meanwhile; and the same room alone
#   5 tls       figure 2 with every connection inside TLS
#   6 inspircd  scripts/compare-inspircd.sh: figures 2 and 3 (shorter)
#               against InspIRCd plain and with TLS, and the ratios
#
# Options:
#   --quick           every figure at reduced size (idle 2,000; shorter
#                     runs and fewer steps): a check that all of it works
#   --idle-clients N  connections for figure 1
#   --only LIST       comma-separated figure numbers, e.g. 2,5
#   --out DIR         results (default target/bench/all-STAMP)
#
# Load accounts live in LOAD_DATA_DIR (default target/bench-data) and are
# registered once (OPAQUE: each account's Argon2id runs once, in the load
# generator, ~21 ms, then is memoised); later runs log them in. A directory
# made before OPAQUE works too, but each account's first login migrates it
# (an Argon2id check and a new record on the server). Figure 1 at 19,000 is the long one: logins
# start at ~46/s but slow down as the room fills (each login receives the
# online list and is announced to everyone online), and one such run took
# 29 minutes here. Figures 2 to 6 take about 9 minutes together on the
# project's 2-core machine; --quick takes about 5.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-load.sh

quick=0
idle_clients=""
only="1,2,3,4,5,6"
out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1; shift ;;
        --idle-clients) idle_clients=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench-all.sh: unknown option $1" >&2; usage; exit 2 ;;
    esac
done
wants() { [[ ",$only," == *",$1,"* ]]; }

if [[ $quick == 1 ]]; then
    idle_clients=${idle_clients:-2000}
    idle_secs=5
    ramp_shape=(-n 1000 -s 10 -b 64 --start-rate 10 --step-factor 2 --step-secs 4 --max-steps 4 --p99-ms 100 --drain 5)
    room_secs=8
    storm_secs=6
    compare_args=(--room-secs 4 --ramp-step-secs 3 --ramp-max-steps 3)
else
    idle_clients=${idle_clients:-19000}
    idle_secs=20
    ramp_shape=(-n 1000 -s 10 -b 64 --start-rate 10 --step-factor 1.5 --step-secs 10 --max-steps 12 --p99-ms 100 --drain 5)
    room_secs=30
    storm_secs=20
    compare_args=()
fi

command -v jq >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
}
load_build
export LOAD_NO_BUILD=1
export LOAD_DATA_DIR=${LOAD_DATA_DIR:-$PWD/target/bench-data}
load_data_dir "$LOAD_DATA_DIR"

out=${out:-target/bench/all-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
summary="$out/summary.txt"
: >"$summary"
started=$(date +%s)

# say LINE...: a result line, on stdout and in the summary.
say() {
    echo "$*" | tee -a "$summary"
}

# figure FILE MODE ARGS...: one scripts/load.sh run, its JSON in FILE.
figure() {
    local file=$1
    shift
    local t0 status=0
    t0=$(date +%s)
    scripts/load.sh "$@" --json >"$file" || status=$?
    [[ -s "$file" ]] || echo '{"error":"no report"}' >"$file"
    echo "bench-all.sh: $(basename "$file") took $(( $(date +%s) - t0 )) s (exit $status)" >&2
}

# Prints one line of FILE's figures with jq FILTER (or the error).
show() {
    local label=$1 file=$2 filter=$3
    say "$label: $(jq -r "if .error then \"FAILED: \" + .error else ($filter) end" "$file") [$file]"
}
r2='def r2: . * 100 | round / 100;'

say "bench-all.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; accounts in $LOAD_DATA_DIR"

if wants 1; then
    f="$out/1-idle.json"
    figure "$f" idle -n "$idle_clients" -t "$idle_secs"
    show "1 idle" "$f" "$r2"'"\(.idle.clients) held; server RSS \(.idle.rss_before_kib / 1024 | r2) -> \(.idle.rss_after_kib / 1024 | r2) MiB = \(.idle.rss_per_connection_kib | r2) KiB per connection; joined at \(.join.joins_per_sec | r2)/s"'
fi

ramp_line="$r2"'"best \(.ramp.best_deliveries_per_sec // 0 | round) deliveries/s (\(.ramp.best_rate_per_sender // 0) msgs/s per sender); stopped: \(.ramp.stopped)"'
if wants 2; then
    f="$out/2-fanout.json"
    figure "$f" ramp "${ramp_shape[@]}"
    show "2 fanout" "$f" "$ramp_line"
fi

room_line="$r2"'"\(.room.deliveries_per_sec | round) deliveries/s, lost \(.room.lost); latency p50 \(.room.latency.p50_ms) p99 \(.room.latency.p99_ms) p99.9 \(.room.latency.p999_ms) ms; server CPU \(.room.cpu.server_cpu_pct // 0 | round) %"'
if wants 3; then
    f="$out/3-latency.json"
    figure "$f" room -n 100 -s 100 -r 10 -b 64 -t "$room_secs" --drain 5
    show "3 latency" "$f" "$room_line"
fi

if wants 4; then
    bg=(--room-clients 100 --room-senders 10 --room-rate 10 --room-bytes 64)
    f="$out/4-room-alone.json"
    figure "$f" room -n 100 -s 10 -r 10 -b 64 -t "$storm_secs" --drain 5
    show "4 room alone" "$f" "$room_line"
    storm_line="$r2"'"\(.storm.per_sec | r2)/s (\(.storm.failed) failed), handshake p50 \(.storm.handshake.p50_ms) ms\(if .storm.login then ", login p50 \(.storm.login.p50_ms) ms" else "" end); chat meanwhile p50 \(.room.latency.p50_ms) p99 \(.room.latency.p99_ms) ms, lost \(.room.lost)"'
    f="$out/4-handshakes.json"
    figure "$f" handshakes -c 8 -t "$storm_secs" "${bg[@]}"
    show "4 handshakes" "$f" "$storm_line"
    f="$out/4-logins.json"
    figure "$f" logins -c 4 -t "$storm_secs" "${bg[@]}"
    show "4 logins" "$f" "$storm_line"
fi

if wants 5; then
    f="$out/5-fanout-tls.json"
    figure "$f" --tls ramp "${ramp_shape[@]}"
    show "5 fanout TLS" "$f" "$ramp_line"
fi

if wants 6; then
    status=0
    scripts/compare-inspircd.sh "${compare_args[@]}" --out "$out/6-inspircd" \
        | tee "$out/6-inspircd.txt" || status=$?
    f="$out/6-inspircd/summary.json"
    if [[ -s "$f" ]]; then
        say "6 inspircd: $(jq -r '.ratios | to_entries[] | select(.value != null)
            | "\(.key) fanout \(.value.fanout // 0 | . * 100 | round / 100)x, room p99 \(.value.room_p99 // 0 | . * 100 | round / 100)x"' "$f" | paste -sd ';' -) [$f]"
    else
        say "6 inspircd: FAILED (exit $status) [$out/6-inspircd.txt]"
    fi
fi

say "all done in $(( ($(date +%s) - started) / 60 )) min; summary in $summary"
