#!/usr/bin/env python3
"""Upstream MInference's XAttention and FlexPrefill block selections on small fp32 inputs
(expected.json and the *.npy inputs beside this file), for PrefillMethodReferenceTests, which
requires the float64 references (PatternReference+XAttention.swift, +FlexPrefill.swift) to pick
the same blocks.

Upstream's code is not copied here: it is read at run time from a clone or bare git directory of
github.com/microsoft/MInference (at the commit below, read with `git show`) or from a directory
laid out like that repository. Only the needed top-level definitions of
minference/modules/xattention.py and minference/modules/flexprefill.py are compiled (selected
with `ast`, source text untouched), so neither file's Triton imports run. Upstream's entry points
are called as its `attn_forward` calls them (`xattention_forward`, `flexprefill_forward`, with K
repeated to the query heads and an `attn_forward_config` dict), on the CPU, with these stand-ins
for what needs a GPU:

- `torch.cuda.current_device` / `get_device_properties`: report a device named
  "NVIDIA H200 (CPU stand-in)", so `xattn_estimate` switches to its torch estimate, as upstream
  does on an H200 (docs/PREFILL-METHODS.md 4.3); `Tensor.to("cuda")` is mapped to the CPU.
- `block_sparse_attn.block_sparse_attn_func` (XAttention's kernel) and FlexPrefill's
  `triton_block_wise_attention` / `flash_attn_func`: record the block mask / block index /
  dense call they receive, and return zeros. The selections are what upstream hands its kernels.
- FlexPrefill's `triton_bnhd_pool` (a Triton kernel): a torch mean over the real rows of each
  block, what the kernel computes (docs/PREFILL-METHODS.md 5.5, 5.10).
- `xattn_estimate` and FlexPrefill's `square_root_js_divergence` are wrapped (called unchanged) to
  record the block scores and each head's JS distance.

The torch estimate equals the Triton estimate's definition (the reference's) unless
`ceil(N/2048)*2048 - N < 8` (docs/PREFILL-METHODS.md 4.6); no length here is that close.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch numpy einops
    /tmp/venv/bin/python Tests/MInferenceCLTests/Fixtures/prefill-methods/make_fixtures.py /path/to/MInference[.git]
"""
import ast
import json
import math
import os
import subprocess
import sys
import types
from typing import Optional

import einops
import numpy as np
import torch

COMMIT = "fb56c917f618e8645f1cfc37535afd7424d78f0d"
HERE = os.path.dirname(os.path.abspath(__file__))
XATTENTION_NAMES = ("find_blocks_chunked", "xattn_estimate", "Xattention_prefill", "xattention_forward")
FLEXPREFILL_NAMES = ("torch_bhn_sumpool", "score_cover_topk", "score_cover_idx", "sum_all_diagonal_matrix",
                     "transform_veritcal_slash_idx", "causal_mask", "get_block_vertical_slash_from_qk",
                     "square_root_js_divergence", "get_active_blocks", "flex_prefill_attention", "flexprefill_forward")


# ---- reading upstream ------------------------------------------------------------------------------

def upstream_source(root, path):
    """The text of `path` in upstream: from git (bare or clone) at COMMIT, else from a directory."""
    gitdir = os.path.join(root, ".git") if os.path.isdir(os.path.join(root, ".git")) else root
    if os.path.exists(os.path.join(gitdir, "HEAD")) and os.path.isdir(os.path.join(gitdir, "objects")):
        return subprocess.run(["git", "--git-dir", gitdir, "show", f"{COMMIT}:{path}"], check=True,
                              capture_output=True, text=True).stdout
    commit_file = os.path.join(root, "COMMIT")
    if os.path.exists(commit_file) and open(commit_file).read().strip() != COMMIT:
        sys.exit(f"{root} holds upstream {open(commit_file).read().strip()}, not {COMMIT}")
    return open(os.path.join(root, path)).read()


def compile_definitions(source, path, names, namespace):
    """Executes the top-level definitions of `source` named in `names` (verbatim) in `namespace`."""
    tree = ast.parse(source, filename=path)
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined = [node.name]
        elif isinstance(node, ast.Assign):
            defined = [t.id for t in node.targets if isinstance(t, ast.Name)]
        else:
            continue
        if any(n in names for n in defined):
            found += defined
            exec(compile(ast.Module(body=[node], type_ignores=[]), path, "exec"), namespace)
    missing = set(names) - set(found)
    if missing:
        sys.exit(f"{path}: definitions not found: {sorted(missing)}")


# ---- CPU stand-ins ---------------------------------------------------------------------------------

_tensor_to = torch.Tensor.to


def _to_cpu_for_cuda(self, *args, **kwargs):
    args = tuple("cpu" if isinstance(a, str) and a.startswith("cuda") else a for a in args)
    if isinstance(kwargs.get("device"), str) and kwargs["device"].startswith("cuda"):
        kwargs["device"] = "cpu"
    return _tensor_to(self, *args, **kwargs)


torch.Tensor.to = _to_cpu_for_cuda
torch.cuda.current_device = lambda: 0
torch.cuda.get_device_properties = lambda index: types.SimpleNamespace(name="NVIDIA H200 (CPU stand-in)")

recorded = {}


def block_sparse_attn_func(q, k, v, cu_q, cu_k, head_mask_type, streaming_info, base_blockmask, max_q, max_k,
                           p_dropout, deterministic=False, softmax_scale=None, is_causal=False, **kwargs):
    """Stand-in for block_sparse_attn's kernel: records the block mask it receives."""
    assert is_causal and p_dropout == 0.0 and head_mask_type.tolist() == [1] * q.shape[1]
    recorded["xattention_mask"] = base_blockmask.clone()
    return torch.zeros_like(q)


sys.modules["block_sparse_attn"] = types.SimpleNamespace(block_sparse_attn_func=block_sparse_attn_func)


def triton_bnhd_pool(x, kernel_size, pool_type="avg"):
    """Stand-in for the Triton pooling kernel: the mean of each block's real rows ([b, n, h, d])."""
    assert pool_type == "avg"
    b, n, h, d = x.shape
    m = math.ceil(n / kernel_size)
    padded = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, m * kernel_size - n))
    sums = padded.view(b, m, kernel_size, h, d).sum(2)
    counts = torch.tensor([min(kernel_size, n - i * kernel_size) for i in range(m)], dtype=x.dtype)
    return sums / counts[None, :, None, None]


def triton_block_wise_attention(q, k, v, block_idx, block_size, softmax_scale=None, gqa_interleave=False):
    """Stand-in for FlexPrefill's block kernel: records the block index lists it receives."""
    recorded["flexprefill_blocks"] = [[t.clone() for t in row] for row in block_idx]
    recorded["flexprefill_block_size"] = block_size
    return torch.zeros_like(q)


def flash_attn_func(q, k, v, softmax_scale=None, causal=False):
    """Stand-in for flash-attention: records that the short-sequence dense path ran."""
    assert causal
    recorded["flexprefill_dense"] = True
    return torch.zeros_like(q)


def load_upstream(root):
    xa = {"__name__": "upstream_xattention", "math": math, "torch": torch, "F": torch.nn.functional}
    compile_definitions(upstream_source(root, "minference/modules/xattention.py"), "minference/modules/xattention.py",
                        XATTENTION_NAMES, xa)
    estimate = xa["xattn_estimate"]

    def recording_estimate(*args, **kwargs):
        sums, masks = estimate(*args, **kwargs)
        recorded["xattention_scores"] = sums.clone()
        return sums, masks
    xa["xattn_estimate"] = recording_estimate

    fp = {"__name__": "upstream_flexprefill", "math": math, "torch": torch, "rearrange": einops.rearrange,
          "Optional": Optional, "triton_bnhd_pool": triton_bnhd_pool,
          "triton_block_wise_attention": triton_block_wise_attention, "flash_attn_func": flash_attn_func}
    compile_definitions(upstream_source(root, "minference/modules/flexprefill.py"), "minference/modules/flexprefill.py",
                        FLEXPREFILL_NAMES, fp)
    distance = fp["square_root_js_divergence"]

    def recording_distance(p, q):
        result = distance(p, q)
        recorded["flexprefill_distance"] = result.clone()
        return result
    fp["square_root_js_divergence"] = recording_distance
    return xa, fp


# ---- inputs ----------------------------------------------------------------------------------------

def rope_like(n, pairs, rng):
    """[n, 2*pairs]: a fixed random vector rotated by angle i * w_p in channel pair p, with slow
    frequencies w_p = 3^p * pi / n, so that q_i . k_j depends on i - j only and peaks at i = j
    (local, slash-like attention)."""
    w = np.pi / n * 3.0 ** np.arange(pairs)
    angles = np.arange(n)[:, None] * w[None, :]
    a = 0.3 * rng.standard_normal(pairs) + 2.0
    out = np.empty((n, 2 * pairs))
    out[:, 0::2] = a * np.cos(angles)
    out[:, 1::2] = a * np.sin(angles)
    return out


def make_inputs(n, kinds, kv_heads, d, seed):
    """q [len(kinds), n, d], k [kv_heads, n, d], float32. With several KV heads, KV head 0 is
    N(0, 1) noise; the structured ones carry, in their last d/2 channels, a local RoPE-like rotation
    and six strong key columns. Query head kinds: "random" (N(0, 1)), "diffuse" (0.3 N(0, 1)),
    "local" (the rotation: slash-like), "columns" (the column direction: vertical lines), "mixed"
    (both)."""
    rng = np.random.default_rng(seed)
    half = d // 2
    column_direction = rng.standard_normal(half)
    column_direction /= np.linalg.norm(column_direction)
    columns = np.sort(rng.choice(n, size=6, replace=False))
    k = rng.standard_normal((kv_heads, n, d))
    for h in range(1 if kv_heads > 1 else 0, kv_heads):
        k[h, :, half:] = 0.4 * k[h, :, half:] + rope_like(n, half // 2, np.random.default_rng(seed + 50))
        k[h, columns, half:] += 12.0 * column_direction
    q = np.empty((len(kinds), n, d))
    for h, kind in enumerate(kinds):
        noise = rng.standard_normal((n, d))
        q[h] = noise if kind == "random" else 0.3 * noise
        if kind in ("local", "mixed"):
            q[h, :, half:] += 3.0 * rope_like(n, half // 2, np.random.default_rng(seed + 60 + h))
        if kind in ("columns", "mixed"):
            q[h, :, half:] += 2.5 * column_direction
    return q.astype(np.float32), k.astype(np.float32), columns


# ---- runs ------------------------------------------------------------------------------------------

def repeat_kv(k, heads):
    """[1, kv, n, d] -> [1, heads, n, d], query head h reading kv head h // (heads / kv)."""
    return k.repeat_interleave(heads // k.shape[1], dim=1)


def run_xattention(xa, q, k, threshold):
    recorded.clear()
    q4 = torch.from_numpy(q)[None]
    k4 = repeat_kv(torch.from_numpy(k)[None], q.shape[0])
    config = {"attn_forward_config": {"threshold": threshold}}  # stride 8, norm 1, block 128, chunk 2048
    xa["xattention_forward"](q4, k4, torch.zeros_like(k4), config)
    mask = recorded["xattention_mask"][0]  # [H, ceil(N/128), ceil(N/128)]
    nb = mask.shape[-1]
    assert not torch.triu(mask, diagonal=1).any(), "non-causal block in upstream's mask"
    blocks = [[torch.nonzero(mask[h, m]).flatten().tolist() for m in range(nb)] for h in range(mask.shape[0])]
    sums = recorded["xattention_scores"][0]
    scores = [[[float(sums[h, m, c]) for c in range(m + 1)] for m in range(nb)] for h in range(sums.shape[0])]
    return blocks, scores


def run_flexprefill(fp, q, k, gamma, tau, min_budget=None, max_budget=None):
    recorded.clear()
    q4 = torch.from_numpy(q)[None]
    k4 = repeat_kv(torch.from_numpy(k)[None], q.shape[0])
    config = {"attn_forward_config": {"gamma": gamma, "tau": tau, "min_budget": min_budget, "max_budget": max_budget,
                                      "block_size": 128}}
    fp["flexprefill_forward"](q4, k4, torch.zeros_like(k4), config)
    heads, n = q.shape[0], q.shape[1]
    nb = math.ceil(n / 128)
    if recorded.get("flexprefill_dense"):
        return True, None, [[list(range(m + 1)) for m in range(nb)] for _ in range(heads)]
    assert recorded["flexprefill_block_size"] == 128
    distance = [float(x) for x in recorded["flexprefill_distance"][0]]
    blocks = []
    for flat in recorded["flexprefill_blocks"][0]:
        flat = flat.tolist()
        assert flat == sorted(set(flat)), "block index not sorted and distinct"
        assert all(i // nb >= i % nb for i in flat), "non-causal block in upstream's index"
        blocks.append([[i % nb for i in flat if i // nb == m] for m in range(nb)])
    return False, distance, blocks


INPUTS = {  # name: (N, query head kinds, KV heads, head dim, seed); query head h reads KV head h // (H / KV)
    "n1000": (1000, ("random", "diffuse", "local", "columns"), 2, 16, 11),
    "n2500": (2500, ("random", "mixed"), 1, 16, 12),
    "n3001": (3001, ("diffuse", "mixed"), 1, 16, 13),
}
XATTENTION_CASES = [(name, threshold) for name in ("n1000", "n2500", "n3001") for threshold in (0.5, 0.9)]
FLEXPREFILL_CASES = ([(name, gamma, tau, None, None) for name in ("n1000", "n3001") for gamma in (0.9, 0.95)
                      for tau in (0.1, 0.5)]
                     + [("n3001", 0.9, 0.1, 300, 700),  # budgets: 3 blocks minimum, 6 maximum
                        ("n1000", 0.95, 0.1, 300, 400),  # 3 minimum, 4 maximum
                        ("n1000", 0.9, 0.1, 1000, None)])  # N <= ceil(1000/128)*128: dense


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    xa, fp = load_upstream(sys.argv[1])
    torch.manual_seed(0)
    out = {"upstream_commit": COMMIT, "torch": torch.__version__, "numpy": np.__version__,
           "script": "Tests/MInferenceCLTests/Fixtures/prefill-methods/make_fixtures.py",
           "inputs": {}, "xattentionScores": {}, "xattention": [], "flexprefill": []}
    data = {}
    for name, (n, kinds, kv_heads, d, seed) in INPUTS.items():
        q, k, columns = make_inputs(n, kinds, kv_heads, d, seed)
        np.save(os.path.join(HERE, f"{name}-q.npy"), q)
        np.save(os.path.join(HERE, f"{name}-k.npy"), k)
        out["inputs"][name] = {"q": f"{name}-q.npy", "k": f"{name}-k.npy", "length": n, "headsQ": len(kinds),
                               "kinds": list(kinds), "headsKV": kv_heads, "headDim": d, "seed": seed, "columns": columns.tolist()}
        data[name] = (q, k)
    for name, threshold in XATTENTION_CASES:
        blocks, scores = run_xattention(xa, *data[name], threshold)
        out["xattentionScores"][name] = scores
        out["xattention"].append({"input": name, "threshold": threshold, "blocks": blocks})
        density = [sum(map(len, b)) / (len(b) * (len(b) + 1) / 2) for b in blocks]
        print(f"xattention {name} tau={threshold}: density per head {[round(x, 3) for x in density]}")
    for name, gamma, tau, min_budget, max_budget in FLEXPREFILL_CASES:
        dense, distance, blocks = run_flexprefill(fp, *data[name], gamma, tau, min_budget, max_budget)
        out["flexprefill"].append({"input": name, "gamma": gamma, "tau": tau, "minBudget": min_budget,
                                   "maxBudget": max_budget, "dense": dense, "distance": distance, "blocks": blocks})
        density = [sum(map(len, b)) / (len(b) * (len(b) + 1) / 2) for b in blocks]
        print(f"flexprefill {name} gamma={gamma} tau={tau} budgets=({min_budget}, {max_budget}): dense={dense} "
              f"D={distance and [round(x, 4) for x in distance]} density {[round(x, 3) for x in density]}")
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
