"""Every chapter notebook: committed without outputs, listed in the table of contents, importing from dlbook."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sitecheck import toc_pages

ROOT = Path(__file__).resolve().parents[1]


def _tracked_notebooks() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True)
    tracked = [ROOT / line for line in out.stdout.splitlines() if line]
    # notebooks not yet committed count too: a new chapter must be clean before it is added
    untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "*.ipynb"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.splitlines()
    return sorted(set(tracked) | {ROOT / u for u in untracked})


NOTEBOOKS = _tracked_notebooks()


def test_there_are_chapters():
    assert any(p.parts[-3:-1] == ("book", "convnets") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_in_the_toc(path):
    rel = str(path.relative_to(ROOT).with_suffix(".html"))
    assert rel in toc_pages(), f"{rel} is not in _toc.yml: readers of the site would never find it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_seeds_and_uses_the_package(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "seed_everything(" in code, f"{path.name}: the setup cell must call seed_everything"
    assert "from dlbook" in code, f"{path.name}: a chapter imports its implementations from dlbook"
    assert "import *" not in code, f"{path.name}: no star imports"
