"""Kernels forked from a server that has imported torch and ipykernel (book/_ext/dlbook_kernels.py): the kernel a
chapter gets is the one ``python -m ipykernel_launcher`` would start, and it goes away as such a kernel does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from dlbook_kernels import PRELOAD, KernelForks  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernels are forked on Linux only")
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # as the build's kernels: importing NumPy starts no thread

# what a chapter could notice about its kernel, looked at before its cells import anything
PROBE = """
import json, os, select, stat, sys, warnings
preloaded = "torch" in sys.modules
before = {
    "path": list(sys.path), "argv": [sys.argv[0], sys.argv[1]], "orig_argv": sys.orig_argv[:3],
    "cwd": os.getcwd(), "executable": sys.executable,
    "env": {k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"}, "parent": os.environ["JPY_PARENT_PID"],
    "own_session": os.getsid(0) == os.getpid(), "stdin": stat.S_ISFIFO(os.fstat(0).st_mode),
    "stdin_ends": bool(select.select([0], [], [], 2)[0]) and os.read(0, 1) == b"",
    "main": sys.modules["__main__"].__name__, "modules": sorted(m for m in sys.modules if m.startswith("ipykernel")),
}
import matplotlib.pyplot as plt, torch
from ipykernel.kernelapp import IPKernelApp
print(json.dumps(before | {
    "parent_handle": IPKernelApp.instance().parent_handle, "backend": plt.get_backend(),
    "threads": torch.get_num_threads(), "filters": [repr(f) for f in warnings.filters], "pid": os.getpid(),
    "preloaded": preloaded}))
"""
SAME = ("path", "argv", "orig_argv", "cwd", "executable", "env", "parent", "parent_handle", "own_session", "stdin",
        "stdin_ends", "main", "modules", "backend", "threads")


def _run(source: str, cwd: Path, env: dict[str, str], forks: KernelForks | None = None, gone: list | None = None):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    NotebookClient(nb, timeout=120, kernel_name="python3", shutdown_kernel="immediate",
                   resources={"metadata": {"path": str(cwd)}},
                   **({"kernel_manager_class": forks.kernel_manager_class} if forks else {})).execute(env=env)
    probe = json.loads(nb.cells[0].outputs[0]["text"])
    if gone is not None:  # checked now, while the server runs: nbclient's kill ended the kernel, the server reaped it
        gone.append(_gone(probe["pid"]))
    return probe


def _gone(pid: int, within: float = 10.0) -> bool:
    """Whether process ``pid`` has ended and been reaped (no zombie left behind)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def test_a_forked_kernel_is_the_kernel_the_launcher_starts(tmp_path):
    env = {**ONE_THREAD, "DLBOOK_PROBE": "yes"}
    plain = _run(PROBE, tmp_path, env)
    gone = []
    with KernelForks(env) as forks:
        forked = _run(PROBE, tmp_path, env, forks, gone)
        again = _run(PROBE, tmp_path, env, forks, gone)
    assert not plain["preloaded"] and forked["preloaded"] and again["preloaded"]  # the false world: no fork
    assert forked["pid"] != again["pid"], "one kernel per chapter"
    for run in (forked, again):
        for key in SAME:
            assert run[key] == plain[key], key
    # the same filters, once torch is imported; their order may differ (see the module's docstring)
    assert sorted(forked["filters"]) == sorted(plain["filters"])
    assert forked["env"]["DLBOOK_PROBE"] == "yes" and forked["threads"] == 1 and forked["cwd"] == str(tmp_path)
    assert plain["stdin"] and plain["stdin_ends"] and plain["own_session"]
    assert gone == [True, True], "killed at shutdown, and reaped"


def test_what_the_server_preloads_prints_nothing_and_draws_no_random_state():
    """What the imports print would go to the build's error stream, not to a chapter's first cell; and a random state
    they drew would be the same in every kernel (Python's ``random`` draws a new one in a forked child; torch's
    default generator starts from a fixed seed anyway; NumPy's legacy one is drawn when ``numpy.random`` is
    imported)."""
    code = ("import warnings, sys; warnings.simplefilter('always'); " + "; ".join(f"import {m}" for m in PRELOAD)
            + "; sys.stdout.write(str('numpy.random' in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ONE_THREAD)
    assert run.stdout == "False" and run.stderr == ""


def test_a_kernel_in_another_environment_is_started_afresh(tmp_path):
    env = {**ONE_THREAD, "DLBOOK_PROBE": "first"}
    with KernelForks(env) as forks:
        first = _run(PROBE, tmp_path, env, forks)
        other = _run(PROBE, tmp_path, {**env, "DLBOOK_PROBE": "second"}, forks)
    assert first["preloaded"] and not other["preloaded"]
    assert other["env"]["DLBOOK_PROBE"] == "second"


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def test_a_kernel_whose_build_is_gone_is_killed(tmp_path):
    """The build holds a connection to the server for each kernel: when it closes (the build died), so does the
    kernel, and the session's other processes with it."""
    sleeper = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])"
    env = {**ONE_THREAD, "JPY_PARENT_PID": str(os.getpid())}  # what the kernel manager adds
    with KernelForks(ONE_THREAD) as forks:
        # -c: IPython runs the code at start; the kernel then waits for a client that never comes
        kernel = forks.launch([sys.executable, "-m", "ipykernel_launcher", "-c", "pass"], env, str(tmp_path))
        child = forks.launch([sys.executable, "-m", "ipykernel_launcher", "-c", sleeper], env, str(tmp_path))
        assert kernel is not None and child is not None
        assert not _gone(kernel.pid, within=1.0) and kernel.poll() is None
        deadline, spawned = time.monotonic() + 30, []
        while not spawned and time.monotonic() < deadline:  # the kernel starts its sleeper
            time.sleep(0.2)
            spawned = [int(p) for p in os.listdir("/proc") if p.isdigit() and _session(int(p)) == child.pid
                       and int(p) != child.pid]
        kernel._conn.close()  # the build's end of the connection, as when the build's process dies
        child._conn.close()
        assert _gone(kernel.pid) and _gone(child.pid)
        assert spawned and all(_gone(p) for p in spawned), "the kernel's session goes with it"


@pytest.mark.parametrize("how", ["closed", "killed"])
def test_kernels_end_with_their_server(tmp_path, how):
    """Closing the forks stops the server, which kills its kernels; a server killed outright takes them with it
    (PR_SET_PDEATHSIG)."""
    forks = KernelForks(ONE_THREAD)
    env = {**ONE_THREAD, "JPY_PARENT_PID": str(os.getpid())}
    kernel = forks.launch([sys.executable, "-m", "ipykernel_launcher", "-c", "pass"], env, str(tmp_path))
    assert not _gone(kernel.pid, within=1.0)
    if how == "killed":
        forks._server.kill()
    forks.close()
    assert _gone(kernel.pid)


def test_a_command_that_is_not_this_python_s_launcher_is_not_forked(tmp_path):
    env = {**ONE_THREAD, "JPY_PARENT_PID": str(os.getpid())}
    with KernelForks(ONE_THREAD) as forks:
        assert forks.launch(["python3", "-m", "ipykernel_launcher"], env, str(tmp_path)) is None
        assert forks.launch([sys.executable, "-m", "other_kernel"], env, str(tmp_path)) is None
        assert forks.launch([sys.executable, "-m", "ipykernel_launcher"], {**env, "X": "1"}, str(tmp_path)) is None


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="with one core, NumPy's OpenBLAS starts no thread")
def test_a_server_with_threads_forks_nothing(tmp_path):
    """With two threads for OpenBLAS, importing NumPy starts a thread in the server: a fork would copy one thread of
    two, so the kernel is started afresh instead."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with KernelForks(env) as forks:
        probe = _run(PROBE, tmp_path, env, forks)
    assert not probe["preloaded"] and probe["threads"] == 2


def test_a_bad_request_does_not_stop_the_server_or_its_kernels(tmp_path):
    env = {**ONE_THREAD, "JPY_PARENT_PID": str(os.getpid())}
    with KernelForks(ONE_THREAD) as forks:
        kernel = forks.launch([sys.executable, "-m", "ipykernel_launcher", "-c", "pass"], env, str(tmp_path))
        for junk in (b"not json\n", b"[1, 2]\n", b'{"argv": 1}\n'):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(forks.socket)
            conn.sendall(junk)
            assert conn.recv(100) == b"", "the server closes a connection whose request it cannot serve"
            conn.close()
        assert not _gone(kernel.pid, within=1.0) and kernel.poll() is None
        again = forks.launch([sys.executable, "-m", "ipykernel_launcher", "-c", "pass"], env, str(tmp_path))
        assert again is not None and not _gone(again.pid, within=1.0)


@pytest.mark.parametrize("kernel", ["fresh", "forked", "fresh, no keys"])
def test_a_chapters_kernel_talks_with_curvezmq_keys_and_logs_no_warning(tmp_path, capfd, monkeypatch, kernel):
    import dlbook_execute

    if not dlbook_execute.kernel_config():
        pytest.skip("this pyzmq has no CurveZMQ: the kernels talk over plain TCP and say so")
    if kernel == "fresh, no keys":  # the false world: what each chapter's kernel printed before
        monkeypatch.setattr(dlbook_execute, "kernel_config", lambda: {})
    path = tmp_path / "probe.ipynb"
    probe = ("import sys\npreloaded = 'torch' in sys.modules\nfrom ipykernel.kernelapp import IPKernelApp\n"
             "print(preloaded, IPKernelApp.instance().curve_secretkey is not None)")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(probe)]), path)
    env = {**dlbook_execute.kernel_env("static", 1), "OMP_NUM_THREADS": "1"}  # one thread: the server forks
    if kernel == "forked":
        with KernelForks(env) as forks:
            nb, _ = dlbook_execute._execute(path, 120, env, kernel_manager_class=forks.kernel_manager_class)
    else:
        nb, _ = dlbook_execute._execute(path, 120, env)
    err = capfd.readouterr().err  # the kernel's stderr is this process's (fresh) or the server's, started here
    keys = kernel != "fresh, no keys"
    assert nb.cells[0].outputs[0]["text"] == f"{kernel == 'forked'} {keys}\n"  # forked as asked; given keys, uses them
    assert ("without encryption" in err) is not keys, err
