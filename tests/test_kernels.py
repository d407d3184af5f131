"""Kernels forked from a server that has imported torch and ipykernel (book/_ext/dlbook_kernels.py): the kernel a
chapter gets is the one ``python -m ipykernel_launcher`` would start, and it goes away as such a kernel does."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from dlbook_kernels import KernelForks  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernels are forked on Linux only")

# what a chapter could notice about its kernel
PROBE = """
import json, os, sys, warnings
preloaded = "torch" in sys.modules
import matplotlib.pyplot as plt, torch
from ipykernel.kernelapp import IPKernelApp
app = IPKernelApp.instance()
print(json.dumps({
    "path": sys.path, "argv": [sys.argv[0], sys.argv[1]], "cwd": os.getcwd(), "executable": sys.executable,
    "env": {k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"}, "parent": os.environ["JPY_PARENT_PID"],
    "parent_handle": app.parent_handle, "own_session": os.getsid(0) == os.getpid(), "stdin": os.isatty(0),
    "backend": plt.get_backend(), "threads": torch.get_num_threads(), "main": repr(sys.modules["__main__"]),
    "filters": sorted(repr(f) for f in warnings.filters), "pid": os.getpid(), "preloaded": preloaded}))
"""


def _run(source: str, cwd: Path, manager: type | None, env: dict[str, str]) -> dict:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    NotebookClient(nb, timeout=120, kernel_name="python3", shutdown_kernel="immediate",
                   resources={"metadata": {"path": str(cwd)}},
                   **({"kernel_manager_class": manager} if manager else {})).execute(env=env)
    return json.loads(nb.cells[0].outputs[0]["text"])


def _gone(pid: int, within: float = 10.0) -> bool:
    """Whether process ``pid`` has ended and been reaped (no zombie left behind)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def test_a_forked_kernel_is_the_kernel_the_launcher_starts(tmp_path):
    env = {"OMP_NUM_THREADS": "1", **os.environ, "DLBOOK_PROBE": "yes"}
    plain = _run(PROBE, tmp_path, None, env)
    with KernelForks() as forks:
        forked = _run(PROBE, tmp_path, forks.kernel_manager_class, env)
        again = _run(PROBE, tmp_path, forks.kernel_manager_class, env)
    assert not plain["preloaded"] and forked["preloaded"] and again["preloaded"]  # the false world: no fork
    assert forked["pid"] != again["pid"], "one kernel per chapter"
    for run in (forked, again):
        for key in ("path", "argv", "cwd", "executable", "env", "parent", "parent_handle", "own_session", "stdin",
                    "backend", "threads", "main", "filters"):
            assert run[key] == plain[key], key
    assert forked["env"]["DLBOOK_PROBE"] == "yes" and forked["threads"] == 1 and forked["cwd"] == str(tmp_path)
    assert _gone(forked["pid"]) and _gone(again["pid"]), "killed at shutdown, and reaped"


def test_a_kernel_in_another_environment_is_started_afresh(tmp_path):
    env = {**os.environ, "DLBOOK_PROBE": "first"}
    with KernelForks() as forks:
        first = _run(PROBE, tmp_path, forks.kernel_manager_class, env)
        other = _run(PROBE, tmp_path, forks.kernel_manager_class, {**env, "DLBOOK_PROBE": "second"})
    assert first["preloaded"] and not other["preloaded"]
    assert other["env"]["DLBOOK_PROBE"] == "second"


def test_a_kernel_whose_build_is_gone_is_killed(tmp_path):
    """The build holds a connection to the server for each kernel: when it closes (the build died), so does the
    kernel, and the session's other processes with it."""
    sleeper = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])"
    with KernelForks() as forks:
        env = dict(os.environ)
        cmd = [sys.executable, "-m", "ipykernel_launcher", "-c", "pass"]  # -c: IPython runs the code; the kernel waits
        kernel = forks.launch(cmd, env, str(tmp_path))
        assert kernel is not None and not _gone(kernel.pid, within=1.0) and kernel.poll() is None
        child = forks.launch([sys.executable, "-m", "ipykernel_launcher", "-c", sleeper], env, str(tmp_path))
        time.sleep(3)
        spawned = [int(p) for p in os.listdir("/proc") if p.isdigit() and Path(f"/proc/{p}/stat").exists()
                   and _session(int(p)) == child.pid and int(p) != child.pid]
        kernel._conn.close()  # the build's end of the connection, as when the build's process dies
        child._conn.close()
        assert _gone(kernel.pid) and _gone(child.pid)
        assert spawned and all(_gone(p) for p in spawned), "the kernel's session goes with it"


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


@pytest.mark.parametrize("how", ["closed", "killed"])
def test_kernels_end_with_their_server(tmp_path, how):
    """Closing the forks stops the server, which kills its kernels; a server killed outright takes them with it
    (PR_SET_PDEATHSIG)."""
    forks = KernelForks()
    kernel = forks.launch([sys.executable, "-m", "ipykernel_launcher", "-c", "pass"], dict(os.environ), str(tmp_path))
    assert not _gone(kernel.pid, within=1.0)
    if how == "killed":
        forks._server.kill()
    forks.close()
    assert _gone(kernel.pid)
