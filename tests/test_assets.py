"""app/serving/assets.py: Streamlit's scripts and the live charts' plotly.js sent gzip-compressed, every other request
left to Streamlit."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from app.live_chart import PLOTLY_JS, PLOTLY_JS_URL
from app.serving import assets
from app.serving.assets import CompressedAssets, accepts_gzip

STREAMLIT = b"streamlit's own answer"
BUNDLE = max((assets.STATIC_ROOT / "static" / "js").glob("*.js"), key=lambda f: f.stat().st_size)  # Plotly's chunk
BUNDLE_PATH = "/" + BUNDLE.relative_to(assets.STATIC_ROOT).as_posix()


async def streamlit(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": STREAMLIT})


def get(path: str, method: str = "GET", **headers: str) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request through the middleware, Streamlit behind it: status, headers, body."""
    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path,
             "headers": [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]}
    asyncio.run(CompressedAssets(streamlit)(scope, None, send))
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def test_a_bundle_is_sent_compressed_and_unpacks_to_the_file():
    status, headers, body = get(BUNDLE_PATH, accept_encoding="gzip, deflate, br")
    assert status == 200 and headers[b"content-encoding"] == b"gzip"
    assert gzip.decompress(body) == BUNDLE.read_bytes()
    assert int(headers[b"content-length"]) == len(body) < BUNDLE.stat().st_size / 3
    assert headers[b"content-type"] == b"application/javascript" and headers[b"vary"] == b"Accept-Encoding"
    assert headers[b"cache-control"] == assets.IMMUTABLE  # content-hashed: a browser never asks twice


def test_the_live_charts_plotly_js_is_sent_compressed_and_asked_for_again_after_an_upgrade():
    status, headers, body = get("/" + PLOTLY_JS_URL, accept_encoding="gzip")
    assert status == 200 and gzip.decompress(body) == PLOTLY_JS.read_bytes()
    assert headers[b"cache-control"] == b"no-cache"


def test_a_browser_holding_the_copy_gets_304_and_no_body():
    _, headers, _ = get(BUNDLE_PATH, accept_encoding="gzip")
    status, again, body = get(BUNDLE_PATH, accept_encoding="gzip", if_none_match=headers[b"etag"].decode())
    assert (status, body) == (304, b"") and again[b"etag"] == headers[b"etag"]
    assert get(BUNDLE_PATH, accept_encoding="gzip", if_none_match='"another"')[0] == 200


def test_head_sends_the_headers_only():
    status, headers, body = get(BUNDLE_PATH, "HEAD", accept_encoding="gzip")
    assert status == 200 and body == b"" and int(headers[b"content-length"]) > 0


@pytest.mark.parametrize("headers", [{}, {"accept_encoding": "identity"}, {"accept_encoding": "gzip;q=0"},
                                     {"accept_encoding": "gzip", "range": "bytes=0-99"}])
def test_a_client_without_gzip_or_asking_for_a_range_gets_streamlits_answer(headers):
    assert get(BUNDLE_PATH, **headers)[2] == STREAMLIT


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd",  # out of the static folder
    "/static/static/../../__init__.py",  # Streamlit's source, through the static route
    "/static/../../../plotly/package_data/plotly.min.js",  # a script, but out of the static folder
    "/static/favicon.png",  # not a script or style
    "/static/js/none-such.js",
    "/static/js/x.js\0.png",
    "/", "/_stcore/health", "/component/other.component/plotly.min.js",
])
def test_every_other_path_is_left_to_streamlit(path):
    assert get(path, accept_encoding="gzip")[2] == STREAMLIT


def test_a_link_out_of_the_static_folder_is_not_followed(tmp_path, monkeypatch):
    root = tmp_path / "static"
    (root / "static" / "js").mkdir(parents=True)
    secret = tmp_path / "secret.js"
    secret.write_text("the server's own file")
    (root / "static" / "js" / "link.js").symlink_to(secret)
    monkeypatch.setattr(assets, "STATIC_ROOT", root)
    assert get("/static/js/link.js", accept_encoding="gzip")[2] == STREAMLIT


def test_a_post_is_left_to_streamlit():
    assert get(BUNDLE_PATH, "POST", accept_encoding="gzip")[2] == STREAMLIT


@pytest.mark.parametrize("header, accepted", [
    ("gzip", True), ("deflate, gzip;q=0.5", True), ("GZIP", True), ("*", True), ("br", False), ("", False),
    ("gzip;q=0", False), ("gzip;q=0.0", False), ("gzip;q=abc", False),
])
def test_accept_encoding_is_read_as_http_says(header, accepted):
    assert accepts_gzip(header) is accepted
