"""The chapters as a learner runs them: `make lab`, JupyterLab with live sliders, driven by keyboard in Chromium.

The browser tests start JupyterLab on 127.0.0.1 (a free port, a random token) over a temporary copy of ``book/``,
with its own config, data and runtime folders (the user's settings do not leak in), the announcements feed, the
update check and the extension manager turned off (no network), and stop it in the fixture's teardown.

The fast test checks that every notebook carries the metadata JupyterLab writes when it opens a chapter (kernel spec
display name, the kernel's ``language_info``) in the layout the Jupyter server saves, so that opening and closing a
chapter leaves it unmodified; the browser test ``test_opening_and_saving_a_chapter_changes_nothing`` checks the same
thing in JupyterLab itself.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTER = "convnets/padding.ipynb"  # fast, with two-slider ipywidgets figures and an arithmetic explorer
UNTOUCHED = "convnets/stride.ipynb"  # opened and saved without running anything

START_TIMEOUT = 180  # s; the server and the first kernel on a loaded 2-core machine
RUN_TIMEOUT = 900  # s; the whole chapter (under 60 s on an idle machine)
UI_TIMEOUT = 120_000  # ms; one step of the page


def _notebooks() -> list[Path]:
    return sorted(p for p in BOOK.rglob("*.ipynb") if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts)


@functools.cache
def _lab_metadata() -> dict:
    """The notebook metadata JupyterLab writes on opening a chapter with this environment's Python 3 kernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    # asked in a separate process: importing ipykernel here would make tqdm.auto in later tests think it runs in a
    # notebook (and draw its bars as widgets instead of writing to stderr)
    code = "import json; from ipykernel.ipkernel import IPythonKernel as K; print(json.dumps(K.language_info))"
    info = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    return {
        "kernelspec": {"display_name": spec.display_name, "language": spec.language, "name": "python3"},
        "language_info": info,
    }


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: str(p.relative_to(BOOK)))
def test_notebook_is_saved_as_jupyterlab_would_save_it(path):
    import nbformat

    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    assert nb["metadata"] == _lab_metadata(), (
        f"{path.relative_to(ROOT)}: JupyterLab rewrites this metadata on opening, so the chapter opens modified"
    )
    # the Jupyter server saves with nbformat: indent 1, sorted keys, no ASCII escapes, a final newline
    assert nbformat.writes(nbformat.reads(text, as_version=4)) + "\n" == text
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code")


# ---------------------------------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a temporary copy of book/; yields (base URL, token, root folder). Stopped on teardown."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "book"
    shutil.copytree(BOOK, root, ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    config = tmp / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": {
        "@jupyterlab/extensionmanager-extension": True,
        "@jupyterlab/apputils-extension:announcements": True,
    }}))
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_lsp": False}}}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(tmp / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), IPYTHONDIR=str(tmp / "ipython"), MPLBACKEND="Agg")
    env.pop("DLBOOK_WIDGETS", None)  # live sliders, as `make lab` gives them
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}", f"--LabApp.user_settings_dir={tmp / 'settings'}"]
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url, token, root
    finally:
        # the server, its kernels and anything they started: one process group
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)


def _open(page, lab, notebook: str) -> None:
    url, token, _ = lab
    # a fresh workspace, so that no tab of an earlier test is restored beside this one
    page.goto(f"{url}/lab/workspaces/w{secrets.token_hex(4)}/tree/{notebook}?token={token}", timeout=UI_TIMEOUT)
    page.wait_for_function(
        """(path) => { const w = window.jupyterapp && jupyterapp.shell.currentWidget;
                   if (!w || !w.context || w.context.path !== path) { return false; }
                   const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                   const info = w && w.model && w.model.getMetadata('language_info');
                   return k && k.status === 'idle' && info && info.codemirror_mode; }""",
        arg=notebook, timeout=UI_TIMEOUT, polling=500)


def _notebook_state(page) -> dict:
    """Active cell, mode, and the cells hidden by a collapsed heading."""
    return page.evaluate("""() => { const nb = jupyterapp.shell.currentWidget.content;
        return {active: nb.activeCellIndex, mode: nb.mode,
                hidden: nb.widgets.map((c, i) => c.isHidden ? i : -1).filter(i => i >= 0),
                collapsed: nb.widgets.map((c, i) => c.headingCollapsed ? i : -1).filter(i => i >= 0)}; }""")


def _kernel_print(page, code: str) -> str:
    """Run ``code`` in the notebook's kernel without touching the notebook; return what it printed."""
    return page.evaluate("""async (code) => {
        const kernel = jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        const future = kernel.requestExecute({code, silent: false, store_history: false});
        let out = '', err = '';
        future.onIOPub = (msg) => {
            if (msg.header.msg_type === 'stream' && msg.content.name === 'stdout') { out += msg.content.text; }
            if (msg.header.msg_type === 'error') { err += msg.content.ename + ': ' + msg.content.evalue; }
        };
        await future.done;
        if (err) { throw new Error(err); }
        return out; }""", code)


_FRESH_RENDERS = """
import gc, hashlib, json, warnings
from dlbook.widgets import LiveFigure, render_frame, _label
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # isinstance() over every object pokes deprecated module attributes
    _figures = [f for f in gc.get_objects() if isinstance(f, LiveFigure)]
print(json.dumps([
    {"labels": [[n, _label(v)] for n, v in f.values().items()],
     "sha": hashlib.sha256(render_frame(f._render, f.values(), f._dpi, f._format)).hexdigest()}
    for f in _figures]))
del _figures
"""


def _shown_image_sha(figure) -> str:
    data = figure.evaluate("""async (root) => {
        const img = root.querySelector('img.dlbook-live-frame');
        const blob = await (await fetch(img.src)).blob();
        return await new Promise((ok) => { const r = new FileReader();
            r.onload = () => ok(r.result.split(',')[1]); r.readAsDataURL(blob); }); }""")
    return hashlib.sha256(base64.b64decode(data)).hexdigest()


@pytest.fixture
def lab_page(browser, lab):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(f"pageerror: {exc}"))
    page.foreign_requests = []  # JupyterLab must need no network: every request goes to the local server
    page.on("request", lambda request: None if request.url.startswith((lab[0], "data:", "blob:"))
            else page.foreign_requests.append(request.url))
    yield page
    context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_sliders_work_by_keyboard_in_jupyterlab(lab_page, lab):
    page = lab_page
    _open(page, lab, CHAPTER)
    page.evaluate("() => jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        """() => { const ps = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
                   return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent)); }""",
        timeout=RUN_TIMEOUT * 1000, polling=1000)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.first.inner_text()

    # -- live ipywidgets figures: in each, the bars line up; a pending render dims the image
    figures = page.locator(".widget-vbox:has(img.dlbook-live-frame)")
    two_sliders = [figures.nth(n) for n in range(figures.count())
                   if figures.nth(n).locator(".widget-slider").count() > 1]
    assert two_sliders, f"{CHAPTER} has no live figure with two sliders any more: choose another chapter"
    for figure in two_sliders:
        figure.scroll_into_view_if_needed()
        bars = figure.evaluate("""(root) => [...root.querySelectorAll('.widget-slider .noUi-target')].map(b => {
            const r = b.getBoundingClientRect(); return [Math.round(r.left), Math.round(r.width)]; })""")
        assert len({tuple(b) for b in bars}) == 1, f"slider bars of one figure do not line up: {bars}"
    figure = two_sliders[0]
    opacity = figure.evaluate("""(root) => { const img = root.querySelector('img.dlbook-live-frame');
        img.style.transition = 'none';  // the end state of the fade, without waiting for it
        img.classList.add('dlbook-busy'); const dimmed = Number(getComputedStyle(img).opacity);
        img.classList.remove('dlbook-busy'); img.style.transition = ''; return dimmed; }""")
    assert opacity < 0.6, "a pending render does not dim the image (the figure's style did not reach the page)"

    # -- → on a live slider shows the frame of the new value
    sliders = figure.locator(".widget-slider")

    slider = sliders.first
    slider.scroll_into_view_if_needed()
    handle = slider.locator(".noUi-handle")
    handle.click()  # a click on the thumb keeps the value
    before = {"readout": slider.locator(".widget-readout").inner_text(), "sha": _shown_image_sha(figure)}
    at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    state = _notebook_state(page)
    page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")
    page.wait_for_function(
        """([root, old]) => root.querySelector('.widget-readout').textContent.trim() !== old
                            && !root.closest('.widget-vbox').querySelector('img.dlbook-live-frame.dlbook-busy')""",
        arg=[slider.element_handle(), before["readout"].strip()], timeout=UI_TIMEOUT, polling=200)
    # the kernel may still be sending the image: wait until it differs, then compare with a fresh render
    deadline = time.monotonic() + UI_TIMEOUT / 1000
    while (shown := _shown_image_sha(figure)) == before["sha"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert shown != before["sha"], "the slider moved but the image stayed the same"
    assert _notebook_state(page) == state, "the arrow key reached the notebook"
    labels = [[sliders.nth(n).locator("label").inner_text().strip(),
               sliders.nth(n).locator(".widget-readout").inner_text().strip()] for n in range(sliders.count())]
    renders = json.loads(_kernel_print(page, _FRESH_RENDERS))
    assert {"labels": labels, "sha": shown} in renders, (
        f"the image shown is not a fresh render of the values shown {labels}")

    # -- the arithmetic explorer (plain HTML range inputs): arrows change the value, not the notebook
    explorer = page.locator(".dlbook-explorer").first
    size_input = explorer.locator("input.dlbook-explorer-slider[data-param='i']")
    size_input.scroll_into_view_if_needed()
    size_input.click()  # the middle of the track: a value away from both ends
    start = int(size_input.input_value())
    size = explorer.locator(".dlbook-explorer-size")
    size_before = size.get_attribute("data-size")
    state = _notebook_state(page)
    page.keyboard.press("ArrowRight")
    assert int(size_input.input_value()) == start + 1
    assert explorer.locator("[data-row='i'] output").inner_text() == str(start + 1)
    assert size.get_attribute("data-size") != size_before, "the explorer's output size did not follow its input size"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert int(size_input.input_value()) == start - 1
    after = _notebook_state(page)
    assert after == state, f"the arrow keys reached the notebook: {state} -> {after}"
    assert not after["hidden"] and not after["collapsed"]
    assert page.js_errors == []
    assert page.foreign_requests == []


@pytest.mark.browser
@pytest.mark.slow
def test_opening_and_saving_a_chapter_changes_nothing(lab_page, lab):
    page = lab_page
    original = (lab[2] / UNTOUCHED).read_bytes()  # the copy the server serves (book/ may be edited meanwhile)
    _open(page, lab, UNTOUCHED)
    page.wait_for_timeout(1000)  # let any metadata update land
    dirty = page.locator(".lm-TabBar-tab.jp-mod-dirty").count()
    page.evaluate("() => jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !jupyterapp.shell.currentWidget.context.model.dirty", timeout=UI_TIMEOUT)
    saved = (lab[2] / UNTOUCHED).read_bytes()
    assert dirty == 0 and saved == original, (
        f"opening the chapter marked it modified ({dirty=}) and saving it rewrote its metadata "
        f"{json.loads(original)['metadata']} as {json.loads(saved)['metadata']}")
    assert page.foreign_requests == []
