"""What only the server needs, beside the engine: runs shared by every session and computed by worker threads
(store.py), the disk cache of finished runs shared by replicas and their claims (cache.py), and the removal of the
files a stopped server process was writing (cleanup.py). The CLI and the engine use none of it."""
