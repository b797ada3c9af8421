#!/usr/bin/env bash
# The load driver beside wrk and oha: saturated throughput and, at a fixed rate below
# saturation, latency, against one external `tokenbench mock` on this machine, alternating.
#
#   wrk         wrk -t2 -c64 (Debian's), closed model
#   oha         oha -c 64 (installed with cargo install oha --locked), closed model; at the
#               fixed rate with -q RATE --latency-correction (latency from the intended start)
#   tokenbench  tokenbench run of 2 gateway instances of 32 requests in flight each (open
#               model; 64 in all, as the peers' connections), offered far above capacity
#               (SATURATE req/s), or RATE req/s for the latency comparison
#
# All three send GET /api/orders with a valid token to the same mock backend (tokenbench's
# gateways fetch theirs from the mock's token endpoint). Each figure is completed requests
# per second (answered 200); the script prints the median of ROUNDS alternating runs of each
# and the ratios, then p50 and p99 of tokenbench and of oha (corrected) at RATE req/s.
#
# Usage: scripts/driver-vs-peers.sh
#   TOKENBENCH=/path/to/tokenbench  use this binary instead of building one
#   ROUNDS=5 SECONDS_PER_RUN=10 SATURATE=300000 RATE=20000
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
SATURATE=${SATURATE:-300000}
RATE=${RATE:-20000}

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk
fi
if ! command -v oha >/dev/null; then
    cargo install oha --locked
fi
# shellcheck source=scripts/tokenbench-bin.sh
source "$SCRIPT_DIR/tokenbench-bin.sh"

WORK=$(mktemp -d)
SECRET=driver-vs-peers
MOCK_ARGS="--client-secret $SECRET --token-lifetime 24h"
# shellcheck source=scripts/external-mock.sh
source "$SCRIPT_DIR/external-mock.sh"
external_scenario driver-saturated 2 "$SATURATE" "$SECONDS_PER_RUN" 32 >"$WORK/saturated.toml"
external_scenario driver-fixed 2 "$RATE" "$SECONDS_PER_RUN" 32 >"$WORK/fixed.toml"

# The peers' token: one from the mock's token endpoint, valid for the whole benchmark.
TOKEN=$("$BIN" token --token-url "$(field token_url)" --client-id "$(field client_id)" \
    --scope "$(field scope)" --client-secret "$SECRET" --show-token |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
URL="$(field backend_url)/api/orders"
AUTH="Authorization: Bearer $TOKEN"

wrk_rate() { # answers that were not 2xx or 3xx are taken off wrk's request count
    wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" -H "$AUTH" "$URL" | awk '
        / requests in / { requests = $1; seconds = $4 + 0 }
        /Non-2xx or 3xx responses:/ { failed = $NF }
        END { printf "%.0f\n", (requests - failed) / seconds }'
}
oha_json() { # extra oha options
    oha -c 64 -z "${SECONDS_PER_RUN}s" --no-tui --output-format json -H "$AUTH" "$@" "$URL"
}
oha_rate() {
    oha_json | python3 -c '
import json, sys
r = json.load(sys.stdin)
ok = r["statusCodeDistribution"].get("200", 0)
print(round(ok / r["summary"]["total"]))'
}

wrk_runs=() oha_runs=() tb_runs=()
for round in $(seq "$ROUNDS"); do
    wrk_runs+=("$(wrk_rate)")
    oha_runs+=("$(oha_rate)")
    "$BIN" run "$WORK/saturated.toml" --quiet --out "$WORK/saturated-$round"
    tb_runs+=("$(completed "$WORK/saturated-$round/report.json")")
    echo "round $round: wrk ${wrk_runs[-1]}, oha ${oha_runs[-1]}, tokenbench ${tb_runs[-1]} req/s"
done

fixed_tb=() fixed_oha=()
for round in $(seq "$ROUNDS"); do
    "$BIN" run "$WORK/fixed.toml" --quiet --out "$WORK/fixed-$round"
    fixed_tb+=("$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["latency_us"]; print(r["p50"]/1000, r["p99"]/1000)' "$WORK/fixed-$round/report.json")")
    fixed_oha+=("$(oha_json -q "$RATE" --latency-correction | python3 -c '
import json, sys
p = json.load(sys.stdin)["latencyPercentiles"]
print(p["p50"] * 1000, p["p99"] * 1000)')")
    echo "round $round at $RATE req/s: tokenbench p50/p99 ${fixed_tb[-1]} ms, oha ${fixed_oha[-1]} ms"
done

python3 - "${wrk_runs[*]}" "${oha_runs[*]}" "${tb_runs[*]}" "$RATE" \
    "$(printf '%s;' "${fixed_tb[@]}")" "$(printf '%s;' "${fixed_oha[@]}")" <<'PY'
import statistics, sys
wrk, oha, tb = ([int(x) for x in arg.split()] for arg in sys.argv[1:4])
m = {name: statistics.median(v) for name, v in (("wrk", wrk), ("oha", oha), ("tokenbench", tb))}
print(f"saturated, completed req/s (medians of {len(tb)} alternating rounds): "
      f"wrk {m['wrk']:.0f}, oha {m['oha']:.0f}, tokenbench {m['tokenbench']:.0f}")
print(f"tokenbench / oha {m['tokenbench'] / m['oha']:.2f}, tokenbench / wrk {m['tokenbench'] / m['wrk']:.2f}")
def pairs(arg):
    return [tuple(float(x) for x in run.split()) for run in arg.split(";") if run]
for name, arg in (("tokenbench", sys.argv[5]), ("oha (corrected)", sys.argv[6])):
    runs = pairs(arg)
    print(f"at {sys.argv[4]} req/s, {name}: p50 {statistics.median(r[0] for r in runs):.3f} ms, "
          f"p99 {statistics.median(r[1] for r in runs):.3f} ms")
PY
