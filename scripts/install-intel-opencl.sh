#!/usr/bin/env bash
# Installs Intel's OpenCL CPU runtime (its own compiler and runtime, independent of PoCL) without
# root, from PyPI wheels: intel-opencl-rt with its dependencies intel-cmplr-lib-rt and tbb.
#
#   scripts/install-intel-opencl.sh [DIR]      (default: $MINFERENCECL_INTEL_OPENCL_DIR, else
#                                               ~/.cache/minference-cl/intel-opencl)
#   source DIR/env.sh                          then every OpenCL program sees the runtime
#
# DIR/lib gets the wheels' libraries except their own libOpenCL.so* (the system's ICD loader stays
# in charge), DIR/vendors one .icd file naming DIR/lib/libintelocl.so beside copies of the
# system's .icd files (so PoCL and any GPU driver stay visible), and DIR/env.sh the two variables
# that point the loader there: OCL_ICD_VENDORS and LD_LIBRARY_PATH. About 270 MB of wheels are
# downloaded once; a second run with the same DIR does nothing. Needs python3 with pip, unzip.
set -euo pipefail
dir=${1:-${MINFERENCECL_INTEL_OPENCL_DIR:-$HOME/.cache/minference-cl/intel-opencl}}
wheels=(intel-opencl-rt==2026.2.0 intel-cmplr-lib-rt==2026.2.0 tbb==2023.2.0)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ ! -e "$dir/lib/libintelocl.so" ]; then
  command -v unzip > /dev/null || { echo "install-intel-opencl: needs unzip (apt-get install unzip)" >&2; exit 1; }
  mkdir -p "$dir/wheels"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$dir/wheels" "${wheels[@]}"
  rm -rf "$dir/unpacked" "$dir/lib.partial"
  mkdir -p "$dir/unpacked" "$dir/lib.partial"
  for wheel in "$dir"/wheels/*.whl; do unzip -q -o "$wheel" '*/data/lib/*' -d "$dir/unpacked"; done
  for file in "$dir"/unpacked/*/data/lib/*; do
    case $(basename "$file") in libOpenCL.so*) continue ;; esac
    mv "$file" "$dir/lib.partial/"
  done
  rm -rf "$dir/unpacked" "$dir/lib" "$dir/wheels"
  mv "$dir/lib.partial" "$dir/lib"
fi
[ -e "$dir/lib/libintelocl.so" ] || { echo "install-intel-opencl: libintelocl.so is not in the wheels" >&2; exit 1; }
rm -rf "$dir/vendors"
mkdir -p "$dir/vendors"
echo "$dir/lib/libintelocl.so" > "$dir/vendors/intel-cpu.icd"
for icd in /etc/OpenCL/vendors/*.icd; do [ -e "$icd" ] && cp "$icd" "$dir/vendors/"; done
cat > "$dir/env.sh" <<EOF
# Written by scripts/install-intel-opencl.sh: Intel's OpenCL CPU runtime beside the system's drivers.
export OCL_ICD_VENDORS="$dir/vendors"
export LD_LIBRARY_PATH="$dir/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
echo "Intel OpenCL CPU runtime in $dir; use it with: source $dir/env.sh"
