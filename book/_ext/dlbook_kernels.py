"""Kernels forked from a process that has already imported what every kernel imports.

Every chapter runs in a kernel of its own, started afresh (``python -m ipykernel_launcher``), and every one of them
imports the same things before its first cell has done anything: ipykernel and IPython to start, then torch and NumPy
(2 s of CPU here, `python -c "import numpy, torch, IPython, ipykernel.kernelapp"`). :class:`KernelForks` starts one
server process that imports them once (``PRELOAD``); each kernel is then a fork (``os.fork``) of that server. A small
chapter went from 6.9 s to 5.6 s here (medians of 5, executed alternately one way and the other).

A forked kernel is the kernel ``python -m ipykernel_launcher`` starts, with the same command line (``sys.argv``,
``sys.orig_argv``), environment, working folder and ``sys.path``, an empty pipe at end-of-file as its standard input and
the build's output and error streams, in a session (process group) of its own, so that nbclient's kill reaches it and
whatever it spawns. What it shares with the server, and so with the other kernels of the build: Python's string hash
seed, multiprocessing's authentication key, and the warnings filters that importing torch and NumPy add (present before
its cells import them, so their order can differ). Importing ``PRELOAD`` prints nothing and draws no random state
(tests/test_kernels.py): no first cell loses an output to the server, and Python's ``random`` is reseeded in a fork.
matplotlib is not imported in advance: it chooses its backend, from ``MPLBACKEND``, which the kernel sets, when
imported. When the kernel ends by itself it runs its exit handlers and leaves with ``os._exit`` (the build kills each
kernel once its last output is in). Its parent is the server, not the build: ipykernel's check that the process which
started it is alive then watches nothing, and the server's end (below) ends it instead.

The server's environment is the kernels' (libraries read some variables, such as ``OMP_NUM_THREADS``, when imported):
a kernel with another environment or command is started the usual way, and so is one the server cannot fork. It forks
only while it has a single thread (a fork copies only the thread that calls it; with ``OMP_NUM_THREADS=1`` importing
``PRELOAD`` starts none).

Protocol: the build connects to the server's Unix socket once per kernel and sends one JSON line (argv, env, cwd); the
server forks and answers ``{"pid": ...}``, and ``{"returncode": ...}`` once it has reaped the kernel. A request it
cannot serve gets its connection closed, which makes that kernel start the usual way.

No kernel outlives its build: a connection that closes before its kernel has ended (the build died) gets its kernel's
process group killed; the server ends when its standard input (a pipe from the build) closes or on SIGTERM, and kills
the kernels still running; a kernel dies with the server however the server ends (``PR_SET_PDEATHSIG``; what the
kernel started then lives on, as it does when a usual kernel is killed). The server has a session of its own, so a
Ctrl-C in the terminal reaches the build, not the server.
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
import time
from pathlib import Path

PRELOAD = ("numpy", "torch", "IPython", "ipykernel.kernelapp")
LAUNCHER = ["-m", "ipykernel_launcher"]  # what the kernel's command runs, after the interpreter
HERE = os.path.dirname(os.path.realpath(__file__))  # as Python puts a script's folder on sys.path: resolved


# --------------------------------------------------------------------------------------------------------------------
# The server (run as ``python dlbook_kernels.py SOCKET READY_FD``)


def _die_with(server: int) -> None:
    """Have Linux kill this process when its parent, the server, ends, however it ends (``PR_SET_PDEATHSIG``)."""
    import ctypes

    PR_SET_PDEATHSIG = 1  # noqa: N806 - the name in <sys/prctl.h>
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != server:  # the server ended before the request was in place
        os._exit(1)


def _exit_code(exc: SystemExit) -> int:
    """The exit status an interpreter gives ``raise SystemExit(code)``: None 0, an int itself, else (printed) 1."""
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def _become_kernel(request: dict, server: int, inherited: list[socket.socket]) -> None:
    """In the forked child: turn into ``python -m ipykernel_launcher ...`` as ``request`` describes."""
    os.setsid()  # a process group of its own, as jupyter_client's start_new_session gives a kernel
    _die_with(server)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server's own handler
    # an empty pipe whose write end is closed, as jupyter_client leaves a kernel's: reading it gives end-of-file
    read_end, write_end = os.pipe()
    os.close(write_end)
    os.dup2(read_end, 0)
    os.close(read_end)
    for sock in inherited:  # the server's sockets (this copy of them only)
        sock.close()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # a fresh `python -m` interpreter's path: its working folder first (the launcher removes it), then the standard one
    sys.path[:] = [os.getcwd(), *request["path"]]
    sys.argv = [LAUNCHER[1], *request["argv"][len(LAUNCHER) + 1:]]
    sys.orig_argv = list(request["argv"])
    import runpy

    runpy.run_module(LAUNCHER[1], run_name="__main__", alter_sys=True)


def _run_kernel(request: dict, server: int, inherited: list[socket.socket]) -> None:
    """The forked child's whole life: the kernel, then its exit handlers, then ``os._exit`` (an uncaught
    KeyboardInterrupt as 130, where an interpreter kills itself with SIGINT); never returns."""
    code = 1
    try:
        try:
            _become_kernel(request, server, inherited)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except KeyboardInterrupt:
            code = 128 + signal.SIGINT
        except BaseException:  # noqa: BLE001 - reported on the build's error stream, then the kernel is gone
            import traceback

            traceback.print_exc()
        import atexit

        atexit._run_exitfuncs()  # what an interpreter runs on its way out
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        try:
            os._exit(code & 0xFF)
        finally:
            os._exit(1)


def _kill(pid: int) -> None:
    """SIGKILL to the kernel's process group: the kernel and whatever it started."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:  # already gone, or not yet in a group of its own
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def serve(path: str, ready: int) -> None:
    """Import ``PRELOAD``, listen on the Unix socket ``path`` (say so on the file descriptor ``ready``), fork a kernel
    per request and report how each ended. Ends, killing the kernels still running, when its standard input closes
    (the build has ended) or on SIGTERM."""
    import importlib

    fresh_path = [p for i, p in enumerate(sys.path) if i or os.path.abspath(p) != HERE]  # without this file's folder
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
            watched = [c for c in watched if c.fileno() >= 0]
            for conn in select.select(watched, [], [], 0.1)[0]:
                if conn is sys.stdin:
                    if not os.read(sys.stdin.fileno(), 1024):  # the build has ended
                        return
                    continue
                try:
                    _serve_one(conn, listener, requests, kernels, fresh_path)
                except Exception:  # noqa: BLE001 - this request or connection only: close it (a kernel of its: kill it)
                    requests.pop(conn, None)
                    for pid in [p for p, c in kernels.items() if c is conn]:
                        _kill(pid)
                        kernels[pid] = None
                    conn.close()
            _reap(kernels)
    finally:
        for pid in kernels:
            _kill(pid)


def _serve_one(conn: socket.socket, listener: socket.socket, requests: dict, kernels: dict,
               fresh_path: list[str]) -> None:
    """Whatever ``conn`` has to say: a new connection, a request (fork), or the end of a kernel's connection."""
    if conn is listener:
        requests[listener.accept()[0]] = b""
        return
    data = conn.recv(65536)
    if conn not in requests:  # the connection of a running kernel: closed means its build is gone, and so is it
        if not data:
            pid = next(p for p, c in kernels.items() if c is conn)
            _kill(pid)
            conn.close()
            kernels[pid] = None
        return
    requests[conn] += data
    if data and not requests[conn].endswith(b"\n"):
        return
    request = json.loads(requests.pop(conn))  # raises for a request cut short
    request = {"argv": list(request["argv"]), "env": dict(request["env"]), "cwd": str(request["cwd"]),
               "path": fresh_path}
    if len(os.listdir("/proc/self/task")) != 1:  # a fork copies only the thread that forks
        raise OSError("the server has more than one thread")
    sys.stdout.flush()
    sys.stderr.flush()
    server = os.getpid()
    # the server's sockets; its standard input is replaced by the kernel's (fd 0)
    inherited = [c for c in (listener, conn, *requests, *kernels.values()) if c is not None]
    pid = os.fork()
    if pid == 0:
        _run_kernel(request, server, inherited)
    try:
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except OSError:  # the build stopped waiting: nobody will use this kernel
        _kill(pid)
        raise
    finally:
        kernels[pid] = conn


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
        answer = self._message(timeout=60)
        if not answer or "pid" not in answer:
            conn.close()
            raise RuntimeError("the kernel fork server did not fork a kernel")
        self.pid = int(answer["pid"])

    def _message(self, timeout: float | None) -> dict | None:
        """The server's next message, waiting up to ``timeout`` seconds (None: as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._conn], [], [], left)[0]:
                return None
            data = self._conn.recv(4096)
            if not data:  # the server closed the connection without a word: no kernel, or it is gone
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
        if self.poll() is None:  # not to a process that has ended (its pid may be another's by now)
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class KernelForks:
    """A fork server for kernels started with environment ``env`` (as given to nbclient): ``with KernelForks(env) as
    forks: ...``; ``forks.kernel_manager_class`` is the jupyter_client kernel manager whose kernels are its forks.

    The server starts at once, in the environment its kernels will have (with the ``JPY_PARENT_PID`` jupyter_client
    adds, which ipykernel reads when imported); it is ready before any chapter starts, so no chapter's time includes it.
    """

    def __init__(self, env: dict[str, str], timeout: float = 60.0) -> None:
        self.env = {k: v for k, v in env.items() if k != "PYTHONEXECUTABLE"}  # jupyter_client drops it
        self.env["JPY_PARENT_PID"] = str(os.getpid())
        self._folder = tempfile.TemporaryDirectory(prefix="dlbook-kernels-")
        self.socket = str(Path(self._folder.name) / "server")
        ready, tell = os.pipe()
        # its standard input is a pipe that nothing writes to: it closes when this process ends, however it ends
        self._server = subprocess.Popen([sys.executable, os.path.abspath(__file__), self.socket, str(tell)],
                                        env=self.env, stdin=subprocess.PIPE, pass_fds=[tell], start_new_session=True)
        os.close(tell)
        with os.fdopen(ready, "rb") as said:
            started = select.select([said], [], [], timeout)[0] and said.readline().strip() == b"ready"
        if not started:
            self.close()
            raise RuntimeError("the kernel fork server did not start")
        self.kernel_manager_class = _manager_class(self)

    def launch(self, cmd: list[str], env: dict[str, str], cwd: str) -> ForkedKernel | None:
        """The kernel ``cmd`` (``python -m ipykernel_launcher ...``) with ``env`` in ``cwd``, forked from the server;
        None if it cannot be: another interpreter or command, another environment, or a server that has ended."""
        # the same interpreter by its path, not its target: a venv's python is a link to the one it was made from
        if not cmd or os.path.abspath(cmd[0]) != os.path.abspath(sys.executable) or cmd[1:3] != LAUNCHER:
            return None
        if env != self.env or self._server.poll() is not None:
            return None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.socket)
            conn.sendall(json.dumps({"argv": cmd, "env": env, "cwd": str(cwd)}).encode() + b"\n")
        except OSError:
            conn.close()
            raise
        return ForkedKernel(conn)

    def close(self) -> None:
        """Stop the server; it kills the kernels still running."""
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
            forked = None
            # only what a usual launch is given here: other Popen options (streams, ...) go the usual way
            if isinstance(self.provisioner, LocalProvisioner) and set(kw) <= {"env", "cwd"} and "env" in kw:
                env = {**kw["env"], "JPY_PARENT_PID": str(os.getpid())}  # as jupyter_client's launcher sets it
                cwd = str(kw.get("cwd") or os.getcwd())
                try:
                    forked = forks.launch(kernel_cmd, env, cwd)
                except (OSError, RuntimeError):  # the server is gone or could not fork: the kernel starts slower
                    forked = None
            if forked is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            provisioner = self.provisioner
            provisioner.process, provisioner.pid, provisioner.pgid, provisioner.cwd = forked, forked.pid, \
                forked.pid, cwd
            self._reconcile_connection_info(provisioner.connection_info)

    return ForkedKernelManager


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
