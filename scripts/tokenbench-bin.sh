# Sourced by the scripts that run the tokenbench binary: sets BIN to $TOKENBENCH if given,
# else builds the release binary of the checkout at ROOT and points at it.
# shellcheck shell=bash

if [[ -n "${TOKENBENCH:-}" ]]; then
    BIN=$TOKENBENCH
else
    (cd "$ROOT" && cargo build --release -p tokenbench)
    target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
    BIN=$target_dir/release/tokenbench
fi
