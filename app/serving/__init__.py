"""What only the server needs, beside the engine: runs shared by every session and replica (store.py, runs.py),
computed as Dask tasks (compute.py) on a cluster the server joins or starts (cluster.py), the disk cache of recorded
runs shared by replicas (cache.py), and the files and processes a stopped server leaves (cleanup.py). The CLI and the
engine use none of it."""
