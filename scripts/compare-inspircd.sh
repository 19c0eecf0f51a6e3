#!/usr/bin/env bash
# SecureChat side by side with InspIRCd (Debian's `inspircd`, the daemon a
# self-hoster would run instead): the same latency and fanout workloads from
# the same load generator, one target after the other, in one run.
#
#   scripts/compare-inspircd.sh [options]
#
# Targets (default: all, in this order):
#   securechat      SecureChat on plain TCP: its own protocol already
#                   encrypts and authenticates every record
#   inspircd        InspIRCd on plain TCP: no encryption at all
#   inspircd-tls    InspIRCd with TLS (m_ssl_gnutls)
#   securechat-tls  SecureChat inside TLS as well (two layers)
# Like with like: securechat against inspircd-tls (both encrypt every
# message on every connection); inspircd is the unencrypted ceiling.
#
# Workloads (the same for every target):
#   room   latency: 100 clients, all sending 10 msgs/s of 64 B (1,000 msgs/s
#          in, ~99,000 deliveries/s out) for 10 s
#   ramp   fanout: 1,000 clients, 10 senders starting at 10 msgs/s each
#          (~100,000 deliveries/s), x1.5 every 5 s step until p99 passes
#          100 ms, deliveries are lost or senders fall 100 ms behind
#
# Options:
#   --targets LIST       comma-separated subset of the targets
#   --room-clients N     clients in the latency room (100)
#   --room-senders N     senders among them (100)
#   --room-rate R        msgs/s per sender (10)
#   --room-secs T        seconds of sending in the room workload (10)
#   --ramp-clients N     clients in the fanout room (1000)
#   --ramp-senders N     senders among them (10)
#   --ramp-start R       first step's msgs/s per sender (10)
#   --ramp-factor F      rate multiplier per step (1.5)
#   --ramp-step-secs T   seconds per step (5)
#   --ramp-max-steps N   at most N steps (10)
#   --p99-ms MS          the ramp's p99 bound (100)
#   --long               room 30 s; ramp steps of 10 s growing 1.25x, 20 max
#   --irc-quickack       IRC clients ACK every read at once (a diagnostic of
#                        InspIRCd's Nagle delays; real clients do not)
#   --perf               `perf record -g` the server during each workload
#                        (after the joins); top functions in DIR/perf-*.txt
#   --out DIR            results directory (default target/bench/compare-STAMP)
#
# Writes DIR/<target>-<workload>.json (securechat-load reports),
# DIR/summary.json (the table and the ratios) and prints the table.
# The default run takes about 6 minutes on the project's 2-core machine
# (the first one 20 s more, registering 1,000 load accounts).
#
# Environment: LOAD_DATA_DIR (SecureChat data dir with the load accounts,
# default target/bench-data), LOAD_NO_BUILD, LOAD_KEEP, LOAD_SERVER_CPUS,
# LOAD_CLIENT_CPUS (see scripts/lib-load.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-load.sh

targets="securechat,inspircd,inspircd-tls,securechat-tls"
room_clients=100
room_senders=100
room_rate=10
room_secs=10
ramp_clients=1000
ramp_senders=10
ramp_start=10
ramp_factor=1.5
ramp_step_secs=5
ramp_max_steps=10
p99_ms=100
perf=0
irc_extra=()
out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --targets) targets=$2; shift 2 ;;
        --room-clients) room_clients=$2; shift 2 ;;
        --room-senders) room_senders=$2; shift 2 ;;
        --room-rate) room_rate=$2; shift 2 ;;
        --room-secs) room_secs=$2; shift 2 ;;
        --ramp-clients) ramp_clients=$2; shift 2 ;;
        --ramp-senders) ramp_senders=$2; shift 2 ;;
        --ramp-start) ramp_start=$2; shift 2 ;;
        --ramp-factor) ramp_factor=$2; shift 2 ;;
        --ramp-step-secs) ramp_step_secs=$2; shift 2 ;;
        --ramp-max-steps) ramp_max_steps=$2; shift 2 ;;
        --p99-ms) p99_ms=$2; shift 2 ;;
        --long) room_secs=30; ramp_step_secs=10; ramp_factor=1.25; ramp_max_steps=20; shift ;;
        --perf) perf=1; shift ;;
        --irc-quickack) irc_extra+=(--irc-quickack); shift ;;
        --out) out=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare-inspircd.sh: unknown option $1" >&2; usage; exit 2 ;;
    esac
done
IFS=, read -r -a target_list <<<"$targets"
for t in "${target_list[@]}"; do
    case "$t" in
        securechat|securechat-tls|inspircd|inspircd-tls) ;;
        *) echo "compare-inspircd.sh: unknown target $t" >&2; exit 2 ;;
    esac
done

# What the comparison needs besides the workspace: the daemon itself, jq for
# the summary, openssl for the test certificates.
need=()
command -v inspircd >/dev/null || [[ -x /usr/sbin/inspircd ]] || need+=(inspircd)
command -v jq >/dev/null || need+=(jq)
command -v openssl >/dev/null || need+=(openssl)
[[ $perf == 1 ]] && ! command -v perf >/dev/null && need+=(linux-perf)
if [[ ${#need[@]} -gt 0 ]]; then
    echo "compare-inspircd.sh: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
inspircd_bin=$(command -v inspircd || echo /usr/sbin/inspircd)
# The package starts a system instance where an init system runs; it does
# not matter here (it listens on 6667/6697, this one on free ports).

load_build
load_raise_fd_limit

out=${out:-target/bench/compare-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
data_dir=${LOAD_DATA_DIR:-target/bench-data}
load_data_dir "$data_dir"
data_dir=$(cd "$data_dir" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/compare-inspircd.XXXXXX")
sc_pid=""
irc_pid=""
irc_job=""
perf_pid=""

cleanup() {
    local status=$?
    [[ -n "$perf_pid" ]] && stop_pid "$perf_pid" perf 10
    securechat_stop
    inspircd_stop
    if [[ -n "${LOAD_KEEP:-}" ]]; then
        echo "compare-inspircd.sh: logs and configs kept in $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_make_cert "$work"

# --- InspIRCd -------------------------------------------------------------

# inspircd_config FILE PLAIN_PORT TLS_PORT: one plain and one GnuTLS port on
# loopback, every flood protection out of the way (as SecureChat's limits
# are raised for its runs), no DNS or ident lookups, and a permanent
# channel so #bench exists between runs.
inspircd_config() {
    cat >"$1" <<EOF
<server name="bench.invalid" description="securechat-load comparison" network="bench">
<admin name="bench" nick="bench" email="bench@bench.invalid">
<pid file="$work/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="$work/inspircd.log">

<bind address="127.0.0.1" port="$2" type="clients">
<bind address="127.0.0.1" port="$3" type="clients" sslprofile="bench">
<module name="ssl_gnutls">
<sslprofile name="bench" provider="gnutls" certfile="$work/server.pem"
            keyfile="$work/server.key" requestclientcert="no">

<module name="permchannels">
<permchannels channel="#bench" modes="nt" topic="securechat-load">

<connect name="bench" allow="*" maxchans="20" timeout="120" pingfreq="10m"
         hardsendq="256M" softsendq="64M" recvq="1M"
         threshold="1000000" commandrate="1000000000" fakelag="no"
         localmax="100000" globalmax="100000" limit="100000" maxconnwarn="no"
         resolvehostnames="no" useident="no">
<performance netbuffersize="65536" somaxconn="4096" softlimit="100000"
             clonesonconnect="no" quietbursts="yes">
<options defaultmodes="nt">
EOF
}

irc_port=$(free_port)
ircs_port=$(free_port)
while [[ "$ircs_port" == "$irc_port" ]]; do ircs_port=$(free_port); done

# inspircd_start: the daemon in the foreground of a background subshell (as
# root it insists on --runasroot), ready once both ports listen. Sets
# irc_pid (the daemon's own, from its pid file) and irc_job (the subshell).
# InspIRCd 3.15 with m_ssl_gnutls loaded crashes (SIGSEGV) while shutting
# down on SIGTERM, after the run; it raises its own core limit, so it runs
# in $work, where the core file is deleted with the rest.
inspircd_start() {
    inspircd_config "$work/inspircd.conf" "$irc_port" "$ircs_port"
    rm -f "$work/inspircd.pid"
    local cmd=("$inspircd_bin" --nofork --config="$work/inspircd.conf")
    [[ $(id -u) == 0 ]] && cmd+=(--runasroot)
    [[ -n "${LOAD_SERVER_CPUS:-}" ]] && cmd=(taskset -c "$LOAD_SERVER_CPUS" "${cmd[@]}")
    (
        cd "$work"
        status=0
        "${cmd[@]}" || status=$?
        echo "inspircd exited with status $status"
    ) >"$work/inspircd.out" 2>&1 &
    irc_job=$!
    local _
    for _ in $(seq 200); do
        if [[ -s "$work/inspircd.pid" ]] && ss -Htln "sport = :$irc_port" | grep -q . \
            && ss -Htln "sport = :$ircs_port" | grep -q .; then
            irc_pid=$(<"$work/inspircd.pid")
            echo "compare-inspircd.sh: inspircd pid $irc_pid on 127.0.0.1:$irc_port (plain) and :$ircs_port (TLS)" >&2
            return 0
        fi
        if ! kill -0 "$irc_job" 2>/dev/null; then
            echo "compare-inspircd.sh: inspircd exited at startup:" >&2
            cat "$work/inspircd.out" "$work/inspircd.log" >&2 2>/dev/null || true
            irc_job=""
            return 1
        fi
        sleep 0.1
    done
    echo "compare-inspircd.sh: inspircd did not listen within 20 s" >&2
    return 1
}

inspircd_stop() {
    stop_pid "$irc_pid" inspircd
    stop_pid "$irc_job" "inspircd's subshell" 5
    irc_pid=""
    irc_job=""
    rm -f "$work"/core "$work"/core.*
}

# --- Running one workload -------------------------------------------------

room_args=(room -n "$room_clients" -s "$room_senders" -r "$room_rate" -b 64 -t "$room_secs" --drain 5)
ramp_args=(ramp -n "$ramp_clients" -s "$ramp_senders" -b 64 --start-rate "$ramp_start"
           --step-factor "$ramp_factor" --step-secs "$ramp_step_secs"
           --max-steps "$ramp_max_steps" --p99-ms "$p99_ms" --drain 5)

# run_workload TARGET WORKLOAD PID TARGET_ARGS...: one securechat-load run,
# its JSON report in $out/TARGET-WORKLOAD.json.
run_workload() {
    local target=$1 workload=$2 pid=$3
    shift 3
    local args
    case "$workload" in
        room) args=("${room_args[@]}") ;;
        ramp) args=("${ramp_args[@]}") ;;
    esac
    echo "compare-inspircd.sh: === $target: $workload ===" >&2
    local status=0
    if [[ $perf == 1 ]]; then
        # Profile the workload, not the joins (logins are Argon2id): start
        # perf once the load generator says everyone is in.
        local log="$out/$target-$workload.log" load_pid _
        load_cmd "$@" "${args[@]}" --json >"$out/$target-$workload.json" 2> >(tee "$log" >&2) &
        load_pid=$!
        for _ in $(seq 3000); do
            grep -q ' joined, ' "$log" 2>/dev/null && break
            kill -0 "$load_pid" 2>/dev/null || break
            sleep 0.1
        done
        perf record -g -q -p "$pid" -o "$out/perf-$target-$workload.data" 2>/dev/null &
        perf_pid=$!
        wait "$load_pid" || status=$?
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        perf_pid=""
        perf report -i "$out/perf-$target-$workload.data" --stdio --no-children \
            --sort dso,sym --percent-limit 1 2>/dev/null | grep -E '^ +[0-9.]+%' | head -30 \
            >"$out/perf-$target-$workload.txt" || true
    else
        load_cmd "$@" "${args[@]}" --json >"$out/$target-$workload.json" || status=$?
    fi
    if [[ $status != 0 ]]; then
        echo "compare-inspircd.sh: $target $workload exited with $status:" \
            "$(jq -r '.error // "no report"' "$out/$target-$workload.json" 2>/dev/null)" >&2
    fi
}

for target in "${target_list[@]}"; do
    case "$target" in
        securechat|securechat-tls)
            tls=0
            [[ $target == securechat-tls ]] && tls=1
            for workload in room ramp; do
                securechat_start "$work" "$data_dir" "$tls"
                run_workload "$target" "$workload" "$sc_pid" "${sc_args[@]}"
                securechat_check "$work" || true
                securechat_stop
            done
            ;;
        inspircd|inspircd-tls)
            if [[ $target == inspircd ]]; then
                irc_args=(--addr "127.0.0.1:$irc_port")
            else
                irc_args=(--addr "127.0.0.1:$ircs_port" --tls --ca "$work/ca.pem")
            fi
            # Registration completes on InspIRCd's once-a-second timer:
            # let everyone register at once rather than 32 per second.
            irc_args+=(--protocol irc --join-concurrency 2000 "${irc_extra[@]}")
            for workload in room ramp; do
                inspircd_start
                run_workload "$target" "$workload" "$irc_pid" "${irc_args[@]}" --server-pid "$irc_pid"
                inspircd_stop
            done
            ;;
    esac
done

# --- Summary --------------------------------------------------------------

inspircd_version=$(dpkg-query -W -f '${Version}' inspircd 2>/dev/null || echo unknown)
files=()
for target in "${target_list[@]}"; do
    for workload in room ramp; do
        f="$out/$target-$workload.json"
        [[ -s "$f" ]] && jq -e . "$f" >/dev/null 2>&1 || echo '{"error":"no report"}' >"$f"
        files+=("$f")
    done
done

jq -n \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
    --arg cores "$(nproc)" \
    --arg inspircd "$inspircd_version" \
    --arg targets "$targets" \
    --arg irc_extra "${irc_extra[*]}" \
    --arg room "$room_clients clients, $room_senders senders x $room_rate msgs/s x 64 B, $room_secs s" \
    --arg ramp "$ramp_clients clients, $ramp_senders senders from $ramp_start msgs/s each, x$ramp_factor per $ramp_step_secs s step, until p99 > $p99_ms ms, loss > 0.1% or send lag > 100 ms" \
    '
    def per_delivery_us($c; $n): if ($c.server_cpu_secs != null and $n > 0)
        then ($c.server_cpu_secs / $n * 1e6) else null end;
    def room($rep): if $rep.room == null then {error: ($rep.error // "no room result")} else {
        deliveries_per_sec: $rep.room.deliveries_per_sec,
        lost: $rep.room.lost,
        p50_ms: $rep.room.latency.p50_ms,
        p99_ms: $rep.room.latency.p99_ms,
        p999_ms: $rep.room.latency.p999_ms,
        server_cpu_pct: $rep.room.cpu.server_cpu_pct,
        loadgen_cpu_pct: $rep.room.cpu.loadgen_cpu_pct,
        server_us_per_delivery: per_delivery_us($rep.room.cpu; $rep.room.received),
        error: $rep.error } end;
    def ramp($rep): if $rep.ramp == null then {error: ($rep.error // "no ramp result")} else
        ($rep.ramp.steps | map(select(.phase == $rep.ramp.best_step)) | first) as $b | {
        best_deliveries_per_sec: $rep.ramp.best_deliveries_per_sec,
        best_msgs_per_sec_in: ($b.offered_msgs_per_sec // null),
        p99_ms_at_best: ($b.latency.p99_ms // null),
        server_cpu_pct_at_best: ($b.cpu.server_cpu_pct // null),
        loadgen_cpu_pct_at_best: ($b.cpu.loadgen_cpu_pct // null),
        server_us_per_delivery_at_best: (if $b == null then null
            else per_delivery_us($b.cpu; $b.received) end),
        stopped: $rep.ramp.stopped,
        steps: [$rep.ramp.steps[] | {offered: .offered_msgs_per_sec,
            deliveries_per_sec, p99_ms: .latency.p99_ms, lost,
            server_cpu_pct: .cpu.server_cpu_pct, loadgen_cpu_pct: .cpu.loadgen_cpu_pct}],
        error: $rep.error } end;
    def ratio($a; $b): if ($a != null and $b != null and $b != 0) then ($a / $b) else null end;
    [inputs] as $reports
    | ($targets | split(",")) as $names
    | (reduce range(0; $names | length) as $i ({};
        .[$names[$i]] = {room: room($reports[2 * $i]), ramp: ramp($reports[2 * $i + 1])})) as $r
    | def vs($x; $y): if ($r[$x] != null and $r[$y] != null) then {
          fanout: ratio($r[$x].ramp.best_deliveries_per_sec; $r[$y].ramp.best_deliveries_per_sec),
          room_p50: ratio($r[$x].room.p50_ms; $r[$y].room.p50_ms),
          room_p99: ratio($r[$x].room.p99_ms; $r[$y].room.p99_ms),
          room_server_cpu_per_delivery: ratio($r[$x].room.server_us_per_delivery; $r[$y].room.server_us_per_delivery),
          fanout_server_cpu_per_delivery: ratio($r[$x].ramp.server_us_per_delivery_at_best; $r[$y].ramp.server_us_per_delivery_at_best)
        } else null end;
    {
      date: $date, machine: {cpu: $cpu, cores: ($cores | tonumber)},
      inspircd_version: $inspircd,
      irc_options: $irc_extra,
      workloads: {room: $room, ramp: $ramp},
      like_with_like: "securechat vs inspircd-tls: both encrypt every message on every connection",
      results: $r,
      ratios: {
        "securechat/inspircd-tls": vs("securechat"; "inspircd-tls"),
        "securechat/inspircd": vs("securechat"; "inspircd"),
        "securechat-tls/inspircd-tls": vs("securechat-tls"; "inspircd-tls")
      }
    }' "${files[@]}" >"$out/summary.json"

# The table.
jq -r '
    def f(x; d): if x == null then "-" else (x * pow(10; d) | round / pow(10; d) | tostring) end;
    def k(x): if x == null then "-" else ((x / 1000 | round | tostring) + "k") end;
    .results as $r | ($r | keys_unsorted) as $t |
    (["", $t[]] | @tsv),
    (["room p50 ms"] + [$t[] | f($r[.].room.p50_ms; 2)] | @tsv),
    (["room p99 ms"] + [$t[] | f($r[.].room.p99_ms; 2)] | @tsv),
    (["room p99.9 ms"] + [$t[] | f($r[.].room.p999_ms; 2)] | @tsv),
    (["room deliveries/s"] + [$t[] | k($r[.].room.deliveries_per_sec)] | @tsv),
    (["room lost"] + [$t[] | f($r[.].room.lost; 0)] | @tsv),
    (["room server CPU %"] + [$t[] | f($r[.].room.server_cpu_pct; 0)] | @tsv),
    (["room server µs/delivery"] + [$t[] | f($r[.].room.server_us_per_delivery; 2)] | @tsv),
    (["fanout deliveries/s"] + [$t[] | k($r[.].ramp.best_deliveries_per_sec)] | @tsv),
    (["fanout msgs/s in"] + [$t[] | f($r[.].ramp.best_msgs_per_sec_in; 0)] | @tsv),
    (["fanout p99 ms"] + [$t[] | f($r[.].ramp.p99_ms_at_best; 2)] | @tsv),
    (["fanout server CPU %"] + [$t[] | f($r[.].ramp.server_cpu_pct_at_best; 0)] | @tsv),
    (["fanout loadgen CPU %"] + [$t[] | f($r[.].ramp.loadgen_cpu_pct_at_best; 0)] | @tsv),
    (["fanout server µs/delivery"] + [$t[] | f($r[.].ramp.server_us_per_delivery_at_best; 2)] | @tsv),
    ""
' "$out/summary.json" | column -t -s $'\t'
jq -r '
    def f(x): if x == null then "-" else (x * 100 | round / 100 | tostring) + "x" end;
    .ratios | to_entries[] | select(.value != null) |
    "\(.key): fanout \(f(.value.fanout)), room p50 \(f(.value.room_p50)), room p99 \(f(.value.room_p99)), server CPU per delivery \(f(.value.room_server_cpu_per_delivery)) (room) / \(f(.value.fanout_server_cpu_per_delivery)) (fanout)"
' "$out/summary.json"
for target in "${target_list[@]}"; do
    jq -r --arg t "$target" '.results[$t].ramp.stopped // empty | "\($t) ramp stopped: \(.)"' "$out/summary.json"
done
echo "like with like: securechat vs inspircd-tls (both encrypt every message); inspircd plain is the unencrypted ceiling"
echo "results: $out/summary.json and $out/<target>-<workload>.json"
