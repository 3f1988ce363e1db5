#!/usr/bin/env python3
"""Prints the tables of Benchmarks/RESULTS.md from one device call's results:
   python3 Benchmarks/results_tables.py Benchmarks/results/nvidia-h200.json Benchmarks/results/nvidia-h200-baselines.json
Our "ms" is the span of a pipeline on the queue (first command's start to last command's end, as the
baselines' CUDA events time a call); "commands ms", where present, the sum of the commands' own times.
"""
import json
import sys

ours = json.load(open(sys.argv[1]))["runs"]
base = {(r["name"], r["N"]): r for r in json.load(open(sys.argv[2]))["runs"] if r["status"] == "ok"}


def label(n):
    return f"{n >> 20}M (per head)" if n >= 1 << 20 else f"{n >> 10}K"


def runs(pattern, kind="structured"):
    return [r for r in ours if r["pattern"] == pattern and r["input"] == kind]


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


f2 = lambda x: f"{x:.2f}"


def total(r):
    """The span, and the commands' sum beside it where the two differ."""
    c = r.get("ms_commands")
    return f2(r["ms"]) + (f" ({f2(c)})" if c is not None and abs(c - r["ms"]) > 0.005 else "")


has_phases = any(r.get("phases") for r in base.values())


def upstream_header(names):
    return "MInference ms" + (f" ({names})" if has_phases else "")


def upstream_phases(b, names):
    p = b.get("phases")
    if not p:
        return f"{b['ms']:.1f}"
    return f"{b['ms']:.1f} (" + " / ".join(f"{sum(p[n] for n in group):.1f}" for group in names) + ")"

pct = lambda x: f"{100 * x:.1f}%"
ratio = lambda x: f"{x:.2f}x"

print("**Dense**\n")
table(["N", "ours ms", "TFLOP/s", "SDPA-FLASH ms", "SDPA-cuDNN ms", "vs FLASH", "vs cuDNN"],
      [[label(r["N"]), f2(r["ms"]), f"{r['tflops']:.0f}", f2(base["sdpa_flash", r["N"]]["ms"]),
        f2(base["sdpa_cudnn", r["N"]]["ms"]), ratio(base["sdpa_flash", r["N"]]["ms"] / r["ms"]),
        ratio(base["sdpa_cudnn", r["N"]]["ms"] / r["ms"])] for r in runs("dense")])

print("**Vertical-slash (1000, 6096)**\n")
rows = []
for r in runs("vertical-slash"):
    b = base["minference_vs", r["N"]]
    rows.append([label(r["N"]), pct(r["density"]), f2(r["phases"]["estimation"]), f2(r["phases"]["indices"]),
                 f2(r["phases"]["kernel"]), total(r), f"{r['tflops']:.0f}", ratio(r["speedup_vs_dense"]),
                 upstream_phases(b, [["estimation"], ["prep", "indices"], ["kernel"]]),
                 ratio(b["ms"] / r["ms"])])
table(["N", "density", "estimate ms", "indices ms", "kernel ms", "total ms (commands)", "TFLOP/s", "vs our dense",
       upstream_header("estimate / indices / kernel"), "vs MInference"], rows)

print("**A-shape (128 sink + 3968 window)**\n")
table(["N", "density", "kernel ms", "TFLOP/s", "vs our dense", "MInference ms", "vs MInference"],
      [[label(r["N"]), pct(r["density"]), f2(r["ms"]), f"{r['tflops']:.0f}", ratio(r["speedup_vs_dense"]),
        f"{base['minference_ashape', r['N']]['ms']:.1f}", ratio(base["minference_ashape", r["N"]]["ms"] / r["ms"])]
       for r in runs("a-shape")])

print("**Block-sparse (100 blocks)**\n")
rows = []
for r in runs("block-sparse"):
    b = base["minference_block_sparse", r["N"]]
    rows.append([label(r["N"]), pct(r["density"]), f2(r["phases"]["estimation"]), f2(r["phases"]["indices"]),
                 f2(r["phases"]["kernel"]), total(r), f"{r['tflops']:.0f}", ratio(r["speedup_vs_dense"]),
                 upstream_phases(b, [["estimation"], ["kernel"]]), ratio(b["ms"] / r["ms"])])
table(["N", "density", "estimate ms", "indices ms", "kernel ms", "total ms (commands)", "TFLOP/s", "vs our dense",
       upstream_header("estimate / kernel"), "vs MInference"], rows)

random_lengths = sorted({r["N"] for r in runs("vertical-slash", "random")})
if random_lengths:
    print("**Random input** (density actually computed, ms; the baselines ran on the structured input only)\n")
table(["N", "vertical-slash", "A-shape", "block-sparse"],
      [[label(n)] + [f"{pct(r['density'])}, {f2(r['ms'])}" for p in ("vertical-slash", "a-shape", "block-sparse")
                     for r in runs(p, "random") if r["N"] == n]
       for n in random_lengths]) if random_lengths else None

print("Estimation + indices share of the pipeline (structured):")
for p in ("vertical-slash", "block-sparse"):
    for r in runs(p):
        if r["N"] in (131072, 1 << 20):
            share = (r["phases"]["estimation"] + r["phases"]["indices"]) / r["ms"]
            print(f"  {p} {label(r['N'])}: {100 * share:.1f}%")

print("\nN = 1M, x32 for a whole layer (structured), ms:")
for r in ours:
    if r.get("per_head") and r["input"] == "structured":
        b = base[r["baseline"], r["N"]]
        print(f"  {r['pattern']}: ours {r['ms'] * 32:.0f}, {r['baseline']} {b['ms'] * 32:.0f}")
