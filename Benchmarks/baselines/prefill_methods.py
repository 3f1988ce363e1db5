#!/usr/bin/env python3
"""Upstream MInference's other prefill methods (Tri-shape, XAttention, FlexPrefill), run and timed
on one GPU on MInferenceCL's structured input, with their selected block sets written out for
comparison with MInferenceCL's (compare_masks.py). Specification: docs/PREFILL-METHODS.md.

Everything that runs is upstream's own code at the commit in .baseline/minference/COMMIT, loaded by
file path (never the `minference` package), called through the layer entry points upstream's
`attn_forward` uses (after `repeat_kv` of K and V to the query heads, as forward.py:128-132 does):

  tri_shape          tri_shape_kernel(q, k, v, cfg)   n_init 128, n_local 3968, n_last 100; fp16
  xattention_torch   xattention_forward(q, k, v, cfg) stride 8, threshold 0.9, block 128, chunk 2048,
                     with upstream's torch estimate (the one its device-name test picks on an H200,
                     docs/PREFILL-METHODS.md 4.3; at multiples of 2048 it has the 4.6 masking bug)
  xattention_triton  the same with upstream's Triton estimate (what its test picks on an A100/H100),
                     forced by showing xattn_estimate a device name that contains "100"
  flexprefill        flexprefill_forward(q, k, v, cfg) gamma 0.9, tau 0.1, budgets None; bf16 (its
                     Triton kernel asserts bf16, 5.1): the fp16 input rounded to bf16 before timing

XAttention's attention kernel (`block_sparse_attn_func` of mit-han-lab/Block-Sparse-Attention) is
not installed on the GPU machine. Unless that package is importable, a SUBSTITUTE is installed under
its name: it converts the 128x128 block mask upstream hands over into flattened block indices and
runs upstream's own 128-block Triton kernel from flexprefill.py (`triton_block_wise_attention`,
element-wise causal, bf16 inside: inputs cast to bf16, output cast back). The estimate and the
selection are upstream's, unchanged; the attention time is the substitute's and is labelled so.

Example (GPU):
    python3 Benchmarks/baselines/prefill_methods.py --lengths 32768 --out .gpu/prefill.json
CPU self-check of the selection code paths (small N; Triton/CUDA parts skipped, see --cpu):
    python3 Benchmarks/baselines/prefill_methods.py --cpu --lengths 4096 --heads 4 --kv-heads 2
"""

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import statistics
import sys
import time
import traceback
import types

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts or in .baseline
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from baseline import causal_pairs, wrap  # noqa: E402  (the same helpers as baseline.py's runs)

METHODS = ("tri_shape", "xattention_torch", "xattention_triton", "flexprefill")
MASK_NAMES = {"xattention_torch": "xattention-torch", "xattention_triton": "xattention-triton",
              "flexprefill": "flexprefill"}
CPU_METHODS = ("xattention_torch", "flexprefill")
PKG = "_mi_prefill_upstream"
BLOCK = 128  # XAttention's and FlexPrefill's block size (both fixed at 128 upstream)
FILES = (("ops", "streaming_kernel"), ("ops", "xattention_fa"), ("ops", "flash_attn_triton"),
         ("modules", "xattention"), ("modules", "flexprefill"))
SUBSTITUTE_LABEL = ("SUBSTITUTE for block_sparse_attn_func (package not installed): upstream's own 128-block "
                    "Triton kernel from flexprefill.py (triton_block_wise_attention) on the same 128x128 block "
                    "mask, bf16 inside (q, k, v cast to bf16, output cast back)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[32768, 65536, 131072, 262144],
                   help="sequence lengths (default 32K 64K 128K 256K)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="methods to run (default all)")
    p.add_argument("--heads", type=int, default=32, help="query heads (default 32)")
    p.add_argument("--kv-heads", type=int, default=8, help="KV heads (default 8; repeated to --heads before every method)")
    p.add_argument("--head-dim", type=int, default=128, help="head dim (default 128)")
    p.add_argument("--seed", type=int, default=1, help="synthetic input seed (default 1)")
    p.add_argument("--xattn-dtype", choices=("float16", "bfloat16"), default="float16",
                   help="dtype of XAttention's q/k/v, estimate included (default float16, the input's)")
    p.add_argument("--minference-dir", default=".baseline/minference", help="verbatim copy of MInference's files")
    p.add_argument("--out", default=".gpu/upstream-prefill.json", help="JSON results file")
    p.add_argument("--masks-out", default=".gpu/upstream-masks",
                   help="folder for the block masks {method}-N{N}.npy, uint8 [H, nb, nb] (default .gpu/upstream-masks)")
    p.add_argument("--no-masks", action="store_true", help="write no mask files (densities are still computed)")
    p.add_argument("--mask-lengths", type=int, nargs="*", default=None,
                   help="write masks only for these lengths (default: every length)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed runs per case; the first is the capture pass (masks, density, checks); >= 1")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per case (median reported)")
    p.add_argument("--skip-check", action="store_true", help="no dense SDPA reference, no rel_l2_vs_dense")
    p.add_argument("--gen-chunk", type=int, default=1 << 23, help="elements per chunk of the input generator")
    p.add_argument("--cpu", action="store_true",
                   help="CPU self-check: run the selection code paths on the CPU (torch estimate + find_blocks_chunked, "
                        "FlexPrefill's get_active_blocks with a torch stand-in for its Triton key pooling); Triton "
                        "kernels (A-shape, Triton estimate, attention) are skipped; times are wall-clock and meaningless")
    p.add_argument("--parse-only", action="store_true", help=argparse.SUPPRESS)  # print the arguments and exit (tests)
    args = p.parse_args(argv)
    if args.heads % args.kv_heads:
        p.error("--heads must be a multiple of --kv-heads")
    if args.warmup < 1 or args.repeat < 1:
        p.error("--warmup >= 1 (the first warm-up is the capture pass) and --repeat >= 1")
    return args


# ---- pure helpers (also used by selftest.py) -------------------------------------------------------

def block_mask_pairs(torch, mask, n, block=BLOCK):
    """Causal (i, j) pairs covered by a block mask [H, nb, nb] (bool), element-wise causal, rows and
    keys < n: key block c < m is full (block keys, all <= every row of block m); the diagonal block is
    the triangle; blocks c > m cover nothing. Returns a list of per-head pair counts."""
    h, nb, nb2 = mask.shape
    assert nb == nb2 == -(-n // block), (mask.shape, n)
    dev = mask.device
    rows = torch.clamp(n - block * torch.arange(nb, device=dev, dtype=torch.int64), max=block)  # real rows of block m
    strict = torch.tril(mask, diagonal=-1).sum(-1, dtype=torch.int64)  # [H, nb]: key blocks c < m
    diag = torch.diagonal(mask, dim1=-2, dim2=-1).to(torch.int64)  # [H, nb]
    pairs = (strict * rows[None, :] * block).sum(-1) + (diag * (rows * (rows + 1) // 2)[None, :]).sum(-1)
    return [int(x) for x in pairs.tolist()]


def tri_shape_pairs(n, n_init, n_local, n_last):
    """Tri-shape's covered pairs for one head: A-shape on the first N - L rows (N' = N - L), dense
    causal rows for the last L = min(n_last, N - 1) (docs/PREFILL-METHODS.md section 2)."""
    import upstream as U
    last = min(n_last, n - 1)
    m = n - last
    dense_tail = causal_pairs(n) - causal_pairs(m)
    return U.a_shape_pairs(m, n_init, n_local) + dense_tail


def mask_to_block_idx(torch, mask):
    """[H, nb, nb] bool -> [1, H, K] int64 flattened block indices row * nb + col, ascending, padded
    with nb * (nb + 1) (the padding upstream's triton_block_wise_prefill_attention uses for lists)."""
    h, nb, _ = mask.shape
    flat = mask.reshape(h, nb * nb)
    counts = flat.sum(-1, dtype=torch.int64)
    k = max(int(counts.max()), 1)
    nz = flat.nonzero()  # row-major: by head, then ascending flattened index
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(nz.shape[0], device=mask.device) - starts[nz[:, 0]]
    out = torch.full((1, h, k), nb * (nb + 1), dtype=torch.int64, device=mask.device)
    out[0, nz[:, 0], rank] = nz[:, 1]
    return out


def block_lists_to_mask(torch, block_idx, nb, device):
    """FlexPrefill's list[batch][head] of flattened indices -> [H, nb, nb] bool (batch 0)."""
    heads = block_idx[0]
    mask = torch.zeros((len(heads), nb * nb), dtype=torch.bool, device=device)
    for h, idx in enumerate(heads):
        idx = idx.to(device=device, dtype=torch.int64)
        idx = idx[(idx >= 0) & (idx < nb * nb)]
        mask[h, idx] = True
    return mask.view(len(heads), nb, nb)


class Clock:
    """Named marks (CUDA events, or perf_counter on the CPU) and per-phase sums over a run."""

    def __init__(self, torch, cuda):
        self.torch, self.cuda = torch, cuda
        self.enabled = False
        self.marks = []

    def mark(self, label):
        if not self.enabled:
            return
        if self.cuda:
            event = self.torch.cuda.Event(enable_timing=True)
            event.record()
        else:
            event = time.perf_counter()
        self.marks.append((label, event))

    def _ms(self, a, b):
        return a.elapsed_time(b) if self.cuda else (b - a) * 1e3

    def spans(self, spans):
        """spans: {phase: (from_label, to_label)}; each to_label closes the latest from_label
        (summed over repeated pairs, e.g. one per chunk)."""
        if self.cuda:
            self.torch.cuda.synchronize()
        out = {name: 0.0 for name in spans}
        last = {}
        for label, event in self.marks:
            last[label] = event
            for name, (a, b) in spans.items():
                if label == b and a in last:
                    out[name] += self._ms(last[a], event)
        return out


class _RenamedProps:
    """torch.cuda device properties with another `name` (everything else the real object's)."""

    def __init__(self, real, name):
        self._real, self.name = real, name

    def __getattr__(self, attr):
        return getattr(self._real, attr)


@contextlib.contextmanager
def xattention_estimate(torch, want_triton, cpu=False):
    """Makes xattn_estimate's device-name test (xattention.py:222-228: Triton unless the name lacks
    "100") pick the wanted estimate. Yields (patched, name_seen): no patch when the device already
    picks it (the H200 and the torch estimate: upstream's unmodified path)."""
    if cpu:
        real_props, real_current = torch.cuda.get_device_properties, torch.cuda.current_device
        torch.cuda.current_device = lambda: 0
        torch.cuda.get_device_properties = lambda device=None: types.SimpleNamespace(name="cpu self-check (torch estimate)")
        try:
            yield True, "cpu self-check (torch estimate)"
        finally:
            torch.cuda.get_device_properties, torch.cuda.current_device = real_props, real_current
        return
    real_props = torch.cuda.get_device_properties
    name = real_props(torch.cuda.current_device()).name
    if ("100" in name) == want_triton:
        yield False, name
        return
    if want_triton:
        new_name = name + " [renamed to contain '100' (A100/H100): Triton estimate forced]"
    else:
        new_name = name.replace("100", "1-0-0") + " [renamed without '100': torch estimate forced]"

    def props(device=None):
        return _RenamedProps(real_props(device), new_name)

    torch.cuda.get_device_properties = props
    try:
        yield True, new_name
    finally:
        torch.cuda.get_device_properties = real_props


@contextlib.contextmanager
def cpu_cuda_redirect(torch):
    """CPU self-check only: upstream's estimate moves tensors with .to("cuda") (xattention.py:208,
    213, 350, 416; flexprefill.py:740); map those to the CPU."""
    real_to = torch.Tensor.to

    def to(self, *a, **kw):
        a = tuple("cpu" if (isinstance(x, str) and x.startswith("cuda")) or
                  (isinstance(x, torch.device) and x.type == "cuda") else x for x in a)
        if "device" in kw and str(kw["device"]).startswith("cuda"):
            kw["device"] = "cpu"
        return real_to(self, *a, **kw)

    torch.Tensor.to = to
    try:
        yield
    finally:
        torch.Tensor.to = real_to


# ---- loader -----------------------------------------------------------------------------------------

class PrefillUpstream:
    """Upstream's files loaded by path as modules of a synthetic package (relative imports resolve
    inside it), the block_sparse_attn hook installed, and the phase marks wrapped around upstream's
    module-level functions (the names their callers look up at call time)."""

    def __init__(self, root, torch, clock, cpu=False, log=print):
        self.root, self.torch, self.clock, self.cpu, self.log = os.path.abspath(root), torch, clock, cpu, log
        commit_file = os.path.join(self.root, "COMMIT")
        self.commit = open(commit_file).read().strip() if os.path.exists(commit_file) else "unknown"
        for name, path in ((PKG, self.root), (PKG + ".ops", os.path.join(self.root, "minference", "ops")),
                           (PKG + ".modules", os.path.join(self.root, "minference", "modules"))):
            pkg = types.ModuleType(name)
            pkg.__path__ = [path]
            pkg.__package__ = name
            sys.modules[name] = pkg
        mods = {}
        for sub, module in FILES:
            path = os.path.join(self.root, "minference", sub, module + ".py")
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} (run Benchmarks/baselines/prepare_baseline.sh)")
            full = f"{PKG}.{sub}.{module}"
            spec = importlib.util.spec_from_file_location(full, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[full] = mod
            spec.loader.exec_module(mod)
            setattr(sys.modules[f"{PKG}.{sub}"], module, mod)
            mods[module] = mod
        self.streaming, self.xattention, self.flex = mods["streaming_kernel"], mods["xattention"], mods["flexprefill"]
        self.flash_attn_impl = getattr(self.flex.flash_attn_func, "__module__", "?")
        # FlexPrefill's attention kernel, unwrapped (the XAttention substitute calls this one).
        self.block_wise_attention = self.flex.triton_block_wise_attention
        self.substitute_dtype = torch.bfloat16  # what that kernel asserts (tests may change both)
        self.capture = None  # dict while the capture pass runs
        self._install_block_sparse_attn()
        self._install_marks()
        if cpu:
            self._install_cpu_stand_ins()

    # -- XAttention's kernel: the real package if importable, else the substitute --
    def _install_block_sparse_attn(self):
        try:
            import block_sparse_attn as real  # noqa: F401
            impl = real.block_sparse_attn_func
            self.xattn_attention = "block_sparse_attn_func (mit-han-lab/Block-Sparse-Attention, installed)"
            self.xattn_substitute = False
        except Exception:  # noqa: BLE001 - not installed (the expected case)
            impl = self.substitute_block_sparse_attn_func
            self.xattn_attention = SUBSTITUTE_LABEL
            self.xattn_substitute = True
        clock = self.clock

        def block_sparse_attn_func(*a, **kw):
            base_blockmask = a[7] if len(a) > 7 else kw["base_blockmask"]
            if self.capture is not None:
                self.capture["mask"] = base_blockmask[0].to("cpu", copy=True)
            clock.mark("attn_call")
            out = impl(*a, **kw)
            clock.mark("attn_return")
            return out

        stub = types.ModuleType("block_sparse_attn")
        stub.block_sparse_attn_func = block_sparse_attn_func
        stub.__file__ = __file__
        sys.modules["block_sparse_attn"] = stub  # Xattention_prefill imports it at call time

    def substitute_block_sparse_attn_func(self, q, k, v, cu_seqlens_q, cu_seqlens_k, head_mask_type, streaming_info,
                                          base_blockmask, max_seqlen_q_, max_seqlen_k_, p_dropout, deterministic=False,
                                          softmax_scale=None, is_causal=False, exact_streaming=False,
                                          return_attn_probs=False):
        """Same call as block_sparse_attn_func in Xattention_prefill (xattention.py:549-563): q/k/v
        [N, H, d], one sequence, head_mask_type all 1 (block-sparse), base_blockmask [1, H, nb, nb]."""
        torch, clock = self.torch, self.clock
        assert streaming_info is None and is_causal and p_dropout == 0.0 and not return_attn_probs
        assert q.shape[0] == k.shape[0] and base_blockmask.shape[0] == 1
        n, h, d = q.shape
        clock.mark("sub_begin")
        block_idx = mask_to_block_idx(torch, base_blockmask[0])
        if self.cpu:  # no Triton on the CPU: the selection is what the self-check is about
            clock.mark("sub_prep_end")
            clock.mark("sub_kernel_end")
            out = torch.zeros_like(q)
            clock.mark("sub_end")
            return out
        qb, kb, vb = (x.to(self.substitute_dtype)[None] for x in (q, k, v))  # [1, N, H, d], strided views kept
        clock.mark("sub_prep_end")
        o = self.block_wise_attention(qb, kb, vb, block_idx, BLOCK, softmax_scale=softmax_scale)
        clock.mark("sub_kernel_end")
        out = torch.empty((n, h, d), dtype=q.dtype, device=q.device)
        out.copy_(o[0])
        clock.mark("sub_end")
        return out

    # -- phase marks around upstream's module-level functions --
    def _install_marks(self):
        clock = self.clock
        m = clock.mark
        wrap(self.streaming, "a_shape_kernel", before=lambda *a, **k: m("ashape_begin"), after=lambda *a, **k: m("ashape_end"))
        wrap(self.xattention, "xattn_estimate", before=lambda *a, **k: m("est_begin"), after=lambda *a, **k: m("est_end"))
        wrap(self.xattention, "find_blocks_chunked", before=lambda *a, **k: m("sel_begin"),
             after=lambda *a, **k: m("sel_end"))
        wrap(self.flex, "flex_prefill_attention", before=lambda *a, **k: m("fpa_begin"), after=lambda *a, **k: m("fpa_end"))

        def got_blocks(result, q, *a, **kw):
            m("gab_end")
            if self.capture is not None:
                nb = -(-q.shape[1] // BLOCK)
                self.capture["mask"] = block_lists_to_mask(self.torch, result, nb, result[0][0].device).to("cpu")

        wrap(self.flex, "get_active_blocks", before=lambda *a, **k: m("gab_begin"), after=got_blocks)
        if not self.cpu:
            wrap(self.flex, "triton_block_wise_attention", before=lambda *a, **k: m("fattn_begin"),
                 after=lambda *a, **k: m("fattn_end"))

    # -- CPU self-check stand-ins (labelled; never used on the GPU) --
    def _install_cpu_stand_ins(self):
        torch = self.torch

        def torch_bnhd_pool(x, kernel_size, pool_type="avg"):
            """Stand-in for triton_bnhd_pool(k, 128) (avg): mean over each block's real rows."""
            assert pool_type == "avg"
            b, n, h, d = x.shape
            m = -(-n // kernel_size)
            pad = m * kernel_size - n
            xs = torch.nn.functional.pad(x.float(), (0, 0, 0, 0, 0, pad)).view(b, m, kernel_size, h, d).sum(2)
            rows = torch.full((m,), float(kernel_size))
            rows[-1] = kernel_size - pad
            return (xs / rows[None, :, None, None]).to(x.dtype)

        def no_attention(q, k, v, block_idx, block_size, *a, **kw):
            return torch.zeros_like(q)

        self.flex.triton_bnhd_pool = torch_bnhd_pool
        self.flex.triton_block_wise_attention = no_attention


# ---- the benchmark -------------------------------------------------------------------------------

class Bench:
    def __init__(self, args, torch, up, clock, device):
        self.args, self.torch, self.up, self.clock, self.device = args, torch, up, clock, device
        self.cuda = device == "cuda"
        self.runs = []
        self.dense_ref = None
        self.mask_files = []

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def base_row(self, name, n, dtype):
        a = self.args
        return dict(name=name, N=n, Hq=a.heads, Hkv=a.kv_heads, d=a.head_dim, dtype=dtype, causal=True, status="ok",
                    ms=None, times=None, phases=None, phase_times=None, density=None, density_per_head=None,
                    pairs=None, tflops=None)

    def record(self, row):
        self.runs.append(row)
        ms = row.get("ms")
        text = f"{ms:.3f} ms" if isinstance(ms, float) else row["status"]
        if row.get("phases"):
            text += "  [" + ", ".join(f"{k} {v:.2f}" for k, v in row["phases"].items()) + "]"
        if row.get("density") is not None:
            text += f"  density {row['density']:.4f}"
        if row.get("rel_l2_vs_dense") is not None:
            text += f"  rel-L2 vs dense {row['rel_l2_vs_dense']:.2e}"
        print(f"  {row['name']:<18} N={row['N']:<7} {text}", flush=True)

    def guarded(self, row, fn):
        torch = self.torch
        try:
            fn(row)
        except torch.cuda.OutOfMemoryError:
            row["status"], row["ms"] = "oom", None
        except Exception as error:  # noqa: BLE001 - recorded, the run goes on
            row["status"], row["ms"] = f"error: {type(error).__name__}: {error}", None
            traceback.print_exc()
        finally:
            self.up.capture = None
            self.clock.enabled = False
            self.clock.marks.clear()
            try:
                self.sync()
                if self.cuda:
                    torch.cuda.empty_cache()
            except Exception as error:  # noqa: BLE001
                row["status"] += f" (then: {type(error).__name__}: {error})"
        self.record(row)

    def dense_reference(self, q, ks, vs):
        if self.dense_ref is None:
            self.dense_ref = self.torch.nn.functional.scaled_dot_product_attention(q, ks, vs, is_causal=True)
        return self.dense_ref

    def rel_l2(self, out, ref):
        num = den = 0.0
        for h in range(out.shape[1]):
            r = ref[:, h].float()
            num += float((out[:, h].float() - r).pow(2).sum())
            den += float(r.pow(2).sum())
        return math.sqrt(num / den) if den else None

    def save_mask(self, row, method, n, mask):
        a = self.args
        if a.no_masks or (a.mask_lengths is not None and n not in a.mask_lengths):
            return
        import numpy as np
        os.makedirs(a.masks_out, exist_ok=True)
        path = os.path.join(a.masks_out, f"{MASK_NAMES[method]}-N{n}.npy")
        np.save(path, mask.numpy().astype(np.uint8))
        row["mask_file"] = path
        self.mask_files.append(path)

    def masks_and_density(self, row, method, n, mask):
        """mask: [H, nb, nb] bool on the CPU, as the kernel received it."""
        torch = self.torch
        nb = -(-n // BLOCK)
        mask = mask.bool()
        upper = torch.triu(torch.ones(nb, nb, dtype=torch.bool), diagonal=1)
        row["noncausal_blocks"] = int((mask & upper).sum())  # never computed (element-wise causal kernel)
        mask = mask & ~upper
        per_head = block_mask_pairs(torch, mask, n)
        row["pairs"] = sum(per_head)
        row["density"] = sum(per_head) / (len(per_head) * causal_pairs(n))
        row["density_per_head"] = [p / causal_pairs(n) for p in per_head]
        blocks = mask.sum(dim=(-1, -2)).tolist()
        row["blocks"] = int(sum(blocks))
        row["block_density"] = sum(blocks) / (len(blocks) * nb * (nb + 1) / 2)
        row["nb"] = nb
        self.save_mask(row, method, n, mask)

    def run_case(self, row, layer, spans, method, n, want_mask, ref_inputs):
        """Capture pass (first warm-up), further warm-ups, then --repeat timed runs with phase marks."""
        torch, a, clock, up = self.torch, self.args, self.clock, self.up
        stdout = io.StringIO()
        # 1) capture pass: masks, density, output checks
        up.capture = {} if want_mask else None
        with contextlib.redirect_stdout(stdout):
            out = layer()
        self.sync()
        if want_mask:
            if "mask" not in up.capture:
                raise RuntimeError("the block mask was not captured")
            self.masks_and_density(row, method, n, up.capture["mask"])
        up.capture = None
        if self.cuda:
            row["finite"] = bool(torch.isfinite(out).all())
            if not a.skip_check:
                row["rel_l2_vs_dense"] = self.rel_l2(out, self.dense_reference(*ref_inputs))
        del out
        # 2) warm-ups
        for _ in range(a.warmup - 1):
            with contextlib.redirect_stdout(stdout):
                layer()
        self.sync()
        # 3) timed runs, phases from marks inside upstream's call chain
        spans = dict(spans, repeat_kv=("layer_begin", "repeat_end"), total=("layer_begin", "layer_end"))
        results = []
        for _ in range(a.repeat):
            clock.marks.clear()
            clock.enabled = True
            with contextlib.redirect_stdout(stdout):
                layer()
            clock.enabled = False
            results.append(clock.spans(spans))
        clock.marks.clear()
        med = {name: statistics.median(r[name] for r in results) for name in spans}
        med["other"] = med["total"] - sum(v for k, v in med.items() if k != "total")
        row["ms"], row["times"] = med["total"], [r["total"] for r in results]
        row["phases"], row["phase_times"] = med, results
        if row.get("pairs"):
            row["tflops"] = 4.0 * a.head_dim * row["pairs"] / row["ms"] / 1e9
        printed = sorted(set(line for line in stdout.getvalue().splitlines() if line.strip()))
        if printed:
            row["upstream_stdout"] = printed

    def layer_fn(self, fn, q, k, v, cfg):
        """What attn_forward does for prefill: repeat_kv of K/V to the query heads, then the method."""
        import upstream as U
        clock = self.clock
        n_rep = q.shape[1] // k.shape[1]

        def layer():
            clock.mark("layer_begin")
            ks, vs = U.repeat_kv(k, n_rep), U.repeat_kv(v, n_rep)
            clock.mark("repeat_end")
            out = fn(q, ks, vs, cfg)
            clock.mark("layer_end")
            return out
        return layer

    # -- methods --
    def tri_shape(self, n, q, k, v, ref_inputs):
        row = self.base_row("tri_shape", n, "float16")
        cfg = {"attn_forward_config": {}, "layer_idx": 0, "num_hidden_layers": 1}  # .get defaults: 128, 3968, 100
        row.update(pattern="tri_shape", n_init=128, n_local=3968, n_last=100,
                   call="tri_shape_kernel(q, k, v, cfg) with the .get defaults (streaming_kernel.py:820-833)")

        def run(row):
            pairs = tri_shape_pairs(n, 128, 3968, 100)
            row["pairs"] = pairs * self.args.heads
            row["density"] = pairs / causal_pairs(n)
            self.run_case(row, self.layer_fn(self.up.streaming.tri_shape_kernel, q, k, v, cfg),
                          {"a_shape": ("ashape_begin", "ashape_end")}, "tri_shape", n, False, ref_inputs)
            row["phases"]["dense_tail"] = row["phases"].pop("other")  # slicing + the torch tail + cat
        self.guarded(row, run)

    def xattention(self, method, n, q, k, v, ref_inputs):
        torch, up = self.torch, self.up
        want_triton = method == "xattention_triton"
        dtype = torch.bfloat16 if self.args.xattn_dtype == "bfloat16" else torch.float16
        row = self.base_row(method, n, self.args.xattn_dtype)
        cfg = {"attn_forward_config": {}, "layer_idx": 0, "num_hidden_layers": 1}  # .get defaults
        row.update(pattern="xattention", stride=8, norm=1, threshold=0.9, block_size=128, chunk_size=2048,
                   estimate_variant="triton" if want_triton else "torch",
                   call="xattention_forward(q, k, v, cfg) with the .get defaults (xattention.py:577-599)",
                   attention_kernel=up.xattn_attention, attention_substitute=up.xattn_substitute)
        if up.xattn_substitute:
            row["note"] = ("attention = SUBSTITUTE kernel (upstream's FlexPrefill 128-block Triton kernel, bf16) in "
                           "place of block_sparse_attn_func; estimate and selection are upstream's")

        def run(row):
            qx, kx, vx = (x.to(dtype) for x in (q, k, v))  # no copy for float16
            with xattention_estimate(torch, want_triton, cpu=not self.cuda) as (patched, seen):
                row["device_name_patched"], row["device_name_seen_by_estimate"] = patched, seen
                spans = {"estimate_incl_selection": ("est_begin", "est_end"), "selection": ("sel_begin", "sel_end"),
                         "attention_call": ("attn_call", "attn_return")}
                if up.xattn_substitute:
                    spans.update(substitute_prep=("sub_begin", "sub_prep_end"),
                                 attention=("sub_prep_end", "sub_kernel_end"),
                                 substitute_output_copy=("sub_kernel_end", "sub_end"))
                ctx = cpu_cuda_redirect(torch) if not self.cuda else contextlib.nullcontext()
                with ctx:
                    self.run_case(row, self.layer_fn(up.xattention.xattention_forward, qx, kx, vx, cfg), spans,
                                  method, n, True, ref_inputs)
            for ph in [row["phases"]] + row["phase_times"]:
                # estimate = xattn_estimate without the find_blocks_chunked calls inside it
                ph["estimate"] = ph.pop("estimate_incl_selection") - ph["selection"]
                call = ph.pop("attention_call")
                named = ("repeat_kv", "estimate", "selection", "attention")
                if up.xattn_substitute:
                    # the substitute's own work besides upstream's kernel call: mask -> block indices,
                    # casts to bf16 and back (block_sparse_attn_func would convert the mask too)
                    ph["substitute_glue"] = ph.pop("substitute_prep") + ph.pop("substitute_output_copy")
                    named += ("substitute_glue",)
                else:
                    ph["attention"] = call
                ph.pop("other", None)
                ph["other"] = ph["total"] - sum(ph[k] for k in named)  # mask slicing, transposes, Python
                if up.xattn_substitute:
                    ph["total_without_substitute_glue"] = ph["total"] - ph["substitute_glue"]
            del qx, kx, vx
        self.guarded(row, run)

    def flexprefill(self, n, q, k, v, ref_inputs):
        torch, up = self.torch, self.up
        row = self.base_row("flexprefill", n, "bfloat16")
        cfg = {"attn_forward_config": {}, "layer_idx": 0, "num_hidden_layers": 1}  # .get defaults
        row.update(pattern="flexprefill", gamma=0.9, tau=0.1, min_budget=None, max_budget=None, block_size=128,
                   call="flexprefill_forward(q, k, v, cfg) with the .get defaults (flexprefill.py:1115-1132; "
                        "block_size lands in gqa_interleave, PREFILL-METHODS.md 5.1)",
                   input_dtype_note="fp16 synthetic input rounded to bf16 (torch .to(torch.bfloat16), RNE) before "
                                    "timing; upstream's kernel asserts bf16",
                   flash_attn_func=up.flash_attn_impl)
        if not self.cuda:
            row["note"] = "CPU self-check: triton_bnhd_pool replaced by a torch mean over each block's real rows"

        def run(row):
            qb, kb, vb = (x.to(torch.bfloat16) for x in (q, k, v))
            spans = {"transpose_contiguous": ("repeat_end", "fpa_begin"), "get_active_blocks": ("gab_begin", "gab_end")}
            if self.cuda:
                spans["attention"] = ("fattn_begin", "fattn_end")
            ctx = cpu_cuda_redirect(torch) if not self.cuda else contextlib.nullcontext()
            with ctx:
                self.run_case(row, self.layer_fn(up.flex.flexprefill_forward, qb, kb, vb, cfg), spans, "flexprefill",
                              n, n > max(2 * BLOCK, BLOCK), ref_inputs)
            del qb, kb, vb
        self.guarded(row, run)

    # -- one length --
    def length(self, n):
        torch, a = self.torch, self.args
        import synthetic
        import upstream as U
        print(f"N={n} Hq={a.heads} Hkv={a.kv_heads} d={a.head_dim}: generating structured input (seed {a.seed})", flush=True)
        t0 = time.time()
        try:
            q, k, v = synthetic.generate(n, a.heads, a.kv_heads, a.head_dim, seed=a.seed, device=self.device,
                                         chunk_elements=a.gen_chunk)
        except torch.cuda.OutOfMemoryError:
            for m in a.methods:
                self.record(dict(self.base_row(m, n, "-"), status="oom (input generation)"))
            torch.cuda.empty_cache()
            return
        self.sync()
        print(f"  input generated in {time.time() - t0:.1f} s", flush=True)
        q, k, v = q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0)  # [1, H, N, d]
        self.dense_ref = None
        ref_inputs = None
        if self.cuda and not a.skip_check:
            n_rep = a.heads // a.kv_heads
            ref_inputs = (q, U.repeat_kv(k, n_rep), U.repeat_kv(v, n_rep))
        for method in a.methods:
            if not self.cuda and method not in CPU_METHODS:
                self.record(dict(self.base_row(method, n, "-"), status="skipped (needs the GPU: Triton)"))
                continue
            if method == "tri_shape":
                self.tri_shape(n, q, k, v, ref_inputs)
            elif method.startswith("xattention"):
                self.xattention(method, n, q, k, v, ref_inputs)
            else:
                self.flexprefill(n, q, k, v, ref_inputs)
        del q, k, v, ref_inputs
        self.dense_ref = None
        if self.cuda:
            torch.cuda.empty_cache()


def table(runs):
    lines = [f"{'name':<18} {'N':>7} {'ms':>10} {'density':>8}  phases (ms) / status"]
    for r in runs:
        ms = f"{r['ms']:.2f}" if r.get("ms") is not None else "-"
        den = f"{r['density']:.4f}" if r.get("density") is not None else ""
        tail = r["status"] if r["status"] != "ok" else ""
        if r.get("phases"):
            tail += ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items() if k != "total")
        lines.append(f"{r['name']:<18} {r['N']:>7} {ms:>10} {den:>8}  {tail}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.parse_only:
        print(json.dumps(vars(args)))
        return 0
    try:
        import torch
    except ImportError:
        print("error: PyTorch is not installed", file=sys.stderr)
        return 2
    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and not args.cpu:
        print("error: no CUDA device visible to PyTorch; run this on the GPU machine (or pass --cpu for the CPU "
              "self-check of the selection code)", file=sys.stderr)
        return 2
    if not os.path.isdir(args.minference_dir):
        print(f"error: {args.minference_dir} not found; prepare it as Benchmarks/baselines/README.md says", file=sys.stderr)
        return 2
    import baseline
    if cuda:
        info = baseline.gpu_info(torch)
        print(f"device {info['device']}, driver {info['driver']}, torch {info['torch']} (CUDA {info['cuda']}), "
              f"triton {info['triton']}", flush=True)
    else:
        info = {"device": "cpu (self-check: selection code paths only; times meaningless)", "torch": torch.__version__}
    clock = Clock(torch, cuda)
    up = PrefillUpstream(args.minference_dir, torch, clock, cpu=not cuda)
    print(f"MInference {up.commit}: XAttention attention kernel: {up.xattn_attention}", flush=True)
    try:
        import einops
        einops_version = einops.__version__
    except Exception:  # noqa: BLE001
        einops_version = None
    bench = Bench(args, torch, up, clock, "cuda" if cuda else "cpu")
    result = dict(info, minference_commit=up.commit, mode="cuda" if cuda else "cpu-selfcheck", seed=args.seed,
                  heads=args.heads, kv_heads=args.kv_heads, head_dim=args.head_dim, gqa="repeat_kv to the query heads",
                  xattention_attention_kernel=up.xattn_attention, xattention_substitute=up.xattn_substitute,
                  xattention_dtype=args.xattn_dtype, flexprefill_dtype="bfloat16", tri_shape_dtype="float16",
                  einops=einops_version, warmup=args.warmup, repeat=args.repeat, command=" ".join(sys.argv),
                  masks_out=None if args.no_masks else args.masks_out, mask_files=bench.mask_files,
                  mask_format="uint8 [H, nb, nb], nb = ceil(N/128); 1 iff query block m uses key block n (n <= m only)",
                  density_definition="covered causal (i, j) pairs / all causal pairs, element-wise causal, over heads",
                  runs=bench.runs)
    started = time.time()

    def save():
        result["wall_s"] = time.time() - started
        folder = os.path.dirname(os.path.abspath(args.out))
        os.makedirs(folder, exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)

    for n in args.lengths:
        bench.length(n)
        save()
    print()
    print(table(bench.runs))
    print(f"\nwrote {args.out} ({time.time() - started:.0f} s)" +
          (f"; masks in {args.masks_out}" if bench.mask_files else ""))
    bad = [r for r in bench.runs if r["status"] != "ok" and not r["status"].startswith("skipped")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
