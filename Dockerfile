# Init Lab for a classroom: one container serves the whole class (see deploy/README.md for several replicas).
#   docker build -t initlab .
#   docker run -p 8501:8501 -v initlab-cache:/cache initlab
# With the course's cat files (never baked into the image):
#   docker run -v /path/to/course-data:/data:ro -e INITLAB_DATA_DIR=/data -v initlab-cache:/cache -p 8501:8501 initlab
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INITLAB_CACHE_DIR=/cache \
    PYTHONPATH=/app \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    NUMBA_CACHE_DIR=/tmp/numba

WORKDIR /app

# Dependencies in their own layer: editing the code does not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

RUN useradd --create-home --uid 10001 initlab \
    && mkdir -p /cache /data \
    && chown initlab:initlab /cache

# Only what the app needs at run time (tests/, deploy/ and the dev tooling stay out).
COPY app/ ./app/
COPY core/ ./core/
COPY data/ ./data/
COPY .streamlit/ ./.streamlit/

# Compile the engine's kernels now (about 5 s), into NUMBA_CACHE_DIR, so that a container's first run compiles
# nothing; the app user owns the cache, which numba needs writable to use it. The code's bytecode too:
# PYTHONDONTWRITEBYTECODE keeps every process (the server, each Dask worker) from saving it, and each compiled the
# page's and the engine's modules from source again as it started.
RUN python -m compileall -q app core \
    && python -c "from core.warm import warm_kernels; warm_kernels()" \
    && chown -R initlab:initlab /tmp/numba

USER initlab
VOLUME ["/cache"]
EXPOSE 8501

# PYTHONPATH: the same image runs the Dask scheduler and workers (deploy/compose.yaml), whose tasks import app/core.
# The engine's kernels are compiled by numba with cache=True; its default cache sits beside the code in /app, which
# the non-root user cannot write: NUMBA_CACHE_DIR (set above) puts it in /tmp instead, filled at build time.
# Healthy = ready: the server answers and a worker of its Dask cluster (started with the server) can take a run
# (GET /ready, app/serving/server.py). slim has no curl: ask with the standard library.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/ready', timeout=8).read() != b'ready')"

# app/main.py is the server (an st.App: the page is app/page.py), with its /ready route and its cluster started with it.
CMD ["streamlit", "run", "app/main.py", "--server.port=8501", "--server.address=0.0.0.0"]
