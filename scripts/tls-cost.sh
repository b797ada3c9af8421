#!/usr/bin/env bash
# What TLS costs the path a gateway takes, side by side, alternating, on this machine:
#
#   driver      `tokenbench run` of 2 gateway instances against the embedded servers offered
#               far above capacity (SATURATE req/s), with and without `tls = true`:
#               completed req/s (connections are reused, so this is TLS's cost per request)
#   tokens      TOKEN_INSTANCES instances with 1 s tokens (the reference policy, apim) at
#               TOKEN_RATE req/s, so that every instance fetches a token every second over
#               its own kept-alive connection: token requests per second
#   handshakes  `oha --disable-keepalive` (a new connection per request, the client on the
#               same cores) against `tokenbench mock` with and without `--tls`: new
#               connections per second, each a full TLS 1.3 handshake with an RSA-2048
#               certificate over https
#
# Prints the median of ROUNDS rounds of each and the ratios.
#
# Usage: scripts/tls-cost.sh
#   TOKENBENCH=/path/to/tokenbench  use this binary instead of building one
#   ROUNDS=3 SECONDS_PER_RUN=5 SATURATE=300000 TOKEN_RATE=4000 TOKEN_INSTANCES=200
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
SATURATE=${SATURATE:-300000}
TOKEN_RATE=${TOKEN_RATE:-4000}
TOKEN_INSTANCES=${TOKEN_INSTANCES:-200}

if ! command -v oha >/dev/null; then
    cargo install oha --locked
fi
# shellcheck source=scripts/tokenbench-bin.sh
source "$SCRIPT_DIR/tokenbench-bin.sh"
WORK=$(mktemp -d)
MOCK_PID=
trap '[[ -n $MOCK_PID ]] && kill "$MOCK_PID" 2>/dev/null; rm -rf "$WORK"' EXIT

scenario() { # tls rate policy token_lifetime instances
    cat <<SCENARIO
name = "tls-cost"
duration = "${SECONDS_PER_RUN}s"
seed = 3
tls = $1
[traffic]
kind = "constant"
rate = $2
[gateway]
instances = $5
policy = "$3"
max_in_flight = 1000
[idp]
token_lifetime = "$4"
SCENARIO
}
for tls in false true; do
    scenario "$tls" "$SATURATE" single-flight 1h 2 >"$WORK/driver-$tls.toml"
    scenario "$tls" "$TOKEN_RATE" apim 1s "$TOKEN_INSTANCES" >"$WORK/tokens-$tls.toml"
done
field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }

# One `tokenbench mock` (--tls or not) answering oha's new connections for a run.
handshakes() { # extra mock options
    rm -f "$WORK/mock.json"
    "$BIN" mock --client-secret tls-cost "$@" >"$WORK/mock.json" 2>/dev/null &
    MOCK_PID=$!
    for _ in $(seq 50); do [[ -s $WORK/mock.json ]] && break; sleep 0.1; done
    local url
    url=$(field "$WORK/mock.json" "r['backend_url']")/api/orders
    oha -c 64 -z "${SECONDS_PER_RUN}s" --no-tui --output-format json --disable-keepalive --insecure "$url" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["summary"]["requestsPerSec"]))'
    kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true
    MOCK_PID=
}

declare -A runs
for round in $(seq "$ROUNDS"); do
    for tls in false true; do
        "$BIN" run "$WORK/driver-$tls.toml" --quiet --out "$WORK/driver-$tls-$round"
        runs[driver-$tls]+="$(field "$WORK/driver-$tls-$round/report.json" "round(r['requests']['ok']/r['duration_s'])") "
        "$BIN" run "$WORK/tokens-$tls.toml" --quiet --out "$WORK/tokens-$tls-$round"
        runs[tokens-$tls]+="$(field "$WORK/tokens-$tls-$round/report.json" "round(r['idp']['token_requests']/r['duration_s'])") "
        if [[ $tls == true ]]; then
            runs[handshakes-$tls]+="$(handshakes --tls) "
        else
            runs[handshakes-$tls]+="$(handshakes) "
        fi
    done
    echo "round $round: driver ${runs[driver-false]}/ ${runs[driver-true]}; tokens ${runs[tokens-false]}/ ${runs[tokens-true]}; new connections ${runs[handshakes-false]}/ ${runs[handshakes-true]}"
done

python3 - "${runs[driver-false]}" "${runs[driver-true]}" "${runs[tokens-false]}" "${runs[tokens-true]}" \
    "${runs[handshakes-false]}" "${runs[handshakes-true]}" <<'PY'
import statistics, sys
m = [statistics.median(int(x) for x in arg.split()) for arg in sys.argv[1:]]
for name, unit, plain, tls in (("driver (reused connections)", "completed req/s", m[0], m[1]),
                               ("token endpoint, 1 s tokens", "token requests/s", m[2], m[3]),
                               ("new connection per request (oha)", "connections/s", m[4], m[5])):
    print(f"{name:34} {unit:17} http {plain:>8.0f}  https {tls:>8.0f}  https/http {tls / plain:.2f}")
PY
