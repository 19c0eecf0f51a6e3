#!/usr/bin/env bash
# Runs one securechat-load workload against a freshly started release server
# with raised limits, then stops the server (SIGTERM).
#
#   scripts/load.sh [--tls] MODE [securechat-load options...]
#
#   scripts/load.sh idle -n 1000 -t 30
#   scripts/load.sh room -n 200 -s 20 -r 5 -b 64 -t 30
#   scripts/load.sh ramp -n 200 -s 20 --start-rate 1 --p99-ms 50
#   scripts/load.sh handshakes -c 16 -t 20
#   scripts/load.sh logins -c 4 -t 20 --room-clients 100 --room-senders 10
#   scripts/load.sh --tls room -n 50 --json
#
# The address, fingerprint and server pid are filled in; everything after
# MODE goes to securechat-load as is (see `securechat-load MODE --help`).
#
# Environment:
#   LOAD_DATA_DIR        server data directory to keep between runs, so the
#                        load accounts are registered only once (default: a
#                        fresh temporary directory, removed afterwards)
#   LOAD_SERVER_TOML     use this server config file instead of the generated
#                        one (listen address and data dir are still set here)
#   LOAD_SERVER_CPUS     pin the server to these CPUs (taskset list, e.g. 0)
#   LOAD_CLIENT_CPUS     pin the load generator likewise (e.g. 1)
#   LOAD_NO_BUILD=1      skip `cargo build --release`
#   LOAD_KEEP=1          keep the temporary directory (server log, config)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
}

tls=0
if [[ "${1:-}" == "--tls" ]]; then
    tls=1
    shift
fi
if [[ $# -lt 1 || "$1" == -* ]]; then
    usage
    exit 2
fi

if [[ -z "${LOAD_NO_BUILD:-}" ]]; then
    cargo build --release -p server -p loadgen
fi
server_bin=target/release/securechat-server
load_bin=target/release/securechat-load
for bin in "$server_bin" "$load_bin"; do
    [[ -x "$bin" ]] || { echo "load.sh: $bin is missing (build it first)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/securechat-load.XXXXXX")
data_dir="${LOAD_DATA_DIR:-$work/data}"
server_pid=""

cleanup() {
    local status=$?
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 300); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            echo "load.sh: server did not stop within 30 s of SIGTERM; killing it" >&2
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "${LOAD_KEEP:-}" ]]; then
        echo "load.sh: server log and config kept in $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every connection is a descriptor on both sides. Root may raise the hard
# limit; others get what the hard limit allows.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true

if [[ -n "${LOAD_SERVER_TOML:-}" ]]; then
    config="$LOAD_SERVER_TOML"
else
    config="$work/server.toml"
    # Limits raised so that the workload, not a protection, is measured:
    # all clients come from a few loopback addresses and send fast.
    cat >"$config" <<'EOF'
[limits]
max_connections = 200000
max_connections_per_ip = 200000
max_unauthenticated = 100000
messages_per_second = 1000000
message_burst = 1000000
handshakes_per_ip_per_second = 1000000
handshake_burst_per_ip = 1000000
handshake_timeout_secs = 60
auth_timeout_secs = 600
idle_timeout_secs = 600
EOF
fi

server_args=(run --config "$config" --listen 127.0.0.1:0 --data-dir "$data_dir")
load_tls=()
if [[ $tls == 1 ]]; then
    # A throwaway CA and a leaf for 127.0.0.1 (webpki refuses a CA
    # certificate as the server's own, so not simply self-signed).
    (
        cd "$work"
        ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=securechat-load test CA" 2>/dev/null
        openssl req "${ec[@]}" -keyout server.key -out server.csr \
            -subj "/CN=127.0.0.1" 2>/dev/null
        printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >leaf.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 2 -extfile leaf.ext 2>/dev/null
        chmod 600 server.key ca.key
    )
    server_args+=(--tls-cert "$work/server.pem" --tls-key "$work/server.key")
    load_tls=(--tls --ca "$work/ca.pem")
fi

server_cmd=("$server_bin" "${server_args[@]}")
[[ -n "${LOAD_SERVER_CPUS:-}" ]] && server_cmd=(taskset -c "$LOAD_SERVER_CPUS" "${server_cmd[@]}")
load_cmd=("$load_bin")
[[ -n "${LOAD_CLIENT_CPUS:-}" ]] && load_cmd=(taskset -c "$LOAD_CLIENT_CPUS" "${load_cmd[@]}")

# taskset execs the server, so $! is the server's own pid.
"${server_cmd[@]}" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!

line=""
for _ in $(seq 600); do
    line=$(grep -m1 '^securechat-server listening on ' "$work/server.out" || true)
    [[ -n "$line" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "load.sh: the server exited before listening; its log:" >&2
        cat "$work/server.log" >&2
        server_pid=""
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$line" ]]; then
    echo "load.sh: no 'listening on' line from the server within 60 s" >&2
    exit 1
fi
# securechat-server listening on ADDR fingerprint FP
read -r _ _ _ addr _ fingerprint <<<"$line"
echo "load.sh: server pid $server_pid on $addr ($fingerprint), data in $data_dir" >&2

status=0
"${load_cmd[@]}" --addr "$addr" --fingerprint "$fingerprint" --server-pid "$server_pid" \
    "${load_tls[@]}" "$@" || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "load.sh: the server died during the run; last log lines:" >&2
    tail -n 20 "$work/server.log" >&2
    server_pid=""
    status=1
fi
exit "$status"
