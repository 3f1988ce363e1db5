#!/usr/bin/env bash
# Copies the MInference files the baselines need, verbatim, from a clone (or bare git directory) of
# github.com/microsoft/MInference into .baseline/minference (git-ignored; never commit it).
#
#   bash Benchmarks/baselines/prepare_baseline.sh /path/to/MInference[.git] [commit]
#
# The commit defaults to fb56c917f618e8645f1cfc37535afd7424d78f0d (2025-08-11), the one
# docs/MINFERENCE.md specifies; the sha256 sums below are those of its files.
set -euo pipefail
src=${1:?usage: prepare_baseline.sh GIT_DIR_OR_CLONE [COMMIT]}
commit=${2:-fb56c917f618e8645f1cfc37535afd7424d78f0d}
root=$(git rev-parse --show-toplevel)
dest="$root/.baseline/minference"
if [ -d "$src/.git" ]; then gitdir="$src/.git"; else gitdir="$src"; fi
git --git-dir="$gitdir" cat-file -e "$commit^{commit}"
git -C "$root" check-ignore -q .baseline/minference || { echo "error: .baseline/ is not git-ignored" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest"
files=(
  minference/ops/pit_sparse_flash_attention_v2.py
  minference/ops/block_sparse_flash_attention.py
  minference/ops/streaming_kernel.py
  minference/modules/minference_forward.py
  minference/modules/xattention.py
  minference/ops/xattention_fa.py
  minference/modules/flexprefill.py
  minference/ops/flash_attn_triton.py
  csrc/vertical_slash_index.cu
  csrc/kernels.cpp
  LICENSE
)
for f in "${files[@]}"; do
  mkdir -p "$dest/$(dirname "$f")"
  git --git-dir="$gitdir" show "$commit:$f" > "$dest/$f"
done
git --git-dir="$gitdir" rev-parse "$commit^{commit}" > "$dest/COMMIT"
if [ "$commit" = fb56c917f618e8645f1cfc37535afd7424d78f0d ]; then
  (cd "$dest" && sha256sum -c --quiet) <<'EOF'
a0cf64aadefb74857e291d1aa82f9f163b14ec277759ac4ae2a0c9d050292490  minference/ops/pit_sparse_flash_attention_v2.py
a8c315fa34ebf0e501d108a2b1f5a5df814a9224509d3bdd1eee9d4f688778d9  minference/ops/block_sparse_flash_attention.py
ce7830742aa6ad95a39ed68f57450719091eb77f0341ce5cb50715368747e4fd  minference/ops/streaming_kernel.py
b368e765fcc2021591f7cdf970e4e1a71731ed66f19e97023a13b70a02e6edc2  minference/modules/minference_forward.py
7b0478b2be4159080a3d4b7b54cda9f81a701b2b7f0d155f00be0c8173499776  minference/modules/xattention.py
362f392f44e8f1d7dea603650b1a01f93edd575e377eee5c3129b4a960df0734  minference/ops/xattention_fa.py
30a7272ce5dcab30e31a2fdda5a1531eb2d283e7c726b62353eec07c5d28c0a0  minference/modules/flexprefill.py
97abeab2bc1a31ac4a4c6d9ba15322fbf38db2f8dbfd18f66c6bb526b1b13f08  minference/ops/flash_attn_triton.py
a22b3e8771639132fc932209a7b8f43202e62c20a7e6e4f9ed4c914d48c9645b  csrc/vertical_slash_index.cu
b4cb7a1a25a4e23b4c52d76fd76385879020a032de640be9ac3cbc521ac7b597  csrc/kernels.cpp
c2cfccb812fe482101a8f04597dfc5a9991a6b2748266c47ac91b6a5aae15383  LICENSE
EOF
fi
echo "copied ${#files[@]} files of MInference $(cat "$dest/COMMIT") into $dest"
