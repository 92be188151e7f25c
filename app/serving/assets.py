"""Streamlit's scripts and styles, and the live charts' plotly.js, sent gzip-compressed from copies compressed once.

Streamlit 1.67 sends its bundles uncompressed: it leaves compression to a reverse proxy rather than compress them
again for every request. The first page was then 8.1 MB (5.0 since its charts draw with plotly.js's cartesian
bundle), and on a classroom's network that was most of a student's wait (tests/benchmarks/bench_first_chart.py
--network). The charts' plotly.js (app/live_chart.py: 1.5 MB, served on a component route) it does compress, again
for every student, in its event loop.

`CompressedAssets` answers a GET of one of these files that accepts gzip with a copy compressed once and kept in
memory (7 MB for all of Streamlit's; Plotly's chunk shrinks to 1.4 MB in 0.13 s). Anything else, a range request
included, goes on to Streamlit unchanged. Only files inside Streamlit's own static folder (resolved: no `..` or link
leads out of it) with a script or style suffix, and the charts' one plotly.js, are ever read; every other path is
Streamlit's to answer, with its own path checks.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit

from app.live_chart import PLOTLY_JS, PLOTLY_JS_URL

STATIC_ROOT = (Path(streamlit.__file__).parent / "static").resolve()  # GET /static/js/x.js is static/static/js/x.js
STATIC_PREFIX = "/static/"
SUFFIXES = {".js": b"application/javascript", ".css": b"text/css"}
LEVEL = 6  # level 9 saves 0.2% more of Plotly's chunk for 40% more time
IMMUTABLE = b"public, immutable, max-age=31536000"  # Streamlit's own for its content-hashed bundles


@dataclass(frozen=True)
class Asset:
    body: bytes  # gzip-compressed
    etag: bytes
    content_type: bytes
    cache_control: bytes


_assets: dict[Path, Asset] = {}
_lock = threading.Lock()  # one compression of a file, however many students ask for it at once


def asset_file(path: str) -> Path | None:
    """The file a request's path names, if it is one this module sends compressed."""
    if path == "/" + PLOTLY_JS_URL:
        return PLOTLY_JS
    if not path.startswith(STATIC_PREFIX) or "\0" in path:
        return None
    file = (STATIC_ROOT / path.lstrip("/")).resolve()
    if file.suffix not in SUFFIXES or not file.is_relative_to(STATIC_ROOT) or not file.is_file():
        return None
    return file


def compressed(file: Path) -> Asset:
    """The file's compressed copy, made on the first call (the middleware looks in `_assets` first)."""
    with _lock:
        asset = _assets.get(file)
        if asset is None:
            body = gzip.compress(file.read_bytes(), LEVEL, mtime=0)
            # the charts' plotly.js keeps its name from one plotly release to the next: the browser asks again
            cache_control = b"no-cache" if file == PLOTLY_JS else IMMUTABLE
            asset = _assets[file] = Asset(body, b'"%s-gzip"' % hashlib.sha1(body).hexdigest().encode(),
                                          SUFFIXES[file.suffix], cache_control)
        return asset


def warm() -> None:
    """Compress every file in advance (0.7 s of CPU at the server's start): the first students wait for none."""
    compressed(PLOTLY_JS)
    for file in sorted(STATIC_ROOT.rglob("*")):
        if file.suffix in SUFFIXES and file.is_file():
            compressed(file.resolve())


def accepts_gzip(accept_encoding: str) -> bool:
    for coding in accept_encoding.lower().split(","):
        name, _, params = coding.partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params.strip() or float(q) > 0
            except ValueError:
                return False
    return False


class CompressedAssets:
    """ASGI middleware: see the module's docstring."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        headers = {name.lower(): value for name, value in scope["headers"]}
        file = asset_file(scope["path"])
        if (file is None or b"range" in headers
                or not accepts_gzip(headers.get(b"accept-encoding", b"").decode("latin-1"))):
            return await self.app(scope, receive, send)
        asset = _assets.get(file) or await asyncio.to_thread(compressed, file)  # 0.13 s for Plotly's chunk
        common = [(b"etag", asset.etag), (b"cache-control", asset.cache_control), (b"vary", b"Accept-Encoding")]
        if asset.etag in headers.get(b"if-none-match", b""):
            await send({"type": "http.response.start", "status": 304, "headers": common})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", asset.content_type), (b"content-encoding", b"gzip"),
                                (b"content-length", str(len(asset.body)).encode()), *common]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else asset.body})
