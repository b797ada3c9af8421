#!/usr/bin/env bash
# Coverage-guided fuzzing of tokenbench's parsers of untrusted input with AFL++, through
# cargo-afl on stable Rust (crates/fuzz; the targets are listed by `--list` below).
#
#   scripts/fuzz.sh TARGET [SECONDS]   one target, 600 s by default
#   scripts/fuzz.sh all [SECONDS]      every target in turn
#   JOBS=2 scripts/fuzz.sh all 600     two targets at a time (one per core)
#
# Installs cargo-afl and builds AFL++'s runtime if missing. Findings go to
# target/fuzz/TARGET/default/{crashes,hangs}; each run ends with one line of figures from
# AFL++'s fuzzer_stats, and the script exits 1 if any target saved a crash or a hang. Turn a
# crash into a regression test by fixing it and copying the input to
# crates/fuzz/regressions/TARGET/ (`cargo test -p tokenbench-fuzz` replays it from then on).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?usage: scripts/fuzz.sh TARGET|all [SECONDS]}
seconds=${2:-600}
jobs=${JOBS:-1}

if ! command -v cargo-afl >/dev/null; then
    cargo install cargo-afl --locked
fi
# AFL++'s runtime for this rustc; cargo-afl refuses to build it twice.
if ! out=$(cargo afl config --build 2>&1) && ! grep -q "already built" <<<"$out"; then
    echo "$out" >&2
    exit 1
fi
# Its own target folder: AFL++'s instrumentation flags would rebuild the usual one.
CARGO_TARGET_DIR=target/afl cargo afl build --profile fuzz -p tokenbench-fuzz --features afl \
    --bin tokenbench-afl
bin=target/afl/fuzz/tokenbench-afl

fuzz_one() {
    local name=$1 out=target/fuzz/$1
    "$bin" --write-seeds "$name" "$out/seeds" >/dev/null
    # -t: a key derivation at the parser's limit (10⁶ PBKDF2 rounds) takes about a second;
    # -m: a run past 2 GiB of memory counts as a crash.
    AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_AUTORESUME=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        cargo afl fuzz -V "$seconds" -t 5000 -m 2048 -i "$out/seeds" -o "$out" "$bin" "$name" \
        >"$out.log" 2>&1 || { tail -20 "$out.log" >&2; return 1; }
    local stats=$out/default/fuzzer_stats
    awk -v name="$name" -F' *: *' '
        { v[$1] = $2 }
        END { printf "%s: %s s, %s execs (%s/s), corpus %s, coverage %s, crashes %s, hangs %s\n",
              name, v["run_time"], v["execs_done"], v["execs_per_sec"], v["corpus_count"],
              v["bitmap_cvg"], v["saved_crashes"], v["saved_hangs"] }' "$stats"
    [ "$(awk -F' *: *' '$1 == "saved_crashes" || $1 == "saved_hangs" { s += $2 } END { print s + 0 }' "$stats")" = 0 ]
}

if [ "$target" = all ]; then
    "$bin" --list >target/fuzz-targets.txt
    mapfile -t names < <(cut -f1 target/fuzz-targets.txt)
else
    names=("$target")
fi
[ "${#names[@]}" -gt 0 ] || { echo "fuzz.sh: no targets" >&2; exit 1; }
mkdir -p target/fuzz
failed=0
running=0
for name in "${names[@]}"; do
    fuzz_one "$name" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
exit "$failed"
