#!/usr/bin/env bash
# Builds the MInferenceCL documentation (DocC, through swift-docc-plugin) and fails if DocC
# reports any warning: a broken symbol link, a doc comment naming a parameter that does not
# exist, a catalog page that does not resolve. Extra arguments are passed to
# generate-documentation (e.g. --experimental-documentation-coverage
# --coverage-summary-level brief). The archive lands in
# .build/plugins/Swift-DocC/outputs/MInferenceCL.doccarchive.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift package --disable-sandbox generate-documentation --target MInferenceCL "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "check-docs: generate-documentation failed (exit $status)" >&2
  exit "$status"
fi
warnings=$(grep -c "warning:" "$log")
if [ "$warnings" -ne 0 ]; then
  echo "check-docs: $warnings DocC warning(s):" >&2
  grep "warning:" "$log" >&2
  exit 1
fi
echo "check-docs: no warnings"
