"""Real servers for the deployment tests and the load script: free loopback ports, a Streamlit process, nginx
rendered from deploy/nginx.conf, and Debian's Chromium driven by Playwright. Everything binds to 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NGINX = "/usr/sbin/nginx"
STREAMLIT_FLAGS = ["--server.headless=true", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"]


def fresh_python(script: str) -> str:
    """What ``script`` prints, run by a fresh interpreter from the repository (a module's import-time effects, which
    the test process has long had); fails the test if the script fails."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, expect: bytes, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until its body equals ``expect``; fail early if ``process`` has exited."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.read() == expect:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer {expect!r} within {timeout} s")


def start(argv: list[str], log: Path, *, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """A server in its own process group (so `stop` ends its children too), output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def healthy(process: subprocess.Popen, port: int, timeout: float) -> subprocess.Popen:
    """``process`` once 127.0.0.1:port/_stcore/health says ok; stopped, and the error raised, if it never does."""
    try:
        wait_for(f"http://127.0.0.1:{port}/_stcore/health", b"ok", timeout, process)
    except Exception:
        stop(process)
        raise
    return process


def copy_runs(runs: Path | None, cache: Path) -> Path:
    """``cache`` (created) holding a copy of the run files in ``runs`` (none if None): each server owns its cache."""
    cache.mkdir(parents=True, exist_ok=True)
    for run in runs.glob("*.h5") if runs is not None else ():
        shutil.copyfile(run, cache / run.name)
    return cache


def start_app(port: int, log: Path, env: dict[str, str], *, cwd: Path = ROOT,
              streamlit: list[str] | None = None) -> subprocess.Popen:
    """`streamlit run app/main.py` on 127.0.0.1:port; returns once /_stcore/health says ok."""
    argv = [*(streamlit or ["streamlit"]), "run", "app/main.py", f"--server.port={port}",
            "--server.address=127.0.0.1", *STREAMLIT_FLAGS]
    return healthy(start(argv, log, cwd=cwd, env=env), port, 60)


def render_nginx_conf(listen: int, upstreams: list[int], prefix: Path) -> Path:
    """deploy/nginx.conf with its placeholders filled for loopback ports; temp paths under ``prefix``."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = "\n".join(f"        server 127.0.0.1:{port};" for port in upstreams)
    for name, value in {"LISTEN": f"127.0.0.1:{listen}", "UPSTREAM_SERVERS": servers.strip(),
                        "NGINX_RUNTIME": str(prefix)}.items():
        text = text.replace(f"${{{name}}}", value)
    assert "${" not in text, "deploy/nginx.conf has a placeholder the test does not fill"
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def start_nginx(listen: int, upstreams: list[int], prefix: Path) -> subprocess.Popen:
    prefix.mkdir(parents=True, exist_ok=True)
    conf = render_nginx_conf(listen, upstreams, prefix)
    # as root, nginx would run its workers as nobody, who cannot write the temp paths in a root-only tmp folder
    argv = [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
            "-g", f"daemon off; pid {prefix / 'nginx.pid'};" + (" user root;" if os.geteuid() == 0 else "")]
    return healthy(start(argv, prefix / "nginx.out", cwd=prefix, env=dict(os.environ)), listen, 20)


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# The app has drawn something and its script run has ended: Streamlit's status widget (shown while a script runs)
# stayed away for a second. A page predicate, so the sync and async Playwright APIs share it.
IDLE_JS = """() => {
    const busy = document.querySelector('[data-testid="stStatusWidget"]');
    const drawn = document.querySelector('[data-testid="stMain"] [data-testid="stElementContainer"]');
    if (busy || !drawn) { window.__initlabQuiet = null; return false; }
    window.__initlabQuiet = window.__initlabQuiet || performance.now();
    return performance.now() - window.__initlabQuiet >= 1000;
}"""


def wait_until_idle(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(IDLE_JS, timeout=timeout_ms, polling=100)


async def async_wait_until_idle(page, timeout_ms: int = 60_000) -> None:
    await page.wait_for_function(IDLE_JS, timeout=timeout_ms, polling=100)


def cpu_seconds(pid: int) -> float:
    """CPU time the process and its waited-for children have used so far (user + system), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def train_all_in_compare(page, runs: int = 2, timeout_ms: int = 150_000) -> list[str]:
    """Open the Compare tab, press Train all, wait until its table shows `runs` finished runs; return the rows."""
    page.get_by_role("tab", name="Compare").click()
    page.get_by_test_id("stTabs").get_by_role("button", name="Train all").click()
    page.wait_for_function(
        "n => { const t = document.querySelector('[data-testid=\"stTable\"]');"
        " return t && (t.innerText.match(/finished/g) || []).length === n; }", arg=runs, timeout=timeout_ms,
        polling=250)
    return [row.inner_text() for row in page.locator('[data-testid="stTable"] tbody tr').all()]
