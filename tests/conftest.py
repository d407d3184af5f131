"""Shared fixtures: the built site, a local server for it, and a headless Chromium page.

Browser tests need Debian's Chromium at /usr/bin/chromium (`apt-get install -y chromium`). Without it they skip with
that message, except under CI (CI=true), where a missing browser is a failure: `.ci/run` installs it.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("DLBOOK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def build_site(out_dir: Path) -> Path:
    """Build the book in static-widget mode into ``out_dir``, as `make book` does: the English site and, in its folder
    ``zh/``, the Chinese one from the same executed outputs (book/_ext/editions.py). Returns the folder of the site."""
    mathjax = ROOT / "book" / "_static" / "mathjax" / "tex-mml-chtml.js"
    if not mathjax.exists():
        pytest.fail(f"{mathjax.relative_to(ROOT)} is missing: run the tests with `make test`, which fetches it")
    env = dict(os.environ, DLBOOK_WIDGETS="static")
    cmd = [sys.executable, str(ROOT / "book" / "_ext" / "editions.py"), "site", "--path-output", str(out_dir), "--all"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: a timeout also ends the English build
    try:
        stdout, stderr = proc.communicate(timeout=3000)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"site build timed out:\n{stdout[-6000:]}\n{stderr[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"site build failed ({proc.returncode}):\n{stdout[-6000:]}\n{stderr[-4000:]}")
    return out_dir / "_build" / "html"


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory) -> Path:
    """The built static site, built once per test run. Set DLBOOK_SITE=path/to/html to reuse an existing build while
    iterating.

    Under pytest-xdist (``make test`` runs ``pytest -n auto``) every worker asks for it: the first one builds it into
    a folder the workers share while the others wait on a lock, then all read the same site; a build that fails (not
    a worker that dies) fails each worker's site tests with the same message."""
    reuse = os.environ.get("DLBOOK_SITE")
    if reuse and not os.environ.get("CI"):
        return Path(reuse)
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build_site(tmp_path_factory.mktemp("site"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "site"  # the run's folder, above each worker's own
    built, failed = shared / "built", shared / "failed"
    with FileLock(str(shared) + ".lock"):
        if not built.exists() and not failed.exists():
            shared.mkdir(exist_ok=True)
            try:
                build_site(shared)
            except BaseException as exc:  # pytest.fail raises an exception outside Exception
                failed.write_text(str(exc) or type(exc).__name__, encoding="utf-8")
                raise
            built.touch()
    if failed.exists():
        pytest.fail(f"site build failed in another worker:\n{failed.read_text(encoding='utf-8')}")
    return shared / "_build" / "html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # a browser that leaves a page while a file (a preloaded MathJax) is still being sent closes the connection:
        # not an error of the site; anything else is still printed
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="session")
def site_url(site_dir):
    """Serve the built site on 127.0.0.1 (a free port) for the session; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run must install it (apt-get install -y chromium)")
        pytest.skip(f"browser checks need Chromium at {CHROMIUM}: `apt-get install -y chromium` to enable them")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and page errors in ``page.js_errors``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.js_errors = []
    pg.on("pageerror", lambda exc: pg.js_errors.append(f"pageerror: {exc}"))
    pg.on("console", lambda msg: pg.js_errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    yield pg
    context.close()


def has_chromium() -> bool:
    return CHROMIUM.exists() or shutil.which("chromium") is not None

