#!/usr/bin/env python3
"""Runs prefill_methods.py's GPU code paths on the CPU through Triton's interpreter
(TRITON_INTERPRET=1), at small sizes, and checks each output against a float32 dense attention
restricted to the element-wise key set the method is meant to cover. No GPU needed; torch (CPU),
triton, einops and numpy must be importable. About 1 to 2 minutes.

    python3 Benchmarks/baselines/interpret_check.py [--minference-dir .baseline/minference]

What runs, all upstream's code loaded by prefill_methods.PrefillUpstream:
- xattention_forward with the torch estimate (device name "NVIDIA H200", as upstream runs there) and
  with the Triton estimate (name patched by prefill_methods.xattention_estimate), at N = 4000 and
  4096, the attention by the block_sparse_attn substitute: both estimates must select the same
  blocks at 4000; at 4096 the torch estimate shows docs/PREFILL-METHODS.md 4.6 (no block 1..15 in
  query blocks 16..31) and the Triton one does not;
- flexprefill_forward (get_active_blocks with the real triton_bnhd_pool, then the Triton block kernel);
- tri_shape_kernel (A-shape Triton kernel + dense tail) at N = 4300 (sink pass included).

Work-arounds for the interpreter only (none of them is used on the GPU):
- a loop bound loaded from memory (`tl.range(0, num_active_block)`) is a 1-element array there, which
  the interpreter's __index__ rejects: patched to take the element;
- the interpreter's tl.dot is wrong for bf16 (numpy has no bf16), so the bf16-asserting launcher
  triton_block_wise_prefill_attention is recompiled from upstream's source with that one assert
  removed and its output allocated as bf16 (what its kernel stores), and fp16 inputs are used;
- the A-shape kernel's autotuner gets its first config only (the interpreter has no benchmarker);
  `torch.cuda.device(...)` becomes a no-op and "cuda" tensors go to the CPU.
Tolerances: bf16 probabilities and outputs, so max |error| < 0.05 on unit-variance values.
"""

import argparse
import ast
import contextlib
import io
import math
import os
import sys
import types

os.environ["TRITON_INTERPRET"] = "1"
sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import triton  # noqa: E402
import triton.runtime.interpreter as TI  # noqa: E402

import prefill_methods as PM  # noqa: E402
import synthetic  # noqa: E402
import upstream as U  # noqa: E402

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed += bool(ok)
    failed += not ok
    print(f"{'ok   ' if ok else 'FAIL '} {name} {detail}", flush=True)


_original_patch = TI._patch_lang_tensor


def _patch_lang_tensor(tensor, scope):
    _original_patch(tensor, scope)
    tensor.__index__ = lambda self: int(self.handle.data.reshape(-1)[0])


TI._patch_lang_tensor = _patch_lang_tensor


def launcher_without_bf16_assert(module, name):
    """Interpreter only: upstream's launcher recompiled without its bf16 assert, output bf16."""
    tree = ast.parse(open(module.__file__).read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    fn.body = [st for st in fn.body if not (isinstance(st, ast.Assert) and "bfloat16" in ast.unparse(st))]
    text = ast.unparse(fn)
    assert "o = torch.empty_like(q)" in text
    text = text.replace("o = torch.empty_like(q)", "o = torch.empty_like(q, dtype=torch.bfloat16)")
    ns = dict(module.__dict__)
    exec(compile(text, module.__file__, "exec"), ns)  # noqa: S102 - upstream's code, test only
    return ns[name]


def masked_dense(q, k, v, allowed):
    """float32 softmax(q k^T / sqrt(d)) v over the allowed (i, j) pairs; q, k, v [H, N, d]."""
    s = torch.einsum("hid,hjd->hij", q.float(), k.float()) / math.sqrt(q.shape[-1])
    return torch.einsum("hij,hjd->hid", torch.softmax(s.masked_fill(~allowed, float("-inf")), -1), v.float())


def block_elements(mask, n):
    i = torch.arange(n)
    return mask[:, i[:, None] // PM.BLOCK, i[None, :] // PM.BLOCK] & (i[None, :] <= i[:, None])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minference-dir", default=".baseline/minference")
    a = p.parse_args()
    clock = PM.Clock(torch, False)
    up = PM.PrefillUpstream(a.minference_dir, torch, clock, cpu=False, log=lambda *x: None)
    up.flex.triton_block_wise_prefill_attention = launcher_without_bf16_assert(up.flex, "triton_block_wise_prefill_attention")
    up.substitute_dtype = torch.float16
    for obj in vars(up.streaming).values():
        if isinstance(obj, triton.runtime.Autotuner):
            obj.configs = obj.configs[:1]
    torch.cuda.current_device = lambda: 0
    torch.cuda.get_device_properties = lambda device=None: types.SimpleNamespace(name="NVIDIA H200", major=9, minor=0)
    torch.cuda.device = lambda *x, **kw: contextlib.nullcontext()
    real_arange = torch.arange

    def cpu_arange(*x, **kw):
        if str(kw.get("device", "")).startswith("cuda"):
            kw["device"] = "cpu"
        return real_arange(*x, **kw)
    torch.arange = cpu_arange
    cfg = {"attn_forward_config": {}, "layer_idx": 0, "num_hidden_layers": 1}

    # XAttention, both estimates, substitute attention
    masks = {}
    for n in (4000, 4096):
        q, k, v = synthetic.generate(n, 1, 1, 128, seed=1)
        q, k, v = q[None], k[None], v[None]
        for want_triton in (False, True):
            with PM.xattention_estimate(torch, want_triton) as (patched, seen), PM.cpu_cuda_redirect(torch):
                up.capture = {}
                with contextlib.redirect_stdout(io.StringIO()):
                    out = up.xattention.xattention_forward(q, k, v, cfg)
                mask = up.capture["mask"]
                up.capture = None
            masks[(n, want_triton)] = mask
            err = (out[0].float() - masked_dense(q[0], k[0], v[0], block_elements(mask, n))).abs().max().item()
            check(f"xattention N={n} {'triton' if want_triton else 'torch'} estimate (name seen: {seen!r}): "
                  f"substitute output == dense over the selected blocks", err < 0.05, f"max err {err:.4f}")
    check("xattention N=4000: Triton and torch estimates select the same blocks",
          torch.equal(masks[(4000, False)], masks[(4000, True)]))
    check("xattention N=4096: torch estimate hides earlier chunks (4.6), Triton estimate does not",
          not masks[(4096, False)][:, 16:, 1:16].any() and bool(masks[(4096, True)][:, 16:, 1:16].any()))

    # FlexPrefill (fp16 here, see the docstring)
    for n in (1000, 2048):
        q, k, v = synthetic.generate(n, 4, 2, 128, seed=1)
        q, k, v = q[None], U.repeat_kv(k[None], 2), U.repeat_kv(v[None], 2)
        with PM.cpu_cuda_redirect(torch):
            up.capture = {}
            out = up.flex.flexprefill_forward(q, k, v, cfg)
            mask = up.capture["mask"]
            up.capture = None
        err = (out[0].float() - masked_dense(q[0], k[0], v[0], block_elements(mask, n))).abs().max().item()
        check(f"flexprefill N={n}: output == dense over the selected blocks", err < 0.05,
              f"max err {err:.4f}, {int(mask.sum())} blocks")

    # Tri-shape
    n = 4300
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 1, n, 64, generator=gen).half() for _ in range(3))
    out = up.streaming.tri_shape_kernel(q, k, v, cfg)
    i = torch.arange(n)
    j = i[None, :]
    allowed = ((j <= i[:, None]) & ((i[:, None] >= n - 100) | (i[:, None] - j < 3968) | (j < 128)))[None]
    err = (out[0].float() - masked_dense(q[0], k[0], v[0], allowed)).abs().max().item()
    check("tri_shape N=4300: output == dense over the Tri-shape set", err < 0.05, f"max err {err:.4f}")
    check("tri_shape pairs formula == the element set", PM.tri_shape_pairs(n, 128, 3968, 100) == int(allowed.sum()))
    torch.arange = real_arange
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
