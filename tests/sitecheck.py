"""Checks of the built site shared by the browser tests: page errors, and static sliders that really swap frames."""

from __future__ import annotations

import json
import traceback
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


# What one visit of a page records (see survey_pages); the browser tests read these instead of loading every page
# once per check.
_FACTS_JS = """() => ({
    size: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
    broken: [...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src.slice(0, 80)),
    wide_equations: [...document.querySelectorAll('mjx-container[display="true"]')]
        .filter(m => m.scrollWidth > m.clientWidth + 1)
        .map(m => [m.scrollWidth, m.clientWidth, m.textContent.slice(0, 40)]),
    widget_ids: [...document.querySelectorAll('.dlbook-interact, .dlbook-app')].map(e => e.id),
    sliders: [...document.querySelectorAll('div.dlbook-interact input.dlbook-slider')].map(s => s.dataset.param),
    // elements reaching past the box they are drawn in: their section and its overflow-clip-margin (the sections of
    // a chapter contain their paint, dlbook.css, so the part beyond would be cut off) or the article's column; boxes
    // that scroll or clip on purpose (overflow-x other than visible) hold what is inside them
    clipped: (() => {
        const article = document.querySelector('.bd-article');
        if (!article) return [];
        const inBox = e => { for (let a = e.parentElement; a && a !== article; a = a.parentElement) {
            if (getComputedStyle(a).overflowX !== 'visible') return true; } return false; };
        const past = e => {
            const section = e.closest('.bd-article > section > section');
            const box = (section || article).getBoundingClientRect();
            const margin = section ? parseFloat(getComputedStyle(section).overflowClipMargin) || 0 : 0;
            const r = e.getBoundingClientRect();
            return r.width > 0 && (r.right > box.right + margin + 0.5 || r.left < box.left - margin - 0.5);
        };
        return [...article.querySelectorAll('*')].filter(past).filter(e => !inBox(e)).slice(0, 5)
            .map(e => { const r = e.getBoundingClientRect();
                        return `${e.tagName.toLowerCase()}.${e.className} spans ${Math.round(r.left)}-`
                               + `${Math.round(r.right)} px: ${e.textContent.trim().slice(0, 40)}`; });
    })(),
    squeezed: [...document.querySelectorAll('div.cell_output img')]
        .filter(i => i.complete && i.naturalWidth > 0 && i.width > 0)
        .filter(i => Math.abs((i.width / i.height) / (i.naturalWidth / i.naturalHeight) - 1) > 0.02)
        .map(i => i.width + 'x' + i.height + ' ' + i.src.slice(-40)),
})"""


def survey_pages(browser, site_url: str, paths: list[str], width: int, *, move_sliders: bool,
                 settle_ms: int = 300) -> dict[str, dict]:
    """Visit each page once, in one browser context with a viewport ``width`` px wide, and record what the browser
    tests check: ``status`` (HTTP), ``errors`` (console and page errors until ``settle_ms`` after MathJax has typeset
    the page; offline requests to other hosts left out), and then ``size`` (scrollWidth, clientWidth of the page),
    ``broken`` images, ``wide_equations`` (display equations wider than their box), ``clipped`` (elements reaching past
    their section or the article's column, outside a box that scrolls or clips), ``widget_ids``, ``sliders`` (the
    parameter of each slider of the static slider figures) and ``squeezed`` images (shown with another aspect ratio
    than their own). With ``move_sliders`` every slider of every static slider figure is then moved once
    (check_static_slider_figure): ``moves`` counts the checked moves per figure, ``slider_failure`` holds the failed
    check's message and traceback. ``late_errors`` are the errors after ``errors``, until ``settle_ms`` after the last
    move (or after the facts were read); a survey of the layout alone can pass ``settle_ms=0``. ``crash`` holds the
    traceback of anything else that went wrong on the page (a timeout, a missing frame): the survey goes on with the
    next page, so that one broken page fails its own checks."""
    context = browser.new_context(viewport={"width": width, "height": 900 if width > 800 else 844})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    out = {}
    try:
        for path in paths:
            errors.clear()  # the previous page's late errors were read after its own settle_ms
            facts = {"status": None, "errors": [], "moves": [], "slider_failure": None, "late_errors": [],
                     "crash": None}
            try:
                response = page.goto(f"{site_url}/{path}", wait_until="load")
                facts["status"] = response.status if response is not None else None
                # MathJax typesets in the task after DOMContentLoaded: wait for its promise, then let the page settle
                page.wait_for_function("() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)",
                                       timeout=15000)
                page.evaluate("() => window.MathJax && MathJax.startup.promise")
                page.wait_for_timeout(settle_ms)
                facts |= page.evaluate(_FACTS_JS)
                facts["errors"] = real_errors(errors, site_url)
                if move_sliders:
                    widgets = page.locator("div.dlbook-interact")
                    for i in range(widgets.count()):
                        try:
                            facts["moves"].append(check_static_slider_figure(widgets.nth(i)))
                        except AssertionError:
                            facts["slider_failure"] = f"slider figure {i}:\n{traceback.format_exc()}"
                            break
                page.wait_for_timeout(settle_ms)
                facts["late_errors"] = real_errors(errors, site_url)[len(facts["errors"]):]
            except Exception:  # noqa: BLE001 - recorded, and failed by this page's tests
                facts["crash"] = traceback.format_exc()
            out[path] = facts
    finally:
        context.close()
    return out
