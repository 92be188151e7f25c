"""`estimate_bytes` against the peak that real runs reach, measured in a fresh interpreter (tests/memory_probe.py).

The estimate must never be below the measured peak (an oversized run must be refused before it starts) and at most
10% above it, or, for runs so small that Python's own objects weigh (under 2.5 MiB), at most `RUN_OVERHEAD` above.
"""

import pytest

from core.activations import ACTIVATIONS
from core.memory import RUN_OVERHEAD
from tests.memory_probe import measure

MIB = 2**20
# (features, hidden layers, train examples, test examples): arrays of a few MiB to a few tens, so they dominate
SHAPES = {
    "wide-shallow": (256, (1024,), 1000, 300),
    "deep-narrow": (64, (64,) * 12, 1000, 300),
    "seed": (12288, (20, 7, 5), 209, 50),  # the course's cat data's shape, on Gaussian inputs
}
STEPS = dict(iterations=1, record_every=1)  # two steps, both recorded: every part of a step runs, and the second
# runs after the first has let its arrays go (or not)


def _case(shape: str, classes: int = 2, **config) -> dict:
    features, layers, m_train, m_test = SHAPES[shape]
    return dict(name=f"{shape} {config}", features=features, m_train=m_train, m_test=m_test, classes=classes,
                config=dict(layers=layers, **STEPS, **config))


OPTIMIZERS = ("gd", "momentum", "adam")  # their state is a multiple of the parameters: each shape meets each
CASES = (
    [_case(shape, dtype=dtype, batch_size=batch, optimizer=OPTIMIZERS[(i + j) % 3]) for i, shape in enumerate(SHAPES)
     for j, (dtype, batch) in enumerate((d, b) for d in ("float64", "float32") for b in (0, 64))]
    + [_case("deep-narrow", activation=name, dtype=("float64", "float32")[i % 2])
       for i, name in enumerate(ACTIVATIONS) if name != "relu"]
    + [_case("wide-shallow", init=init, dtype=dtype, batch_size=32)
       for init, dtype in (("orthogonal", "float64"), ("truncated_normal", "float32"), ("lsuv", "float32"))]
    + [_case("wide-shallow", init_gain=2.0, l2=0.1, batch_size=32),  # the gain's and the L2 term's temporaries
       _case("deep-narrow", classes=10, dtype="float32"),  # a softmax output
       _case("deep-narrow", classes=10, batch_size=100, optimizer="adam"),
       dict(name="tiny", features=2, m_train=300, m_test=100, classes=2, config=dict(layers=(10, 5), **STEPS))]
)
# Normalised and residual networks: their extra arrays are bounded rather than replayed (core.memory._layer_extras)
NORMALISED = [_case("deep-narrow", norm="batch"), _case("deep-narrow", norm="layer", dtype="float32", batch_size=64),
              _case("deep-narrow", residual=True, optimizer="adam"),
              _case("deep-narrow", residual=True, norm="batch", dtype="float32", batch_size=64)]
CASES += NORMALISED


@pytest.fixture(scope="module")
def measured():
    return measure(CASES)


def test_the_estimate_is_at_most_ten_percent_above_the_measured_peak(measured):
    wrong = []
    bounded = {case["name"] for case in NORMALISED}
    for case in measured:
        estimate, traced = case["estimate"], case["traced"]
        allowed = max((1.25 if case["name"] in bounded else 1.10) * traced, traced + RUN_OVERHEAD)
        if not traced <= estimate <= allowed:
            wrong.append(f"{case['name']}: estimated {estimate / MIB:.2f} MiB, measured {traced / MIB:.2f} MiB")
    assert not wrong, "\n".join(wrong)


def test_the_runs_measured_are_big_enough_for_the_ratio_to_mean_something(measured):
    """All but the one tiny run peak above 2.5 MiB, where `RUN_OVERHEAD` is under 10% (the ratio decides)."""
    small = [case["name"] for case in measured if case["traced"] < RUN_OVERHEAD / 0.10]
    assert small == ["tiny"]


def test_the_resident_set_grows_by_the_estimate_and_a_fixed_allowance(measured):
    """The first run of the process, before freed memory is reused: its peak resident set grows by the arrays
    (the estimate) plus what the allocator and BLAS's buffers take once (tests/benchmarks/bench_memory.py)."""
    first = measured[0]
    assert first["traced"] > 20 * MIB
    assert first["rss"] <= first["estimate"] + 16 * MIB  # bench_memory.py measured 0.3-14 MiB over the arrays


def test_the_estimate_sizes_scans_buffers_as_the_kernels_do():
    """core/memory.py repeats two of core/kernels.py's constants rather than import numba: they must agree."""
    import core.kernels
    import core.memory

    assert (core.memory.CHUNK, core.memory.COUNTERS) == (core.kernels.CHUNK, core.kernels.COUNTERS)
    index, lanes, counts = core.kernels.scan_buffers(64)
    assert index.nbytes == 2 * core.memory.CHUNK and lanes.nbytes == core.memory.COUNTERS * 66 * 4


# --- the snapshots a run records, as a server holds them -------------------------------------------------------------
@pytest.mark.parametrize("layers, norm", [((4,), "none"), ((20, 7, 5), "none"), ((16,) * 20, "none"),
                                          ((16, 16), "batch")])
def test_recorded_bytes_is_what_a_runs_snapshots_take_once_read_back(tmp_path, layers, norm):
    """A server reads a run's file and holds every snapshot while its pages show the run (app/serving/store.py):
    `recorded_bytes` must be what they take there, measured with tracemalloc, within 15%."""
    import tracemalloc

    from app.serving.runs import recorded_fields
    from core.config import Config
    from core.data import load_dataset
    from core.memory import recorded_bytes
    from core.network import Network
    from core.record import record
    from core.run_reader import read_run
    from core.train import Training

    config = Config(dataset="circles", layers=layers, norm=norm, iterations=600, record_every=1)
    for _ in record(Training(config, load_dataset("circles")), tmp_path / "run.h5"):
        pass
    tracemalloc.start()
    held = recorded_fields(read_run(tmp_path / "run.h5", weights=False), False)
    measured = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(held["snapshots"]) == 601
    estimate = recorded_bytes(Network.from_config(config, 2, 1), config)
    assert 0.85 <= estimate / measured <= 1.15, (estimate, measured)


def test_recorded_bytes_counts_the_statistics_core_stats_stores():
    """core/memory.py repeats core/stats.py's counts of what a snapshot stores per layer rather than import numba."""
    from core import memory, stats

    assert memory.SNAPSHOT_SCALARS == len(stats.SCALARS) and memory.NORM_SNAPSHOT_SCALARS == len(stats.NORM_SCALARS)
    assert memory.SNAPSHOT_HISTOGRAMS == len(stats.HISTOGRAMS) == len(stats.HIST_KEYS) == len(stats.OUTSIDE_KEYS)


def test_a_run_whose_snapshots_would_not_fit_is_refused_with_the_record_every_that_fits():
    """100,000 steps of a one-layer network recording every step took a server 1 GB; refused before it starts, with
    the smallest record_every that fits, which is then accepted (and one less is not)."""
    import re

    from core.config import Config, ConfigError
    from core.data import load_dataset
    from core.limits import Limits, network_within_limits
    from core.train import Training

    circles = load_dataset("circles")
    config = Config(dataset="circles", layers=(4,), iterations=100_000, record_every=1)
    with pytest.raises(ConfigError, match="over the cap of 64 MB") as refused:
        Training(config, circles)
    message = str(refused.value)
    assert "100,001 snapshots" in message and "INITLAB_MAX_RECORD_MB" in message
    fits = int(re.search(r"record every ([\d,]+) steps or more", message).group(1).replace(",", ""))
    network_within_limits(config.replace(record_every=fits), circles, Limits())
    with pytest.raises(ConfigError, match="INITLAB_MAX_RECORD_MB"):
        network_within_limits(config.replace(record_every=fits - 1), circles, Limits())
    network_within_limits(config, circles, Limits(max_record_mb=1024))  # a server may allow more
    assert Limits.from_env({"INITLAB_MAX_RECORD_MB": "256"}).max_record_mb == 256
