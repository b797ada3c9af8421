# Sourced by the benchmark scripts that drive one external `tokenbench mock` on this machine.
# Needs BIN (the tokenbench binary) and WORK (a scratch folder) set; starts the mock with
# MOCK_ARGS, stops it at exit, and defines:
#   field NAME                      a field of the mock's JSON line (token_url, backend_url, …)
#   external_scenario NAME INSTANCES RATE SECONDS [MAX_IN_FLIGHT]
#                                   a scenario against the mock as an external identity
#                                   provider and backend, offered RATE req/s, at most
#                                   MAX_IN_FLIGHT (default 1000) per instance (on stdout)
#   completed REPORT_JSON           requests answered 200 per second of the run
# shellcheck shell=bash

MOCK_PID=
stop_mock() {
    [[ -n $MOCK_PID ]] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap stop_mock EXIT

# shellcheck disable=SC2086 # MOCK_ARGS is a list of options
"$BIN" mock ${MOCK_ARGS:-} >"$WORK/mock.json" 2>"$WORK/mock.err" &
MOCK_PID=$!
for _ in $(seq 50); do
    [[ -s $WORK/mock.json ]] && break
    sleep 0.1
done
[[ -s $WORK/mock.json ]] || { cat "$WORK/mock.err" >&2; exit 1; }

field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/mock.json" "$1"; }

# The external identity provider and backend, as a team would point a run at theirs.
external_scenario() { # name instances rate seconds [max_in_flight]
    cat <<SCENARIO
name = "$1"
duration = "$4s"
seed = 3

[traffic]
kind = "constant"
rate = $3

[gateway]
instances = $2
policy = "single-flight"
max_in_flight = ${5:-1000}

[idp]
token_url = "$(field token_url)"
client_id = "$(field client_id)"
scope = "$(field scope)"
key = "$(field client_key)"
cert = "$(field client_cert)"

[backend]
url = "$(field backend_url)/api/orders"
SCENARIO
}

completed() { # report.json
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['requests']['ok']/r['duration_s']))" "$1"
}
