# shellcheck shell=bash
# Pieces shared by scripts/load.sh, scripts/compare-inspircd.sh and
# scripts/bench-all.sh: building the release binaries, test certificates,
# starting and stopping a SecureChat server with raised limits.
#
# Source it from the repository root (the scripts cd there first):
#   source scripts/lib-load.sh
#
# Environment honoured here:
#   LOAD_NO_BUILD=1      skip `cargo build --release`
#   LOAD_SERVER_TOML     server config to use instead of the generated one
#   LOAD_SERVER_LIMITS   lines added to the generated config's [limits]
#   LOAD_SERVER_CPUS     pin the server to these CPUs (taskset list)
#   LOAD_CLIENT_CPUS     pin the load generator likewise
#   LOAD_SERVER_NICE     run the server at this nice value (e.g. -10: the
#                        server's share of the CPU as if the clients ran on
#                        other machines, as they would)
#   LOAD_SERVER_WORKERS  the server's tokio worker threads (TOKIO_WORKER_THREADS;
#                        default: one per core)

server_bin=target/release/securechat-server
load_bin=target/release/securechat-load

# usage: the calling script's header comment (after the #! line, up to the
# first line of code), on stderr.
usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//' >&2
}

# load_data_dir DIR: creates the load accounts' data directory if missing,
# private (the server refuses a data directory others can read).
load_data_dir() {
    [[ -d "$1" ]] || { mkdir -p "$1" && chmod 700 "$1"; }
}

# Builds the release server and load generator (unless LOAD_NO_BUILD).
load_build() {
    if [[ -z "${LOAD_NO_BUILD:-}" ]]; then
        cargo build --release -p server -p loadgen
    fi
    local bin
    for bin in "$server_bin" "$load_bin"; do
        [[ -x "$bin" ]] || { echo "$0: $bin is missing (build it first)" >&2; return 1; }
    done
}

# Every connection is a descriptor on both sides. Root may raise the hard
# limit; others (and containers with a fixed hard limit) get what it allows.
load_raise_fd_limit() {
    ulimit -Hn 1048576 2>/dev/null || true
    ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
}

# load_make_cert DIR: a throwaway CA (DIR/ca.pem) and a leaf certificate for
# 127.0.0.1 signed by it (DIR/server.pem, DIR/server.key). webpki refuses a
# CA certificate as the server's own, so the leaf is not simply self-signed.
load_make_cert() {
    (
        cd "$1" || exit 1
        local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
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
}

# load_server_config FILE: limits raised so that the workload, not a
# protection, is measured (all clients come from a few loopback addresses
# and send fast).
load_server_config() {
    cat >"$1" <<'EOF'
[limits]
max_connections = 200000
max_connections_per_ip = 200000
max_unauthenticated = 100000
max_unauthenticated_per_ip = 100000
messages_per_second = 1000000
message_burst = 1000000
handshakes_per_ip_per_second = 1000000
handshake_burst_per_ip = 1000000
handshake_timeout_secs = 60
auth_timeout_secs = 600
idle_timeout_secs = 600
EOF
    if [[ -n "${LOAD_SERVER_LIMITS:-}" ]]; then
        printf '%s\n' "$LOAD_SERVER_LIMITS" >>"$1"
    fi
}

# The load generator's command (taskset-pinned if LOAD_CLIENT_CPUS is set).
load_cmd() {
    if [[ -n "${LOAD_CLIENT_CPUS:-}" ]]; then
        taskset -c "$LOAD_CLIENT_CPUS" "$load_bin" "$@"
    else
        "$load_bin" "$@"
    fi
}

# securechat_start WORK DATA_DIR TLS(0|1)
# Starts a release server listening on a free loopback port, its output and
# log in WORK, and waits for its "listening on" line. Sets:
#   sc_pid          the server's pid
#   sc_addr         its address
#   sc_fingerprint  its key fingerprint
#   sc_args         securechat-load options for this target (address,
#                   fingerprint, server pid, TLS CA)
securechat_start() {
    local work=$1 data_dir=$2 tls=$3
    local config="${LOAD_SERVER_TOML:-}"
    if [[ -z "$config" ]]; then
        config="$work/server.toml"
        load_server_config "$config"
    fi
    local args=(run --config "$config" --listen 127.0.0.1:0 --data-dir "$data_dir")
    sc_args=()
    if [[ "$tls" == 1 ]]; then
        [[ -f "$work/ca.pem" ]] || load_make_cert "$work"
        args+=(--tls-cert "$work/server.pem" --tls-key "$work/server.key")
        sc_args=(--tls --ca "$work/ca.pem")
    fi
    local cmd=("$server_bin" "${args[@]}")
    [[ -n "${LOAD_SERVER_CPUS:-}" ]] && cmd=(taskset -c "$LOAD_SERVER_CPUS" "${cmd[@]}")
    [[ -n "${LOAD_SERVER_NICE:-}" ]] && cmd=(nice -n "$LOAD_SERVER_NICE" "${cmd[@]}")
    # taskset and nice exec the server, so $! is the server's own pid.
    [[ -n "${LOAD_SERVER_WORKERS:-}" ]] && cmd=(env "TOKIO_WORKER_THREADS=$LOAD_SERVER_WORKERS" "${cmd[@]}")
    "${cmd[@]}" >"$work/server.out" 2>"$work/server.log" &
    sc_pid=$!
    local line="" _
    for _ in $(seq 600); do
        line=$(grep -m1 '^securechat-server listening on ' "$work/server.out" || true)
        [[ -n "$line" ]] && break
        if ! kill -0 "$sc_pid" 2>/dev/null; then
            echo "$0: the server exited before listening; its log:" >&2
            cat "$work/server.log" >&2
            sc_pid=""
            return 1
        fi
        sleep 0.1
    done
    if [[ -z "$line" ]]; then
        echo "$0: no 'listening on' line from the server within 60 s" >&2
        return 1
    fi
    # securechat-server listening on ADDR fingerprint FP
    read -r _ _ _ sc_addr _ sc_fingerprint <<<"$line"
    sc_args=(--addr "$sc_addr" --fingerprint "$sc_fingerprint" --server-pid "$sc_pid" "${sc_args[@]}")
    echo "$0: securechat-server pid $sc_pid on $sc_addr ($sc_fingerprint), data in $data_dir" >&2
}

# securechat_check WORK: fails (with the log's tail) if the server died.
securechat_check() {
    if [[ -n "${sc_pid:-}" ]] && ! kill -0 "$sc_pid" 2>/dev/null; then
        echo "$0: the server died during the run; last log lines:" >&2
        tail -n 20 "$1/server.log" >&2
        sc_pid=""
        return 1
    fi
}

# stop_pid PID NAME [SECS]: SIGTERM, then SIGKILL if still there after SECS
# (default 30); reaps it if it is our child.
stop_pid() {
    local pid=$1 name=$2 secs=${3:-30} _
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$0: $name did not stop within $secs s of SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# securechat_stop: stops the server securechat_start started.
securechat_stop() {
    stop_pid "${sc_pid:-}" securechat-server
    sc_pid=""
}

# free_port: a loopback TCP port nobody listens on now.
free_port() {
    local port _
    for _ in $(seq 100); do
        # Below the ephemeral range (32768-60999), so no outgoing
        # connection takes it between here and the bind.
        port=$((20000 + RANDOM % 12000))
        if ! ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
            echo "$port"
            return 0
        fi
    done
    echo "$0: no free port found" >&2
    return 1
}
