#!/usr/bin/env python3
"""Which RoPE pairing the SmolLM2-135M-Instruct GGUF needs, shown by a float32 NumPy forward pass.

llama.cpp's converter permutes the rows of attn_q/attn_k of Llama models (Hugging Face's
rotate-half layout back to Meta's interleaved one), so on the weights as stored RoPE rotates
adjacent pairs (x[2i], x[2i+1]) (llama.cpp's LLAMA_ROPE_TYPE_NORM). Rotating halves
(x[i], x[i + 32], NEOX) is right only after undoing the permutation. The mean next-token loss on a
short chat shows it (2026-11 run: adjacent 1.739, halves 2.806, halves after un-permuting 1.739).
With llama-cpp-python installed, llama.cpp's own logits are compared too (2026-11 run, 0.3.36:
adjacent max |diff| 1.44 with logits up to 36.3 and the same top token at 57 of 59 positions, as
llama.cpp rounds activations to 8 bits for its Q4_1 products; halves max |diff| 38.9, 28 of 59).

    /tmp/tokvenv/bin/python Tests/MInferenceCLTests/Fixtures/gguf/rope_convention.py "$(scripts/fetch-model.sh)"
"""
import os
import sys

import gguf
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tokenizer"))
from make_fixtures import reference  # noqa: E402

H, KV, D, EPS, BASE = 9, 3, 64, 1e-5, 100000.0
TEXT = ("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        "The capital of France is Paris. Paris is known for the Eiffel Tower, the Louvre museum, "
        "and its cafes along the river Seine. It is one of the most visited cities in the world.")


def rms(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * w


def rope(x, cos, sin, pairing):
    """x: (N, heads, 64); `adjacent` rotates (2i, 2i+1), `halves` rotates (i, i + 32)."""
    if pairing == "adjacent":
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out
    a, b = x[..., :D // 2], x[..., D // 2:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], -1)


def unpermute(w, heads):
    """GGUF rows (per head: pairs 2i, 2i+1) -> Hugging Face rows (per head: i, i + 32)."""
    return w.reshape(heads, D // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)


def hidden(W, ids, pairing, positions=None):
    """The final hidden states, rms(x) * output_norm, (N, 576): token i at RoPE position
    positions[i] (default i)."""
    n = len(ids)
    positions = np.arange(n) if positions is None else np.asarray(positions)
    angles = positions[:, None] * BASE ** (-np.arange(0, D, 2) / D)[None, :]
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    x = W["token_embd.weight"][ids]
    for layer in range(30):
        p = f"blk.{layer}."
        h = rms(x, W[p + "attn_norm.weight"])
        q = rope((h @ W[p + "attn_q.weight"].T).reshape(n, H, D), cos, sin, pairing)
        k = rope((h @ W[p + "attn_k.weight"].T).reshape(n, KV, D), cos, sin, pairing)
        v = (h @ W[p + "attn_v.weight"].T).reshape(n, KV, D)
        out = np.empty((n, H, D), x.dtype)
        for head in range(H):
            s = q[:, head] @ k[:, head // (H // KV)].T / np.sqrt(D) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, head] = (s / s.sum(-1, keepdims=True)) @ v[:, head // (H // KV)]
        x = x + out.reshape(n, H * D) @ W[p + "attn_output.weight"].T
        h = rms(x, W[p + "ffn_norm.weight"])
        g = h @ W[p + "ffn_gate.weight"].T
        x = x + (g / (1 + np.exp(-g)) * (h @ W[p + "ffn_up.weight"].T)) @ W[p + "ffn_down.weight"].T
    return rms(x, W["output_norm.weight"])


def logits(W, ids, pairing, positions=None):
    return hidden(W, ids, pairing, positions) @ W["token_embd.weight"].T  # tied output


def mean_loss(W, ids, pairing):
    z = logits(W, ids, pairing)
    z -= z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -float(np.mean([logp[i, ids[i + 1]] for i in range(len(ids) - 1)]))


def compare_with_llama_cpp(path, W, ids):
    try:
        from llama_cpp import Llama
    except ImportError:
        print("llama-cpp-python is not installed: no comparison with llama.cpp's logits")
        return
    model = Llama(model_path=path, n_ctx=256, logits_all=True, verbose=False)
    model.eval(ids)
    reference = np.array(model.scores[:len(ids)])
    for pairing in ("adjacent", "halves"):
        z = logits(W, ids, pairing)
        print(f"llama.cpp vs {pairing}: max |diff| {np.abs(z - reference).max():.2f} (logits up to "
              f"{np.abs(reference).max():.1f}), same top token at {(z.argmax(-1) == reference.argmax(-1)).sum()} of {len(ids)}")


def main():
    path = sys.argv[1]
    reader = gguf.GGUFReader(path)
    W = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32) for t in reader.tensors}
    ids = reference(path).encode(TEXT).ids
    print(f"adjacent pairs on stored weights: {mean_loss(W, ids, 'adjacent'):.3f}")
    print(f"halves on stored weights:         {mean_loss(W, ids, 'halves'):.3f}")
    compare_with_llama_cpp(path, W, ids)
    for layer in range(30):
        for name, heads in (("attn_q", H), ("attn_k", KV)):
            W[f"blk.{layer}.{name}.weight"] = unpermute(W[f"blk.{layer}.{name}.weight"], heads)
    print(f"halves on un-permuted weights:    {mean_loss(W, ids, 'halves'):.3f}")


if __name__ == "__main__":
    main()
