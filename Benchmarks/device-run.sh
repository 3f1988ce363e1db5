#!/usr/bin/env bash
# The GPU-machine side of Benchmarks/RESULTS.md: run from the repository root on the lent GPU
# machine after `../shared/tools/gpu-bundle minference-cl minference-bench` (with libclblast.so.1
# copied into .gpu/lib) and, for `benchmark`, with .baseline/ prepared (Benchmarks/baselines/README.md).
#
#   bash Benchmarks/device-run.sh validate COMMIT OUT_DIR    correctness on the device, real data, thresholds, estimation paths
#                                                            (and the portable dense path, unless SKIP_PORTABLE=1)
#   bash Benchmarks/device-run.sh benchmark COMMIT OUT_DIR   PyTorch/MInference baselines, then ours, in one call
#   bash Benchmarks/device-run.sh prefill-methods COMMIT OUT_DIR
#                                          Tri-shape, XAttention, FlexPrefill: ours, then upstream's
#                                          (prefill_methods.py), then their block sets compared
#                                          (split it with STEP=ours / STEP=upstream to fit 10 minutes)
set -uo pipefail
mode=$1 commit=$2 out=$3
export MINFERENCECL_CACHE_DIR=/tmp/minference-cl-cache
run() { bash .gpu/run "$@"; }
case $mode in
validate)
  timeout 240 bash .gpu/run minference-bench check --real .realdata/layer03 --real .realdata/layer20 > "$out/check.log" 2>&1
  echo "check rc=$?"; grep -E "FAIL|checks" "$out/check.log" | tail -5
  # The CLI on the full 2048-token real layers against the float64 reference outputs.
  python3 -c "import numpy as n; [n.save(f'/tmp/{x}32.npy', n.load(f'.realdata/layer20/{x}.npy').astype('f4')) for x in 'qkv']"
  for layer in layer03 layer20; do
    for args in "--pattern dense" "--pattern vertical-slash --vertical 64 --slash 256" "--pattern a-shape --sink 64 --window 256" "--pattern block-sparse --blocks 8"; do
      run minference-cl attention --q .realdata/$layer/q.npy --k .realdata/$layer/k.npy --v .realdata/$layer/v.npy --out /tmp/o.npy $args \
        --indices-out "/tmp/indices-$layer" > /tmp/cli.log 2>&1 || { echo "cli failed: $layer $args"; cat /tmp/cli.log; }
      python3 -c "import numpy as n; o=n.load('/tmp/o.npy').astype('f8'); r=n.load('.realdata/$layer/o_ref.npy').astype('f8'); print('$layer $args: rel-L2 vs dense reference', n.linalg.norm(o-r)/n.linalg.norm(r))"
    done
  done
  run minference-cl attention --q /tmp/q32.npy --k /tmp/k32.npy --v /tmp/v32.npy --out /tmp/o32.npy > /dev/null
  python3 -c "import numpy as n; o=n.load('/tmp/o32.npy').astype('f8'); r=n.load('.realdata/layer20/o_ref.npy').astype('f8'); print('layer20 fp32 dense: rel-L2', n.linalg.norm(o-r)/n.linalg.norm(r), 'max', abs(o-r).max())"
  timeout 120 bash .gpu/run minference-bench thresholds --lengths 2048 4096 8192 16384 32768 65536 --repeats 3 2>&1 | tail -10
  for e in clblast fused; do
    timeout 90 bash .gpu/run minference-bench run --lengths 131072 --one-head-lengths 1048576 --patterns vertical-slash block-sparse \
      --inputs structured --repeats 3 --estimation $e --commit "$commit" --out "$out/estimation-$e.json" 2>&1 | tail -5
  done
  [ "${SKIP_PORTABLE:-0}" = 1 ] || MINFERENCECL_TUNING=path=portable timeout 100 bash .gpu/run minference-bench run --lengths 4096 8192 16384 32768 --one-head-lengths 0 \
    --patterns dense --inputs structured --repeats 3 --commit "$commit" --out "$out/portable.json" 2>&1 | tail -6
  ;;
benchmark)
  # The results file is named after the GPU (nvidia-h200.json); on the H200 the three stages fit
  # one 10-minute call only with BASELINE_SKIP="--skip phases" and INPUTS=structured.
  slug=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-$//')
  timeout 200 bash .gpu/run minference-bench check > "$out/check.log" 2>&1
  echo "check rc=$?"; grep -E "FAIL|checks" "$out/check.log" | tail -5
  timeout 330 python3 Benchmarks/baselines/baseline.py --lengths 16384 32768 65536 131072 262144 --one-head-lengths 1048576 \
    --seed 1 --warmup 1 --repeat 3 ${BASELINE_SKIP:-} --out "$out/$slug-baselines.json" > "$out/baselines.log" 2>&1
  echo "baselines rc=$?"; tail -25 "$out/baselines.log"
  timeout 190 bash .gpu/run minference-bench run --baseline "$out/$slug-baselines.json" --lengths 16384 32768 65536 131072 262144 \
    --inputs ${INPUTS:-structured random} --seed 1 --repeats 3 --commit "$commit" \
    --command "bash Benchmarks/device-run.sh benchmark $commit \$OUT" --out "$out/$slug.json" > "$out/ours.log" 2>&1
  echo "ours rc=$?"; tail -40 "$out/ours.log"
  ;;
prefill-methods)
  # The block masks stay on the machine (128 MB per method at 256K); only the comparison comes back.
  lengths=${LENGTHS:-32768 65536 131072 262144}
  if [ "${STEP:-all}" != upstream ]; then
    rm -rf /tmp/ours-masks
    timeout 280 bash .gpu/run minference-bench run --lengths $lengths --one-head-lengths 0 --patterns tri-shape xattention flexprefill \
      --inputs structured --repeats 5 --commit "$commit" --masks-out /tmp/ours-masks --out "$out/prefill-methods.json" 2>&1 | tail -16
    (cd /tmp/ours-masks && for f in xattention-N*.npy; do mv "$f" "xattention-triton-${f#xattention-}"; done)
  fi
  if [ "${STEP:-all}" != ours ]; then
    rm -rf /tmp/upstream-masks
    timeout 400 python3 Benchmarks/baselines/prefill_methods.py --lengths $lengths --out "$out/prefill-methods-upstream.json" \
      --masks-out /tmp/upstream-masks > "$out/prefill-methods-upstream.log" 2>&1
    echo "upstream rc=$?"; tail -20 "$out/prefill-methods-upstream.log"
    python3 Benchmarks/baselines/compare_masks.py /tmp/upstream-masks /tmp/ours-masks --json "$out/prefill-methods-masks.json" \
      > "$out/prefill-methods-masks.log" 2>&1
    echo "compare rc=$?"; grep -v "^    " "$out/prefill-methods-masks.log"
  fi
  ;;
esac
