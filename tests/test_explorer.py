"""The convolution-arithmetic explorer in headless Chromium: the sizes it shows equal dlbook.arithmetic's.

The explorer's HTML is written to a temporary file and opened through file:// — no server, no network, no kernel —
exactly the self-contained block the static site embeds.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from dlbook.arithmetic import (
    conv_output_size,
    conv_transpose_output_size,
    pool_output_size,
    unread_positions,
)
from dlbook.explorer import MODES, ExplorerLimits, arithmetic_explorer

DT = torch.float64

# Sets every control first, then fires one "input" event, as a reader's last slider move would; returns what the
# explorer shows for each case.
_DRIVE = """
([cases, index]) => {
  const app = document.querySelectorAll('.dlbook-explorer')[index];
  const mode = app.querySelector('select.dlbook-explorer-mode');
  const ceil = app.querySelector('input.dlbook-explorer-ceil');
  const size = app.querySelector('.dlbook-explorer-size');
  const out = [];
  for (const c of cases) {
    mode.value = c.mode;
    ceil.checked = c.ceil_mode;
    for (const [name, value] of Object.entries(c.values)) {
      const el = app.querySelector(`input[data-param="${name}"]`);
      el.value = String(value);
      if (el.value !== String(value)) { throw new Error(`slider ${name} refused ${value} (range ${el.min}..${el.max})`); }
    }
    app.querySelector('input[data-param="i"]').dispatchEvent(new Event('input', {bubbles: true}));
    out.push([size.dataset.size, size.dataset.unread]);
  }
  return out;
}
"""


def _python_size(mode, i, k, s, p, d, output_padding, ceil_mode):
    try:
        if mode == "conv":
            return str(conv_output_size(i, k, s, p, d))
        if mode == "pool":
            return str(pool_output_size(i, k, s, p, d, ceil_mode))
        return str(conv_transpose_output_size(i, k, s, p, output_padding, d))
    except ValueError:
        return "error"


def _write(tmp_path, *apps) -> str:
    path = tmp_path / "explorer.html"
    body = "".join(app.html for app in apps)
    path.write_text(f'<!doctype html><html><head><meta charset="utf-8"></head><body>{body}</body></html>',
                    encoding="utf-8")
    return path.as_uri()


@pytest.fixture
def explorer(page, tmp_path):
    page.goto(_write(tmp_path, arithmetic_explorer()), wait_until="load")
    return page


def _drive(page, cases, index=0, chunk=1500):
    shown = []
    for start in range(0, len(cases), chunk):
        shown += page.evaluate(_DRIVE, [cases[start : start + chunk], index])
    return shown


def _case(mode, i, k, s, p, d, op=0, ceil_mode=False):
    return {"mode": mode, "ceil_mode": ceil_mode,
            "values": {"i": i, "k": k, "s": s, "p": p, "d": d, "output_padding": op}}


def _check_sizes(page, cases):
    shown = _drive(page, cases)
    errors = 0
    for case, (size, _) in zip(cases, shown, strict=True):
        v = case["values"]
        expected = _python_size(case["mode"], v["i"], v["k"], v["s"], v["p"], v["d"], v["output_padding"],
                                case["ceil_mode"])
        assert size == expected, f"explorer shows {size}, dlbook.arithmetic gives {expected} for {case}"
        errors += expected == "error"
    assert not page.js_errors, page.js_errors
    return shown, errors


# ---------------------------------------------------------------------------------------------------- sizes


@pytest.mark.browser
def test_conv_sizes_match_arithmetic(explorer):
    """Every i <= 12, k <= 5, s <= 4, p <= 4, d <= 3: the size shown, and the unread rows, equal the Python's."""
    cases = [_case("conv", *c) for c in itertools.product(range(1, 13), range(1, 6), range(1, 5), range(0, 5),
                                                          range(1, 4))]
    shown, errors = _check_sizes(explorer, cases)
    assert errors > 0  # kernels larger than the padded input are shown as errors too
    some_unread = 0
    for case, (size, unread) in zip(cases, shown, strict=True):
        if size == "error":
            continue
        v = case["values"]
        expected = unread_positions(v["i"], v["k"], v["s"], v["p"], v["d"])
        assert unread == ",".join(map(str, expected)), case
        some_unread += bool(expected)
    assert some_unread > 0


@pytest.mark.browser
def test_pool_sizes_match_arithmetic(explorer):
    """Every i <= 12, k <= 5, s <= 4, p <= 3 (past k // 2 too), d <= 3, with and without ceil_mode."""
    cases = [_case("pool", i, k, s, p, d, ceil_mode=c) for i, k, s, p, d, c in
             itertools.product(range(1, 13), range(1, 6), range(1, 5), range(0, 4), range(1, 4), (False, True))]
    _, errors = _check_sizes(explorer, cases)
    assert errors > 0


@pytest.mark.browser
def test_transposed_sizes_match_arithmetic(explorer):
    """Every i <= 8, k <= 5, s <= 4, p <= 4, output_padding <= 3, d <= 3."""
    cases = [_case("transposed", i, k, s, p, d, op) for i, k, s, p, op, d in
             itertools.product(range(1, 9), range(1, 6), range(1, 5), range(0, 5), range(0, 4), range(1, 4))]
    _, errors = _check_sizes(explorer, cases)
    assert errors > 0


def _torch_unread(read_map, i):
    """Input cells (0 .. i-1) whose gradient is zero when every output is summed: the cells no window reads."""
    x = torch.zeros(1, 1, i, 1, dtype=DT, requires_grad=True)
    read_map(x).sum().backward()
    return ",".join(str(j) for j in range(i) if x.grad[0, 0, j, 0] == 0)


@pytest.mark.browser
def test_unread_cells_match_pytorch_gradients(explorer):
    """The hatched cells of pooling and transposed convolution are the inputs PyTorch's gradient never reaches."""
    cases, expected = [], []
    for i, k, s, p, d in itertools.product(range(1, 8), range(1, 5), range(1, 4), range(0, 3), range(1, 3)):
        w = torch.ones(1, 1, k, 1, dtype=DT)
        for op in range(max(s, d)):
            if _python_size("transposed", i, k, s, p, d, op, False) != "error":
                cases.append(_case("transposed", i, k, s, p, d, op))
                expected.append(_torch_unread(lambda x, w=w, s=s, p=p, d=d, op=op: F.conv_transpose2d(
                    x, w, stride=(s, 1), padding=(p, 0), output_padding=(op, 0), dilation=(d, 1)), i))
        for ceil_mode in (False, True):
            size = _python_size("pool", i, k, s, p, d, 0, ceil_mode)
            if size == "error":
                continue
            # The pooling windows are those of a convolution over the input padded by p, plus enough cells on the
            # right for a ceil_mode window that hangs over; keep the first `size` of them.
            o = int(size)
            cases.append(_case("pool", i, k, s, p, d, ceil_mode=ceil_mode))
            expected.append(_torch_unread(lambda x, w=w, k=k, s=s, p=p, d=d, o=o: F.conv2d(
                F.pad(x, (0, 0, p, p + s + d * k)), w, stride=(s, 1), dilation=(d, 1))[:, :, :o], i))
    shown = _drive(explorer, cases)
    assert [u for _, u in shown] == expected
    assert any(expected)


# ---------------------------------------------------------------------------------------------------- interaction


@pytest.mark.browser
def test_keyboard_moves_change_the_size(explorer):
    size = explorer.locator(".dlbook-explorer-size")
    assert size.get_attribute("data-size") == str(conv_output_size(6, 3))
    slider = explorer.locator('input[data-param="s"]')
    slider.scroll_into_view_if_needed()
    slider.focus()
    slider.press("ArrowRight")  # s = 2
    assert size.get_attribute("data-size") == str(conv_output_size(6, 3, 2))
    assert explorer.locator('input[data-param="s"] + output').text_content() == "2"
    assert "\u230a3 / 2\u230b + 1 = 2" in explorer.locator(".dlx-formula").text_content()
    assert not explorer.js_errors


@pytest.mark.browser
def test_hover_shows_the_cells_an_output_reads(explorer):
    # i=9, k=3, s=2, p=1, d=2: output (r, c) reads padded rows 2r + 2u and columns 2c + 2u, u = 0, 1, 2.
    explorer.evaluate(_DRIVE, [[_case("conv", 9, 3, 2, 1, 2)], 0])
    for r, c in [(0, 0), (1, 3), (3, 2)]:
        cell = explorer.locator(f"svg.dlx-output rect.dlx-cell[data-r='{r}'][data-c='{c}']")
        cell.scroll_into_view_if_needed()
        cell.hover()
        read = explorer.evaluate(
            "() => [...document.querySelectorAll('svg.dlx-input rect.dlx-read')]"
            ".map(e => [Number(e.dataset.r), Number(e.dataset.c)])"
        )
        expected = sorted((2 * r + 2 * u, 2 * c + 2 * v) for u in range(3) for v in range(3))
        assert sorted(map(tuple, read)) == expected
        assert explorer.locator("svg.dlx-output rect.dlx-selected").get_attribute("data-r") == str(r)
    assert not explorer.js_errors


@pytest.mark.browser
def test_click_keeps_the_selection(explorer):
    first = explorer.locator("svg.dlx-output rect.dlx-cell[data-r='0'][data-c='0']")
    first.scroll_into_view_if_needed()
    first.click()
    explorer.locator("svg.dlx-output rect.dlx-cell[data-r='2'][data-c='2']").hover()
    selected = explorer.locator("svg.dlx-output rect.dlx-selected")
    assert (selected.get_attribute("data-r"), selected.get_attribute("data-c")) == ("0", "0")
    explorer.locator("svg.dlx-output rect.dlx-cell[data-r='0'][data-c='0']").click()  # a second click releases it
    explorer.locator("svg.dlx-output rect.dlx-cell[data-r='2'][data-c='2']").hover()
    assert explorer.locator("svg.dlx-output rect.dlx-selected").get_attribute("data-r") == "2"


@pytest.mark.browser
def test_mode_shows_its_own_controls(explorer):
    op_row = explorer.locator('[data-row="output_padding"]')
    ceil_row = explorer.locator('[data-row="ceil_mode"]')
    assert not op_row.is_visible() and not ceil_row.is_visible()
    explorer.select_option("select.dlbook-explorer-mode", "transposed")
    assert op_row.is_visible() and not ceil_row.is_visible()
    assert explorer.locator(".dlbook-explorer-size").get_attribute("data-size") == str(
        conv_transpose_output_size(6, 3))
    explorer.select_option("select.dlbook-explorer-mode", "pool")
    assert ceil_row.is_visible() and not op_row.is_visible()
    explorer.locator("input.dlbook-explorer-ceil").check()
    assert explorer.locator(".dlbook-explorer-size").get_attribute("data-size") == str(
        pool_output_size(6, 3, 1, 0, 1, True))
    assert not explorer.js_errors


@pytest.mark.browser
def test_drawing_follows_the_sliders(explorer):
    """After a slider change the next frame draws the new grid: padded input, hatched unread cells, output cells."""
    explorer.evaluate(_DRIVE, [[_case("conv", 8, 3, 3, 0, 1)], 0])
    explorer.wait_for_function("() => document.querySelectorAll('svg.dlx-output rect.dlx-cell').length === 4")
    assert explorer.locator("svg.dlx-input rect.dlx-grid").count() == 8 * 8
    assert explorer.locator("svg.dlx-input rect.dlx-k-pad").count() == 0
    assert explorer.locator("svg.dlx-input rect.dlx-unread").count() == 8 * 8 - 6 * 6  # rows and columns 6, 7
    explorer.evaluate(_DRIVE, [[_case("conv", 5, 3, 1, 2, 1)], 0])  # full padding: nothing unread
    explorer.wait_for_function("() => document.querySelectorAll('svg.dlx-output rect.dlx-cell').length === 49")
    assert explorer.locator("svg.dlx-input rect.dlx-grid").count() == 9 * 9
    assert explorer.locator("svg.dlx-input rect.dlx-k-in").count() == 5 * 5
    assert explorer.locator("svg.dlx-input rect.dlx-unread").count() == 0
    explorer.evaluate(_DRIVE, [[_case("transposed", 3, 3, 2, 0, 1, 1)], 0])  # 2 zeros inserted, pad 2 (+1)
    explorer.wait_for_function("() => document.querySelectorAll('svg.dlx-output rect.dlx-cell').length === 64")
    assert explorer.locator("svg.dlx-input rect.dlx-k-zero").count() == 5 * 5 - 3 * 3
    assert explorer.locator("svg.dlx-input rect.dlx-k-in").count() == 3 * 3
    assert explorer.locator("svg.dlx-input rect.dlx-grid").count() == 10 * 10
    assert not explorer.js_errors


@pytest.mark.browser
def test_ceil_mode_drop_is_explained(explorer):
    explorer.evaluate(_DRIVE, [[_case("pool", 5, 2, 2, 1, 1, ceil_mode=True)], 0])
    assert explorer.locator(".dlbook-explorer-size").get_attribute("data-size") == "3"
    assert "PyTorch drops it" in explorer.locator(".dlx-notes").text_content()


@pytest.mark.browser
def test_two_explorers_on_one_page_are_independent(page, tmp_path):
    page.goto(_write(tmp_path, arithmetic_explorer(i=5), arithmetic_explorer(mode="pool", i=8, k=2, s=2)))
    ids = page.evaluate("() => [...document.querySelectorAll('.dlbook-app')].map(e => e.id)")
    assert len(ids) == 2 and len(set(ids)) == 2
    sizes = page.locator(".dlbook-explorer-size")
    assert [sizes.nth(j).get_attribute("data-size") for j in range(2)] == ["3", "4"]
    page.evaluate(_DRIVE, [[_case("conv", 12, 3, 1, 1, 1)], 0])
    assert [sizes.nth(j).get_attribute("data-size") for j in range(2)] == ["12", "4"]
    patterns = page.evaluate("() => [...document.querySelectorAll('pattern')].map(e => e.id)")
    assert len(patterns) == len(set(patterns)) == 2
    assert not page.js_errors


# ---------------------------------------------------------------------------------------------------- python side


def test_initial_values_are_in_the_markup():
    html = arithmetic_explorer(mode="pool", i=9, k=2, s=2, ceil_mode=True).html
    assert 'data-param="i" aria-label="input size i"><output>9</output>' in html
    assert '<option value="pool" selected>' in html
    assert 'class="dlbook-explorer-ceil" aria-label="ceil_mode" checked' in html


def test_modes_restrict_the_menu():
    html = arithmetic_explorer(modes=("conv",)).html
    assert 'value="transposed"' not in html and 'value="pool"' not in html


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(mode="deconv"), ValueError, "^mode must"),
    (dict(mode="pool", modes=("conv",)), ValueError, "^mode must"),
    (dict(modes=("conv", "bogus")), ValueError, "^modes must"),
    (dict(modes=[]), ValueError, "^modes must"),
    (dict(i=0), ValueError, "^i=0"),
    (dict(k=6), ValueError, "^k=6"),
    (dict(p=5, limits=ExplorerLimits(p=(0, 4))), ValueError, "^p=5"),
    (dict(output_padding=4), ValueError, "^output_padding=4"),
    (dict(s=1.5), TypeError, "^s must"),
    (dict(ceil_mode="yes"), TypeError, "^ceil_mode"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        arithmetic_explorer(**kwargs)


def test_modes_constant():
    assert MODES == ("conv", "transposed", "pool")
