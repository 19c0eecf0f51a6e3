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
#   scripts/load.sh reconnect -n 19000 --room-clients 100 --room-senders 10 --room-rate 10
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
#   LOAD_SERVER_LIMITS   lines added to the generated config's [limits], e.g.
#                        'presence_interval_ms = 60000'
#   LOAD_SERVER_CPUS     pin the server to these CPUs (taskset list, e.g. 0)
#   LOAD_CLIENT_CPUS     pin the load generator likewise (e.g. 1)
#   LOAD_SERVER_NICE     run the server at this nice value (e.g. -10)
#   LOAD_NO_BUILD=1      skip `cargo build --release`
#   LOAD_KEEP=1          keep the temporary directory (server log, config)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-load.sh

tls=0
if [[ "${1:-}" == "--tls" ]]; then
    tls=1
    shift
fi
if [[ $# -lt 1 || "$1" == -* ]]; then
    usage
    exit 2
fi

load_build

work=$(mktemp -d "${TMPDIR:-/tmp}/securechat-load.XXXXXX")
data_dir="${LOAD_DATA_DIR:-$work/data}"
sc_pid=""

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local status=$?
    securechat_stop
    if [[ -n "${LOAD_KEEP:-}" ]]; then
        echo "load.sh: server log and config kept in $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_raise_fd_limit
securechat_start "$work" "$data_dir" "$tls"

status=0
load_cmd "${sc_args[@]}" "$@" || status=$?
securechat_check "$work" || status=1
exit "$status"
