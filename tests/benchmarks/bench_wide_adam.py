"""Wide mini-batch step: [784, 1000, 1000, 1000, 10] relu, softmax output, batch 256, Adam.

One training step as the engine's loop takes it (gather the batch's columns, forward, cost, backward, Adam in
place) against PyTorch (nn.Sequential of Linear/ReLU, CrossEntropyLoss, Adam) on the same batches.

    python tests/benchmarks/bench_wide_adam.py [--repeats 15]
"""

from __future__ import annotations

import numpy as np

from _bench import dtypes, interleaved, parser, peak_rss_mib, print_header, print_table, set_threads
from core.config import Config
from core.network import Network, backward, cost, forward, initialize, targets
from core.train import Optimizer

DIMS = (784, 1000, 1000, 1000, 10)
BATCH, M, LR = 256, 2048, 1e-3


def examples() -> tuple[np.ndarray, np.ndarray]:
    """M random examples (features x examples) and their labels. The examples are contiguous (Fortran order), as
    every dataset of core.data holds them: a batch's columns are then copied as whole blocks (gathered from C-order
    rows, they took 1.7 of a 50 ms float32 step, a cost no run pays)."""
    rng = np.random.default_rng(0)
    return np.asfortranarray(rng.standard_normal((DIMS[0], M))), rng.integers(0, DIMS[-1], (1, M))


def batches():
    rng = np.random.default_rng(2)
    while True:
        yield rng.permutation(M)[:BATCH]


def init_lab_step(x64: np.ndarray, y: np.ndarray, dtype: str):
    config = Config(layers=DIMS[1:-1], activation="relu", init="he_normal", optimizer="adam", lr=LR,
                    batch_size=BATCH, dtype=dtype)
    net = Network.from_config(config, DIMS[0], DIMS[-1])
    params = initialize(net, config)
    x = x64.astype(dtype)
    y_target = targets(net, y, x.dtype)
    optimizer = Optimizer(config, params)
    order = batches()

    def step() -> None:
        idx = next(order)
        xb, yb, tb = x[:, idx], y[:, idx], y_target[:, idx]
        cache = forward(net, params, xb)
        cost(net, cache, yb)
        optimizer.step(params, backward(net, params, cache, tb))

    return step


def torch_step(torch, x64: np.ndarray, y: np.ndarray, dtype: str, batch_norm: bool = False):
    """PyTorch's step of the same network (with BatchNorm1d before each hidden ReLU if ``batch_norm``)."""
    tdtype = getattr(torch, dtype)
    layers = []
    for n_in, n_out in zip(DIMS[:-2], DIMS[1:-1]):
        layers += [torch.nn.Linear(n_in, n_out), *([torch.nn.BatchNorm1d(n_out)] if batch_norm else []),
                   torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(DIMS[-2], DIMS[-1])).to(tdtype)
    model.train()
    x = torch.tensor(x64.T, dtype=tdtype).contiguous()
    labels = torch.tensor(y.reshape(-1))
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    order = batches()

    def step() -> None:
        idx = torch.from_numpy(next(order))
        opt.zero_grad()
        loss_fn(model(x[idx]), labels[idx]).backward()
        opt.step()

    return step


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args()
    torch = set_threads(args.threads)
    x64, y = examples()
    for dtype in dtypes(args.dtype):
        cases = {"Init Lab": init_lab_step(x64, y, dtype), "PyTorch": torch_step(torch, x64, y, dtype)}
        t = interleaved(cases, args.repeats, args.warmup, args.burst)
        med = {k: v[0] for k, v in t.items()}
        print_header(f"wide mini-batch {list(DIMS)} relu/softmax, batch {BATCH}, Adam, {dtype}, "
                     f"median of {args.repeats}")
        print_table([("Adam step / PyTorch", med["Init Lab"], med["PyTorch"], "PyTorch (target <= 1.0)")], t)
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (process, all contenders)")


if __name__ == "__main__":
    main()
