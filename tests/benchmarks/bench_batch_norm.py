"""Batch-normalised wide step: [784, 1000, 1000, 1000, 10] relu with batch norm, softmax output, batch 256, Adam.

One training step as the engine's loop takes it (gather the batch's columns, forward with batch statistics, cost,
backward, Adam on W, b, gamma, beta, running statistics) against PyTorch (nn.Sequential of Linear, BatchNorm1d and
ReLU, CrossEntropyLoss, Adam) on the same batches; and the same step with the per-layer statistics a recorded step
adds (core.stats.layer_stats, the normalisation figures included) against the bare step.

    python tests/benchmarks/bench_batch_norm.py --threads 1 [--repeats 15]
"""

from __future__ import annotations

import numpy as np

from _bench import dtypes, interleaved, parser, peak_rss_mib, print_header, print_table, set_threads
from bench_wide_adam import BATCH, DIMS, LR, batches, examples, torch_step
from core.config import Config
from core.network import Network, backward, cost, forward, initialize, targets
from core.normalization import update_running_stats
from core.stats import choose_binning, layer_stats
from core.train import Optimizer


def init_lab_step(x64: np.ndarray, y: np.ndarray, dtype: str, with_stats: bool):
    config = Config(layers=DIMS[1:-1], activation="relu", init="he_normal", optimizer="adam", lr=LR,
                    batch_size=BATCH, dtype=dtype, norm="batch")
    net = Network.from_config(config, DIMS[0], DIMS[-1])
    params = initialize(net, config)
    x = x64.astype(dtype)
    y_target = targets(net, y, x.dtype)
    optimizer = Optimizer(config, params)
    order = batches()
    binning = []

    def step() -> None:
        idx = next(order)
        xb, yb, tb = x[:, idx], y[:, idx], y_target[:, idx]
        cache = forward(net, params, xb, batch_stats=True)
        cost(net, cache, yb)
        grads = backward(net, params, cache, tb)
        if with_stats:
            if not binning:
                binning.append(choose_binning(net, cache, grads, config.bins))
            layer_stats(net, params, cache, grads, binning[0])
        optimizer.step(params, grads)
        for i, normalized in enumerate(cache.normalized):
            update_running_stats(params.running_mean[i], params.running_var[i], normalized)

    return step


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args()
    torch = set_threads(args.threads)
    x64, y = examples()
    for dtype in dtypes(args.dtype):
        cases = {"Init Lab": init_lab_step(x64, y, dtype, False), "Init Lab + stats": init_lab_step(x64, y, dtype, True),
                 "PyTorch": torch_step(torch, x64, y, dtype, batch_norm=True)}
        t = interleaved(cases, args.repeats, args.warmup, args.burst)
        med = {k: v[0] for k, v in t.items()}
        print_header(f"batch-normalised {list(DIMS)} relu/softmax, batch {BATCH}, Adam, {dtype}, "
                     f"median of {args.repeats}")
        print_table([("BN Adam step / PyTorch", med["Init Lab"], med["PyTorch"], "PyTorch (target <= 1.0)"),
                     ("BN step with statistics / bare BN step", med["Init Lab + stats"], med["Init Lab"],
                      "bare step (target <= 1.10)")], t)
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (process, all contenders)")


if __name__ == "__main__":
    main()
