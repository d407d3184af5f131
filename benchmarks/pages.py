"""How fast the built site's pages load in headless Chromium: DOMContentLoaded and the time until MathJax has typeset
the page, per chapter page, both editions.

Run with `make bench-pages` after `make book`. The site is served from 127.0.0.1 by a local server; each page is
loaded once to warm the browser's cache, then ``--repeats`` times, and the table gives the median and the spread
(min–max) in milliseconds from the start of navigation. Measure on an idle machine: these are wall-clock times.

These numbers are targets to watch, not tests: nothing here fails the test suite.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import statistics
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0  # DOMContentLoaded of a chapter page on localhost
_TIMES = """() => new Promise(done => {
  const report = () => {
    const n = performance.getEntriesByType('navigation')[0];
    const m = performance.getEntriesByName('dlbook-maths-typeset')[0];  // set by the site once MathJax has typeset
    done([n.domContentLoadedEventEnd, m ? m.startTime : null]);
  };
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { MathJax.startup.promise.then(report); }
  else { report(); }
})"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def chapter_pages(site: Path) -> list[str]:
    return sorted(str(p.relative_to(site)) for p in (site / "book").glob("*/*.html"))


def measure(site: Path, repeats: int) -> dict[str, dict[str, list[float]]]:
    from playwright.sync_api import sync_playwright

    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    out: dict[str, dict[str, list[float]]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            for edition in ("", "zh/"):
                for path in chapter_pages(site):
                    page.goto(f"{url}/{edition}{path}", wait_until="load")  # warm the cache
                    runs = []
                    for _ in range(repeats):
                        page.goto(f"{url}/{edition}{path}", wait_until="load")
                        runs.append(page.evaluate(_TIMES))
                    out[edition + path] = {"domcontentloaded": [r[0] for r in runs], "math": [r[1] for r in runs]}
            browser.close()
    finally:
        server.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html")
    args = parser.parse_args()
    times = measure(args.site, args.repeats)

    def cell(values: list[float | None]) -> str:
        values = [v for v in values if v is not None]  # None: a page without maths
        if not values:
            return "–"
        return f"{statistics.median(values):6.0f} ({min(values):.0f}–{max(values):.0f})"

    print(f"{'page':48s}{'DOMContentLoaded ms':>24s}{'maths typeset ms':>24s}")
    for path, t in times.items():
        flag = "  over target" if statistics.median(t["domcontentloaded"]) > TARGET_MS else ""
        print(f"{path:48s}{cell(t['domcontentloaded']):>24s}{cell(t['math']):>24s}{flag}")
    medians = [statistics.median(t["domcontentloaded"]) for t in times.values()]
    print(f"\nDOMContentLoaded, median page: {statistics.median(medians):.0f} ms; slowest page: {max(medians):.0f} ms "
          f"(target {TARGET_MS:.0f} ms)")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "pages.json").write_text(json.dumps({"repeats": args.repeats, "ms": times}, indent=1))


if __name__ == "__main__":
    main()
