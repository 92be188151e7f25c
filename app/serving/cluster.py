"""The Dask cluster that computes the dashboard's runs: an existing one, or one this server starts with itself
(server.py).

``INITLAB_DASK_SCHEDULER=tcp://HOST:8786`` connects to an existing scheduler, shared by every replica (deploy/): its
workers must see the run cache folder, so INITLAB_CACHE_DIR is then required. Unset, the server starts its own
cluster as subprocesses: ``dask scheduler`` on 127.0.0.1 with a free port, and ``dask worker`` with
INITLAB_DASK_WORKERS processes (default: `default_workers`, several a core), one thread each, each with a memory
limit of INITLAB_DASK_WORKER_MEMORY_MB (default: the engine's cap on one run, INITLAB_MAX_MEMORY_MB, plus
WORKER_HEADROOM_MB for the interpreter and its libraries), which Dask's nanny enforces by restarting a worker that
goes over it. A
process-based `LocalCluster` cannot start inside a Streamlit script (its workers re-import the main module), hence
the subprocesses; they are stopped with the server, by their process ids (app/serving/cleanup.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.serving import cleanup
from app.serving.cleanup import stop_processes
from core.config import ConfigError
from core.limits import Limits, numbers_from_env

ROOT = Path(__file__).resolve().parents[2]
SCHEDULER_ENV = "INITLAB_DASK_SCHEDULER"
ENV = {"workers": "INITLAB_DASK_WORKERS", "worker_memory_mb": "INITLAB_DASK_WORKER_MEMORY_MB"}
WORKER_HEADROOM_MB = 768  # a worker's own interpreter, NumPy, numba's kernels, h5py, the Dask worker itself
WORKERS_PER_CORE = 4  # default_workers: runs share the cores rather than queue (up to the memory's bound)
MEMORY_SHARE = 0.8  # of the machine's memory, for the workers at their limits (the rest: the web server, the OS)
# For the scheduler: a worker killed while it trains (out of memory, say) fails its run at once, as a retry would
# kill another; and runs wait in the scheduler's queue, by priority, until a worker is free (compute.submit), none
# sent ahead to a busy worker.
SCHEDULER_SETTINGS = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
                      "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}
START_SECONDS = 60.0  # for the scheduler file to appear and a client to connect (a busy machine is slow)
# for the first worker, which joins once it has compiled the engine's kernels (worker_setup.py): with an empty
# compiled-kernel cache on a busy 2-core machine, over a minute; also the workers' --death-timeout, which bounds their
# start as well as their wait for a lost scheduler
WORKER_START_SECONDS = 180.0


@dataclass
class Cluster:
    """The Client, in a plain holder (a `distributed.Client` defines __await__, so Streamlit's caches refuse it),
    with the processes this server started for it (none for an existing cluster)."""

    client: object
    processes: list[subprocess.Popen] = field(default_factory=list)
    workers: int = 0  # the worker processes started here (0: an existing cluster's, however many)

    def close(self) -> None:
        self.client.close()
        stop_processes(self.processes)


def dask_command() -> str:
    """The `dask` command of this interpreter's environment (beside sys.executable), else the one on the PATH."""
    beside = Path(sys.executable).with_name("dask")
    return str(beside) if beside.exists() else (shutil.which("dask") or "dask")


def worker_environment(folder: Path) -> dict[str, str]:
    """Workers import app.serving.compute and core: the repository goes on their path. One BLAS thread each: a
    worker is one process per core, and more threads would fight the other workers for the cores. Dask's scratch
    files go in ``folder``, removed with the server."""
    env = dict(os.environ)
    env["DASK_TEMPORARY_DIRECTORY"] = str(folder)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update({name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    env.update(SCHEDULER_SETTINGS)
    return env


def sizes_from_env(environ=os.environ) -> tuple[int, int]:
    """(worker processes, MB each) for a cluster this server starts; ConfigError names a malformed variable."""
    values = numbers_from_env(ENV, environ)
    memory = values.get("worker_memory_mb", Limits.from_env(environ).max_memory_mb + WORKER_HEADROOM_MB)
    workers = values.get("workers") or default_workers(os.cpu_count() or 1, memory, memory_mb())
    return workers, memory


def default_workers(cores: int, worker_mb: int, total_mb: int) -> int:
    """WORKERS_PER_CORE worker processes a core, as many as the memory holds at their limits (at least one): more
    runs than cores then share the cores, time-sliced by the system, so a student's small run starts at once
    beside other students' long ones instead of waiting for one of them to end (a worker runs its task to the end:
    Dask cannot pause it). Each run is one BLAS thread, so the cores are shared evenly, run by run."""
    return max(1, min(WORKERS_PER_CORE * cores, int(total_mb * MEMORY_SHARE) // worker_mb))


def memory_mb() -> int:
    """The memory this server may use: the machine's, or its container's cgroup limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        total = min(total, int(limit)) if limit.isdigit() else total
    except OSError:
        pass
    return total // 2**20


def start_local(workers: int, memory_mb: int, folder: Path) -> Cluster:
    """A scheduler and ``workers`` worker processes on 127.0.0.1, free ports, their scheduler file in ``folder``."""
    from distributed import Client

    scheduler_file = folder / "scheduler.json"
    env = worker_environment(folder)
    common = dict(cwd=ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    processes = []
    try:
        with open(folder / "scheduler.log", "wb") as log:
            processes.append(subprocess.Popen(
                [dask_command(), "scheduler", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                 "--port", "0", "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT, **common))
        wait_for_file(scheduler_file, processes[0])
        with open(folder / "workers.log", "wb") as log:
            processes.append(subprocess.Popen(
                [dask_command(), "worker", "--scheduler-file", str(scheduler_file), "--nworkers", str(workers),
                 "--nthreads", "1", "--memory-limit", str(memory_mb * 2**20), "--host", "127.0.0.1",
                 "--no-dashboard", "--death-timeout", str(int(WORKER_START_SECONDS)),  # its start, compiling, included
                 "--preload", "app.serving.worker_setup"],
                stdout=log, stderr=subprocess.STDOUT, **common))
        client = Client(scheduler_file=str(scheduler_file), timeout=START_SECONDS)
        client.wait_for_workers(1, timeout=WORKER_START_SECONDS)  # the first page needs one; others join as they start
    except Exception:
        stop_processes(processes)
        raise ConfigError("this server's compute workers did not start within three minutes; reload the page in a "
                          "minute (whoever runs the server: the workers' log is in its temporary folder)") from None
    except BaseException:  # interrupted: stop what was started, and go on stopping
        stop_processes(processes)
        raise
    return Cluster(client, processes, workers)


def wait_for_file(path: Path, process: subprocess.Popen) -> None:
    end = time.monotonic() + START_SECONDS
    while not path.exists():
        if process.poll() is not None or time.monotonic() > end:
            raise RuntimeError("the Dask scheduler did not start; see its log in the server's temporary folder")
        time.sleep(0.05)


def connect(environ=os.environ) -> tuple[Cluster, Path | None]:
    """The cluster for this server: (Cluster, a folder of its own for run files, or None if the runs must go to the
    shared run cache). Raises ConfigError for a malformed setting."""
    from distributed import Client

    address = environ.get(SCHEDULER_ENV, "").strip()
    if address:
        in_process = address.startswith("inproc://")  # a cluster in this very process (tests): same disk
        if not in_process and not environ.get("INITLAB_CACHE_DIR", "").strip():
            raise ConfigError(f"{SCHEDULER_ENV} is set: set INITLAB_CACHE_DIR too, to a folder the scheduler's "
                              "workers share with this server (they write the runs there)")
        try:
            client = Client(address, timeout=START_SECONDS)
        except OSError as e:
            raise ConfigError(f"cannot reach the Dask scheduler at {address} ({type(e).__name__}); check "
                              f"{SCHEDULER_ENV} and that the scheduler runs") from None
        return Cluster(client), (Path(tempfile.mkdtemp(prefix="initlab-runs-")) if in_process else None)
    workers, memory_mb = sizes_from_env(environ)
    folder = Path(tempfile.mkdtemp(prefix="initlab-dask-"))
    cluster = start_local(workers, memory_mb, folder)
    cleanup.stop_at_exit(cluster.processes, close=cluster.client.close)
    cleanup.remove_at_exit(folder)
    return cluster, folder / "runs"
