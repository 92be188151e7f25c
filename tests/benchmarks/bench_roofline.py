"""How close the seed step is to this machine: its floor against memory bandwidth and peak FLOP/s.

The seed step ([12288, 20, 7, 5, 1], full batch of 209, GD) is dominated by two skinny products over the input X
(12288 x 209): Z^1 = W^1 X forward and dW^1 = dZ^1 X^T backward, each reading all of X. Timed in turns in one run:
the step (no statistics), its matmul floor, those two products alone (as the engine computes them, with the
forward as W X, and with X as a row-major copy: the layout experiment), a read of X (OpenBLAS's dot of X with itself: a streaming read, from
wherever X sits between steps: in L3 here), a STREAM triad a = b + s c on three arrays well past the L3 cache (the
memory bandwidth), and a square GEMM (the FLOP/s OpenBLAS reaches on this core).

    python tests/benchmarks/bench_roofline.py --threads 1 [--data-dir ../shared/data] [--repeats 15]

Printed as shares (bound / measured, 1 = at the bound): the bytes of X read per step (two reads) over each
bandwidth, and the step's FLOPs over the GEMM rate and over the theoretical peak worked out from the CPU's flags and
clock (/proc/cpuinfo; it assumes two FMA units of the widest vector width the flags name).
"""

from __future__ import annotations

import numba
import numpy as np

from _bench import REPO, dtypes, interleaved, parser, print_header, print_table, set_threads
from bench_train_step import LAYERS, floor_step, init_lab_steps, seed_dataset
from core.network import transposes_product

TRIAD_BYTES = 64 * 2**20  # per array: three of them are six times a 32 MB L3
GEMM_N = 1024


@numba.njit(cache=True)
def triad(a, b, c, s):  # pragma: no cover - compiled
    for i in range(a.size):
        a[i] = b[i] + s * c[i]


def cpu_peak(itemsize: int) -> tuple[float, str]:
    """Theoretical FLOP/s of one core from /proc/cpuinfo (flags, clock), and how it was worked out."""
    info = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    flags = set(info.get("flags", "").split())
    bits = 512 if "avx512f" in flags else 256 if {"avx2", "fma"} <= flags else 128
    mhz = float(info.get("cpu MHz", "nan"))
    per_cycle = 2 * 2 * bits // (8 * itemsize)  # 2 FMA units, 2 FLOPs (multiply, add) per lane
    return mhz * 1e6 * per_cycle, (f"{info.get('model name', '?')}, {bits}-bit vectors (avx512f: "
                                   f"{'avx512f' in flags}), {mhz:.0f} MHz, {per_cycle} FLOPs/cycle")


def step_flops(n_features: int, m: int) -> int:
    """FLOPs of the floor's products: forward W A and backward dZ A^T at every layer, W^T dZ past the first."""
    dims = (n_features, *LAYERS, 1)
    per_layer = [2 * n_in * n_out * m for n_in, n_out in zip(dims[:-1], dims[1:])]
    return 2 * sum(per_layer) + sum(per_layer[1:])


def input_products(x: np.ndarray, as_engine: bool = True):
    """The step's two products over X alone, into preallocated outputs: the forward as the engine computes it
    (core.network.layer_product: Z^T = X^T W^T for a column-major float32 X, without its copy), or as W X."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((LAYERS[0], x.shape[0])).astype(x.dtype)
    dz = rng.standard_normal((LAYERS[0], x.shape[1])).astype(x.dtype)
    z, z_t, dw = np.empty(dz.shape, x.dtype), np.empty(dz.shape[::-1], x.dtype), np.empty(w.shape, x.dtype)
    transposed = as_engine and transposes_product(x)

    def products() -> None:
        if transposed:
            np.matmul(x.T, w.T, out=z_t)
        else:
            np.matmul(w, x, out=z)
        np.matmul(dz, x.T, out=dw)

    return products


def main() -> None:
    p = parser(__doc__.splitlines()[0], burst=10)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = p.parse_args()
    dataset = seed_dataset(args.data_dir)
    set_threads(args.threads, pytorch=False)
    for dtype in dtypes(args.dtype):
        x = dataset.x_train.astype(dtype, copy=False)  # the engine's layout (Training casts the same way)
        layout = "column-major" if x.flags.f_contiguous else "row-major"
        other = np.ascontiguousarray(x) if x.flags.f_contiguous else np.asfortranarray(x)
        flat = x.reshape(-1, order="F" if x.flags.f_contiguous else "C")  # a view: X's bytes in memory order
        n = TRIAD_BYTES // x.itemsize
        a, b, c = np.zeros(n, dtype), np.ones(n, dtype), np.ones(n, dtype)
        scale = np.dtype(dtype).type(3.0)
        g1, g2 = (np.random.default_rng(1).standard_normal((GEMM_N, GEMM_N)).astype(dtype) for _ in range(2))
        g3 = np.empty_like(g1)
        cases = {"step": init_lab_steps(dataset, dtype)[0], "floor": floor_step(dataset, dtype),
                 "X products": input_products(x), "X products, W X": input_products(x, as_engine=False),
                 "X products, other layout": input_products(other),
                 "read X": lambda: np.dot(flat, flat), "triad": lambda: triad(a, b, c, scale),
                 "gemm": lambda: np.matmul(g1, g2, out=g3)}
        t = interleaved(cases, args.repeats, args.warmup, args.burst)
        med = {k: v[0] for k, v in t.items()}
        x_bytes = 2 * x.nbytes  # Z^1 = W^1 X and dW^1 = dZ^1 X^T each read all of X
        cache_bw, dram_bw = x.nbytes / med["read X"], 3 * a.nbytes / med["triad"]
        flops = step_flops(*x.shape)
        gemm_rate = 2 * GEMM_N**3 / med["gemm"]
        peak, how = cpu_peak(x.itemsize)
        print_header(f"seed step [{x.shape[0]}, {', '.join(map(str, LAYERS))}, 1] relu, m={x.shape[1]} "
                     f"({dataset.name}), {dtype}, X {layout} ({x.nbytes / 2**20:.1f} MiB), median of {args.repeats}")
        print(f"CPU: {how}")
        print(f"X read per step {x_bytes / 1e6:.1f} MB; read X {cache_bw / 1e9:.1f} GB/s (in cache), triad "
              f"{dram_bw / 1e9:.1f} GB/s (3 x {a.nbytes >> 20} MiB); step {flops / 1e6:.1f} MFLOP; GEMM {GEMM_N}: "
              f"{gemm_rate / 1e9:.1f} GFLOP/s; theoretical {peak / 1e9:.1f} GFLOP/s")
        print_table([
            ("step / matmul floor", med["step"], med["floor"], "floor"),
            ("two products over X / matmul floor", med["X products"], med["floor"], "floor"),
            ("two products, the forward as W X / as the engine", med["X products, W X"], med["X products"],
             "the engine's (layer_product)"),
            (f"two products, X {'row' if layout == 'column-major' else 'column'}-major / {layout}",
             med["X products, other layout"], med["X products"], f"X {layout} (the engine's)"),
            ("X read twice, in-cache bandwidth / step", x_bytes / cache_bw, med["step"], "step"),
            ("X read twice, triad bandwidth / step", x_bytes / dram_bw, med["step"], "step"),
            ("step FLOPs at the GEMM rate / step", flops / gemm_rate, med["step"], "step"),
            ("step FLOPs at theoretical peak / step", flops / peak, med["step"], "step"),
            ("floor FLOPs at the GEMM rate / floor", flops / gemm_rate, med["floor"], "floor"),
        ], t)


if __name__ == "__main__":
    main()
