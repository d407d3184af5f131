"""The "Run it yourself" download: everything a reader needs to run the chapters on their own machine.

After every HTML build, ``_static/dlbook-notebooks.zip`` holds the chapter notebooks (as committed: no outputs), the
``dlbook`` wheel they import, the pinned requirements a reader needs (the book's own pins, without its build and
test tools) and a README with the two commands. The wheel is rebuilt only when the package changed.

Every chapter's download menu offers the notebook (``.ipynb``), this bundle and print-to-PDF; the Markdown source of
a page is not offered (it is the build's input, not a reader's file). When ``_config.yml`` sets ``repository.url``,
the repository button appears; when it is empty, no button and no launch configuration does. There are no
Binder/Colab launch buttons: a notebook launched there could not import ``dlbook``; the bundle is the way to run.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ZIP_NAME = "dlbook-notebooks.zip"
# What a reader installs: the chapters' imports and JupyterLab. The pins come from the book's requirements.txt.
READER_PACKAGES = ("torch", "torchvision", "numpy", "matplotlib", "pillow", "scikit-learn", "tqdm", "threadpoolctl",
                   "ipywidgets", "ipykernel", "jupyterlab")
README = """dlbook: the chapters as notebooks, with the package they import

Needs Python 3.11. In this folder, two commands:

    python3.11 -m venv .venv && .venv/bin/pip install -r requirements.txt {wheel}
    .venv/bin/jupyter lab book

The first installs PyTorch and the rest (a few minutes); the second opens the chapters in JupyterLab, where the
sliders recompute live. Run a chapter from the top: its first cell seeds every random number, so you see the numbers
the book shows.
"""


def package_key(root: Path) -> str:
    """A hash of everything that goes into the wheel: the package source, its data files and pyproject.toml."""
    digest = hashlib.sha256()
    files = sorted(p for p in (root / "src" / "dlbook").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in [root / "pyproject.toml", root / "README.md", *files]:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_wheel(root: Path, cache: Path) -> Path:
    """The dlbook wheel for the current source, built once per package version of the source (kept in ``cache``)."""
    out = cache / package_key(root)
    wheels = sorted(out.glob("dlbook-*.whl"))
    if wheels:
        return wheels[0]
    with tempfile.TemporaryDirectory() as tmp:  # build from a copy, so no build/ folder appears in the repository
        shutil.copytree(root / "src", Path(tmp) / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(root / name, tmp)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                        "-w", str(out), tmp], check=True, capture_output=True)
    return sorted(out.glob("dlbook-*.whl"))[0]


def reader_requirements(requirements: Path) -> str:
    """The pinned lines of ``requirements`` for the packages a reader needs."""
    lines = [line for line in requirements.read_text(encoding="utf-8").splitlines()
             if line.split("==")[0].strip().lower() in READER_PACKAGES]
    return "\n".join(lines) + "\n"


def write_bundle(root: Path, notebooks: list[Path], wheel: Path, target: Path) -> Path:
    """Write the zip: ``dlbook/README.txt``, ``requirements.txt``, the wheel and ``book/<part>/<chapter>.ipynb``."""
    entries = {
        "dlbook/README.txt": README.format(wheel=wheel.name).encode(),
        "dlbook/requirements.txt": reader_requirements(root / "requirements.txt").encode(),
        f"dlbook/{wheel.name}": wheel.read_bytes(),
    }
    for nb in notebooks:
        entries[f"dlbook/{nb.relative_to(root).as_posix()}"] = nb.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):  # fixed order and dates: the same sources give the same bytes
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), entries[name])
    return target


def _chapters(app) -> list[Path]:
    root = Path(app.srcdir)
    return sorted(root / f"{doc}.ipynb" for doc in app.env.found_docs if (root / f"{doc}.ipynb").exists())


def _bundle(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    root = Path(app.srcdir)
    wheel = build_wheel(root, Path(app.outdir).parent / ".dlbook_wheels")
    write_bundle(root, _chapters(app), wheel, Path(app.outdir) / "_static" / ZIP_NAME)


# the bundle's entry in the menu, by edition (the theme translates its own entries)
BUNDLE_TEXT = {"en": ("notebooks + dlbook (.zip)", "Every chapter and the package it imports"),
               "zh": ("笔记本 + dlbook (.zip)", "每一章的笔记本及其导入的包")}


def download_buttons(buttons: list[dict], pathto, ipynb: str | None, language: str = "en") -> list[dict]:
    """The download menu: the page's notebook (if it is one), the bundle, print-to-PDF; no Markdown source."""
    kept = [b for b in buttons if b.get("label") == "download-pdf-button"]
    text, tooltip = BUNDLE_TEXT["zh" if language.startswith("zh") else "en"]
    bundle = {"type": "link", "url": pathto(f"_static/{ZIP_NAME}", 1), "text": text,
              "icon": "fas fa-file-zipper", "tooltip": tooltip, "label": "download-bundle-button"}
    notebook = [{"type": "link", "url": f"{pathto('_sources', 1)}/{ipynb}", "text": ".ipynb", "icon": "fas fa-code",
                 "tooltip": "Download notebook file", "label": "download-notebook-button"}] if ipynb else []
    return notebook + [bundle] + kept


def _menu(app, pagename, templatename, context, doctree) -> None:
    source = context.get("sourcename") or ""
    ipynb = source if source.endswith(".ipynb") else None
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"] = download_buttons(group["buttons"], context["pathto"], ipynb, app.config.language or "en")


def theme_options(options: dict) -> dict:
    """The repository button exactly when a repository URL is set; never a launch button."""
    options = dict(options)
    options["use_repository_button"] = bool((options.get("repository_url") or "").strip())
    launch = dict(options.get("launch_buttons") or {})
    launch.update(binderhub_url="", jupyterhub_url="", colab_url="", deepnote_url="", thebe=False)
    options["launch_buttons"] = launch
    return options


def _repository(app, config) -> None:
    config.html_theme_options = theme_options(config.html_theme_options or {})


def setup(app):
    app.connect("config-inited", _repository, priority=900)
    app.connect("html-page-context", _menu, priority=600)  # after the theme has made its buttons (priority 501)
    app.connect("build-finished", _bundle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
