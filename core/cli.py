"""Command line: ``python -m core train|probe|show|theory|sweep ...`` (sweep: core/sweep_cli.py).

Every mistake a user can make (an unknown name, a bad number, a missing file, a run too big for the machine)
ends with exit code 2 and one line that says what is wrong and how to fix it, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from .activations import ACTIVATIONS, canonical_name
from .config import MAX_DEPTH, Config, ConfigError
from .criticality import NO_FIXED_POINT, Criticality, describe, mean_field
from .data import DatasetError, default_data_dir, load_dataset
from .initializers import INITIALIZERS
from .limits import Limits
from .meanfield import TheoryError
from .record import RecordedRun, RunFileError, record
from .run_reader import read_run
from .normtheory import batchnorm_gradient_factor, gradient_growth
from .stats import latest_test_accuracy, overflow_note
from .sweep_cli import add_sweep_parser, run_sweep
from .theory import compare
from .train import Training, initial_cost_note
from .verdict import probe_verdict
from .warm import warm_for

USAGE_ERROR = 2
PROBE_COLUMNS = ("z_mean", "z_std", "a_mean", "a_std", "dz_std", "dw_std", "dead_fraction", "saturated_fraction")
PROBE_NORM_COLUMNS = ("z_pre_std", "dz_pre_std", "dgamma_norm")  # normalised networks: before the norm, and gamma's


class UsageError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage and exits; we want one line
        raise UsageError(f"{message} (see {self.prog} --help)")


def _network_options(p: argparse.ArgumentParser) -> None:
    d = Config()
    p.add_argument("--dataset", default=d.dataset, help="catvnoncat, shapes64, digits, digits:K, circles, moons, "
                   "spiral, xor, blobs, gaussian:D (default %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder holding the course's *_catvnoncat.h5 files "
                   "(default: $INITLAB_DATA_DIR or data/)")
    p.add_argument("--standardize", action="store_true", help="zero mean, unit variance features")
    p.add_argument("--layers", default=",".join(map(str, d.layers)), help="hidden sizes, e.g. 20,7,5, or width x depth: 500x50")
    p.add_argument("--activation", default=d.activation, help="one name, or one per hidden layer: relu,relu,tanh")
    p.add_argument("--init", default=d.init, help=f"one of {', '.join(INITIALIZERS)}")
    p.add_argument("--scale", type=float, default=d.init_scale, help="scale s of normal/uniform/constant inits")
    p.add_argument("--gain", type=float, default=d.init_gain, help="global multiplier on every weight matrix")
    p.add_argument("--mode", default=d.init_mode, help="fan_in or fan_out (he_normal, he_uniform)")
    p.add_argument("--bias-init", default=d.bias_init, help="zeros, constant (every bias --bias-value), normal (N(0, value²)) or torch_default")
    p.add_argument("--bias-value", type=float, default=d.bias_value)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--rng", default=d.rng, help="legacy (the course's np.random.seed stream) or default")
    p.add_argument("--dtype", default=d.dtype, help="float64 or float32")
    p.add_argument("--bins", type=int, default=d.bins, help="histogram bins per layer")
    p.add_argument("--norm", default=d.norm, help="normalise every hidden layer's Z: none, batch (batch norm: "
                   "running averages for evaluation) or layer (layer norm) (default %(default)s)")
    p.add_argument("--residual", action="store_true", help="hidden layers 2.. add their input: A^l = A^{l-1} + "
                   "alpha phi(Z^l); layers 2.. need the width of layer 1")
    p.add_argument("--residual-scale", type=float, default=d.residual_scale, metavar="ALPHA",
                   help="alpha, the residual branch's factor (default %(default)s; 1/sqrt(depth) keeps deep stacks "
                   "bounded)")
    p.add_argument("--zero-init-residual", action="store_true", help="start each residual branch at zero: its "
                   "weights (or, with --norm, its gamma), so that every block starts as the identity")
    p.add_argument("--max-memory-mb", type=int, default=None, help="refuse runs estimated above this many MB")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def build_parser() -> argparse.ArgumentParser:
    root = _Parser(prog="python -m core", description="Init Lab's engine: train or probe a network from the shell.")
    sub = root.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser("train", help="train and report costs and accuracies")
    _network_options(train)
    d = Config()
    train.add_argument("--lr", type=float, default=d.lr)
    train.add_argument("--iterations", type=int, default=d.iterations)
    train.add_argument("--batch-size", type=int, default=d.batch_size, help="0: full batch")
    train.add_argument("--optimizer", default=d.optimizer,
                       help="gd, momentum or adam. momentum is the course's average v = beta1 v + (1 - beta1) g, "
                       "W -= lr v: PyTorch's SGD(momentum=beta1) with the learning rate times 1 - beta1")
    train.add_argument("--beta1", type=float, default=d.beta1,
                       help="momentum's and Adam's first-moment decay, from 0 to below 1 (default %(default)s)")
    train.add_argument("--beta2", type=float, default=d.beta2,
                       help="Adam's second-moment decay, from 0 to below 1 (default %(default)s)")
    train.add_argument("--eps", type=float, default=d.eps,
                       help="Adam's eps in lr v_hat / (sqrt(s_hat) + eps), above 0 (default %(default)s)")
    train.add_argument("--l2", type=float, default=d.l2)
    train.add_argument("--record-every", type=int, default=d.record_every)
    train.add_argument("--out", default=None, metavar="PATH", help="record the run to this HDF5 file "
                       "(written as PATH.partial while it runs)")
    probe_cmd = sub.add_parser("probe", help="per-layer statistics at initialisation (one forward/backward pass)")
    _network_options(probe_cmd)
    show = sub.add_parser("show", help="summarise a run file written by train --out")
    show.add_argument("run", metavar="RUN.h5")
    theory = sub.add_parser("theory", help="mean-field predictions: the variance map of identical layers "
                            "(--sigma-w2 ...), or a network's predicted statistics next to its probe")
    _network_options(theory)
    theory.add_argument("--sigma-w2", type=float, default=None, help="n_in * Var(W) of every layer; given, print "
                        "the map q^1..q^depth, q*, chi_1 and the depth scales xi_q, xi_c instead of probing a network")
    theory.add_argument("--sigma-b2", type=float, default=0.0, help="bias variance (with --sigma-w2)")
    theory.add_argument("--depth", type=int, default=10, help="number of layers (with --sigma-w2)")
    theory.add_argument("--input-q", type=float, default=1.0, help="mean squared input, q^1 = sigma_w2 * input_q "
                        "+ sigma_b2 (with --sigma-w2)")
    add_sweep_parser(sub)
    return root


def config_from_args(args: argparse.Namespace) -> Config:
    values = dict(
        dataset=args.dataset, standardize=args.standardize, layers=args.layers, activation=args.activation,
        init=args.init, init_scale=args.scale, init_gain=args.gain, init_mode=args.mode, bias_init=args.bias_init,
        bias_value=args.bias_value, seed=args.seed, rng=args.rng, dtype=args.dtype, bins=args.bins,
        norm=args.norm, residual=args.residual, residual_scale=args.residual_scale,
        zero_init_residual=args.zero_init_residual,
    )
    if args.command == "train":
        values.update(lr=args.lr, iterations=args.iterations, batch_size=args.batch_size, optimizer=args.optimizer,
                      beta1=args.beta1, beta2=args.beta2, eps=args.eps, l2=args.l2, record_every=args.record_every)
    return Config.from_dict(values)


def _limits(args: argparse.Namespace) -> Limits:
    limits = Limits.from_env()
    if args.max_memory_mb is not None:
        if args.max_memory_mb < 1:
            raise UsageError("--max-memory-mb must be at least 1")
        limits = Limits(**{**limits.__dict__, "max_memory_mb": args.max_memory_mb})
    return limits


def check_out(out: str) -> None:
    """Refuse an --out the run could not end in, before any work: the run is written to OUT.partial and renamed over
    OUT when it ends, which would fail on a folder after the whole training (or, as root, replace a device file)."""
    if not out.strip():
        raise UsageError("--out needs a file name, e.g. --out run.h5")
    path = Path(out)
    if path.is_dir() or out.endswith(("/", os.sep)):
        raise UsageError(f"--out {out} names a folder; give a file path, e.g. --out {path / 'run.h5'}")
    if path.exists() and not path.is_file():
        raise UsageError(f"--out {out} exists and is not a regular file (a device, pipe or socket); give a path for "
                         "a new .h5 file")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {out}: {folder} is a file, not a folder; choose another path")
    if not folder.is_dir():
        raise UsageError(f"--out {out}: the folder {folder} does not exist; create it first or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: the folder {folder} is not writable; choose a path in a folder you can write")


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def run_train(args, config: Config, dataset, out) -> None:
    run = Training(config, dataset, _limits(args))
    start_note = initial_cost_note(run)
    warm_for(config)  # the kernels loaded (or compiled) before the clock starts: "seconds" is the training's
    start = time.perf_counter()
    # Keeps what it prints, not every snapshot: recording every step, holding them all grew by 19 kB a step for the
    # seed network (a 100,000-step run: 1.9 GB).
    costs, last, test_accuracy = [], None, math.nan
    for snapshot in record(run, args.out) if args.out else run:
        costs.append([snapshot.step, snapshot.loss])
        last = snapshot
        if not math.isnan(snapshot.test_accuracy):  # measured here (test accuracy has its own cadence)
            test_accuracy = snapshot.test_accuracy
    seconds = time.perf_counter() - start
    result = {
        "config": config.to_dict(),
        "network": list(run.network.dims),
        "costs": costs,
        "train_accuracy": last.train_accuracy if last else None,
        "test_accuracy": _json_number(test_accuracy) if last else None,
        "stopped_reason": run.stopped_reason,
        "seconds": seconds,
        "run_file": args.out,
    }
    if args.json:
        print(json.dumps(result), file=out)
        return
    print(f"network {run.network}, {config.init}, {config.optimizer} lr={config.lr}", file=out)
    for step, loss in result["costs"]:
        print(f"cost after step {step:>6}: {loss:.10f}", file=out)
        if step == 0 and start_note:
            print(f"note: at step 0 {start_note}", file=out)
    if last:
        print(f"train accuracy {last.train_accuracy:.4f}, test accuracy {test_accuracy:.4f}", file=out)
    if run.stopped_reason:
        print(run.stopped_reason, file=out)
    print(f"{seconds:.2f} s of training", file=out)
    if args.out:
        print(f"recorded to {args.out}", file=out)


def run_probe(args, config: Config, dataset, out, err) -> None:
    """The table (or JSON) and the verdict on ``out``; why statistics are NaN or infinite, if they are, after the
    table (or on ``err`` with --json, so that the output stays one JSON document)."""
    net, snap, judged = probe_verdict(config, dataset, _limits(args))
    note = overflow_note(snap.stats)
    norm_columns = PROBE_NORM_COLUMNS if config.norm != "none" else ()
    columns = PROBE_COLUMNS + norm_columns
    rows = [
        {"layer": i + 1, "units": net.dims[i + 1], "activation": net.layer_activation(i),
         **{k: float(snap.stats[k][i]) for k in PROBE_COLUMNS},
         **{k: float(snap.stats[k][i]) if i < net.depth - 1 else None for k in norm_columns}}  # output: no norm
        for i in range(net.depth)
    ]
    if args.json:
        print(json.dumps({"layers": rows, "verdict": judged.to_dict()}), file=out)
        if note:
            print(f"note: {note}", file=err)
        return
    print(f"network {net}, init {config.init} — statistics at initialisation", file=out)
    header = ["layer", "units", "activation", *columns]
    print("  ".join(f"{h:>10}" for h in header), file=out)
    for r in rows:
        cells = [f"{r[h]:>10}" if isinstance(r[h], (int, str)) else f"{'':>10}" if r[h] is None else f"{r[h]:>10.3g}"
                 for h in header]
        print("  ".join(cells), file=out)
    if note:
        print(f"note: {note}", file=out)
    print("", *judged.lines(), sep="\n", file=out)


def run_show(path: str, out) -> None:
    run: RecordedRun = read_run(path)
    state = "complete" if run.complete else "incomplete (its writer stopped before finishing)"
    print(f"run file {path}: {state}", file=out)
    print(f"config {run.config.to_json()}", file=out)
    print(f"network {list(run.network_dims)} {'/'.join(run.activations)}, dataset {run.dataset_name} "
          f"(fingerprint {run.dataset_fingerprint[:12]})", file=out)
    snaps = run.snapshots
    if not snaps:
        print("steps recorded: none", file=out)
    else:
        first, last = snaps[0], snaps[-1]
        print(f"steps recorded: {len(snaps)} (steps {first.step} to {last.step})", file=out)
        print(f"final: step {last.step}, cost {last.loss:.6g}, train accuracy {last.train_accuracy:.4f}, "
              f"test accuracy {latest_test_accuracy(snaps):.4f}", file=out)
        print(f"{'layer':>5}  {'units':>6}  {'std Z at step ' + str(first.step):>18}  "
              f"{'std Z at step ' + str(last.step):>18}", file=out)
        for i in range(first.n_layers):
            print(f"{i + 1:>5}  {run.network_dims[i + 1]:>6}  {first.stats['z_std'][i]:>18.4g}  "
                  f"{last.stats['z_std'][i]:>18.4g}", file=out)
    print(f"stop reason: {run.stopped_reason or 'none'}", file=out)


def run_theory_map(args, out) -> None:
    args.activation = canonical_name(args.activation)  # a former name (gelu) maps as it trains
    if args.activation not in ACTIVATIONS:
        raise UsageError(f"--activation {args.activation[:40]!r} is not known; choose one of: {', '.join(ACTIVATIONS)}")
    for flag, value in (("--sigma-w2", args.sigma_w2), ("--sigma-b2", args.sigma_b2), ("--input-q", args.input_q)):
        if not (math.isfinite(value) and 0.0 <= value <= 1e6):
            raise UsageError(f"{flag} must be a number from 0 to 1e6, got {value}")
    if not 1 <= args.depth <= MAX_DEPTH:
        raise UsageError(f"--depth must be a whole number from 1 to {MAX_DEPTH}, got {args.depth}")
    mf = mean_field(args.activation, args.sigma_w2, args.sigma_b2, args.depth, args.input_q)
    c = mf.criticality
    result = {"activation": args.activation, "sigma_w2": args.sigma_w2, "sigma_b2": args.sigma_b2,
              "input_q": args.input_q, "q": [_json_number(float(v)) for v in mf.q], **c.as_json()}
    if args.json:
        print(json.dumps(result), file=out)
        return
    print(f"{args.activation}, sigma_w^2 = {args.sigma_w2:g}, sigma_b^2 = {args.sigma_b2:g}, input q = {args.input_q:g}",
          file=out)
    for layer, q in enumerate(mf.q, start=1):
        print(f"q^{layer:<4} {q:.6g}", file=out)
    for line in criticality_lines(c):
        print(line, file=out)


def criticality_lines(c: Criticality) -> list[str]:
    """Order and chaos in words: q*, chi_1 and its phase, and Schoenholz et al.'s two depth scales, each named."""
    what = {"ordered": "ordered: gradients vanish", "chaotic": "chaotic: gradients explode",
            "critical": "critical: the edge of chaos"}[c.phase]
    lines = [f"fixed point q* = {describe(c.q_star, 10)}" if math.isfinite(c.q_star) else
             f"fixed point q*: none, {NO_FIXED_POINT}",
             f"chi_1 = {c.chi_1:.10g} ({what})"]
    if not math.isfinite(c.q_star):
        return lines + ["depth scales xi_q, xi_c: none (no fixed point for q or the correlations to settle to)"]
    return lines + [
        f"xi_q = {describe(c.xi_q)} layers: the depth over which q^l settles to q* "
        f"(-1/ln chi_q, chi_q = {c.chi_q:.6g})",
        f"xi_c = {describe(c.xi_c)} layers: the depth over which the correlation of two inputs settles to "
        f"c* = {round(c.c_star, 6) + 0.0:.6g} (-1/ln chi_c, chi_c = {c.chi_c:.10g}; Schoenholz et al. 2017)",
        f"trainable depth 6 xi_c = {describe(c.trainable_depth)} layers (Schoenholz et al.: deeper ones do not train)",
    ]


def refuse_unpredicted(args: argparse.Namespace) -> None:
    """--sigma-w2 maps identical plain layers: normalisation and skips do not apply to it (the network's own
    prediction, without --sigma-w2, takes them)."""
    given = [flag for flag, on in (("--norm", args.norm != "none"), ("--residual", args.residual),
                                   ("--zero-init-residual", args.zero_init_residual)) if on]
    if given and args.sigma_w2 is not None:
        raise UsageError(f"--sigma-w2 maps a stack of identical plain layers: {' and '.join(given)} do not apply to "
                         "it; leave out --sigma-w2 to predict the network with them")


def run_theory(args, config: Config, dataset, out) -> None:
    result = compare(config, dataset, _limits(args))
    rows, p = result.rows(), result.prediction
    growth = (gradient_growth(p.dz_rms), gradient_growth(result.dz_rms)) if config.norm == "batch" else None
    if args.json:
        extra = {"unpredicted": p.unpredicted} if p.unpredicted else {}
        if growth:
            extra["gradient_growth_predicted"], extra["gradient_growth_measured"] = growth
        print(json.dumps({"layers": rows, **extra} if extra else rows), file=out)
        return
    print(f"predicted (mean field) against measured at initialisation, init {config.init}; rms = sqrt(E[x^2])", file=out)
    header = [k for k in rows[0] if k != "units"]
    print("  ".join(f"{h:>16}" for h in header), file=out)
    for r in rows:
        print("  ".join(f"{r[h]:>16}" if isinstance(r[h], int) else f"{r[h]:>16.4g}" for h in header), file=out)
    if p.unpredicted:
        print(f"nan: {p.unpredicted}", file=out)
    if growth:
        print(f"batch norm: the gradient grows x{growth[0]:.4g} per layer towards the input (predicted), "
              f"x{growth[1]:.4g} (measured); large-batch factor of equal-width {config.hidden_activations[0]} "
              f"layers: x{batchnorm_gradient_factor(config.hidden_activations[0]):.4g} (Yang et al. 2019)", file=out)


def main(argv: list[str] | None = None, out=sys.stdout, err=sys.stderr) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "show":
            run_show(args.run, out)
            return 0
        if args.command == "sweep":
            run_sweep(args, out, err)
            return 0
        if args.command == "theory":
            refuse_unpredicted(args)
        if args.command == "theory" and args.sigma_w2 is not None:
            run_theory_map(args, out)
            return 0
        config = config_from_args(args)
        if args.command == "train" and args.out is not None:
            check_out(args.out)
        data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
        dataset = load_dataset(config.dataset, data_dir, standardize=config.standardize)
        if args.command == "probe":
            run_probe(args, config, dataset, out, err)
        else:
            {"train": run_train, "theory": run_theory}[args.command](args, config, dataset, out)
    except (UsageError, ConfigError, DatasetError, FloatingPointError, RunFileError, TheoryError) as e:
        print(f"error: {e}", file=err)
        return USAGE_ERROR
    except OSError as e:  # the file system refused a file the checks above let through (a race, a full disk)
        print(f"error: {e}; check the paths given and the free space", file=err)
        return USAGE_ERROR
    return 0
