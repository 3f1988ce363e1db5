"""Loads MInference's own kernels from a verbatim copy of its files (default .baseline/minference),
without importing the `minference` package (whose __init__ pulls in transformers, flash_attn,
vllm, ...).

Layout expected under the copy (paths as in the upstream repository):
    COMMIT                                          the upstream commit the files were taken from
    minference/ops/pit_sparse_flash_attention_v2.py vertical-slash Triton kernel + wrapper
    minference/ops/block_sparse_flash_attention.py  block-sparse estimation + Triton kernel
    minference/ops/streaming_kernel.py              A-shape (streaming) Triton kernel
    minference/modules/minference_forward.py        per-head loop + VS estimation (only the
                                                    functions named in _FORWARD_NAMES are used)
    csrc/kernels.cpp, csrc/vertical_slash_index.cu  CUDA index conversion (built at run time)

The ops files are imported by file path as modules of a synthetic package `_mi_upstream`, so their
relative import `from ..cuda import convert_vertical_slash_indexes` resolves to the extension
built here (or to the labelled pure-torch fallback below). From minference_forward.py only the
top-level definitions the prefill path needs are compiled (selected with `ast`, source text
untouched); the rest of that file (HF/vLLM glue) is never executed.
"""

import ast
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import sysconfig
import types

import torch

PKG = "_mi_upstream"
_FORWARD_NAMES = ("last_q", "arange", "LAST_Q_MASK", "sum_all_diagonal_matrix", "minference_prefill_kernel",
                  "minference_prefill_forward")


# ---- pure-torch fallback of csrc/vertical_slash_index.cu -----------------------------------------

def convert_vertical_slash_indexes_torch(seqlens, vertical_indexes, slash_indexes, context_size,
                                         block_size_M=64, block_size_N=64):
    """Pure-torch re-implementation of convert_vertical_slash_indexes (csrc/vertical_slash_index.cu).

    Same signature, same outputs (block_count, block_offset, column_count, column_index; int32,
    zero-filled past the counts). One loop step per slash offset, vectorised over row blocks:
    blocks are written as the CUDA kernel's ranges grow (a range's blocks come out in the same
    order as its save_blocks call would write them), and the kept columns are the verticals that
    lie left of the final range end and outside every range, which is what the kernel's
    interleaved vertical walk keeps. Row blocks for which no offset is < end get no blocks
    (the CUDA kernel reads out of bounds there). Slow (a few torch ops per offset): a fallback
    for when the CUDA extension cannot be built, not a timing baseline.
    """
    assert block_size_M == 64 and block_size_N == 64
    B, H, nnz_s = slash_indexes.shape
    nnz_v = vertical_indexes.shape[-1]
    dev = slash_indexes.device
    rows = (context_size + block_size_M - 1) // block_size_M
    i32 = dict(dtype=torch.int32, device=dev)
    block_count = torch.zeros((B, H, rows), **i32)
    block_offset = torch.zeros((B, H, rows, nnz_s), **i32)
    column_count = torch.zeros((B, H, rows), **i32)
    column_index = torch.zeros((B, H, rows, nnz_v), **i32)
    big = torch.iinfo(torch.int64).max // 4
    for b in range(B):
        seqlen = int(seqlens[b])
        n_rows = min(rows, (seqlen + block_size_M - 1) // block_size_M)  # rows with start < seqlen
        if n_rows <= 0:
            continue
        start = torch.arange(n_rows, dtype=torch.int64, device=dev) * block_size_M
        end = start + block_size_M
        for h in range(H):
            offs = slash_indexes[b, h].to(torch.int64).tolist()
            started = torch.zeros(n_rows, dtype=torch.bool, device=dev)
            lo = torch.zeros(n_rows, dtype=torch.int64, device=dev)
            hi = torch.zeros(n_rows, dtype=torch.int64, device=dev)
            cnt = torch.zeros(n_rows, dtype=torch.int64, device=dev)
            blocks = torch.full((n_rows, nnz_s + 1), big, dtype=torch.int64, device=dev)
            row_ids = torch.arange(n_rows, device=dev)
            for o in offs:
                active = end > o
                e = torch.clamp(end - o, min=block_size_M)
                first = active & ~started
                cont = active & started
                brk = cont & (e > hi + block_size_M)
                grow = cont & ~brk & (e > hi)
                new_range = first | brk
                write = new_range | grow
                value = torch.where(grow, hi, e - block_size_M)
                blocks[row_ids, torch.where(write, cnt, nnz_s)] = torch.where(write, value, big)
                cnt = cnt + write.to(torch.int64)
                lo = torch.where(new_range, e - block_size_M, lo)
                hi = torch.where(new_range, e, torch.where(grow, hi + block_size_M, hi))
                started = started | active
            blocks = blocks[:, :nnz_s].contiguous()
            # Columns: verticals < final range end that no block covers, in ascending order.
            verts = vertical_indexes[b, h].to(torch.int64)[None, :].expand(n_rows, nnz_v).contiguous()
            pos = torch.searchsorted(blocks, verts, right=True)  # blocks with offset <= v
            prev = torch.gather(blocks, 1, torch.clamp(pos - 1, min=0))
            covered = (pos > 0) & (verts < prev + block_size_N)
            keep = (verts < hi[:, None]) & ~covered & started[:, None]
            order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
            kept = torch.gather(verts, 1, order)
            n_keep = keep.sum(1)
            kept = torch.where(torch.arange(nnz_v, device=dev)[None, :] < n_keep[:, None], kept, 0)
            block_count[b, h, :n_rows] = cnt.to(torch.int32)
            block_offset[b, h, :n_rows] = torch.where(blocks == big, 0, blocks).to(torch.int32)
            column_count[b, h, :n_rows] = n_keep.to(torch.int32)
            column_index[b, h, :n_rows] = kept.to(torch.int32)
    return [block_count, block_offset, column_count, column_index]


def convert_vertical_slash_indexes_python(seqlens, vertical_indexes, slash_indexes, context_size,
                                          block_size_M=64, block_size_N=64):
    """Line-by-line transliteration of the CUDA kernel (plain Python, slow): the test oracle."""
    B, H, nnz_s = len(slash_indexes), len(slash_indexes[0]), len(slash_indexes[0][0])
    nnz_v = len(vertical_indexes[0][0])
    rows = (context_size + block_size_M - 1) // block_size_M
    out_bc = [[[0] * rows for _ in range(H)] for _ in range(B)]
    out_bo = [[[[0] * nnz_s for _ in range(rows)] for _ in range(H)] for _ in range(B)]
    out_cc = [[[0] * rows for _ in range(H)] for _ in range(B)]
    out_ci = [[[[0] * nnz_v for _ in range(rows)] for _ in range(H)] for _ in range(B)]
    for b in range(B):
        seqlen = seqlens[b]
        for h in range(H):
            V, S = vertical_indexes[b][h], slash_indexes[b][h]
            for m in range(rows):
                start_m = m * block_size_M
                if start_m >= seqlen:
                    continue
                end_m = start_m + block_size_M
                bo, ci = out_bo[b][h][m], out_ci[b][h][m]
                col, blk, s, v = 0, 0, 0, 0
                v_idx = V[v]; v += 1
                s_idx = S[s]; s += 1
                while s_idx >= end_m:
                    s_idx = S[s]; s += 1  # IndexError here = the CUDA kernel's out-of-bounds read
                s_idx = max(end_m - s_idx, block_size_M)
                range_start, range_end = s_idx - block_size_M, s_idx
                while True:
                    if v_idx < range_end:
                        if v_idx < range_start:
                            ci[col] = v_idx; col += 1
                        if v < nnz_v:
                            v_idx = V[v]; v += 1
                        else:
                            v_idx = end_m + block_size_M
                    else:
                        if s < nnz_s:
                            s_idx = max(end_m - S[s], block_size_M); s += 1
                        else:
                            for idx in range(range_start, range_end, block_size_N):
                                bo[blk] = idx; blk += 1
                            break
                        if s_idx > range_end + block_size_M:
                            for idx in range(range_start, range_end, block_size_N):
                                bo[blk] = idx; blk += 1
                            range_start, range_end = s_idx - block_size_M, s_idx
                        elif s_idx > range_end:
                            range_end += block_size_M
                out_bc[b][h][m] = blk
                out_cc[b][h][m] = col
    return out_bc, out_bo, out_cc, out_ci


# ---- coverage (the (i, j) pairs a kernel actually computes) ---------------------------------------

def _pairs_below(x):
    """sum over a <= x of clamp(a, 0, 64), for int64 tensors x (elementwise)."""
    x = x.to(torch.int64)
    inside = torch.clamp(x, min=0, max=64)
    return inside * (inside + 1) // 2 + 64 * torch.clamp(x - 64, min=0)


def block_pairs(row_start, row_end, key_start):
    """Number of causal pairs (i, j): row_start <= i < row_end, key_start <= j < key_start + 64, j <= i."""
    # For row i the count is clamp(i - key_start + 1, 0, 64); sum it over the rows.
    return _pairs_below(row_end - key_start) - _pairs_below(row_start - key_start)


def vs_covered_pairs(n, block_count, block_offset, column_count, block_size=64):
    """Pairs computed by _triton_mixed_sparse_attn_fwd_kernel for one head: per row block m (rows
    [64m, min(64m+64, n))), every stored block [off, off+64) masked causally, plus column_count
    full columns (all columns are < 64m, so every row of the block sees them)."""
    bc = block_count.reshape(-1).to(torch.int64)
    bo = block_offset.reshape(bc.shape[0], -1).to(torch.int64)
    cc = column_count.reshape(-1).to(torch.int64)
    rows = bc.shape[0]
    dev = bc.device
    start = torch.arange(rows, device=dev, dtype=torch.int64) * block_size
    end = torch.clamp(start + block_size, max=n)
    valid = torch.arange(bo.shape[1], device=dev)[None, :] < bc[:, None]
    pairs = torch.where(valid, block_pairs(start[:, None], end[:, None], bo), 0).sum()
    pairs += (cc * torch.clamp(end - start, min=0)).sum()
    return int(pairs)


def block_sparse_covered_pairs(n, block_index, block_size=64):
    """Pairs computed by _triton_block_sparse_attn_fwd_kernel for one head: row block m visits the
    first min(m + 1, K) sorted block indices, causal mask inside each block, rows i < n."""
    bi = block_index.reshape(-1, block_index.shape[-1]).to(torch.int64)
    rows, k = bi.shape
    dev = bi.device
    m = torch.arange(rows, device=dev, dtype=torch.int64)
    start = m * block_size
    end = torch.clamp(start + block_size, max=n)
    visited = torch.arange(k, device=dev)[None, :] < torch.clamp(m + 1, max=k)[:, None]
    pairs = torch.where(visited, block_pairs(start[:, None], end[:, None], bi * block_size), 0)
    pairs = torch.where((start < n)[:, None], pairs, 0)
    return int(pairs.sum())


def a_shape_pairs(n, n_init, n_local):
    """Pairs of the element-exact A-shape mask {j <= i : i - j < n_local or j < n_init}."""
    i = torch.arange(n, dtype=torch.int64)
    local = torch.clamp(i + 1, max=n_local)
    sinks = torch.clamp(torch.clamp(i - n_local + 1, min=0), max=n_init)
    return int((local + sinks).sum())


# ---- loader -----------------------------------------------------------------------------------

class Upstream:
    """The loaded upstream functions plus a description of how the index conversion was obtained."""

    def __init__(self, root, build_dir=None, force_torch_indexes=False, log=print):
        self.root = os.path.abspath(root)
        self.log = log
        commit_file = os.path.join(self.root, "COMMIT")
        self.commit = open(commit_file).read().strip() if os.path.exists(commit_file) else "unknown"
        self.build_dir = build_dir or os.path.join("/tmp", "minference_vs_index_build")
        self.index_impl = None  # "cuda-extension (...)" or "pure-torch fallback (...)"
        cuda_mod = self._index_module(force_torch_indexes)
        self._make_package(cuda_mod)
        self.pit = self._load("ops", "pit_sparse_flash_attention_v2")
        self.block_sparse = self._load("ops", "block_sparse_flash_attention")
        self.streaming = self._load("ops", "streaming_kernel")
        # Force the in-repo CUDA + Triton path (the one the spec and the expected numbers describe)
        # even if sgl_kernel or vllm happen to be importable on the GPU machine.
        self.pit_optional_backends = {
            "sparse_attn_func": getattr(self.pit, "sparse_attn_func", None) is not None,
            "convert_vertical_slash_indexes_opt": getattr(self.pit, "convert_vertical_slash_indexes_opt", None) is not None,
        }
        self.pit.sparse_attn_func = None
        self.pit.convert_vertical_slash_indexes_opt = None
        self.forward = self._load_forward()

    # -- index conversion: CUDA extension, else pure torch --
    def _index_module(self, force_torch):
        mod = types.ModuleType(PKG + ".cuda")
        if not force_torch:
            try:
                ext = self._build_extension()
                mod.convert_vertical_slash_indexes = ext.convert_vertical_slash_indexes
                return mod
            except Exception as error:  # noqa: BLE001 - any build failure selects the fallback
                self.log(f"WARNING: building csrc/vertical_slash_index.cu failed: {type(error).__name__}: {error}")
        self.index_impl = "pure-torch fallback (Benchmarks/baselines/upstream.py; NOT upstream's CUDA kernel, " \
                          "indices timings are not comparable)"
        self.log("WARNING: index conversion uses the " + self.index_impl)
        mod.convert_vertical_slash_indexes = convert_vertical_slash_indexes_torch
        return mod

    def _build_extension(self):
        sources = [os.path.join(self.root, "csrc", "kernels.cpp"), os.path.join(self.root, "csrc", "vertical_slash_index.cu")]
        for path in sources:
            if not os.path.exists(path):
                raise FileNotFoundError(path)
        os.makedirs(self.build_dir, exist_ok=True)
        if "TORCH_CUDA_ARCH_LIST" not in os.environ and torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
        from torch.utils import cpp_extension
        name = "minference_vs_index"
        if cpp_extension.is_ninja_available():
            # Upstream's setup.py passes -std=c++17 -O3; the C++ standard is left to torch's default
            # here because recent torch headers may need a newer one.
            try:
                ext = cpp_extension.load(name=name, sources=sources, build_directory=self.build_dir,
                                         extra_cflags=["-O3"], extra_cuda_cflags=["-O3"], verbose=False)
                self.index_impl = ("cuda-extension (csrc/vertical_slash_index.cu built with "
                                   f"torch.utils.cpp_extension.load in {self.build_dir})")
                return ext
            except Exception as error:  # noqa: BLE001 - try the direct build next
                self.log(f"WARNING: cpp_extension.load failed ({type(error).__name__}: {str(error)[-2000:]}); "
                         "trying c++/nvcc directly")
        return self._build_extension_nvcc(name + "_direct", sources)

    def _build_extension_nvcc(self, name, sources):
        """No ninja: the commands cpp_extension's ninja file would run (c++ for the binding, nvcc for
        the kernel, c++ to link), C++20 first (recent torch headers need it), then C++17."""
        from torch.utils import cpp_extension
        os.makedirs(self.build_dir, exist_ok=True)
        cuda_home = cpp_extension.CUDA_HOME or "/usr/local/cuda"
        nvcc = os.path.join(cuda_home, "bin", "nvcc")
        cxx = os.environ.get("CXX", "c++")
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        target = os.path.join(self.build_dir, name + suffix)
        abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
        defines = [f"-DTORCH_EXTENSION_NAME={name}", "-DTORCH_API_INCLUDE_EXTENSION_H", f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]
        includes = []
        for path in cpp_extension.include_paths(device_type="cuda") + [sysconfig.get_paths()["include"]]:
            includes += ["-isystem", path]
        arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0").split(";")[0].replace(".", "").replace("+PTX", "")
        libs = cpp_extension.library_paths(device_type="cuda")
        cpp_src = [p for p in sources if p.endswith(".cpp")]
        cu_src = [p for p in sources if p.endswith(".cu")]
        errors = []
        for std in ("-std=c++20", "-std=c++17"):
            objects, steps = [], []
            for src in cpp_src:
                obj = os.path.join(self.build_dir, os.path.basename(src) + ".o")
                steps.append([cxx, "-O3", "-fPIC", std] + defines + includes + ["-c", src, "-o", obj])
                objects.append(obj)
            for src in cu_src:
                obj = os.path.join(self.build_dir, os.path.basename(src) + ".o")
                steps.append([nvcc, "-O3", std, "--compiler-options", "-fPIC", "--expt-relaxed-constexpr",
                              "-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                              "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__",
                              f"-gencode=arch=compute_{arch},code=sm_{arch}"] + defines + includes + ["-c", src, "-o", obj])
                objects.append(obj)
            link = [cxx] + objects + ["-shared"] + [f"-L{p}" for p in libs]
            link += ["-lc10", "-lc10_cuda", "-ltorch_cpu", "-ltorch_cuda", "-ltorch", "-ltorch_python", "-lcudart"]
            link += [f"-Wl,-rpath,{p}" for p in libs] + ["-o", target]
            steps.append(link)
            for cmd in steps:
                result = subprocess.run(cmd, capture_output=True, text=True)
                if result.returncode != 0:
                    errors.append(" ".join(cmd) + "\n" + result.stderr[-3000:])
                    break
            else:
                break
        else:
            raise RuntimeError("direct build failed:\n" + "\n".join(errors))
        spec = importlib.util.spec_from_file_location(name, target)
        ext = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ext)
        self.index_impl = f"cuda-extension (csrc/vertical_slash_index.cu built with c++/nvcc directly in {self.build_dir}; no ninja)"
        return ext

    # -- synthetic package for the verbatim files --
    def _make_package(self, cuda_mod):
        for name, path in ((PKG, self.root), (PKG + ".ops", os.path.join(self.root, "minference", "ops")),
                           (PKG + ".modules", os.path.join(self.root, "minference", "modules"))):
            pkg = types.ModuleType(name)
            pkg.__path__ = [path]
            pkg.__package__ = name
            sys.modules[name] = pkg
        sys.modules[PKG + ".cuda"] = cuda_mod
        sys.modules[PKG].cuda = cuda_mod

    def _load(self, sub, module):
        path = os.path.join(self.root, "minference", sub, module + ".py")
        full = f"{PKG}.{sub}.{module}"
        spec = importlib.util.spec_from_file_location(full, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[full] = mod
        spec.loader.exec_module(mod)
        setattr(sys.modules[f"{PKG}.{sub}"], module, mod)
        return mod

    def _load_forward(self):
        """Compiles the prefill-path definitions of minference_forward.py (verbatim source) into a
        namespace that provides what their module would: torch, math, the ops above."""
        path = os.path.join(self.root, "minference", "modules", "minference_forward.py")
        source = open(path).read()
        tree = ast.parse(source, filename=path)
        keep = []
        for node in tree.body:
            names = []
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(n in _FORWARD_NAMES for n in names):
                keep.append(node)
        found = {n for node in keep for n in ([node.name] if hasattr(node, "name") else [t.id for t in node.targets])}
        missing = set(_FORWARD_NAMES) - found
        if missing:
            raise RuntimeError(f"{path}: definitions not found: {sorted(missing)}")
        import json
        import math
        ns = {
            "__name__": PKG + ".modules.minference_forward", "__file__": path,
            "torch": torch, "math": math, "os": os, "json": json,
            "block_sparse_attention": self.block_sparse.block_sparse_attention,
            "vertical_slash_sparse_attention": self.pit.vertical_slash_sparse_attention,
            "streaming_forward": self.streaming.streaming_forward,
            "streaming_forward2": self.streaming.streaming_forward2,
            "flash_attn_func": None,  # only reached for layers below starting_layer (never here)
            "search_pattern": None,  # only reached with is_search (never here)
        }
        module = ast.Module(body=keep, type_ignores=[])
        exec(compile(module, path, "exec"), ns)  # noqa: S102 - upstream's own code, verbatim
        return types.SimpleNamespace(namespace=ns, **{n: ns[n] for n in _FORWARD_NAMES})


def repeat_kv(hidden_states, n_rep):
    """transformers' repeat_kv (what upstream's attn_forward applies before the per-head loop)."""
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)
