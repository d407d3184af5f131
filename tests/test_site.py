"""The built static site, driven in headless Chromium: every page loads cleanly, math renders, sliders work offline."""

from __future__ import annotations

import json
import os
import re

import pytest

from sitecheck import survey_pages, toc_pages

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the English site and, in its folder zh/, the Chinese edition built from the same outputs (book/_ext/editions.py)
EDITIONS = ["", "zh/"]
CHAPTERS = [p for p in toc_pages() if p.endswith(".html") and p.count("/") == 2]


@pytest.fixture(scope="session")
def survey(browser, site_url, tmp_path_factory):
    """``survey(edition, width)``: what one visit of every page of an edition at that width recorded (see
    sitecheck.survey_pages), each page visited once per test run and width; at 1280 px every slider is moved too and
    the page's errors are read, at 390 px only its layout.

    Under pytest-xdist the workers share each survey through a file: the first worker to ask for one makes it while
    a worker asking for the same one waits on its lock; a worker asking for another makes that one meanwhile."""
    done = {}
    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else None

    def make(edition: str, width: int) -> dict[str, dict]:
        # errors are checked at 1280 px, where the sliders move; at 390 px only the layout is, without waiting
        desktop = width == 1280
        return survey_pages(browser, site_url, [edition + p for p in toc_pages()], width, move_sliders=desktop,
                            settle_ms=300 if desktop else 0)

    def get(edition: str, width: int) -> dict[str, dict]:
        if (edition, width) in done:
            return done[edition, width]
        if shared is None:
            done[edition, width] = make(edition, width)
            return done[edition, width]
        from filelock import FileLock

        path = shared / f"survey-{edition.strip('/') or 'en'}-{width}.json"
        with FileLock(f"{path}.lock"):
            if not path.exists():  # written whole, then renamed: a worker that dies leaves no half-written survey
                path.with_suffix(".tmp").write_text(json.dumps(make(edition, width)), encoding="utf-8")
                os.replace(path.with_suffix(".tmp"), path)
            done[edition, width] = json.loads(path.read_text(encoding="utf-8"))
        return done[edition, width]

    return get


def _whole(pages: dict[str, dict]) -> dict[str, dict]:
    """A survey whose every page was read: a check across all pages fails on a page that could not be read."""
    crashed = {path: facts["crash"] for path, facts in pages.items() if facts["crash"]}
    assert not crashed, f"pages the survey could not read: {crashed}"
    return pages


@pytest.mark.parametrize("edition", EDITIONS)
def test_every_toc_page_exists(site_dir, edition):
    missing = [p for p in toc_pages() if not (site_dir / edition / p).exists()]
    assert not missing, f"pages in _toc.yml missing from the build: {missing}"


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("path", toc_pages())
def test_page_loads_without_errors(survey, edition, path):
    facts = survey(edition, 1280)[edition + path]
    assert facts["crash"] is None, f"{edition + path}: {facts['crash']}"
    assert facts["status"] == 200, f"{edition + path}: HTTP {facts['status']}"
    assert not facts["errors"], f"{edition + path}: JavaScript errors: {facts['errors']}"
    if not facts["sliders"]:  # on a page with sliders the late errors belong to their moves (checked below)
        assert not facts["late_errors"], f"{edition + path}: JavaScript errors after loading: {facts['late_errors']}"
    assert not facts["broken"], f"{edition + path}: images that did not load: {facts['broken']}"


@pytest.mark.parametrize("edition", EDITIONS)
def test_math_renders_offline(page, site_url, edition):
    page.goto(f"{site_url}/{edition}book/convnets/convolution.html", wait_until="load")
    page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 0", timeout=15000)
    raw = page.evaluate("() => document.body.innerText.includes('\\\\sum')")
    assert not raw, "raw TeX is visible: MathJax did not typeset the page"


# The slider parameters each chapter must offer (a subset: a chapter may have more).
EXPECTED_SLIDERS = {
    "book/convnets/convolution.html": {"kernel_size", "kernel"},
    "book/convnets/padding.html": {"kernel_size", "padding", "input_size", "kernel"},
    "book/convnets/stride.html": {"stride", "padding", "scheme", "layers"},
    "book/convnets/pooling.html": {"kernel_size", "stride", "norm_type", "shift", "window"},
    "book/convnets/resampling.html": {"factor", "frequency", "scale", "step", "stride", "kernel_size"},
    "book/training/datasets.html": {"batch_size", "padding"},
    "book/training/forward-backprop.html": {"weight", "row", "column", "depth", "weight_scale"},
    "book/training/batch-size-epochs.html": {"batch_size", "lr"},
    "book/training/regularization.html": {
        "strength", "weight_decay", "max_norm", "drop_probability", "patience"},
    "book/autoencoders/autoencoders.html": {"code_size", "noise"},
    "book/autoencoders/vae.html": {"beta", "z1", "z2"},
    "book/attention/attention.html": {"dimension", "scores", "mask", "num_heads"},
    "book/attention/transformers.html": {"position", "temperature", "top_k", "layer", "head"},
}


@pytest.mark.parametrize("path", sorted(EXPECTED_SLIDERS))
def test_chapter_offers_its_sliders(survey, path):
    facts = survey("", 1280)[path]
    assert facts["crash"] is None, f"{path}: {facts['crash']}"
    params = set(facts["sliders"])
    missing = EXPECTED_SLIDERS[path] - params
    assert not missing, f"{path}: no slider for {sorted(missing)} (sliders: {sorted(params)})"


@pytest.mark.parametrize("edition", EDITIONS)
def test_widget_ids_are_unique(survey, edition):
    for path, facts in _whole(survey(edition, 1280)).items():
        ids = facts["widget_ids"]
        assert len(ids) == len(set(ids)), f"{path}: two interactive figures share an id: {ids}"


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("path", CHAPTERS)
def test_every_slider_figure_swaps_frames(survey, edition, path):
    """On every chapter, every precomputed slider figure shows the frame for the values its sliders are moved to
    (sitecheck.check_static_slider_figure, run on each figure during the survey)."""
    facts = survey(edition, 1280)[edition + path]
    assert facts["crash"] is None, f"{edition + path}: {facts['crash']}"
    assert facts["slider_failure"] is None, f"{edition + path}: {facts['slider_failure']}"
    assert all(moves >= 1 for moves in facts["moves"]), f"{edition + path}: a slider figure without sliders"
    assert not facts["late_errors"], f"{edition + path}: errors while moving sliders: {facts['late_errors']}"


@pytest.mark.parametrize("path", ["book/convnets/padding.html", "book/convnets/stride.html"])
def test_arithmetic_explorer_is_on_the_page(page, site_url, path):
    page.goto(f"{site_url}/{path}", wait_until="load")
    page.wait_for_function("() => document.querySelector('.dlbook-app .dlbook-explorer[data-ready]')")  # unpacked
    size = page.locator(".dlbook-app .dlbook-explorer-size").first
    assert size.get_attribute("data-size") not in (None, "", "error")
    assert page.locator(".dlbook-app svg.dlx-output rect.dlx-cell").count() > 0  # drawn
    assert "hover" not in page.locator(".dlbook-explorer").first.inner_text().lower()


def _on_screen(locator) -> bool:
    """Visible and inside the viewport (a hidden sidebar slides off to the left, where Playwright still sees it)."""
    return locator.is_visible() and locator.evaluate(
        "el => { const r = el.getBoundingClientRect(); return r.right > 0 && r.left < innerWidth; }")


def _visible_button(page, selector):
    buttons = [b for b in page.locator(selector).all() if b.is_visible()]
    assert buttons, f"no visible {selector} button"
    return buttons[0]


def test_table_of_contents_opens_by_tapping_on_a_phone(browser, site_url):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.goto(f"{site_url}/book/convnets/stride.html", wait_until="load")
    chapter_link = page.locator("#pst-primary-sidebar-modal a[href*='pooling.html']")
    assert not chapter_link.is_visible()
    _visible_button(page, ".primary-toggle").tap()
    chapter_link.wait_for(state="visible", timeout=3000)
    assert page.evaluate("() => document.getElementById('pst-primary-sidebar-modal').open")
    chapter_link.tap()
    page.wait_for_url("**/pooling.html")
    # the page contents (secondary sidebar) open the same way
    _visible_button(page, ".secondary-toggle").tap()
    page.locator("#pst-secondary-sidebar-modal nav a").first.wait_for(state="visible", timeout=3000)
    context.close()


def test_table_of_contents_hides_and_shows_by_clicking_on_a_desktop(page, site_url):
    page.goto(f"{site_url}/book/convnets/stride.html", wait_until="load")
    chapter_link = page.locator("#pst-primary-sidebar a[href*='pooling.html']")
    assert _on_screen(chapter_link)
    button = _visible_button(page, ".primary-toggle")
    button.click()
    page.wait_for_function("() => !document.querySelector('#pst-primary-sidebar').checkVisibility()"
                           " || document.querySelector('#pst-primary-sidebar').getBoundingClientRect().right <= 0",
                           timeout=3000)
    assert not _on_screen(chapter_link)
    button.click()
    page.wait_for_function("() => document.querySelector('#pst-primary-sidebar').getBoundingClientRect().left >= 0",
                           timeout=3000)
    page.wait_for_timeout(400)  # the slide-in transition
    assert _on_screen(chapter_link)


def test_no_page_carries_a_launch_configuration_for_another_repository(site_dir):
    # the book sets no repository URL, so there is nothing to launch: no Binder/thebe configuration at all
    leftovers = [str(p.relative_to(site_dir)) for p in site_dir.rglob("*.html")
                 if "text/x-thebe-config" in (text := p.read_text(encoding="utf-8")) or "binder-examples" in text]
    assert not leftovers, f"pages with a thebe/Binder launch configuration: {leftovers[:5]}"


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("width", [390, 1280])
def test_no_page_scrolls_sideways(survey, width, edition):
    """The page itself never scrolls sideways (code blocks may scroll inside their own box)."""
    wide = [f"{path} ({scroll} px in {client} px)" for path, facts in _whole(survey(edition, width)).items()
            for scroll, client in [facts["size"]] if scroll > client]
    assert not wide, f"at {width} px these pages scroll sideways: {wide}"


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("width", [390, 1280])
def test_nothing_reaches_past_the_text_column(survey, width, edition):
    """No element reaches past its section (or the article's column) on either side unless it sits in a box that
    scrolls or clips on purpose (a wide equation on a phone): the sections contain their paint, so the part outside
    would be cut off, not scroll the page."""
    clipped = [f"{path}: {what}" for path, facts in _whole(survey(edition, width)).items() for what in facts["clipped"]]
    assert not clipped, f"at {width} px these elements reach past their section: {clipped}"


@pytest.mark.parametrize("edition", EDITIONS)
def test_no_display_equation_is_wider_than_the_text_column_on_a_desktop(survey, edition):
    """At 1280 px every display equation fits the column: a long one is set on several lines, not scrolled. (On a
    phone a wide equation scrolls inside its own box; the page itself never does, see above.)"""
    wide = [f"{path}: {w} px in {c} px: {text}" for path, facts in _whole(survey(edition, 1280)).items()
            for w, c, text in facts["wide_equations"]]
    assert not wide, f"display equations wider than the column: {wide}"


@pytest.mark.parametrize("edition, query", [("", "padding"), ("zh/", "卷积")])
def test_the_header_search_box_leads_to_results_without_the_index_on_the_page(page, site_url, edition, query):
    page.goto(f"{site_url}/{edition}book/convnets/stride.html", wait_until="load")
    assert page.evaluate("() => typeof Search === 'undefined'")  # no search index on a chapter page
    page.locator("button.search-button__button:visible").first.click()
    box = page.locator("#pst-search-dialog input[type=search]")
    box.fill(query)
    box.press("Enter")
    page.wait_for_url("**/search.html?q=*")
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)


@pytest.mark.parametrize("query, chapter", [("stride", "Stride"), ("padding", "Padding"), ("pooling", "Pooling"),
                                            ("dropout", "Regularization")])
def test_search_puts_the_chapter_named_by_the_query_first(page, site_url, query, chapter):
    page.goto(f"{site_url}/search.html?q={query}", wait_until="load")
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    first = page.locator("#search-results ul.search li a").first.inner_text()
    assert first.startswith(chapter), f"searching {query!r} lists {first!r} first"


def test_code_tokens_drawn_without_spans_have_the_code_blocks_colour(site_dir):
    """The build drops the spans of names, punctuation and spaces in listings (book/_ext/dlbook_sphinx.py), which is
    invisible only while the style gives them the colour of the code block itself, in light and in dark mode."""
    css = (site_dir / "_static" / "pygments.css").read_text(encoding="utf-8")
    for theme in ("light", "dark"):
        block = re.search(rf'html\[data-theme="{theme}"\] \.highlight {{[^}}]*color: (#\w+)', css).group(1)
        for token in ("n", "p", "w"):
            colour = re.search(rf'html\[data-theme="{theme}"\] \.highlight \.{token} {{ color: (#\w+)', css)
            assert colour and colour.group(1).lower() == block.lower(), f"{theme}: .{token} is drawn in its own colour"
    page = (site_dir / "book" / "convnets" / "padding.html").read_text(encoding="utf-8")
    assert '<span class="n">' not in page and '<span class="k">' in page  # dropped, and only those


@pytest.mark.parametrize("edition", EDITIONS)
def test_mathjax_is_fetched_early_and_run_after_the_page_is_ready(site_dir, edition):
    """No chapter page loads MathJax with a script tag (async or deferred, it would run before DOMContentLoaded): its
    configuration comes first, then the script that adds MathJax once the page is ready, with the URL (and its
    checksum) that a preload link fetches while the page is parsed."""
    for path in CHAPTERS:
        page = (site_dir / edition / path).read_text(encoding="utf-8")
        assert not re.search(r"<script[^>]*src=\"[^\"]*tex-mml-chtml", page), f"{edition + path}: MathJax script tag"
        loader = re.search(r'"DOMContentLoaded", function \(\) \{ var s = document\.createElement\("script"\); '
                           r's\.src = "([^"]*tex-mml-chtml\.js\?v=\w+)"', page)
        assert loader, f"{edition + path}: no script that adds MathJax once the page is ready"
        assert 0 <= page.find("window.MathJax = ") < loader.start(), f"{edition + path}: MathJax loader before config"
        src = loader.group(1)
        assert f'<link rel="preload" as="script" href="{src}">' in page, f"{edition + path}: no preload of {src}"
        assert (site_dir / edition / path).parent.joinpath(src.split("?")[0]).resolve().is_file()


@pytest.mark.parametrize("edition", EDITIONS)
def test_the_icon_script_runs_after_the_page_is_ready(site_dir, edition):
    """The theme loads Font Awesome (1.5 MB) as a deferred script, which runs before DOMContentLoaded; every page of
    the book adds it once the page is ready instead (book/_templates/layout.html)."""
    for path in toc_pages():
        page = (site_dir / edition / path).read_text(encoding="utf-8")
        assert not re.search(r"<script[^>]*src=\"[^\"]*fontawesome\.js", page), f"{edition + path}: icon script tag"
        assert re.search(r'"DOMContentLoaded", function \(\) \{ var s = document\.createElement\("script"\); '
                         r's\.src = "[^"]*fontawesome\.js', page), f"{edition + path}: no icon script"


@pytest.mark.parametrize("edition", EDITIONS)
def test_chapter_pages_are_light_and_frames_are_files(site_dir, edition):
    """Slider frames are files the page fetches when shown, not base64 in the HTML: every page stays under 400 KB."""
    site_dir = site_dir / edition
    heavy = {p: (site_dir / p).stat().st_size for p in toc_pages() if (site_dir / p).stat().st_size > 400_000}
    assert not heavy, f"pages over 400 KB: {heavy}"
    inline = [p for p in toc_pages()
              if re.search(r'<img class="dlbook-frame"[^>]*src="data:', (site_dir / p).read_text(encoding="utf-8"))]
    assert not inline, f"pages with inline slider frames: {inline}"
    assert any((site_dir / "_images" / "frames").iterdir())


def test_figures_keep_their_shape_on_a_phone(survey):
    """A figure narrower than its natural size is scaled, not squeezed: its shown aspect ratio is its own."""
    squeezed = [f"{path} {image}" for path, facts in _whole(survey("", 390)).items() for image in facts["squeezed"]]
    assert not squeezed, f"figures shown with another aspect ratio than their own: {squeezed[:5]}"


@pytest.mark.parametrize("path", ["book/intro.html", "book/convnets/padding.html", "book/glossary.html"])
def test_the_language_switch_leads_to_the_same_page_in_the_other_edition(page, site_url, path):
    page.goto(f"{site_url}/{path}", wait_until="load")
    assert page.evaluate("() => document.documentElement.lang") == "en"
    with page.expect_navigation():
        page.locator("a.btn-language-switch").first.click()
    assert page.url == f"{site_url}/zh/{path}"
    assert page.evaluate("() => document.documentElement.lang") == "zh-CN"
    with page.expect_navigation():
        page.locator("a.btn-language-switch").first.click()
    assert page.url == f"{site_url}/{path}"


def test_the_chinese_edition_is_in_chinese(page, site_url):
    page.goto(f"{site_url}/zh/book/convnets/padding.html", wait_until="load")
    assert "填充" in page.locator("h1").first.inner_text()
    prose = page.locator("article p").all_inner_texts()
    chinese = [p for p in prose if re.search(r"[\u4e00-\u9fff]{8}", p)]
    assert len(chinese) > 0.8 * len([p for p in prose if len(p) > 40]), "most paragraphs are not in Chinese"


@pytest.mark.parametrize("query, page_path", [("卷积", "book/convnets/resampling.html"),
                                              ("转置", "book/convnets/resampling.html"),
                                              ("正则化", "book/training/regularization.html")])
def test_chinese_search_finds_words_inside_compounds(page, site_url, query, page_path):
    """The Chinese search index splits text into words (jieba): 卷积 finds the page about 转置卷积."""
    page.goto(f"{site_url}/zh/search.html?q={query}", wait_until="load")
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    hrefs = page.locator("#search-results ul.search li a").evaluate_all("links => links.map(a => a.href)")
    assert any(h.split("?")[0].endswith(page_path) for h in hrefs), f"{query!r} does not find {page_path}: {hrefs}"


@pytest.mark.parametrize("text", ["卷积填充步长", "的一，。"])  # terms; the commonest characters and punctuation
def test_chinese_text_has_a_font_without_any_installed(page, site_url, text):
    """The site serves its own CJK font: the font faces for Chinese characters load from the site."""
    page.goto(f"{site_url}/zh/book/convnets/padding.html", wait_until="load")
    faces = page.evaluate("""async text => (await document.fonts.load('16px "dlbook CJK"', text))
        .map(f => f.status)""", text)
    assert faces and all(status == "loaded" for status in faces), faces


def test_every_chinese_character_of_the_edition_has_a_face_of_the_web_font(site_dir):
    """Each CJK character (and CJK punctuation) on a page of the Chinese edition lies in the unicode-range of a face
    of the site's font: without one it shows as a box where no CJK font is installed."""
    css = (site_dir / "_static" / "fonts" / "noto-sans-sc.css").read_text(encoding="utf-8")
    covered = set()
    for ranges in re.findall(r"unicode-range:\s*([^;]+);", css):
        for part in ranges.replace(" ", "").split(","):
            low, _, high = part.removeprefix("U+").partition("-")
            covered.update(range(int(low, 16), int(high or low, 16) + 1))
    shown = set()
    for html in (site_dir / "zh").rglob("*.html"):
        page = html.read_text(encoding="utf-8")
        text = re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", page, flags=re.S)
        shown.update(ch for ch in text if 0x3000 <= ord(ch) <= 0x9FFF or 0xFF00 <= ord(ch) <= 0xFFEF)
    missing = sorted(ch for ch in shown if ord(ch) not in covered)
    assert not missing, f"{len(missing)} characters without a face, e.g. {''.join(missing[:20])}"


def _frame_sizes(img) -> list[float]:
    """naturalWidth and shown width of a slider frame, once it has loaded."""
    img.page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle())
    return img.evaluate("i => [i.naturalWidth, i.getBoundingClientRect().width]")


def test_slider_frames_have_two_pixels_per_css_pixel(page, site_url):
    """Frames are rendered at 2x and shown at their CSS size, so they are sharp on high-density screens: at 1280 px
    each frame, the first one and one a slider moves to, is half as wide on the page as it has pixels."""
    page.goto(f"{site_url}/book/convnets/stride.html", wait_until="load")
    widgets = page.locator("div.dlbook-interact")
    assert widgets.count() >= 3
    for i in range(widgets.count()):
        img = widgets.nth(i).locator("img.dlbook-frame")
        img.scroll_into_view_if_needed()
        for _ in range(2):
            natural, shown = _frame_sizes(img)
            assert abs(natural - 2 * shown) <= 1, f"figure {i}: {natural} px shown {shown:.0f} px wide, not 2x"
            slider = widgets.nth(i).locator("input.dlbook-slider").first
            key = img.get_attribute("data-key")
            slider.focus()
            slider.press("ArrowLeft" if slider.evaluate("el => el.value === el.max") else "ArrowRight")
            page.wait_for_function("([i, k]) => i.dataset.key !== k && i.complete", arg=[img.element_handle(), key])
