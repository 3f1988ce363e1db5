#!/usr/bin/env bash
# Issue 16 on the GPU machine (scratch: folded into device-run.sh when done).
set -u
export MINFERENCECL_CACHE_DIR=/tmp/mcl-cache
step=$1
case $step in
check)
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  timeout 450 bash .gpu/run minference-bench check > $OUT/check.log 2>&1; echo "check rc=$?"
  grep -vE " ok$" $OUT/check.log | tail -15; grep -cE " ok$" $OUT/check.log
  ;;
masks)
  rm -rf /tmp/ours /tmp/up
  timeout 150 bash .gpu/run minference-bench run --lengths 131072 262144 --one-head-lengths 0 --patterns xattention flexprefill \
    --inputs structured --repeats 1 --warmup 0 --masks-out /tmp/ours --out /tmp/masks-run.json 2>&1 | tail -6
  timeout 200 python3 Benchmarks/baselines/prefill_methods.py --lengths 131072 262144 --methods xattention_triton flexprefill \
    --warmup 1 --repeat 1 --out /tmp/up.json --masks-out /tmp/up > $OUT/prefill-masks.log 2>&1; echo "upstream rc=$?"
  (cd /tmp/ours && for f in xattention-N*.npy; do mv $f xattention-triton-${f#xattention-}; done)
  python3 Benchmarks/baselines/compare_masks.py /tmp/up /tmp/ours --json $OUT/mask-compare.json > $OUT/mask-compare.log 2>&1
  echo "compare rc=$?"; grep -v "^    " $OUT/mask-compare.log
  ;;
xa)
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  timeout 220 bash .gpu/run minference-bench check --only xattention > $OUT/check-xattention.log 2>&1; echo "check rc=$?"
  grep -vE " ok$" $OUT/check-xattention.log | tail -8; grep -cE " ok$" $OUT/check-xattention.log
  rm -rf /tmp/ours /tmp/up
  timeout 120 bash .gpu/run minference-bench run --lengths 131072 262144 --one-head-lengths 0 --patterns xattention \
    --inputs structured --repeats 5 --masks-out /tmp/ours --out $OUT/xattention.json 2>&1 | tail -4
  timeout 130 python3 Benchmarks/baselines/prefill_methods.py --lengths 131072 262144 --methods xattention_triton \
    --warmup 1 --repeat 1 --out /tmp/up.json --masks-out /tmp/up > $OUT/prefill-masks.log 2>&1; echo "upstream rc=$?"
  (cd /tmp/ours && for f in xattention-N*.npy; do mv $f xattention-triton-${f#xattention-}; done)
  python3 Benchmarks/baselines/compare_masks.py /tmp/up /tmp/ours --json $OUT/mask-compare.json > $OUT/mask-compare.log 2>&1
  echo "compare rc=$?"; grep -v "^    " $OUT/mask-compare.log
  ;;
esac
