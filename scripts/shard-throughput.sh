#!/usr/bin/env bash
# How many requests per second one shard completes, and what sharding costs it: side by
# side, alternating, against one external `tokenbench mock` on this machine.
#
#   whole   `tokenbench run` of 2 gateway instances offered RATE req/s (far above capacity)
#   shard   `tokenbench run --shard 0/SHARDS` of 2×SHARDS instances offered SHARDS×RATE
#           req/s: the same 2 instances and offered rate, plus the other shards' arrivals
#           it draws and passes over
#
# Each figure is completed requests per second (requests.ok / duration_s); the script
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

# shellcheck source=scripts/tokenbench-bin.sh
source "$SCRIPT_DIR/tokenbench-bin.sh"

WORK=$(mktemp -d)
# shellcheck source=scripts/external-mock.sh
source "$SCRIPT_DIR/external-mock.sh"
external_scenario shard-throughput 2 "$RATE" "$SECONDS_PER_RUN" >"$WORK/whole.toml"
external_scenario shard-throughput $((2 * SHARDS)) $((SHARDS * RATE)) "$SECONDS_PER_RUN" \
    >"$WORK/sharded.toml"

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
