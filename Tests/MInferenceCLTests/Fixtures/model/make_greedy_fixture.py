#!/usr/bin/env python3
"""llama.cpp's greedy continuation of a short English prompt on SmolLM2-135M-Instruct Q4_1
(smollm2-greedy.json), the fixture of DeviceModelGreedyTests.

llama.cpp (llama-cpp-python, temperature 0: the argmax of its logits at every step, no sampler)
decodes NEW tokens after the prompt with its KV cache. The prompt's continuation has no near
ties: at every step the top-1 logit leads the second by `llamaCppMargins[step]` (llama.cpp) and
by the difference of `float64Top2[step].logits` (a float64 NumPy forward pass on the same
dequantised weights, ../gguf/rope_convention.py, run on the prompt and the continuation at once),
both at least MIN_MARGIN, while the Swift device forward pass is within about 1e-4 of that float64
pass (DeviceModelRealTests). The script refuses to write a fixture where llama.cpp's and
float64's argmax differ at any step, or a margin is below MIN_MARGIN.

The decode is position-sensitive: `offByOne` is the float64 greedy continuation with every
generated token's RoPE position one too far (prompt at 0..P-1, generated tokens from P+1), as a
KV-cache decode with an off-by-one position would run; it leaves the right continuation at
`offByOne.firstDifferentStep`, and the logit of the right token moves by up to
`offByOne.maxLogitShift` on the way.

    /tmp/llamavenv/bin/python Tests/MInferenceCLTests/Fixtures/model/make_greedy_fixture.py "$(scripts/fetch-model.sh)"
"""
import json
import os
import sys

import gguf
import llama_cpp
import numpy as np
from llama_cpp import Llama

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gguf"))
import rope_convention  # noqa: E402

TEXT = "The days of the week are Monday, Tuesday,"
NEW = 20
MIN_MARGIN = 0.1


def llama_cpp_greedy(model, ids):
    """NEW greedy tokens through llama.cpp's KV cache, and the top-1 − top-2 margin at each step."""
    model.reset()
    model.eval(ids)
    tokens, margins = [], []
    for _ in range(NEW):
        z = np.array(model.scores[model.n_tokens - 1], dtype=np.float64)
        top = np.argsort(-z, kind="stable")[:2]
        margins.append(float(z[top[0]] - z[top[1]]))
        tokens.append(int(top[0]))
        model.eval([int(top[0])])
    return tokens, margins


def float64_greedy(weights, ids, shift):
    """NEW greedy tokens of the float64 pass, generated token i at RoPE position P + shift + i."""
    out = list(ids)
    p = len(ids)
    for _ in range(NEW):
        positions = list(range(p)) + [p + shift + i for i in range(len(out) - p)]
        out.append(int(np.argmax(rope_convention.logits(weights, out, "adjacent", positions)[-1])))
    return out[p:]


def main(path):
    model = Llama(model_path=path, n_ctx=512, logits_all=True, verbose=False, n_threads=os.cpu_count())
    ids = model.tokenize(TEXT.encode(), add_bos=False, special=False)
    continuation, margins = llama_cpp_greedy(model, ids)

    reader = gguf.GGUFReader(path)
    weights = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64) for t in reader.tensors}
    p = len(ids)
    exact = rope_convention.logits(weights, ids + continuation, "adjacent")[p - 1:p - 1 + NEW]
    top2 = []
    for step, row in enumerate(exact):
        top = np.argsort(-row, kind="stable")[:2]
        if int(top[0]) != continuation[step]:
            sys.exit(f"step {step}: llama.cpp's token {continuation[step]}, float64's {int(top[0])}: choose another prompt")
        top2.append({"step": step, "ids": [int(i) for i in top], "logits": [round(float(row[i]), 6) for i in top]})
    float64_margins = [t["logits"][0] - t["logits"][1] for t in top2]
    if min(margins) < MIN_MARGIN or min(float64_margins) < MIN_MARGIN:
        sys.exit(f"a near tie: llama.cpp margins {margins}, float64 {float64_margins}: choose another prompt or NEW")

    shifted_logits = rope_convention.logits(weights, ids + continuation, "adjacent",
                                            list(range(p)) + [p + 1 + i for i in range(NEW)])[p - 1:p - 1 + NEW]
    shift = max(abs(float(shifted_logits[s, t] - exact[s, t])) for s, t in enumerate(continuation))
    off = float64_greedy(weights, ids, 1)
    differs = next((i for i, (a, b) in enumerate(zip(off, continuation)) if a != b), None)
    if differs is None:
        sys.exit("an off-by-one decode gives the same continuation: choose a more position-sensitive prompt")

    fixture = {
        "source": f"llama-cpp-python {llama_cpp.__version__}, {os.path.basename(path)}, greedy (argmax), KV cache",
        "text": TEXT,
        "promptTokens": [int(i) for i in ids],
        "continuation": continuation,
        "continuationText": model.detokenize(continuation).decode("utf-8", errors="replace"),
        "llamaCppMargins": [round(m, 4) for m in margins],
        "float64Top2": top2,
        "offByOne": {"continuation": off, "firstDifferentStep": differs, "maxLogitShift": round(shift, 4)},
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smollm2-greedy.json")
    with open(out, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"{len(ids)} prompt tokens, {NEW} new: {fixture['continuationText']!r}")
    print(f"smallest margin: llama.cpp {min(margins):.3f}, float64 {min(float64_margins):.3f}; "
          f"off by one: differs at step {differs}, logit shift up to {shift:.3f}")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
        "~/.cache/minference-cl/models/smollm2-135m-instruct-q4_1.gguf"))
