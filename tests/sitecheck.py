"""Checks of the built site shared by the browser tests: page errors, and static sliders that really swap frames."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Requests to hosts other than the local server fail offline; only those console errors are tolerated.
_OFFLINE_MARKERS = ("net::ERR_NAME_NOT_RESOLVED", "net::ERR_INTERNET_DISCONNECTED", "net::ERR_CONNECTION_REFUSED",
                    "net::ERR_ADDRESS_UNREACHABLE", "Failed to load resource")


def toc_pages() -> list[str]:
    """Every page in _toc.yml, as a path relative to the site root ending in .html."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [f"{f}.html" for f in files]


def real_errors(errors: list[str], local: str) -> list[str]:
    """The console/page errors that are not failed requests to third-party hosts."""
    out = []
    for e in errors:
        if any(m in e for m in _OFFLINE_MARKERS) and local not in e:
            continue
        out.append(e)
    return out


def _slider_values(widget) -> dict[str, str]:
    values = {}
    for i in range(widget.locator("input.dlbook-slider").count()):
        s = widget.locator("input.dlbook-slider").nth(i)
        values[s.get_attribute("data-param")] = s.evaluate("el => el.getAttribute('aria-valuetext')")
    return values


def check_static_slider_figure(widget) -> int:
    """Move every slider of one static slider figure with the keyboard; after each move the image must be the
    frame precomputed for the new slider values. Returns the number of moves checked."""
    data = json.loads(widget.locator("script.dlbook-data").text_content())
    img = widget.locator("img.dlbook-frame")
    sliders = widget.locator("input.dlbook-slider")
    moves = 0
    for i in range(sliders.count()):
        s = sliders.nth(i)
        s.scroll_into_view_if_needed()
        before_src, before_key = img.get_attribute("src"), img.get_attribute("data-key")
        at_end = s.evaluate("el => Number(el.value) === Number(el.max)")
        s.focus()
        s.press("ArrowLeft" if at_end else "ArrowRight")
        values = _slider_values(widget)
        key = "|".join(f"{k}={v}" for k, v in values.items())
        assert key != before_key, f"moving slider {s.get_attribute('data-param')} did not change the settings"
        assert img.get_attribute("data-key") == key
        frame = data["frames"][key]
        expected = data["urls"][frame] if "urls" in data else f"data:{data['mime']};base64," + data["images"][frame]
        src = img.get_attribute("src")
        assert src == expected, f"after moving {s.get_attribute('data-param')} the figure is not the frame for {key}"
        if data["frames"][key] != data["frames"][before_key]:
            assert src != before_src
        label = widget.locator("output").nth(i).text_content()
        assert label == values[s.get_attribute("data-param")]
        moves += 1
    return moves
