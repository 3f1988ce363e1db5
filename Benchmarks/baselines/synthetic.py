"""Structured synthetic attention inputs in PyTorch, bit-compatible with the OpenCL generator.

Mirrors CLKernels/synthetic_input.cl (device part) and Sources/MInferenceCL/Inputs/
SyntheticInput.swift + SeededRandom.swift (host part: the per-KV-head unit directions), so the
baselines run on exactly the tensors that MInferenceCL generates for the same (seed, shape):

    q_i = RoPE_i(z_q + alpha * a) + boost * u
    k_j = RoPE_j(z_k + alpha * a) + [j vertical] boost * u
    v_j = z_v

uint32 hash arithmetic is emulated on int64 tensors masked with 0xffffffff (products are split
into 16-bit halves so no int64 product overflows); Box-Muller, RoPE and the sums run in float32
like the kernel; the result is rounded to fp16 (round to nearest even, as vstore_half_rte).
Positions are generated in chunks, so the 1M-token case needs only the output tensors plus a
few chunk-sized temporaries.

Residual differences from the OpenCL kernel come only from float32 transcendental functions
(log, cos, sin, pow) differing by an ulp between math libraries and from the OpenCL compiler
fusing a*b+c into an FMA; after the fp16 rounding they show up, if at all, as one fp16 ulp in a
few elements.
"""

import math

import numpy as np
import torch

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
SINK_COLUMNS = 16

# Defaults of SyntheticInput.swift.
LOCAL_LOGIT = 8.0
VERTICAL_LOGIT = 6.0
ROPE_THETA = 500_000.0
VERTICAL_COUNT = 184


# ---- host side: SeededRandom (SplitMix64 + Box-Muller in double) ----------------------------

class SeededRandom:
    """SplitMix64, exactly as Sources/MInferenceCL/Inputs/SeededRandom.swift."""

    def __init__(self, seed):
        self.state = seed & M64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def normal(self):
        # Swift: `next() >> 11 + 1` parses as `(next() >> 11) + 1` (shifts bind tighter).
        u1 = float((self.next() >> 11) + 1) / float(1 << 53)
        u2 = float(self.next() >> 11) / float(1 << 53)
        return np.float32(math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2))

    def normals(self, count):
        return [self.normal() for _ in range(count)]


def directions(seed, kv_heads, head_dim):
    """[kv_heads, 2, head_dim] float32: unit vectors a and u per KV head (SyntheticInput.swift)."""
    rng = SeededRandom(seed ^ 0xD1B54A32D192ED03)
    out = np.zeros((kv_heads, 2, head_dim), dtype=np.float32)
    for i in range(2 * kv_heads):
        x = rng.normals(head_dim)
        acc = np.float32(0.0)
        for value in x:  # sequential float32 sum of squares, like Swift's reduce
            acc = np.float32(acc + np.float32(value * value))
        norm = np.float32(np.sqrt(acc))
        out[i // 2, i % 2] = np.array([np.float32(value / norm) for value in x], dtype=np.float32)
    return out


def scales(head_dim, local_logit=LOCAL_LOGIT, vertical_logit=VERTICAL_LOGIT):
    """(alpha, boost) as float32, computed like SyntheticInput.swift (all Float arithmetic)."""
    root = np.sqrt(np.sqrt(np.float32(head_dim)))
    alpha = np.float32(np.sqrt(np.float32(local_logit)) * root)
    boost = np.float32(np.sqrt(np.float32(vertical_logit)) * root)
    return alpha, boost


# ---- device side: synthetic_input.cl -----------------------------------------------------------

def _mul32(x, c):
    """(x * c) mod 2^32 for int64 x in [0, 2^32) and a constant c < 2^32, without int64 overflow."""
    lo = (x & 0xFFFF) * c
    hi = ((x >> 16) * c) & 0xFFFF
    return (lo + (hi << 16)) & M32


def mix32(x):
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    x = x ^ (x >> 16)
    return x


def hash4(seed, a, b, c):
    """hash4 of the kernel for int64 tensors / ints (broadcasting)."""
    return mix32(seed ^ mix32(a ^ mix32(b ^ mix32((c + 0x9E3779B9) & M32))))


def _unit_float(h):
    return ((h >> 8) + 1).to(torch.float32) * (1.0 / 16777216.0)


_TWO_PI_F32 = float(np.float32(6.28318530718))  # the kernel's 6.28318530718f


def _box_muller(h1, h2):
    u1 = _unit_float(h1)
    u2 = _unit_float(h2)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(_TWO_PI_F32 * u2)


def vertical_mask(seed32, kv, pos, n, vertical_count):
    """is_vertical(seed, kv, j, n, vertical_count) for int64 positions `pos`."""
    h = hash4(seed32 ^ 0x3C6EF372, kv, pos, 7)
    return (pos < SINK_COLUMNS) | ((h % n) < vertical_count)


def generate_tensor(kind, heads, group, n, head_dim, seed, dirs, alpha, boost, rope_theta=ROPE_THETA,
                    vertical_count=VERTICAL_COUNT, device="cpu", chunk_elements=1 << 22, dtype=torch.float16):
    """One of q (kind 0), k (1), v (2): [heads, n, head_dim] in `dtype`.

    `group` is the number of query heads per KV head for kind 0, 1 otherwise (as the Swift host
    passes it); `dirs` is directions(seed, kv_heads, head_dim).
    """
    assert head_dim % 2 == 0
    half = head_dim // 2
    seed32 = seed & M32
    seed32b = seed32 ^ 0x5BD1E995
    out = torch.empty((heads, n, head_dim), dtype=dtype, device=device)
    i64 = dict(dtype=torch.int64, device=device)
    channel = torch.arange(head_dim, **i64)
    t1 = mix32((channel + 0x9E3779B9) & M32)  # mix32(c + 0x9e3779b9), per channel
    if kind != 2:
        d_dirs = torch.from_numpy(np.ascontiguousarray(dirs)).to(device)
        alpha_t = torch.tensor(alpha, dtype=torch.float32, device=device)
        boost_t = torch.tensor(boost, dtype=torch.float32, device=device)
        aa = alpha_t * d_dirs[:, 0, :]  # [kv, d]: alpha * a[c], one float32 product per channel
        bu = boost_t * d_dirs[:, 1, :]  # [kv, d]: boost * u[c]
        # pow(rope_theta, -2.0f * (float)c / (float)HEAD_DIM), all float32
        exponent = (-2.0 * torch.arange(half, dtype=torch.float32, device=device)) / float(head_dim)
        freq = torch.pow(torch.tensor(rope_theta, dtype=torch.float32, device=device), exponent)
    rows = max(1, chunk_elements // head_dim)
    for p0 in range(0, n, rows):
        p1 = min(n, p0 + rows)
        pos = torch.arange(p0, p1, **i64)
        t2 = mix32(pos[:, None] ^ t1[None, :])  # mix32(pos ^ mix32(c + K)), shared by all heads
        if kind != 2:
            angle = pos.to(torch.float32)[:, None] * freq[None, :]
            cs = torch.cos(angle)
            sn = torch.sin(angle)
        for head in range(heads):
            stream = (kind * 0x01000193 + head) & M32
            t3 = mix32(t2 ^ stream)
            z = _box_muller(mix32(t3 ^ seed32), mix32(t3 ^ seed32b))  # [rows, d] float32
            if kind == 2:
                out[head, p0:p1] = z.to(dtype)
                continue
            kv = head // group
            x = z + aa[kv]
            x0, x1 = x[:, :half], x[:, half:]
            y0 = x0 * cs - x1 * sn
            y1 = x1 * cs + x0 * sn
            if kind == 0:
                y0 = y0 + bu[kv, :half]
                y1 = y1 + bu[kv, half:]
            else:
                vert = vertical_mask(seed32, kv, pos, n, vertical_count)[:, None]
                y0 = torch.where(vert, y0 + bu[kv, :half], y0)
                y1 = torch.where(vert, y1 + bu[kv, half:], y1)
            out[head, p0:p1, :half] = y0.to(dtype)
            out[head, p0:p1, half:] = y1.to(dtype)
    return out


def generate(n, heads_q, heads_kv, head_dim, seed=1, batch=1, device="cpu", chunk_elements=1 << 22,
             local_logit=LOCAL_LOGIT, vertical_logit=VERTICAL_LOGIT, rope_theta=ROPE_THETA,
             vertical_count=VERTICAL_COUNT, which="qkv"):
    """(q, k, v) as [batch*heads, n, head_dim] fp16, like SyntheticInput.generate (prefill, Nq = Nk).

    `which` selects the tensors to build (others are None).
    """
    assert heads_q % heads_kv == 0
    kv_heads = batch * heads_kv
    dirs = directions(seed, kv_heads, head_dim)
    alpha, boost = scales(head_dim, local_logit, vertical_logit)
    kw = dict(n=n, head_dim=head_dim, seed=seed, dirs=dirs, alpha=alpha, boost=boost, rope_theta=rope_theta,
              vertical_count=vertical_count, device=device, chunk_elements=chunk_elements)
    q = generate_tensor(0, batch * heads_q, heads_q // heads_kv, **kw) if "q" in which else None
    k = generate_tensor(1, kv_heads, 1, **kw) if "k" in which else None
    v = generate_tensor(2, kv_heads, 1, **kw) if "v" in which else None
    return q, k, v
