"""Submitting work to a Dask cluster so that its scheduler, not its workers, holds the queue.

A plain `Client.submit` hands a task to a worker at once, where it waits behind whatever that worker was given
before: across workers, priorities then order nothing. A task marked as one that produces data from nothing is
"root-ish" to the scheduler, which keeps it in its own queue, ordered by priority, and hands it to the first worker
that is free (with ``distributed.scheduler.worker-saturation`` 1.0: one task a worker thread). The dashboard's runs
and probes and the sweep's cells are submitted this way.
"""

from __future__ import annotations


def submit(client, key: str, priority: int, function, *args):
    """`function(*args)` as the task ``key`` on ``client``'s cluster (a Future), queued by the scheduler."""
    from dask.task_spec import Task  # imported here: the engine and the CLI's trainings never need Dask

    return client.get({key: Task(key, function, *args, _data_producer=True)}, key, sync=False, priority=priority)
