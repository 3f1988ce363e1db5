#!/usr/bin/env python3
"""Baselines for MInferenceCL's benchmarks: PyTorch SDPA (FLASH and CUDNN backends) and
MInference's own kernels (vertical-slash pipeline, A-shape, block-sparse), timed on one GPU on the
same structured inputs that MInferenceCL generates (synthetic.py reproduces CLKernels/
synthetic_input.cl bit for bit, up to float32 libm ulps).

MInference's code is not part of this repository: copy it into .baseline/minference first (see
README.md beside this file) and carry that folder to the GPU machine.

Workload (defaults): one Llama-3-8B attention layer, batch 1, Hq = 32, Hkv = 8, d = 128, fp16,
causal prefill, at each --lengths N; plus --one-head-lengths with Hq = Hkv = 1 (reported per head
and x32). Times are CUDA-event medians over --repeat runs after --warmup runs.

Example:
    python3 Benchmarks/baselines/baseline.py --lengths 8192 16384 --out .gpu/baselines.json
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ beside the committed scripts or in .baseline
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

METHODS = ("sdpa_flash", "sdpa_cudnn", "minference_vs", "minference_ashape", "minference_block_sparse")
EXTRA_SKIPS = ("phases", "density", "check")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="*", default=[8192, 16384, 32768, 65536, 131072, 262144],
                   help="sequence lengths of the whole-layer runs (default: 8K..256K)")
    p.add_argument("--one-head-lengths", type=int, nargs="*", default=[1048576],
                   help="lengths run with Hq = Hkv = 1, reported per head and x heads (default: 1M)")
    p.add_argument("--heads", type=int, default=32, help="query heads (default 32)")
    p.add_argument("--kv-heads", type=int, default=8, help="KV heads (default 8)")
    p.add_argument("--head-dim", type=int, default=128, help="head dim (default 128)")
    p.add_argument("--seed", type=int, default=1, help="synthetic input seed (MInferenceCL's default: 1)")
    p.add_argument("--vs", type=int, nargs=2, default=[1000, 6096], metavar=("V", "S"),
                   help="vertical-slash budgets (default 1000 6096, upstream's default pattern)")
    p.add_argument("--ashape", type=int, nargs=2, default=[128, 3968], metavar=("N_INIT", "N_LOCAL"),
                   help="A-shape sink and window (default 128 3968)")
    p.add_argument("--block-topk", type=int, default=100,
                   help="block-sparse blocks per row (upstream hard-codes 100; other values are not upstream)")
    p.add_argument("--minference-dir", default=".baseline/minference", help="verbatim copy of MInference's files")
    p.add_argument("--build-dir", default="/tmp/minference_vs_index_build", help="build folder of the CUDA index conversion")
    p.add_argument("--torch-indexes", action="store_true",
                   help="use the pure-torch index conversion instead of building upstream's CUDA kernel (testing only)")
    p.add_argument("--out", default="baselines.json", help="JSON results file")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per case (after the density pass)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per case (median reported)")
    p.add_argument("--skip", nargs="*", default=[], choices=METHODS + EXTRA_SKIPS,
                   help="cases to leave out: " + ", ".join(METHODS + EXTRA_SKIPS))
    p.add_argument("--gen-chunk", type=int, default=1 << 23, help="elements per chunk of the input generator")
    p.add_argument("--cpu-dry-run", action="store_true", help=argparse.SUPPRESS)  # parse + exit (tests)
    args = p.parse_args(argv)
    if args.heads % args.kv_heads:
        p.error("--heads must be a multiple of --kv-heads")
    if args.warmup < 0 or args.repeat < 1:
        p.error("--warmup >= 0 and --repeat >= 1")
    if args.block_topk != 100:
        print("note: --block-topk differs from upstream's hard-coded 100")
    return args


# ---- helpers --------------------------------------------------------------------------------------

def causal_pairs(n):
    return n * (n + 1) // 2


def tflops(head_dim, pairs_all_heads, ms):
    """4 d flops per computed (i, j) pair (QK^T and PV), summed over heads."""
    if not ms or not pairs_all_heads:
        return None
    return 4.0 * head_dim * pairs_all_heads / ms / 1e9


def gpu_info(torch):
    info = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        import triton
        info["triton"] = triton.__version__
    except Exception:  # noqa: BLE001
        info["triton"] = None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except Exception:  # noqa: BLE001
        info["driver"] = None
    try:
        info["cudnn"] = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001
        info["cudnn"] = None
    return info


class Timer:
    """CUDA-event timing of a callable: warm-up runs, then the median of `repeat` timed runs."""

    def __init__(self, torch, warmup, repeat):
        self.torch, self.warmup, self.repeat = torch, warmup, repeat

    def __call__(self, fn):
        torch = self.torch
        for _ in range(self.warmup):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(self.repeat):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times), times


class PhaseRecorder:
    """Records CUDA events at named points inside upstream's call chain (wrapped functions) and
    turns them into per-phase sums over the heads of one layer run."""

    def __init__(self, torch):
        self.torch = torch
        self.events = []  # (label, event)

    def mark(self, label):
        event = self.torch.cuda.Event(enable_timing=True)
        event.record()
        self.events.append((label, event))

    def phases(self, spans):
        """spans: {phase: (from_label, to_label)}; sums over every occurrence (one per head)."""
        self.torch.cuda.synchronize()
        out = {name: 0.0 for name in spans}
        last = {}
        for label, event in self.events:
            last[label] = event
            for name, (a, b) in spans.items():
                if label == b and a in last:
                    out[name] += last[a].elapsed_time(event)
        return out


def wrap(owner, name, before=None, after=None):
    """Replaces owner.name (module attribute or dict entry) by a wrapper; returns an undo function."""
    is_dict = isinstance(owner, dict)
    original = owner[name] if is_dict else getattr(owner, name)

    def wrapper(*a, **kw):
        if before:
            before(*a, **kw)
        result = original(*a, **kw)
        if after:
            after(result, *a, **kw)
        return result

    if is_dict:
        owner[name] = wrapper
    else:
        setattr(owner, name, wrapper)

    def undo():
        if is_dict:
            owner[name] = original
        else:
            setattr(owner, name, original)
    return undo


# ---- the benchmark ----------------------------------------------------------------------------------

class Bench:
    def __init__(self, args, torch, upstream_mod, up):
        self.args, self.torch, self.U, self.up = args, torch, upstream_mod, up
        self.timer = Timer(torch, args.warmup, args.repeat)
        self.runs = []
        self.dense_ref = None

    def record(self, **row):
        self.runs.append(row)
        status = row.get("status", "ok")
        ms = row.get("ms")
        extra = f"{ms:.3f} ms" if isinstance(ms, float) else status
        if row.get("phases"):
            extra += "  [" + ", ".join(f"{k} {v:.2f}" for k, v in row["phases"].items() if v is not None) + "]"
        if row.get("density") is not None:
            extra += f"  density {row['density']:.4f}"
        if row.get("rel_l2_vs_dense") is not None:
            extra += f"  rel-L2 vs dense {row['rel_l2_vs_dense']:.2e}"
        print(f"  {row['name']:<26} N={row['N']:<8} {extra}", flush=True)

    def base_row(self, name, pattern, n, hq, hkv, per_head):
        a = self.args
        return dict(name=name, pattern=pattern, N=n, Hq=hq, Hkv=hkv, d=a.head_dim, dtype="float16", causal=True,
                    per_head=per_head, status="ok", ms=None, ms_x32=None, phases=None, density=None, tflops=None,
                    pairs=None)

    def guarded(self, row, fn):
        """Runs fn(row) with OOM / error capture; frees the cache afterwards."""
        torch = self.torch
        try:
            fn(row)
        except torch.cuda.OutOfMemoryError:
            row["status"] = "oom"
            row["ms"] = None
        except Exception as error:  # noqa: BLE001 - recorded, the run goes on
            row["status"] = f"error: {type(error).__name__}: {error}"
            row["ms"] = None
            traceback.print_exc()
        finally:
            try:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            except Exception as error:  # noqa: BLE001 - e.g. a sticky error after an illegal access
                row["status"] += f" (then: {type(error).__name__}: {error})"
        if row["ms"] is not None and row["per_head"]:
            row["ms_x32"] = row["ms"] * 32
        self.record(**row)

    # -- SDPA --
    def sdpa(self, q, k, v, n, hq, hkv, per_head):
        torch = self.torch
        from torch.nn.attention import SDPBackend, sdpa_kernel
        F = torch.nn.functional
        group = hq // hkv
        todo = [(m, b) for m, b in (("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION))
                if m not in self.args.skip]
        if not todo:
            return
        # GQA: K/V expanded to the query heads beforehand (not timed), so both backends see MHA.
        ke = k.repeat_interleave(group, dim=1) if group > 1 else k
        ve = v.repeat_interleave(group, dim=1) if group > 1 else v
        for name, backend in todo:
            row = self.base_row(name, "dense", n, hq, hkv, per_head)
            row["gqa"] = "K/V expanded with repeat_interleave before timing" if group > 1 else "MHA"

            def run(row, backend=backend):
                def call():
                    with sdpa_kernel([backend]):
                        return F.scaled_dot_product_attention(q, ke, ve, is_causal=True)
                ms, times = self.timer(call)
                row["ms"], row["times"] = ms, times
                row["pairs"] = causal_pairs(n) * hq
                row["density"] = 1.0
                row["tflops"] = tflops(self.args.head_dim, row["pairs"], ms)
            self.guarded(row, run)
        # ke / ve (the expanded K/V) are freed when this method returns

    # -- MInference --
    def layer_config(self, pattern, hq):
        a = self.args
        if pattern == "vertical_and_slash":
            entry = ["vertical_and_slash", a.vs[0], a.vs[1], 1]
        elif pattern == "stream_llm":
            entry = ["stream_llm", a.ashape[0], a.ashape[1], 1]
        else:
            entry = ["block_sparse", 100, 100, 1]  # v, s ignored upstream (top_k = 100 constant)
        return {"attn_forward_config": {"best_pattern": [{str(h): entry for h in range(hq)}], "starting_layer": 0},
                "layer_idx": 0, "num_hidden_layers": 1}

    def minference_layer(self, q, k, v, hq, hkv, kwargs):
        """What upstream's attn_forward does for prefill: repeat_kv, then the per-head loop."""
        n_rep = hq // hkv
        ks = self.U.repeat_kv(k, n_rep)
        vs = self.U.repeat_kv(v, n_rep)
        return self.up.forward.minference_prefill_forward(q, ks, vs, kwargs)

    def minference(self, name, pattern, q, k, v, n, hq, hkv, per_head):
        torch, up, U, a = self.torch, self.up, self.U, self.args
        row = self.base_row(name, pattern, n, hq, hkv, per_head)
        row["index_conversion"] = up.index_impl if pattern == "vertical_and_slash" else None
        kwargs = self.layer_config(pattern, hq)
        ns = up.forward.namespace
        timer, phase_repeat = self.timer, a.repeat
        if pattern == "vertical_and_slash" and up.index_impl.startswith("pure-torch"):
            # The fallback conversion costs ~1 s per head (a loop over the slash offsets): one timed
            # run and one phase run only, and the numbers are labelled as not comparable.
            timer, phase_repeat = Timer(torch, 0, 1), 1
            row["note"] = "index conversion by the pure-torch fallback: ms and indices are NOT upstream's"

        def run(row):
            # 1) coverage pass (also the first warm-up): what the kernel actually computes
            pairs = []
            undo = []
            if pattern == "vertical_and_slash":
                undo.append(wrap(up.pit, "convert_vertical_slash_indexes", after=lambda res, *x, **kw: pairs.append(
                    U.vs_covered_pairs(n, res[0], res[1], res[2]))))
            elif pattern == "block_sparse":
                undo.append(wrap(up.block_sparse, "_build_block_index", after=lambda res, *x, **kw: pairs.append(
                    U.block_sparse_covered_pairs(n, res))))
            try:
                if "density" not in a.skip:
                    out = self.minference_layer(q, k, v, hq, hkv, kwargs)
                    if "check" not in a.skip:
                        row["finite"] = bool(torch.isfinite(out).all())
                        row["rel_l2_vs_dense"] = self.rel_l2_vs_dense(out, q, k, v)
                    del out
            finally:
                for u in undo:
                    u()
            if pattern == "stream_llm":
                pairs = [U.a_shape_pairs(n, a.ashape[0], a.ashape[1])] * hq
            if pairs:
                row["pairs"] = int(sum(pairs))
                row["density"] = sum(pairs) / (len(pairs) * causal_pairs(n))
                row["density_per_head"] = [p / causal_pairs(n) for p in pairs]
            # 2) timed runs of the whole layer (repeat_kv + per-head loop)
            ms, times = timer(lambda: self.minference_layer(q, k, v, hq, hkv, kwargs))
            row["ms"], row["times"] = ms, times
            if row["pairs"]:
                row["tflops"] = tflops(a.head_dim, row["pairs"], ms)
            # 3) phase runs: events at the boundaries inside upstream's call chain
            if "phases" not in a.skip and pattern in ("vertical_and_slash", "block_sparse"):
                row["phases"], row["phase_times"] = self.phase_runs(pattern, q, k, v, hq, hkv, kwargs, ns, phase_repeat)

        self.guarded(row, run)

    def dense_reference(self, q, k, v):
        """Dense causal output (SDPA, default backend choice), computed once per length."""
        if self.dense_ref is None:
            group = q.shape[1] // k.shape[1]
            ke = k.repeat_interleave(group, dim=1) if group > 1 else k
            ve = v.repeat_interleave(group, dim=1) if group > 1 else v
            self.dense_ref = self.torch.nn.functional.scaled_dot_product_attention(q, ke, ve, is_causal=True)
        return self.dense_ref

    def rel_l2_vs_dense(self, out, q, k, v):
        """||out - dense|| / ||dense|| over the whole layer (float32, one head at a time)."""
        ref = self.dense_reference(q, k, v)
        num = den = 0.0
        for h in range(out.shape[1]):
            r = ref[:, h].float()
            num += float((out[:, h].float() - r).pow(2).sum())
            den += float(r.pow(2).sum())
        return math.sqrt(num / den) if den else None

    def phase_runs(self, pattern, q, k, v, hq, hkv, kwargs, ns, repeat):
        torch, up, U = self.torch, self.up, self.U
        rec = PhaseRecorder(torch)
        undo = []
        if pattern == "vertical_and_slash":
            undo.append(wrap(ns, "minference_prefill_kernel", before=lambda *x, **kw: rec.mark("head")))
            undo.append(wrap(ns, "vertical_slash_sparse_attention", before=lambda *x, **kw: rec.mark("est_end")))
            undo.append(wrap(up.pit, "convert_vertical_slash_indexes", before=lambda *x, **kw: rec.mark("idx_begin"),
                             after=lambda *x, **kw: rec.mark("idx_end")))
            undo.append(wrap(up.pit, "_triton_mixed_sparse_attention", before=lambda *x, **kw: rec.mark("kern_begin"),
                             after=lambda *x, **kw: rec.mark("kern_end")))
            spans = {"estimation": ("head", "est_end"), "prep": ("est_end", "idx_begin"), "indices": ("idx_begin", "idx_end"),
                     "kernel": ("kern_begin", "kern_end")}
        else:
            undo.append(wrap(up.block_sparse, "_build_block_index", before=lambda *x, **kw: rec.mark("est_begin"),
                             after=lambda *x, **kw: rec.mark("est_end")))
            undo.append(wrap(up.block_sparse, "_triton_block_sparse_attention", before=lambda *x, **kw: rec.mark("kern_begin"),
                             after=lambda *x, **kw: rec.mark("kern_end")))
            spans = {"estimation": ("est_begin", "est_end"), "kernel": ("kern_begin", "kern_end")}
        n_rep = hq // hkv

        def layer():
            rec.mark("layer_begin")
            ks = U.repeat_kv(k, n_rep)
            vs = U.repeat_kv(v, n_rep)
            rec.mark("repeat_end")
            up.forward.minference_prefill_forward(q, ks, vs, kwargs)
            rec.mark("layer_end")

        spans = dict(spans, repeat_kv=("layer_begin", "repeat_end"), total=("layer_begin", "layer_end"))
        results = []
        try:
            for _ in range(repeat):
                rec.events.clear()
                layer()
                results.append(rec.phases(spans))
        finally:
            for u in reversed(undo):
                u()
        med = {name: statistics.median(r[name] for r in results) for name in spans}
        med["other"] = med["total"] - sum(v for name, v in med.items() if name not in ("total",))
        return med, results

    # -- one length --
    def length(self, n, hq, hkv, per_head):
        torch, a = self.torch, self.args
        import synthetic
        print(f"N={n} Hq={hq} Hkv={hkv} d={a.head_dim}: generating structured input (seed {a.seed})", flush=True)
        t0 = time.time()
        try:
            q, k, v = synthetic.generate(n, hq, hkv, a.head_dim, seed=a.seed, device="cuda", chunk_elements=a.gen_chunk)
        except torch.cuda.OutOfMemoryError:
            for m in METHODS:
                if m not in a.skip:
                    self.record(**dict(self.base_row(m, "-", n, hq, hkv, per_head), status="oom (input generation)"))
            torch.cuda.empty_cache()
            return
        torch.cuda.synchronize()
        print(f"  input generated in {time.time() - t0:.1f} s", flush=True)
        q, k, v = q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0)  # [1, H, N, d]
        self.dense_ref = None
        self.sdpa(q, k, v, n, hq, hkv, per_head)
        for name, pattern in (("minference_vs", "vertical_and_slash"), ("minference_ashape", "stream_llm"),
                              ("minference_block_sparse", "block_sparse")):
            if name not in a.skip:
                self.minference(name, pattern, q, k, v, n, hq, hkv, per_head)
        del q, k, v
        self.dense_ref = None
        torch.cuda.empty_cache()


def table(runs):
    lines = [f"{'name':<24} {'N':>8} {'Hq':>3} {'ms':>10} {'x32 ms':>10} {'TFLOP/s':>8} {'density':>8}  phases / status"]
    for r in runs:
        ms = f"{r['ms']:.3f}" if r.get("ms") is not None else "-"
        x32 = f"{r['ms_x32']:.1f}" if r.get("ms_x32") is not None else ""
        tf = f"{r['tflops']:.1f}" if r.get("tflops") is not None else ""
        den = f"{r['density']:.4f}" if r.get("density") is not None else ""
        tail = r["status"] if r["status"] != "ok" else ""
        if r.get("phases"):
            tail += ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
        lines.append(f"{r['name']:<24} {r['N']:>8} {r['Hq']:>3} {ms:>10} {x32:>10} {tf:>8} {den:>8}  {tail}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.cpu_dry_run:
        print(json.dumps(vars(args)))
        return 0
    try:
        import torch
    except ImportError:
        print("error: PyTorch is not installed", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("error: no CUDA device visible to PyTorch; the baselines need one GPU (run this on the GPU machine)",
              file=sys.stderr)
        return 2
    import upstream as U
    wants_minference = any(m not in args.skip for m in METHODS if m.startswith("minference"))
    up = None
    info = gpu_info(torch)
    print(f"device {info['device']}, driver {info['driver']}, torch {info['torch']} (CUDA {info['cuda']}), "
          f"triton {info['triton']}", flush=True)
    if wants_minference:
        if not os.path.isdir(args.minference_dir):
            print(f"error: {args.minference_dir} not found; prepare it as Benchmarks/baselines/README.md says "
                  f"(or pass --skip minference_vs minference_ashape minference_block_sparse)", file=sys.stderr)
            return 2
        t0 = time.time()
        up = U.Upstream(args.minference_dir, build_dir=args.build_dir, force_torch_indexes=args.torch_indexes)
        print(f"MInference {up.commit}: loaded in {time.time() - t0:.1f} s; index conversion: {up.index_impl}", flush=True)
        if any(up.pit_optional_backends.values()):
            print(f"note: optional backends importable {up.pit_optional_backends}; disabled (in-repo CUDA+Triton path used)")
    bench = Bench(args, torch, U, up)
    result = dict(info, minference_commit=up.commit if up else None, index_conversion=up.index_impl if up else None,
                  seed=args.seed, vs_budget=args.vs, ashape=args.ashape, block_topk=args.block_topk,
                  warmup=args.warmup, repeat=args.repeat, command=" ".join(sys.argv), runs=bench.runs)
    started = time.time()

    def save():
        result["wall_s"] = time.time() - started
        folder = os.path.dirname(os.path.abspath(args.out))
        os.makedirs(folder, exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)

    for n in args.lengths:
        bench.length(n, args.heads, args.kv_heads, per_head=False)
        save()
    for n in args.one_head_lengths:
        bench.length(n, 1, 1, per_head=True)
        save()
    save()
    print()
    print(table(bench.runs))
    print(f"\nwrote {args.out} ({time.time() - started:.0f} s)")
    bad = [r for r in bench.runs if r["status"] != "ok"]
    return 1 if bad and len(bad) == len(bench.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
