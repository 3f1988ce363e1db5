#!/usr/bin/env bash
# Installs the system packages MInferenceCL builds and tests with on Debian/Ubuntu: the OpenCL
# loader and headers, CLBlast, PoCL (the CPU OpenCL driver used when no GPU driver is present),
# Oclgrind (kernel checks) and libpng (attention-map pictures). Needs root or sudo.
set -euo pipefail
packages=(ocl-icd-opencl-dev opencl-headers libclblast-dev pocl-opencl-icd oclgrind libpng-dev clinfo)
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
