#!/usr/bin/env python3
"""Compares two folders of block masks written by prefill_methods.py (upstream) and by MInferenceCL's
bench: DIR_A/{name}.npy against DIR_B/{name}.npy for every name present in both (name =
{method}-N{N}, e.g. xattention-torch-N32768, xattention-triton-N32768, flexprefill-N32768).

Format of each file: uint8 (or bool) [H, nb, nb], nb = ceil(N/128); nonzero iff query block m uses
key block n. Only the causal blocks (n <= m) are compared; set entries above the diagonal are
counted and reported separately (the kernels never compute them).

    python3 Benchmarks/baselines/compare_masks.py .gpu/upstream-masks .gpu/ours-masks [--examples 5]
        [--prefix-a P] [--prefix-b P] [--json OUT] [--strict]

Per name: heads compared, causal blocks equal (count and %), heads identical, blocks selected in A
and in B and in both (Jaccard), rows that differ, and for a few differing rows (head, query block
m, key blocks only in A, only in B). --strict: exit status 1 if any compared mask differs or a
name is missing on one side.
"""

import argparse
import json
import os
import re
import sys

import numpy as np

sys.dont_write_bytecode = True


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir_a", help="first folder (e.g. upstream's masks)")
    p.add_argument("dir_b", help="second folder (e.g. MInferenceCL's masks)")
    p.add_argument("--prefix-a", default="", help="file-name prefix in DIR_A (default none)")
    p.add_argument("--prefix-b", default="", help="file-name prefix in DIR_B (default none), e.g. ours-")
    p.add_argument("--examples", type=int, default=5, help="differing rows shown per name (default 5)")
    p.add_argument("--max-list", type=int, default=12, help="blocks listed per example side (default 12)")
    p.add_argument("--json", default=None, help="also write the summary as JSON here")
    p.add_argument("--strict", action="store_true", help="exit 1 on any difference or missing name")
    return p.parse_args(argv)


def names_in(folder, prefix):
    out = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".npy") and f.startswith(prefix):
            out[f[len(prefix):-4]] = os.path.join(folder, f)
    return out


def split_name(name):
    m = re.match(r"^(.*)-N(\d+)$", name)
    return (m.group(1), int(m.group(2))) if m else (name, None)


def short(blocks, limit):
    blocks = [int(x) for x in blocks]
    return blocks if len(blocks) <= limit else blocks[:limit] + [f"... ({len(blocks)} in all)"]


def compare(path_a, path_b, examples=5, max_list=12):
    """Returns a dict summarising the comparison of two mask files."""
    a = np.load(path_a, mmap_mode="r")
    b = np.load(path_b, mmap_mode="r")
    res = {"file_a": path_a, "file_b": path_b, "shape_a": list(a.shape), "shape_b": list(b.shape)}
    if a.shape != b.shape or a.ndim != 3 or a.shape[1] != a.shape[2]:
        res["error"] = "shapes differ or are not [H, nb, nb]"
        return res
    h, nb, _ = a.shape
    causal = np.tril(np.ones((nb, nb), dtype=bool))
    per_block_causal = nb * (nb + 1) // 2
    equal_blocks = 0
    sel_a = sel_b = both = 0
    noncausal_a = noncausal_b = 0
    heads_identical = 0
    rows_differ = 0
    per_head = []
    shown = []
    for head in range(h):  # one head at a time: [nb, nb] planes (at most 4M entries)
        pa = np.asarray(a[head]) != 0
        pb = np.asarray(b[head]) != 0
        noncausal_a += int((pa & ~causal).sum())
        noncausal_b += int((pb & ~causal).sum())
        pa &= causal
        pb &= causal
        diff = pa != pb
        n_diff = int(diff.sum())
        equal_blocks += per_block_causal - n_diff
        ca, cb, cab = int(pa.sum()), int(pb.sum()), int((pa & pb).sum())
        sel_a, sel_b, both = sel_a + ca, sel_b + cb, both + cab
        heads_identical += n_diff == 0
        bad_rows = np.nonzero(diff.any(axis=1))[0]
        rows_differ += len(bad_rows)
        per_head.append({"head": head, "blocks_differ": n_diff, "rows_differ": int(len(bad_rows)),
                         "selected_a": ca, "selected_b": cb})
        for m in bad_rows:
            if len(shown) >= examples:
                break
            shown.append({"head": head, "query_block": int(m),
                          "only_in_a": short(np.nonzero(pa[m] & ~pb[m])[0], max_list),
                          "only_in_b": short(np.nonzero(pb[m] & ~pa[m])[0], max_list),
                          "selected_a": int(pa[m].sum()), "selected_b": int(pb[m].sum())})
    total = h * per_block_causal
    union = sel_a + sel_b - both
    res.update(heads=h, nb=nb, causal_blocks=total, blocks_equal=equal_blocks,
               blocks_equal_pct=100.0 * equal_blocks / total, blocks_differ=total - equal_blocks,
               heads_identical=heads_identical, rows_differ=rows_differ, rows=h * nb,
               selected_a=sel_a, selected_b=sel_b, selected_both=both,
               jaccard=(both / union) if union else 1.0, noncausal_set_a=noncausal_a, noncausal_set_b=noncausal_b,
               examples=shown, per_head=per_head)
    return res


def main(argv=None):
    args = parse_args(argv)
    names_a = names_in(args.dir_a, args.prefix_a)
    names_b = names_in(args.dir_b, args.prefix_b)
    common = sorted(set(names_a) & set(names_b), key=lambda s: (split_name(s)[0], split_name(s)[1] or 0))
    only_a = sorted(set(names_a) - set(names_b))
    only_b = sorted(set(names_b) - set(names_a))
    results = []
    print(f"A = {args.dir_a} (prefix '{args.prefix_a}'), B = {args.dir_b} (prefix '{args.prefix_b}')")
    for name in common:
        method, n = split_name(name)
        res = compare(names_a[name], names_b[name], args.examples, args.max_list)
        res.update(name=name, method=method, N=n)
        results.append(res)
        if "error" in res:
            print(f"{name}: {res['error']}: A {res['shape_a']}, B {res['shape_b']}")
            continue
        print(f"{method} N={n}: {res['heads']} heads, nb {res['nb']}: blocks equal {res['blocks_equal']} of "
              f"{res['causal_blocks']} ({res['blocks_equal_pct']:.4f}%), heads identical {res['heads_identical']} of "
              f"{res['heads']}, rows differing {res['rows_differ']} of {res['rows']}; selected A {res['selected_a']}, "
              f"B {res['selected_b']}, both {res['selected_both']} (Jaccard {res['jaccard']:.6f})")
        if res["noncausal_set_a"] or res["noncausal_set_b"]:
            print(f"    non-causal entries set (ignored): A {res['noncausal_set_a']}, B {res['noncausal_set_b']}")
        for ex in res["examples"]:
            print(f"    head {ex['head']} query block {ex['query_block']}: only in A {ex['only_in_a']}, "
                  f"only in B {ex['only_in_b']} (row selects {ex['selected_a']} in A, {ex['selected_b']} in B)")
    for name in only_a:
        print(f"{name}: only in A")
    for name in only_b:
        print(f"{name}: only in B")
    if not common:
        print("no file name present in both folders")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"dir_a": args.dir_a, "dir_b": args.dir_b, "only_in_a": only_a, "only_in_b": only_b,
                       "results": results}, f, indent=1)
    differ = any("error" in r or r["blocks_differ"] for r in results)
    if args.strict and (differ or only_a or only_b or not common):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
