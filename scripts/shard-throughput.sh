#!/usr/bin/env bash
# How many requests per second one shard completes, and what sharding costs it: side by
# side, alternating, against one external `tokenbench mock` on this machine.
#
#   whole   `tokenbench run` of 2 gateway instances offered RATE req/s (far above capacity)
#   shard   `tokenbench run --shard 0/SHARDS` of 2×SHARDS instances offered SHARDS×RATE
#           req/s: the same 2 instances and offered rate, plus the other shards' arrivals
#           it draws and passes over
#
# Each figure is completed requests per second (requests.sent / duration_s); the script
# prints the median of ROUNDS alternating runs of each and their ratio. The mock shares the
# machine with the driver, so the absolute figures are this machine's, not a shard's on a
# machine of its own: the ratio is the cost of sharding.
#
# Usage: scripts/shard-throughput.sh
#   TOKENBENCH=/path/to/tokenbench  use this binary instead of building one
#   ROUNDS=5 SECONDS_PER_RUN=5 RATE=150000 SHARDS=4
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
RATE=${RATE:-150000}
SHARDS=${SHARDS:-4}

if [[ -n "${TOKENBENCH:-}" ]]; then
    BIN=$TOKENBENCH
else
    (cd "$ROOT" && cargo build --release -p tokenbench)
    target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
    BIN=$target_dir/release/tokenbench
fi

WORK=$(mktemp -d)
MOCK_PID=
cleanup() {
    [[ -n $MOCK_PID ]] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" mock >"$WORK/mock.json" 2>"$WORK/mock.err" &
MOCK_PID=$!
for _ in $(seq 50); do
    [[ -s $WORK/mock.json ]] && break
    sleep 0.1
done
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/mock.json" "$1"; }

# The external identity provider and backend, as a team would point a shard at theirs.
scenario() { # instances rate
    cat <<EOF
name = "shard-throughput"
duration = "${SECONDS_PER_RUN}s"
seed = 3

[traffic]
kind = "constant"
rate = $2

[gateway]
instances = $1
policy = "single-flight"
max_in_flight = 1000

[idp]
token_url = "$(field token_url)"
client_id = "$(field client_id)"
scope = "$(field scope)"
key = "$(field client_key)"
cert = "$(field client_cert)"

[backend]
url = "$(field backend_url)/api/orders"
EOF
}
scenario 2 "$RATE" >"$WORK/whole.toml"
scenario $((2 * SHARDS)) $((SHARDS * RATE)) >"$WORK/sharded.toml"

completed() { # report.json
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['requests']['sent']/r['duration_s']))" "$1"
}

whole=()
shard=()
for round in $(seq "$ROUNDS"); do
    "$BIN" run "$WORK/whole.toml" --quiet --out "$WORK/whole-$round"
    whole+=("$(completed "$WORK/whole-$round/report.json")")
    "$BIN" run "$WORK/sharded.toml" --quiet --shard "0/$SHARDS" --out "$WORK/shard-$round"
    shard+=("$(completed "$WORK/shard-$round/report.json")")
    echo "round $round: whole ${whole[-1]} req/s, shard 0/$SHARDS ${shard[-1]} req/s"
done

python3 - "${whole[*]}" "${shard[*]}" "$SHARDS" <<'EOF'
import statistics, sys
whole = [int(x) for x in sys.argv[1].split()]
shard = [int(x) for x in sys.argv[2].split()]
w, s = statistics.median(whole), statistics.median(shard)
print(f"median completed req/s: whole {w:.0f}, shard 0/{sys.argv[3]} {s:.0f}; "
      f"shard/whole {s / w:.3f}")
EOF
