#!/usr/bin/env python3
"""The reference of DeviceModelAccuracyTests (issue 14's accuracy proof): a float64 forward pass of
SmolLM2-135M-Instruct Q4_1 over the first 1,500 tokens of GPL-3 (Debian's
/usr/share/common-licenses/GPL-3), kept small enough to commit.

The forward pass is ../gguf/rope_convention.py's, every weight dequantised by the `gguf` package and
every value in float64. The logits of the last 64 positions are 64 x 49152 numbers (12 MB), but they
are the tied output matrix (token_embd.weight, in the GGUF) times the final hidden states, so the
fixture keeps those: smollm2-gpl3-1500-hidden.npy, float32 [64, 576], rms(x) * output_norm at
positions 1436...1499 (float32 moves the logits by 2.9e-7 relative). The test multiplies them by
the dequantised embedding in float64 and so has the float64 logits for 3 s of work instead of a
forward pass of 1,500 tokens (the Swift CPU reference takes over 10 minutes in a debug build on
2 cores).

smollm2-gpl3-1500.json: the token ids (llama.cpp's tokenizer, no BOS), the positions, and per
position the float64 pass's top 5 ids and logits (the test checks its own product against them) and
llama.cpp's top-1 id (for information: llama.cpp rounds activations to 8 bits).

    /tmp/llamavenv/bin/python Tests/MInferenceCLTests/Fixtures/model/make_accuracy_fixture.py "$(scripts/fetch-model.sh)"
"""
import hashlib
import json
import os
import sys

import gguf
import llama_cpp
import numpy as np
from llama_cpp import Llama

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gguf"))
import rope_convention  # noqa: E402

TEXT = "/usr/share/common-licenses/GPL-3"
TOKENS = 1500
LAST = 64


def main(path):
    raw = open(TEXT, "rb").read()
    model = Llama(model_path=path, n_ctx=2048, logits_all=True, verbose=False, n_threads=os.cpu_count())
    ids = model.tokenize(raw, add_bos=False, special=False)[:TOKENS]
    model.eval(ids)
    llama_top1 = [int(np.argmax(model.scores[p])) for p in range(TOKENS - LAST, TOKENS)]

    reader = gguf.GGUFReader(path)
    weights = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64) for t in reader.tensors}
    hidden = rope_convention.hidden(weights, ids, "adjacent")[TOKENS - LAST:]
    stored = hidden.astype(np.float32)
    logits = stored.astype(np.float64) @ weights["token_embd.weight"].T
    exact = hidden @ weights["token_embd.weight"].T
    rounding = np.linalg.norm(logits - exact, axis=1).max() / np.linalg.norm(exact, axis=1).min()
    top5 = []
    for i, row in enumerate(logits):
        top = np.argsort(-row, kind="stable")[:5]
        top5.append({"position": TOKENS - LAST + i, "ids": [int(t) for t in top], "logits": [round(float(row[t]), 6) for t in top]})
    agree = sum(int(t["ids"][0] == l) for t, l in zip(top5, llama_top1))
    margins = [t["logits"][0] - t["logits"][1] for t in top5]

    here = os.path.dirname(os.path.abspath(__file__))
    np.save(os.path.join(here, "smollm2-gpl3-1500-hidden.npy"), stored)
    fixture = {
        "source": f"float64 NumPy forward pass (rope_convention.py) on {os.path.basename(path)}; "
                  f"tokens by llama-cpp-python {llama_cpp.__version__}",
        "text": f"the first {TOKENS} tokens of {TEXT} (sha256 {hashlib.sha256(raw).hexdigest()})",
        "tokens": [int(i) for i in ids],
        "positions": [TOKENS - LAST, TOKENS],
        "float64Top5": top5,
        "llamaCppTop1": llama_top1,
    }
    with open(os.path.join(here, "smollm2-gpl3-1500.json"), "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(ids)} tokens; float32 storage moves the logits by {rounding:.1e} relative; top-1 as llama.cpp at "
          f"{agree} of {LAST}; smallest top-1 margin {min(margins):.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
        "~/.cache/minference-cl/models/smollm2-135m-instruct-q4_1.gguf"))
