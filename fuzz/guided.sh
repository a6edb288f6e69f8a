#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain: libFuzzer (from
# libfuzzer-sys) steered by LLVM's SanitizerCoverage, which stable rustc
# enables through -Cpasses and -Cllvm-args (cargo-fuzz adds the same flags,
# plus AddressSanitizer, which needs nightly). Corpora grow in
# fuzz/corpus/<target>; CI replays them.
#
#   fuzz/guided.sh decode_value 600     # fuzz one target for 600 seconds
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?usage: fuzz/guided.sh TARGET SECONDS}"
seconds="${2:-60}"
host="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the flags off build scripts and proc macros, as cargo-fuzz does.
cargo build --release --target "$host" --target-dir target/guided --bin "$target"
mkdir -p "corpus/$target"
"target/guided/$host/release/$target" "corpus/$target" -max_total_time="$seconds" -print_final_stats=1
