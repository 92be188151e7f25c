"""Init Lab's server: `streamlit run app/main.py` (Streamlit finds the `st.App` named `app` below and serves it).

The page itself is app/page.py. This file adds what a server needs before any page opens: the run store and its
Dask cluster start with the server, in the background, so the first student finds the workers warm; GET /ready says
whether a run could be computed now (app/serving/server.py); a request of the page tells the presets' background
runs to give way (`PageRequests`); Streamlit's scripts are sent compressed (app/serving/assets.py). Every
`streamlit run` flag and .streamlit/config.toml option applies as to a plain script.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts app/, not the repository, on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.routing import Route  # noqa: E402

from app.serving.assets import CompressedAssets  # noqa: E402
from app.serving.pace import pace  # noqa: E402
from app.serving.server import READY_PATH, lifespan, readiness  # noqa: E402


class PageRequests:
    """Tells app/serving/pace.py that a page is being opened as soon as a browser asks for it, a second or more
    before its session's first run: the presets' background runs stop for it (app/serving/store.py)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/":
            pace.requested()
        await self.app(scope, receive, send)


app = st.App(Path(__file__).with_name("page.py"), lifespan=lifespan, routes=[Route(READY_PATH, readiness)],
             middleware=[Middleware(PageRequests), Middleware(CompressedAssets)])
