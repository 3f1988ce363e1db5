#!/usr/bin/env bash
# Issue 16 on the GPU machine (scratch: folded into device-run.sh when done).
set -u
export MINFERENCECL_CACHE_DIR=/tmp/mcl-cache
step=$1
case $step in
a)
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  git log -1 --format=%h 2>/dev/null
  timeout 260 bash .gpu/run minference-bench check > $OUT/check.log 2>&1; echo "check rc=$?"
  grep -E "FAIL|checks|passed|tri-shape|xattention|flexprefill" $OUT/check.log | tail -40
  rm -rf /tmp/ours; timeout 280 bash .gpu/run minference-bench run --lengths 32768 65536 131072 262144 --one-head-lengths 0 \
    --patterns tri-shape xattention flexprefill --inputs structured --repeats 5 --masks-out /tmp/ours --out $OUT/ours.json 2>&1 | tail -12
  ;;
b)
  ls /tmp/ours
  timeout 400 python3 Benchmarks/baselines/prefill_methods.py --lengths 32768 65536 131072 262144 --out $OUT/upstream-prefill.json \
    --masks-out /tmp/up > $OUT/prefill.log 2>&1; echo "upstream rc=$?"; tail -25 $OUT/prefill.log
  (cd /tmp/ours && for f in xattention-N*.npy; do cp $f xattention-triton-${f#xattention-}; cp $f xattention-torch-${f#xattention-}; done)
  python3 Benchmarks/baselines/compare_masks.py /tmp/up /tmp/ours --json $OUT/mask-compare.json 2>&1 | head -60
  ;;
esac
