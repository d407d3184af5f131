"""The built static site, driven in headless Chromium: every page loads cleanly, math renders, sliders work offline."""

from __future__ import annotations

import pytest

from sitecheck import check_static_slider_figure, real_errors, toc_pages

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_every_toc_page_exists(site_dir):
    missing = [p for p in toc_pages() if not (site_dir / p).exists()]
    assert not missing, f"pages in _toc.yml missing from the build: {missing}"


@pytest.mark.parametrize("path", toc_pages())
def test_page_loads_without_errors(page, site_url, path):
    response = page.goto(f"{site_url}/{path}", wait_until="load")
    assert response is not None and response.ok, f"{path}: HTTP {response.status if response else 'none'}"
    page.wait_for_timeout(300)  # let MathJax and the slider scripts run
    errors = real_errors(page.js_errors, site_url)
    assert not errors, f"{path}: JavaScript errors: {errors}"
    broken = page.evaluate("() => [...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src.slice(0, 80))")
    assert not broken, f"{path}: images that did not load: {broken}"


def test_math_renders_offline(page, site_url):
    page.goto(f"{site_url}/book/convnets/convolution.html", wait_until="load")
    page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 0", timeout=15000)
    raw = page.evaluate("() => document.body.innerText.includes('\\\\sum')")
    assert not raw, "raw TeX is visible: MathJax did not typeset the page"


# The slider parameters each chapter must offer (a subset: a chapter may have more).
EXPECTED_SLIDERS = {
    "book/convnets/convolution.html": {"kernel_size", "kernel"},
    "book/convnets/padding.html": {"k", "p", "kernel", "size"},
    "book/convnets/stride.html": {"s", "p", "layers"},
    "book/convnets/pooling.html": {"kernel_size", "stride", "p", "shift", "window"},
    "book/convnets/resampling.html": {"r", "scale", "step", "stride", "kernel_size"},
    "book/training/datasets.html": {"batch_size", "padding"},
    "book/training/forward-backprop.html": {"depth", "weight_scale"},
    "book/training/batch-size-epochs.html": {"batch_size", "lr"},
    "book/training/regularization.html": {"strength", "weight_decay", "max_norm", "p", "patience"},
    "book/autoencoders/autoencoders.html": {"code_size", "noise"},
    "book/autoencoders/vae.html": {"beta", "z1", "z2"},
    "book/attention/attention.html": {"D", "mask", "num_heads"},
    "book/attention/transformers.html": {"temperature", "top_k", "layer", "head"},
}


@pytest.mark.parametrize("path", sorted(EXPECTED_SLIDERS))
def test_chapter_offers_its_sliders(page, site_url, path):
    page.goto(f"{site_url}/{path}", wait_until="load")
    widgets = page.locator("div.dlbook-interact")
    params = set()
    for i in range(widgets.count()):
        sliders = widgets.nth(i).locator("input.dlbook-slider")
        params |= {sliders.nth(j).get_attribute("data-param") for j in range(sliders.count())}
    missing = EXPECTED_SLIDERS[path] - params
    assert not missing, f"{path}: no slider for {sorted(missing)} (sliders: {sorted(params)})"


def test_widget_ids_are_unique(page, site_url):
    for path in toc_pages():
        page.goto(f"{site_url}/{path}", wait_until="load")
        ids = page.evaluate("() => [...document.querySelectorAll('.dlbook-interact, .dlbook-app')].map(e => e.id)")
        assert len(ids) == len(set(ids)), f"{path}: two interactive figures share an id: {ids}"


@pytest.mark.parametrize("path", [p for p in toc_pages() if p.endswith(".html") and p.count("/") == 2])
def test_every_slider_figure_swaps_frames(page, site_url, path):
    """On every chapter, every precomputed slider figure shows the frame for the values its sliders are moved to."""
    page.goto(f"{site_url}/{path}", wait_until="load")
    widgets = page.locator("div.dlbook-interact")
    for i in range(widgets.count()):
        assert check_static_slider_figure(widgets.nth(i)) >= 1
    assert not real_errors(page.js_errors, site_url)


@pytest.mark.parametrize("path", ["book/convnets/padding.html", "book/convnets/stride.html"])
def test_arithmetic_explorer_is_on_the_page(page, site_url, path):
    page.goto(f"{site_url}/{path}", wait_until="load")
    size = page.locator(".dlbook-app .dlbook-explorer-size").first
    size.wait_for()
    assert size.get_attribute("data-size") not in (None, "", "error")
