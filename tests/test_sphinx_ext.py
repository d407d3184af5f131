"""The site's Sphinx extension (book/_ext/dlbook_sphinx.py), piece by piece, without building the site."""

from __future__ import annotations

import sys
from pathlib import Path

import pybtex.plugin
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
from dlbook_sphinx import _plaintext_backend_at_hand  # noqa: E402


def test_the_plaintext_backend_is_found_without_searching_the_installed_packages(monkeypatch):
    _plaintext_backend_at_hand()

    def no_search(*args, **kwargs):
        raise AssertionError("pybtex searched the installed packages' entry points")

    monkeypatch.setattr(pybtex.plugin, "entry_points", no_search)
    backend = pybtex.plugin.find_plugin("pybtex.backends", "plaintext")
    assert backend.__module__ == "pybtex.backends.plaintext"
    with pytest.raises(AssertionError, match="searched"):  # the false world: an unregistered plugin is searched for
        pybtex.plugin.find_plugin("pybtex.backends", "html")
