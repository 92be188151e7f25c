"""Deep probe: forward + backward at initialisation with every statistic, 50 layers x 500 tanh, 1000 inputs.

Init Lab (forward, cost, backward, the step-0 histogram ranges and all per-layer statistics, as `probe` does
after drawing the weights) against PyTorch doing the same passes without statistics, and against the floor:
the passes' matrix products alone, same shapes and dtype.

    python tests/benchmarks/bench_deep_probe.py [--repeats 7]
"""

from __future__ import annotations

import numpy as np

from _bench import dtypes, interleaved, matmul_floor, parser, peak_rss_mib, print_header, print_table, set_threads
from core.config import Config
from core.data import Dataset
from core.network import Network, backward, cost, forward, initialize, targets
from core.stats import choose_binning, layer_stats

WIDTH, DEPTH, N_IN, M = 500, 50, 500, 1000


def synthetic(m: int = M) -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(name="gaussian", x_train=rng.standard_normal((N_IN, m)), y_train=rng.integers(0, 2, (1, m)),
                   x_test=rng.standard_normal((N_IN, 1)), y_test=np.zeros((1, 1), dtype=np.int64), classes=("0", "1"))


def init_lab_probe(dataset: Dataset, dtype: str):
    config = Config(layers=(WIDTH,) * DEPTH, activation="tanh", init="xavier_normal", dtype=dtype)
    net = Network.from_config(config, N_IN, 1)
    params = initialize(net, config)
    x = dataset.x_train.astype(dtype)
    y_target = targets(net, dataset.y_train, x.dtype)

    def run() -> None:
        cache = forward(net, params, x)
        cost(net, cache, dataset.y_train)
        grads = backward(net, params, cache, y_target)
        layer_stats(net, params, cache, grads, choose_binning(net, cache, grads, config.bins))

    return run


def torch_probe(torch, dataset: Dataset, dtype: str):
    tdtype = getattr(torch, dtype)
    layers, n_in = [], N_IN
    for _ in range(DEPTH):
        layers += [torch.nn.Linear(n_in, WIDTH), torch.nn.Tanh()]
        n_in = WIDTH
    model = torch.nn.Sequential(*layers, torch.nn.Linear(WIDTH, 1)).to(tdtype)
    x = torch.tensor(dataset.x_train.T, dtype=tdtype).contiguous()
    y = torch.tensor(dataset.y_train.T, dtype=tdtype)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def run() -> None:
        model.zero_grad()
        loss_fn(model(x), y).backward()

    return run


def floor_probe(dtype: str):
    """The passes' matrix products alone (see `matmul_floor`), on scaled random weights (nothing overflows)."""
    rng = np.random.default_rng(1)
    dims = (N_IN, *(WIDTH,) * DEPTH, 1)
    w = [(rng.standard_normal((o, i)) / i**0.5).astype(dtype) for i, o in zip(dims[:-1], dims[1:])]  # no overflow
    x = rng.standard_normal((N_IN, M)).astype(dtype)
    dz = [rng.standard_normal((n, M)).astype(dtype) for n in dims[1:]]
    return matmul_floor(w, x, dz)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(repeats=7, warmup=1)
    args = p.parse_args()
    torch = set_threads(args.threads, pytorch=not args.without_pytorch)
    dataset = synthetic()
    for dtype in dtypes(args.dtype):
        cases = {"Init Lab": init_lab_probe(dataset, dtype), "floor": floor_probe(dtype)}
        if torch:
            cases["PyTorch"] = torch_probe(torch, dataset, dtype)
        t = interleaved(cases, args.repeats, args.warmup, args.burst)
        med = {k: v[0] for k, v in t.items()}
        med.setdefault("PyTorch", None)
        print_header(f"deep probe {DEPTH} x {WIDTH} tanh, {M} inputs, forward + backward + all statistics, "
                     f"{dtype}, median of {args.repeats}")
        print_table([
            ("probe with statistics / matmul floor", med["Init Lab"], med["floor"], "floor (target <= 1.5)"),
            ("probe with statistics / PyTorch (no stats)", med["Init Lab"], med["PyTorch"], "PyTorch"),
            ("PyTorch / matmul floor", med["PyTorch"], med["floor"], "floor"),
        ], t)
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (process, all contenders)")


if __name__ == "__main__":
    main()
