#!/usr/bin/env bash
# Fuzzes the .npy reader or the pattern-config loader with libFuzzer (swiftc -sanitize=fuzzer),
# outside the package build: the harness compiles the parsing sources directly.
#
#   scripts/fuzz/run.sh npy|config [seconds] [extra libFuzzer flags...]
#
# The corpus starts from Tests/MInferenceCLTests/Fixtures/fuzz-corpus/<name> (the regression
# inputs the test suite replays) and grows in .build-fuzz/corpus-<name>; crashes, timeouts and
# out-of-memory inputs land in .build-fuzz/artifacts-<name>. To keep new cases, minimise the
# grown corpus (.build-fuzz/fuzz-<name> -merge=1 NEW_DIR .build-fuzz/corpus-<name>) and copy
# the inputs worth keeping (every reproducer, one input per distinct error message) into the
# fixture folder; FuzzCorpusTests replays them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: run.sh npy|config [seconds] [libFuzzer flags]}
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
src=Sources/MInferenceCL
case "$name" in
  npy) harness=scripts/fuzz/NPYHarness.swift ;;
  config) harness=scripts/fuzz/ConfigHarness.swift ;;
  *) echo "unknown target $name (npy or config)" >&2; exit 2 ;;
esac
out=.build-fuzz
mkdir -p "$out/corpus-$name" "$out/artifacts-$name"
binary="$out/fuzz-$name"
swiftc -O -g -sanitize=fuzzer,address -parse-as-library -module-name MInferenceCLFuzz \
  "$harness" scripts/fuzz/Shim.swift \
  "$src/Tensor/NPYFile.swift" "$src/Tensor/Tensor.swift" "$src/Tensor/DType.swift" \
  "$src/Attention/AttentionProblem.swift" "$src/Patterns/HeadPattern.swift" "$src/Patterns/PatternConfig.swift" \
  -o "$binary"
seeds=Tests/MInferenceCLTests/Fixtures/fuzz-corpus/$name
"$binary" "$out/corpus-$name" "$seeds" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
  -artifact_prefix="$out/artifacts-$name/" -print_final_stats=1 "$@"
