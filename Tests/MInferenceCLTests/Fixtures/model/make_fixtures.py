#!/usr/bin/env python3
"""llama.cpp's logits for a short English text on SmolLM2-135M-Instruct Q4_1 (smollm2-logits.json).

ReferenceModelTests compares the Swift CPU reference forward pass (ReferenceModel) against these:
the token ids (llama.cpp's tokenizer, no BOS, as the GGUF's add_bos_token is false), the top 5
ids and logits at each of the last 16 positions, and all 49152 logits of the last position,
rounded to 3 decimals (rounding moves the relative L2 by about 1e-4). llama.cpp rounds
activations to 8 bits in its quantised products, so it is not exact: a float64 NumPy forward pass
on the same dequantised weights (../gguf/rope_convention.py's `logits`) is 0.0341 relative L2 from
llama.cpp's last-position logits here, and agrees on the top token at 15 of the 16 positions
(2026-11, llama-cpp-python 0.3.36). That pass's top 5 ids and logits at the same 16 positions are
stored too (`float64Top5`), the tight check of the Swift reference.

    /tmp/llamavenv/bin/python Tests/MInferenceCLTests/Fixtures/model/make_fixtures.py "$(scripts/fetch-model.sh)"
"""
import json
import os
import sys

import llama_cpp
import gguf
import numpy as np
from llama_cpp import Llama

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gguf"))
import rope_convention  # noqa: E402

TEXT = ("The old lighthouse stood at the edge of the cliff, its white paint peeling in the salt "
        "wind. Every evening the keeper climbed the narrow stairs to light the lamp, and every "
        "morning he wrote a short note in the log book about the ships that had passed in the night "
        "and the weather they had met.")
LAST = 16


def main(path):
    model = Llama(model_path=path, n_ctx=512, logits_all=True, verbose=False, n_threads=os.cpu_count())
    ids = model.tokenize(TEXT.encode(), add_bos=False, special=False)
    model.eval(ids)
    scores = np.array(model.scores[:len(ids)], dtype=np.float32)
    reader = gguf.GGUFReader(path)
    weights = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64) for t in reader.tensors}
    exact = rope_convention.logits(weights, ids, "adjacent")

    def top5(z, digits):
        out = []
        for p in range(len(ids) - LAST, len(ids)):
            top = np.argsort(-z[p], kind="stable")[:5]
            out.append({"position": p, "ids": [int(i) for i in top], "logits": [round(float(z[p, i]), digits) for i in top]})
        return out

    relative = np.linalg.norm(exact[-1] - scores[-1]) / np.linalg.norm(scores[-1])
    agree = sum(int(np.argmax(exact[p]) == np.argmax(scores[p])) for p in range(len(ids) - LAST, len(ids)))
    print(f"float64 NumPy vs llama.cpp: last-position relative L2 {relative:.4f}, top-1 {agree}/{LAST}")
    fixture = {
        "source": f"llama-cpp-python {llama_cpp.__version__}, {os.path.basename(path)}, logits_all=True",
        "text": TEXT,
        "tokens": [int(i) for i in ids],
        "top5": top5(scores, 4),
        "float64Top5": top5(exact, 6),
        "lastLogits": [round(float(v), 3) for v in scores[-1]],
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smollm2-logits.json")
    with open(out, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(ids)} tokens; wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
        "~/.cache/minference-cl/models/smollm2-135m-instruct-q4_1.gguf"))
