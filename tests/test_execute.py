"""The execution step of the build (book/_ext/dlbook_execute.py): every chapter executes without error, once per test
run, and a chapter is executed again exactly when something its outputs depend on changed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from dlbook.data import data_root
from sitecheck import toc_pages

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from dlbook_execute import (  # noqa: E402
    _outdated,
    _package_and_data,
    chapter_key,
    default_cache_dir,
    dependency_files,
    execute_chapters,
    load_estimates,
    save_estimates,
)

PACKAGE = ROOT / "src" / "dlbook"
CHAPTERS = [ROOT / p.replace(".html", ".ipynb") for p in toc_pages() if (ROOT / p.replace(".html", ".ipynb")).exists()]


@pytest.fixture(scope="session")
def chapter_runs():
    """Execute every chapter in static-widget mode, as the site build does; the build then reads the same cache."""
    return execute_chapters(CHAPTERS, default_cache_dir(ROOT), package_dir=PACKAGE,
                            requirements=ROOT / "requirements.txt",
                            data_dir=data_root(), widgets="static", estimates=load_estimates(ROOT / "book"))


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_executes_without_error(chapter_runs, path):
    run = chapter_runs[path]
    assert run.status in ("executed", "cached"), f"{path.relative_to(ROOT)} failed:\n{run.error[-4000:]}"


def _code(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def test_a_chapter_depends_on_the_modules_it_imports_and_theirs():
    files = {p.name for p in dependency_files("from dlbook.conv import conv2d\nfrom dlbook import seed_everything",
                                              PACKAGE)}
    assert {"conv.py", "__init__.py"} <= files
    assert "attention.py" not in files and "autoencoders.py" not in files
    # transitive: whatever conv.py itself imports from the package is a dependency too
    conv_source = (PACKAGE / "conv.py").read_text()
    for name in ("_checks", "arithmetic"):
        if f"from .{name} import" in conv_source or f"from dlbook.{name} import" in conv_source:
            assert f"{name}.py" in files
    # package data (the corpus, scripts, styles) is a dependency of every chapter
    assert {p.name for p in PACKAGE.rglob("*.txt")} <= files
    # magics do not hide imports
    assert "padding.py" in {p.name for p in dependency_files("%matplotlib inline\nimport dlbook.padding", PACKAGE)}


@pytest.mark.parametrize("env", [None, "/tmp/dlbook-data", "~/data/dlbook"])
def test_the_package_and_data_folders_are_found_without_importing_the_package(monkeypatch, env):
    import dlbook

    if env is None:
        monkeypatch.delenv("DLBOOK_DATA", raising=False)
    else:
        monkeypatch.setenv("DLBOOK_DATA", env)
    package_dir, data_dir = _package_and_data()
    assert package_dir == Path(dlbook.__file__).parent
    assert data_dir == data_root()
    # and without torch: a build whose chapters are all cached does not pay for importing it
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import dlbook_execute; dlbook_execute._package_and_data();"
             " print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, str(ROOT / "book" / "_ext")], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def _key(nb_path: Path, package: Path, requirements: Path, data: Path, widgets: str = "static") -> str:
    nb = nbformat.read(nb_path, as_version=4)
    return chapter_key(nb, "code-hash", package, requirements, data, widgets)


def test_the_key_changes_with_everything_the_outputs_depend_on(tmp_path):
    package = tmp_path / "dlbook"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    requirements = tmp_path / "requirements.txt"
    shutil.copy(ROOT / "requirements.txt", requirements)
    data = tmp_path / "data"
    data.mkdir()
    convolution = ROOT / "book" / "convnets" / "convolution.ipynb"
    attention = ROOT / "book" / "attention" / "attention.ipynb"
    assert "dlbook.conv" in _code(convolution) and "dlbook.attention" not in _code(convolution)
    before = _key(convolution, package, requirements, data)
    assert _key(convolution, package, requirements, data) == before  # deterministic

    with open(package / "attention.py", "a") as f:  # a module the chapter does not import
        f.write("\n\ndef _unused():\n    return 1\n")
    assert _key(convolution, package, requirements, data) == before
    att_before = _key(attention, PACKAGE, requirements, data)
    assert _key(attention, package, requirements, data) != att_before

    with open(package / "conv.py", "a") as f:  # a module it does import
        f.write("\n\ndef _unused():\n    return 1\n")
    after_conv = _key(convolution, package, requirements, data)
    assert after_conv != before
    assert _key(convolution, package, requirements, data, widgets="live") != after_conv
    requirements.write_text(requirements.read_text() + "\n# changed pin\n")
    after_req = _key(convolution, package, requirements, data)
    assert after_req != after_conv
    (data / "MNIST").mkdir()
    (data / "MNIST" / "train-images-idx3-ubyte").write_bytes(b"\0" * 16)
    assert _key(convolution, package, requirements, data) != after_req


def test_an_edited_module_re_executes_its_chapter_and_only_it(tmp_path):
    """End to end, with real kernels: two tiny chapters, each importing one module; editing one module re-executes only
    the chapter that imports it, and the cache holds the new outputs."""
    package = tmp_path / "dlbook"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    chapters = []
    for name, module in (("uses_ngram", "ngram"), ("uses_padding", "padding")):  # neither imports the other
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                               "language": "python"}})
        nb.cells = [nbformat.v4.new_code_cell(f"import dlbook.{module}\nprint('{name} ran')")]
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(nb, path)
        chapters.append(path)
    run = dict(package_dir=package, requirements=ROOT / "requirements.txt", data_dir=tmp_path / "data",
               widgets="static", log=lambda message: None)
    cache = tmp_path / "cache"

    first = execute_chapters(chapters, cache, **run)
    assert [first[p].status for p in chapters] == ["executed", "executed"]
    second = execute_chapters(chapters, cache, **run)
    assert [second[p].status for p in chapters] == ["cached", "cached"]

    with open(package / "ngram.py", "a") as f:
        f.write("\n\ndef _unused():\n    return 1\n")
    third = execute_chapters(chapters, cache, **run)
    assert [third[p].status for p in chapters] == ["executed", "cached"]

    from jupyter_cache import get_cache

    records = get_cache(str(cache)).list_cache_records()
    assert sorted(Path(r.uri).name for r in records) == ["uses_ngram.ipynb", "uses_padding.ipynb"]  # no stale copy
    bundle = get_cache(str(cache)).get_cache_bundle(next(r.pk for r in records if "ngram" in r.uri))
    assert "uses_ngram ran" in bundle.nb.cells[0].outputs[0]["text"]


def _tiny_chapter(path: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)
    return path


def _started(chapters, cache, estimates) -> list[str]:
    """The order in which ``execute_chapters`` starts ``chapters`` one at a time (only stale chapters start)."""
    started = []
    execute_chapters(chapters, cache, package_dir=PACKAGE, requirements=ROOT / "requirements.txt",
                     data_dir=cache.parent / "data", widgets="static", workers=1, estimates=estimates,
                     log=lambda message: message.startswith("executing ") and started.append(message.split()[1]))
    return started


def test_a_first_build_starts_the_chapters_that_took_longest_when_last_measured(tmp_path):
    (tmp_path / "real" / "part").mkdir(parents=True)
    (tmp_path / "book").symlink_to(tmp_path / "real")  # the cache stores resolved paths; the book is found by a link
    book = tmp_path / "book"
    chapters = [_tiny_chapter(book / "part" / f"{name}.ipynb", ("import time; time.sleep(1.5); " if name == "a"
                                                                 else "") + repr(name))
                for name in ("a", "b", "c", "new")]
    estimates = tmp_path / "execution-seconds.json"
    estimates.write_text('{"part/a.ipynb": 3, "part/b.ipynb": 20, "part/c.ipynb": 7, "part/gone.ipynb": 9}')
    # without estimates: the order given, a b c new; an unmeasured chapter counts as a typical one (median 8 s)
    assert _started(chapters, tmp_path / "cache", load_estimates(book, estimates)) == [
        "b.ipynb", "new.ipynb", "c.ipynb", "a.ipynb"]
    measured = save_estimates(tmp_path / "cache", book, estimates)  # what make bench-build writes after a build
    assert set(measured) == {"part/a.ipynb", "part/b.ipynb", "part/c.ipynb", "part/new.ipynb"}
    assert set(load_estimates(book, estimates)) == {(book / name).resolve() for name in [*measured, "part/gone.ipynb"]}
    # once run here, a chapter's own last run decides: "a" slept, and starts first whatever the estimates say
    for chapter in chapters:
        chapter.write_text(chapter.read_text().replace("'", '\\"'))  # new code: every chapter is stale again
    estimates.write_text('{"part/b.ipynb": 1000}')
    assert _started(chapters, tmp_path / "cache", load_estimates(book, estimates))[0] == "a.ipynb"


def test_estimates_that_cannot_be_read_are_no_estimates(tmp_path):
    for text in ("not json", '["a list"]', '{"part/a.ipynb": "slow"}'):
        (tmp_path / "e.json").write_text(text)
        assert load_estimates(tmp_path, tmp_path / "e.json") == {}
    assert load_estimates(tmp_path, tmp_path / "missing.json") == {}
    with pytest.raises(ValueError, match="no chapter"):  # an empty cache must not wipe the estimates
        save_estimates(tmp_path / "empty-cache", tmp_path, tmp_path / "e.json")


def test_a_failing_chapter_is_reported_with_its_error(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("assert 1 + 1 == 3, 'arithmetic is broken'")]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    runs = execute_chapters([path], tmp_path / "cache", package_dir=PACKAGE, requirements=ROOT / "requirements.txt",
                            data_dir=tmp_path / "data", widgets="static", log=lambda message: None)
    assert runs[path].status == "failed" and "arithmetic is broken" in runs[path].error
    from jupyter_cache import get_cache

    assert get_cache(str(tmp_path / "cache")).list_cache_records() == []  # nothing half-done is kept


def test_sphinx_re_reads_a_page_whose_outputs_changed_although_its_notebook_did_not():
    env = SimpleNamespace(found_docs={"a", "b", "c"}, dlbook_keys={"a": "k1", "b": "k2", "c": "k3"})
    app = SimpleNamespace(dlbook_keys={"a": "k1", "b": "CHANGED", "c": "k3"})
    assert _outdated(app, env, added=set(), changed=set(), removed=set()) == ["b"]
    assert env.dlbook_keys["b"] == "CHANGED"
    assert _outdated(app, env, added=set(), changed=set(), removed=set()) == []  # and then it is up to date
