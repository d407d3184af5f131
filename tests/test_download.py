"""The "Run it yourself" bundle (book/_ext/dlbook_download.py): what a reader downloads runs without the repository,
and the download menu offers it on every page."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sitecheck import toc_pages

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from dlbook_download import ZIP_NAME, download_buttons, reader_requirements, theme_options  # noqa: E402

CHAPTERS = sorted(p.replace(".html", ".ipynb") for p in toc_pages() if (ROOT / p.replace(".html", ".ipynb")).exists())


def _pathto(target, resource=0):
    return f"../../{target}"


def test_menu_offers_the_notebook_the_bundle_and_pdf_but_no_markdown_source():
    theme = [{"label": "download-source-button", "text": ".md"}, {"label": "download-pdf-button", "text": ".pdf"}]
    chapter = download_buttons(theme, _pathto, "book/convnets/stride.ipynb")
    labels = [b["label"] for b in chapter]
    assert labels == ["download-notebook-button", "download-bundle-button", "download-pdf-button"]
    assert chapter[0]["url"].endswith("_sources/book/convnets/stride.ipynb")
    assert chapter[1]["url"].endswith(f"_static/{ZIP_NAME}")
    page = download_buttons(theme, _pathto, None)
    assert [b["label"] for b in page] == ["download-bundle-button", "download-pdf-button"]
    assert "笔记本" in download_buttons(theme, _pathto, None, "zh_CN")[0]["text"]  # the Chinese edition's menu


def test_repository_button_exactly_when_a_url_is_set_and_never_a_launch_button():
    off = theme_options({"repository_url": "", "launch_buttons": {"binderhub_url": "https://mybinder.org"}})
    on = theme_options({"repository_url": "https://example.org/dlbook"})
    assert off["use_repository_button"] is False and on["use_repository_button"] is True
    for options in (off, on):
        assert not any(options["launch_buttons"][k] for k in ("binderhub_url", "colab_url", "thebe"))


def test_reader_requirements_keep_the_books_pins_and_drop_its_build_tools():
    lines = reader_requirements(ROOT / "requirements.txt").split()
    pins = set((ROOT / "requirements.txt").read_text(encoding="utf-8").split())
    assert set(lines) <= pins and "torch==2.14.1" in lines and any(x.startswith("jupyterlab==") for x in lines)
    assert not any(x.split("==")[0] in ("jupyter-book", "sphinx", "pytest", "playwright") for x in lines)


@pytest.fixture(scope="module")
def bundle(site_dir, tmp_path_factory) -> Path:
    """The bundle the site offers, unpacked into a folder outside the repository."""
    target = tmp_path_factory.mktemp("reader")
    with zipfile.ZipFile(site_dir / "_static" / ZIP_NAME) as zf:
        zf.extractall(target)
    return target / "dlbook"


@pytest.mark.slow
def test_bundle_holds_every_chapter_the_wheel_and_the_two_commands(bundle):
    assert sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*.ipynb")) == CHAPTERS
    wheels = list(bundle.glob("dlbook-*.whl"))
    assert len(wheels) == 1
    readme = (bundle / "README.txt").read_text(encoding="utf-8")
    assert f"pip install -r requirements.txt {wheels[0].name}" in readme and "jupyter lab book" in readme
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
    modules = {f"dlbook/{p.name}" for p in (ROOT / "src" / "dlbook").glob("*.py")}
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"


@pytest.mark.slow
def test_every_page_offers_the_bundle(site_dir):
    missing = [p for p in toc_pages() if "download-bundle-button" not in (site_dir / p).read_text(encoding="utf-8")]
    assert not missing, f"pages without the bundle in their download menu: {missing}"


@pytest.mark.slow
def test_a_chapter_from_the_bundle_runs_with_only_the_wheel(bundle, tmp_path):
    """A reader's machine: the package comes from the wheel (unpacked onto the path), not from this repository."""
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(next(bundle.glob("dlbook-*.whl"))) as wheel:
        wheel.extractall(site)
    nb = nbformat.read(bundle / "book" / "convnets" / "convolution.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import dlbook\nprint(dlbook.__file__)"))
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(site)  # the kernel inherits it; it comes before the editable install
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(bundle / "book" / "convnets")}}).execute()
    finally:
        if env_before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = env_before
    printed = nb.cells[-1].outputs[0]["text"].strip()
    assert printed.startswith(str(site)), f"the chapter imported dlbook from {printed}, not from the wheel"
