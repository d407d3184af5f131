"""Kernels forked from a process that has already imported what every kernel imports.

Every chapter runs in a kernel of its own, started afresh (``python -m ipykernel_launcher``), and every one of them
imports the same things before its first cell has done anything: ipykernel and IPython to start, then torch and NumPy.
That took 2 s of CPU per chapter here (of ~3 s from starting the kernel to the end of the first cell).
:class:`KernelForks` starts one server process that imports them once (``PRELOAD``); each kernel is a fork
(``os.fork``) of that server, which has them already.

A forked kernel is otherwise the one ``python -m ipykernel_launcher`` starts: the same command line (``sys.argv``),
environment, working folder and ``sys.path``, in a session (process group) of its own, so that nbclient's kill reaches
it and whatever it spawns. Its standard input is ``/dev/null``; its output and error streams are the build's.
matplotlib is not imported in advance: it chooses its backend when imported, from ``MPLBACKEND``, which the kernel sets.
The server forks only from its single thread. Its environment is the kernels' (the libraries read some variables,
such as ``OMP_NUM_THREADS``, when imported); a kernel with a different one is started the usual way.

Protocol: the build connects to the server's Unix socket once per kernel and sends one JSON line (argv, env, cwd); the
server forks and answers ``{"pid": ...}``, and ``{"returncode": ...}`` once it has reaped the kernel.

No kernel outlives its build: a connection that closes before its kernel has ended (the build died) gets its kernel's
process group killed; the server ends when its standard input (a pipe from the build) closes or on SIGTERM, and kills
the kernels still running; a kernel dies with the server however the server ends (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PRELOAD = ("numpy", "torch", "IPython", "ipykernel.kernelapp")
LAUNCHER = ["-m", "ipykernel_launcher"]  # what the kernel's command runs, after the interpreter


# --------------------------------------------------------------------------------------------------------------------
# The server (run as ``python dlbook_kernels.py SOCKET READY_FD``)


def _die_with_parent() -> None:
    """Have Linux kill this process when its parent (the server) ends, however it ends (``PR_SET_PDEATHSIG``)."""
    import ctypes

    PR_SET_PDEATHSIG = 1  # noqa: N806 - the name in <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _become_kernel(request: dict, inherited: list[int]) -> None:
    """In the forked child: turn into ``python -m ipykernel_launcher ...`` as ``request`` describes; never returns."""
    code = 1
    try:
        os.setsid()  # a process group of its own, as jupyter_client's start_new_session gives a kernel
        _die_with_parent()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server's own handler
        for fd in inherited:  # the server's pipes and sockets
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # a fresh `python -m` interpreter's path: '' first (the launcher removes it), then the standard one
        sys.path[:] = ["", *request["path"]]
        sys.argv = [LAUNCHER[1], *request["argv"][len(LAUNCHER) + 1:]]
        import runpy

        runpy.run_module(LAUNCHER[1], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported on the build's error stream, then the kernel is gone
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _kill(pid: int) -> None:
    """SIGKILL to the kernel's process group: the kernel and whatever it started."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:  # already gone
        pass


def serve(path: str, ready: int) -> None:
    """Import ``PRELOAD``, listen on the Unix socket ``path`` (say so on the file descriptor ``ready``), fork a kernel
    per request and report how each ended. Ends, killing the kernels still running, when its standard input closes
    (the build has ended) or on SIGTERM."""
    import importlib

    fresh_path = sys.path[1:]  # without this file's folder, which `python dlbook_kernels.py` put first
    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    os.write(ready, b"ready\n")
    os.close(ready)
    kernels: dict[int, socket.socket | None] = {}  # pid -> the connection that asked for it (None: closed)
    requests: dict[socket.socket, bytes] = {}  # connections whose request is still arriving
    try:
        while True:
            watched = [sys.stdin, listener, *requests, *(c for c in kernels.values() if c is not None)]
            for conn in select.select(watched, [], [], 0.1)[0]:
                if conn is sys.stdin:
                    if not os.read(sys.stdin.fileno(), 1024):  # the build has ended
                        return
                elif conn is listener:
                    requests[listener.accept()[0]] = b""
                elif conn in requests:
                    data = conn.recv(65536)
                    requests[conn] += data
                    if not data or requests[conn].endswith(b"\n"):
                        _fork(requests.pop(conn), conn, fresh_path, listener, requests, kernels)
                elif not conn.recv(4096):  # the build is gone: so is its kernel
                    pid = next(p for p, c in kernels.items() if c is conn)
                    _kill(pid)
                    conn.close()
                    kernels[pid] = None
            _reap(kernels)
    finally:
        for pid in kernels:
            _kill(pid)


def _fork(request: bytes, conn: socket.socket, fresh_path: list[str], listener: socket.socket,
          requests: dict, kernels: dict) -> None:
    """Fork the kernel ``request`` asks for (one JSON line) and tell ``conn`` its pid."""
    if not request.endswith(b"\n"):  # closed before the request was whole
        conn.close()
        return
    assert threading.active_count() == 1, "a fork copies only the thread that forks"
    pid = os.fork()
    if pid == 0:
        others = [sys.stdin, listener, conn, *requests, *(c for c in kernels.values() if c is not None)]
        _become_kernel(json.loads(request) | {"path": fresh_path}, [c.fileno() for c in others])
    kernels[pid] = conn
    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _reap(kernels: dict) -> None:
    """Collect the kernels that have ended and tell each one's build how it ended."""
    while kernels:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = kernels.pop(pid, None)
        if conn is not None:
            try:
                conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
            except OSError:
                pass
            conn.close()


# --------------------------------------------------------------------------------------------------------------------
# The build's side


class ForkedKernel:
    """A forked kernel, with what jupyter_client's ``LocalProvisioner`` uses of a ``subprocess.Popen``."""

    stdin = stdout = stderr = None

    def __init__(self, conn: socket.socket):
        self._conn = conn
        self._buffer = b""
        self.returncode: int | None = None
        self.pid = int(self._message(timeout=60)["pid"])

    def _message(self, timeout: float | None) -> dict | None:
        """The server's next message, waiting up to ``timeout`` seconds (None: as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._conn], [], [], left)[0]:
                return None
            data = self._conn.recv(4096)
            if not data:  # the server went away without a word: the kernel is gone with it
                return {"returncode": -signal.SIGKILL}
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def poll(self) -> int | None:
        if self.returncode is None and (message := self._message(timeout=0)) is not None:
            self.returncode = int(message["returncode"])
            self._conn.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            message = self._message(timeout)
            if message is None:
                raise subprocess.TimeoutExpired(LAUNCHER, timeout)
            self.returncode = int(message["returncode"])
            self._conn.close()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class KernelForks:
    """A fork server for a build's kernels: ``with KernelForks() as forks: ...``; ``forks.kernel_manager_class`` is the
    jupyter_client kernel manager (for nbclient) whose kernels are forks of it.

    The server starts with the first kernel, in that kernel's environment (``JPY_PARENT_PID`` included: ipykernel reads
    it when imported); a later kernel whose environment differs is started the usual way.
    """

    def __init__(self) -> None:
        self.env: dict[str, str] | None = None
        self._server: subprocess.Popen | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="dlbook-kernels-")
        self.socket = str(Path(self._folder.name) / "server")
        self._lock = threading.Lock()
        self.kernel_manager_class = _manager_class(self)

    def _start(self, env: dict[str, str]) -> None:
        ready, tell = os.pipe()
        # its standard input is a pipe that nothing writes to: it closes when this process ends, however it ends
        self._server = subprocess.Popen([sys.executable, __file__, self.socket, str(tell)], env=env,
                                        stdin=subprocess.PIPE, pass_fds=[tell])
        os.close(tell)
        with os.fdopen(ready, "rb") as said:
            if said.readline().strip() != b"ready":
                raise RuntimeError(f"the kernel fork server did not start (exit {self._server.wait()})")
        self.env = env

    def launch(self, cmd: list[str], env: dict[str, str], cwd: str) -> ForkedKernel | None:
        """The kernel ``cmd`` (``python -m ipykernel_launcher ...``) with ``env`` in ``cwd``, forked from the server;
        None if it cannot be: another interpreter or command, another environment, or a server that has ended."""
        if not cmd or os.path.realpath(cmd[0]) != os.path.realpath(sys.executable) or cmd[1:3] != LAUNCHER:
            return None
        with self._lock:
            if self._server is None:
                self._start(env)
        if env != self.env or self._server.poll() is not None:
            return None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.socket)
        conn.sendall(json.dumps({"argv": cmd, "env": env, "cwd": str(cwd)}).encode() + b"\n")
        return ForkedKernel(conn)

    def close(self) -> None:
        """Stop the server; it kills the kernels still running."""
        if self._server is not None:
            self._server.stdin.close()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
        self._folder.cleanup()

    def __enter__(self) -> KernelForks:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _manager_class(forks: KernelForks) -> type:
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.provisioning import LocalProvisioner

    class ForkedKernelManager(AsyncKernelManager):
        """jupyter_client's kernel manager, launching the kernel as a fork of the server when it can
        (``_async_launch_kernel`` is jupyter_client's place for launching kernels differently)."""

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
            env = {**(kw.get("env") or os.environ), "JPY_PARENT_PID": str(os.getpid())}  # as jupyter_client sets it
            cwd = str(kw.get("cwd") or os.getcwd())
            forked = isinstance(self.provisioner, LocalProvisioner) and forks.launch(kernel_cmd, env, cwd)
            if not forked:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            process, provisioner = forked, self.provisioner
            provisioner.process, provisioner.pid, provisioner.pgid, provisioner.cwd = process, process.pid, \
                process.pid, cwd
            self._reconcile_connection_info(provisioner.connection_info)

    return ForkedKernelManager


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
