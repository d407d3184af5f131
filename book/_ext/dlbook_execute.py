"""Execute each chapter once, in parallel, and keep its outputs until something it depends on changes.

A chapter's outputs depend on more than its code cells: on the ``dlbook`` modules it imports (and the modules those
import), on the package's data files, on the pinned requirements, on the widget mode (``DLBOOK_WIDGETS``) and on which
datasets are present. ``chapter_key`` hashes all of these. A chapter is executed when its key differs from the one
stored with its cached outputs; the outputs go into the jupyter-cache that myst-nb reads in ``cache`` mode, so the
page is built from them without a second execution. Stale chapters run concurrently, one kernel per core, the
longest first: by their last run in this cache, else by ``execution-seconds.json`` next to this file (what each
chapter took in the last ``make bench-build``; a chapter not in it counts as a typical one), so that a first build does
not start a long chapter last. When two or more chapters are stale, on Linux, their kernels are forks of a server that
has imported torch and ipykernel once (``dlbook_kernels.py``).

As a Sphinx extension it does this before the build reads any page (``builder-inited``), and it tells Sphinx to re-read
the pages whose key changed even when their notebook file did not (``env-get-outdated``): an edit to
``src/dlbook/conv.py`` re-executes and re-renders the chapters that import ``dlbook.conv``, and only those.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import hashlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat
from filelock import FileLock
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn

PACKAGE = "dlbook"


# Deliberately remembered for the life of the process: every chapter reads the same modules, so each is parsed once
# per build, not once per chapter; the key is the source itself, so an edited module is parsed afresh.
@functools.cache
def _imported_dlbook_modules(source: str) -> frozenset[str]:
    """Names of the dlbook modules a piece of Python source imports: ``{"conv", "plotting", "__init__"}``."""
    # IPython magics and shell escapes are not Python: blank them so that the cell still parses
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside the package: `from .conv import ...` / `from . import conv`
                parts = (node.module or "").split(".")
                found |= {parts[0]} if parts[0] else {alias.name for alias in node.names}
            elif node.module and node.module.split(".")[0] == PACKAGE:
                parts = node.module.split(".")
                found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1:
                    found.add(parts[1])
    return frozenset(found | {"__init__"})


def dependency_files(code: str, package_dir: Path) -> list[Path]:
    """The package files that code importing from ``dlbook`` runs: the modules it imports, the modules those import
    (transitively), and every non-Python file of the package (data files, scripts and styles)."""
    todo, seen = set(_imported_dlbook_modules(code)), set()
    while todo:
        name = todo.pop()
        path = package_dir / f"{name}.py"
        if name in seen or not path.exists():  # a name imported from __init__ that is not a module
            seen.add(name)
            continue
        seen.add(name)
        todo |= _imported_dlbook_modules(path.read_text(encoding="utf-8")) - seen
    modules = [package_dir / f"{name}.py" for name in seen if (package_dir / f"{name}.py").exists()]
    data = [p for p in package_dir.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    return sorted(set(modules) | set(data))


def data_state(data_dir: Path) -> str:
    """What datasets are present: every file under the data folder with its size (a download changes it)."""
    if not data_dir.is_dir():
        return "no data folder"
    files = sorted(p for p in data_dir.rglob("*") if p.is_file())
    return "\n".join(f"{p.relative_to(data_dir)} {p.stat().st_size}" for p in files)


def chapter_key(nb: nbformat.NotebookNode, code_hash: str, package_dir: Path, requirements: Path,
                data_dir: Path, widgets: str) -> str:
    """Hash of everything a chapter's outputs depend on (see the module docstring)."""
    h = hashlib.sha256()
    h.update(code_hash.encode())
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    for path in dependency_files(code, package_dir):
        h.update(str(path.relative_to(package_dir)).encode() + b"\0" + path.read_bytes())
    h.update(requirements.read_bytes() if requirements.exists() else b"no requirements")
    h.update(f"python {sys.version_info[:2]}; widgets {widgets}".encode())
    h.update(data_state(data_dir).encode())
    return h.hexdigest()


@dataclass
class ChapterRun:
    """What happened to one chapter: ``status`` is "cached", "executed", "failed" or "stale" (not executed)."""
    path: Path
    status: str
    seconds: float = 0.0
    error: str = ""


ESTIMATES = Path(__file__).with_name("execution-seconds.json")


def load_estimates(book_dir: Path, path: Path = ESTIMATES) -> dict[Path, float]:
    """Seconds each chapter took when last measured, ``{book_dir / "training/datasets.ipynb": 19.0, ...}`` (resolved
    paths); empty if the file is missing or unreadable. They only order a chapter that this cache has never run."""
    try:
        seconds = json.loads(path.read_text(encoding="utf-8"))
        return {(book_dir / name).resolve(): float(value) for name, value in seconds.items()}
    except (OSError, ValueError, TypeError, AttributeError):  # a guess that cannot be read is no guess
        return {}


def save_estimates(cache_dir: Path, book_dir: Path, path: Path = ESTIMATES) -> dict[str, float]:
    """Add the execution times stored in the cache at ``cache_dir`` for the chapters under ``book_dir`` (whole
    seconds, by path relative to ``book_dir``) to the estimates in ``path``; return what was measured. A cache with
    no chapter of ``book_dir`` in it is refused: it would say nothing."""
    book_dir = Path(book_dir).resolve()
    measured = {}
    for record in get_cache(str(cache_dir)).list_cache_records():
        chapter = Path(record.uri).resolve()
        if chapter.is_relative_to(book_dir) and (record.data or {}).get("execution_seconds"):
            measured[chapter.relative_to(book_dir).as_posix()] = round(record.data["execution_seconds"])
    if not measured:
        raise ValueError(f"no chapter under {book_dir} has an execution time in the cache at {cache_dir}")
    known = {name.relative_to(book_dir).as_posix(): s for name, s in load_estimates(book_dir, path).items()
             if name.is_relative_to(book_dir)}
    path.write_text(json.dumps(dict(sorted((known | measured).items())), indent=1) + "\n", encoding="utf-8")
    return measured


def kernel_env(widgets: str, threads: int) -> dict[str, str]:
    """The environment of a chapter's kernel: this process's, with ``DLBOOK_WIDGETS=widgets``, and ``threads`` threads
    for torch unless ``OMP_NUM_THREADS`` says otherwise (kernels side by side share the cores: one kernel's torch
    should not take them all)."""
    return {"OMP_NUM_THREADS": str(threads), **os.environ, "DLBOOK_WIDGETS": widgets}


def kernel_config() -> dict[str, dict[str, str]]:
    """How the chapters' kernel managers are configured: with CurveZMQ keys (jupyter_client's ``transport_encryption``
    "auto": when the kernelspec says the kernel supports them) where pyzmq has CurveZMQ. A kernel that talks over plain
    TCP logs a warning about it when it starts (ipykernel 7.3 and later), once per chapter in the build's output.
    Without CurveZMQ, jupyter_client refuses "auto" (a TraitError, not a quiet fallback): hence the check."""
    import zmq

    return {"KernelManager": {"transport_encryption": "auto"}} if zmq.has("curve") else {}


def _execute(path: Path, timeout: int, env: dict[str, str],
             kernel_manager_class: type | None = None) -> tuple[nbformat.NotebookNode, float]:
    from nbclient import NotebookClient
    from traitlets.config import Config

    source = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(source)
    start = time.perf_counter()
    # "immediate": once the last cell's outputs are in, the kernel's process group is killed (nbclient has waited for
    # every cell's reply and for the kernel to go idle). A graceful shutdown lets the interpreter tear torch down
    # first: 2-3 s a chapter here, during which the next chapter waits.
    kernels = {"kernel_manager_class": kernel_manager_class} if kernel_manager_class else {}
    NotebookClient(nb, timeout=timeout, allow_errors=False, record_timing=False, shutdown_kernel="immediate",
                   resources={"metadata": {"path": str(path.parent)}}, config=Config(kernel_config()),
                   **kernels).execute(env=env)
    seconds = time.perf_counter() - start
    # the cache finds these outputs by the hash of the notebook as the reader has it: keep its metadata
    nb.metadata["kernelspec"] = source.metadata.get("kernelspec", {})
    for ran, cell in zip(nb.cells, source.cells, strict=True):
        ran.metadata = cell.metadata
    return nb, seconds


def execute_chapters(paths: list[Path], cache_dir: Path, *, package_dir: Path, requirements: Path, data_dir: Path,
                     widgets: str, timeout: int = 300, workers: int | None = None,
                     log=print, execute: bool = True,
                     estimates: dict[Path, float] | None = None) -> dict[Path, ChapterRun]:
    """Execute the chapters whose key changed, with ``DLBOOK_WIDGETS=widgets``, ``workers`` at a time (default: one per
    core), longest first, and store their outputs in the jupyter-cache at ``cache_dir``. Returns what happened to each
    chapter. With ``execute=False`` nothing runs: the chapters that would have run come back with status "stale".
    "Longest" is a chapter's last run in this cache, else its ``estimates`` entry (seconds, by resolved path).

    Two builds that share the cache (two terminals, the test workers) take turns to execute: the second waits, then
    finds the first one's outputs instead of executing the same chapters again. (Only execution is locked: a build
    reading the cache while another one in a different widget mode writes it may read either one's outputs.)"""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with FileLock(str(Path(cache_dir) / "dlbook-execute.lock")):
        return _execute_chapters(paths, cache_dir, package_dir=package_dir, requirements=requirements,
                                 data_dir=data_dir, widgets=widgets, timeout=timeout, workers=workers, log=log,
                                 execute=execute, estimates=estimates or {})


def _execute_chapters(paths, cache_dir, *, package_dir, requirements, data_dir, widgets, timeout, workers, log,
                      execute, estimates) -> dict[Path, ChapterRun]:
    cache = get_cache(str(cache_dir))
    records = cache.list_cache_records()
    todo, runs = [], {}
    typical = statistics.median(estimates.values()) if estimates else 0.0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        code_hash = cache.create_hashed_notebook(nb)[1]
        key = chapter_key(nb, code_hash, package_dir, requirements, data_dir, widgets)
        cached = next((r for r in records if r.hashkey == code_hash), None)
        if cached is not None and (cached.data or {}).get("dlbook_key") == key:
            runs[path] = ChapterRun(path, "cached", (cached.data or {}).get("execution_seconds", 0.0))
            continue
        previous = [(r.data or {}).get("execution_seconds", 0.0) for r in records if r.uri == str(path)]
        # its last run here; else what it took when measured; else a typical chapter's time, not the shortest
        guess = max(previous) if previous else estimates.get(Path(path).resolve(), typical)
        todo.append((guess, path))
    if not execute:
        return runs | {path: ChapterRun(path, "stale") for _, path in todo}
    todo.sort(key=lambda item: -item[0])  # longest first: the last chapter to start is a short one
    cores = os.cpu_count() or 1
    workers = max(1, min(len(todo), workers or cores))
    env = kernel_env(widgets, threads=max(1, cores // workers))

    def run(path: Path) -> tuple[ChapterRun, nbformat.NotebookNode | None]:
        log(f"executing {path.name}")
        try:
            nb, seconds = _execute(path, timeout, env, kernel_manager_class=forks and forks.kernel_manager_class)
        except Exception as exc:  # noqa: BLE001 - a failing cell is reported, and fails the build
            return ChapterRun(path, "failed", error=f"{type(exc).__name__}: {exc}"), None
        return ChapterRun(path, "executed", seconds), nb

    if not todo:
        return runs
    # forks pay when several kernels start, each with one thread (with more, OpenBLAS starts a thread in the server
    # when it imports NumPy, and a server with threads forks nothing)
    forking = len(todo) > 1 and env["OMP_NUM_THREADS"] == "1"
    with _kernel_forks(env, log) if forking else contextlib.nullcontext() as forks, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(run, path) for _, path in todo]):
            chapter, nb = future.result()
            runs[chapter.path] = chapter
            if nb is None:
                log(f"{chapter.path.name} failed")
                continue
            # kept as each chapter finishes: an interrupted build keeps what it executed
            code_hash = cache.create_hashed_notebook(nb)[1]
            # the key is taken after the run: a dataset downloaded while executing belongs to these outputs
            key = chapter_key(nb, code_hash, package_dir, requirements, data_dir, widgets)
            for old in cache.list_cache_records():
                if old.uri == str(chapter.path) and old.hashkey != code_hash:
                    cache.remove_cache(old.pk)  # an earlier version of this chapter
            cache.cache_notebook_bundle(
                CacheBundleIn(nb, str(chapter.path), data={"dlbook_key": key, "execution_seconds": chapter.seconds}),
                check_validity=False, overwrite=True)
            log(f"executed {chapter.path.name} in {chapter.seconds:.1f} s")
    return runs


def _kernel_forks(env: dict[str, str], log) -> contextlib.AbstractContextManager:
    """Kernels forked from a server that has imported torch and ipykernel (``dlbook_kernels.py``), on Linux. Elsewhere
    (forking a process that has loaded such libraries is not safe on macOS), or if the server cannot start, nothing:
    each kernel starts afresh."""
    if not sys.platform.startswith("linux"):
        return contextlib.nullcontext()
    import importlib.util

    spec = importlib.util.spec_from_file_location("dlbook_kernels", Path(__file__).with_name("dlbook_kernels.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module.KernelForks(env)
    except (OSError, RuntimeError) as exc:
        log(f"kernels start afresh: {exc}")
        return contextlib.nullcontext()


# --------------------------------------------------------------------------------------------------------------------
# Sphinx glue


def default_cache_dir(root: Path) -> Path:
    """One execution cache for every build of the book (the site, the tests' builds): ``$DLBOOK_CACHE`` or
    ``_build/.jupyter_cache`` at the book's root."""
    return Path(os.environ.get("DLBOOK_CACHE") or root / "_build" / ".jupyter_cache").resolve()


def book_notebooks(app) -> list[Path]:
    """The notebooks this build will read (the table of contents' pages, after the config's exclusions)."""
    docnames = app.project.discover(app.config.exclude_patterns, app.config.include_patterns)
    paths = (Path(app.project.doc2path(doc, absolute=True)) for doc in docnames)
    return sorted(p for p in paths if p.suffix == ".ipynb")


def _package_and_data() -> tuple[Path, Path]:
    """The folder of the ``dlbook`` package the chapters import and the data folder of ``dlbook.data.data_root()``,
    found without importing the package (which imports torch: two seconds for each build that only checks keys)."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)  # a top-level package is located, not run
    if spec is None or spec.origin is None or not spec.submodule_search_locations:  # origin None: a namespace
        raise ImportError(f"the {PACKAGE} package is not installed (pip install -e .)")
    env = os.environ.get("DLBOOK_DATA")  # as data_root() with no argument; tests/test_execute.py holds them equal
    data = Path(env).expanduser() if env else Path.home() / ".cache" / "dlbook"
    return Path(spec.submodule_search_locations[0]), data


def _set_cache_path(app, config) -> None:
    config.nb_execution_cache_path = str(default_cache_dir(Path(app.srcdir)))


def _execute_stale(app) -> None:
    app.dlbook_keys = {}
    if app.config.nb_execution_mode != "cache" or app.builder.name == "gettext":
        return
    from sphinx.errors import ExtensionError
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    package_dir, data_dir = _package_and_data()
    srcdir = Path(app.srcdir)
    runs = execute_chapters(book_notebooks(app), Path(app.config.nb_execution_cache_path), package_dir=package_dir,
                            requirements=srcdir / "requirements.txt", data_dir=data_dir,
                            widgets=os.environ.get("DLBOOK_WIDGETS", "live"),
                            timeout=app.config.nb_execution_timeout, log=logger.info,
                            execute=app.config.dlbook_execute, estimates=load_estimates(srcdir / "book"))
    stale = [r for r in runs.values() if r.status == "stale"]
    if stale:  # a build that must not execute (the Chinese edition reads the English edition's outputs)
        raise ExtensionError("these chapters have no up-to-date outputs; build the English edition first: "
                             + ", ".join(str(r.path.relative_to(srcdir)) for r in stale))
    failed = [r for r in runs.values() if r.status == "failed"]
    if failed:
        raise ExtensionError("chapters failed to execute:\n" + "\n\n".join(
            f"{r.path.relative_to(srcdir)}: {r.error[-3000:]}" for r in failed))
    cache = get_cache(app.config.nb_execution_cache_path)
    for record in cache.list_cache_records():
        path = Path(record.uri)
        if path.is_relative_to(srcdir):
            app.dlbook_keys[str(path.relative_to(srcdir).with_suffix(""))] = (record.data or {}).get("dlbook_key")


def _outdated(app, env, added, changed, removed) -> list[str]:
    """Pages whose outputs changed although their notebook did not (a dlbook module they import was edited)."""
    stored = getattr(env, "dlbook_keys", {})
    stale = [doc for doc, key in app.dlbook_keys.items()
             if doc in env.found_docs and stored.get(doc) != key and doc not in added and doc not in changed]
    env.dlbook_keys = dict(app.dlbook_keys)
    return stale


def setup(app):
    app.add_config_value("dlbook_execute", True, "env")  # False: use the cached outputs, never execute
    app.connect("config-inited", _set_cache_path)
    app.connect("builder-inited", _execute_stale)
    app.connect("env-get-outdated", _outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
