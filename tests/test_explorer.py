"""The convolution-arithmetic explorer: its table equals dlbook.arithmetic (and PyTorch), and its page draws it.

The table tests run in Python over every setting the sliders offer. The browser tests write the explorer's HTML to a
temporary file and open it through file:// — no server, no network, no kernel — exactly the self-contained block the
static site embeds; they check what the page draws and how it answers keys, clicks and taps, not the arithmetic.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dlbook.arithmetic import (
    conv_output_size,
    conv_transpose_output_size,
    effective_kernel_size,
    pool_output_size,
    unread_positions,
)
from dlbook.explorer import (
    FORMULAS,
    MODES,
    NOTES,
    ExplorerLimits,
    arithmetic_explorer,
    explorer_axis,
    explorer_data,
    unpack,
)

DT = torch.float64


def _entries(mode, data=None):
    """(setting, entry) for every setting of ``mode`` in the explorer's table."""
    part = (data or _DATA)[mode]
    settings = itertools.product(*part["axes"].values())
    for n, values in enumerate(settings):
        yield dict(zip(part["axes"], values, strict=True)), {f: col[n] for f, col in part["columns"].items()}


_DATA = explorer_data()


def _arithmetic(mode, i, k, s, p, d, output_padding=0, ceil_mode=False):
    """The output size dlbook.arithmetic gives, or its error message."""
    try:
        if mode == "conv":
            return conv_output_size(i, k, s, p, d)
        if mode == "pool":
            return pool_output_size(i, k, s, p, d, ceil_mode)
        return conv_transpose_output_size(i, k, s, p, output_padding, d)
    except ValueError as error:
        return str(error)


def _fill(template, setting, entry):
    return re.sub(r"\{(\w+)\}", lambda m: str({**setting, **entry}[m.group(1)]), template)


# ---------------------------------------------------------------------------------------------------- the table


def test_the_table_covers_every_setting_the_sliders_offer():
    offered = ExplorerLimits().values()
    for mode in MODES:
        axes = _DATA[mode]["axes"]
        assert {name: axes[name] for name in offered if name in axes} == axes
        n = len(list(itertools.product(*axes.values())))
        assert {len(col) for col in _DATA[mode]["columns"].values()} == {n}
    assert set(_DATA["pool"]["axes"]) == {"i", "k", "s", "p", "d", "ceil_mode"}
    assert set(_DATA["transposed"]["axes"]) == {"i", "k", "s", "p", "d", "output_padding"}


@pytest.mark.parametrize("mode", MODES)
def test_sizes_and_errors_equal_arithmetic_for_every_setting(mode):
    errors = 0
    for setting, entry in _entries(mode):
        expected = _arithmetic(mode, **setting)
        if isinstance(expected, str):
            assert (entry["o"], entry["error"]) == (0, expected), setting
            assert "raises" in entry["formula"] and entry["notes"][0] == "error"
            errors += 1
        else:
            assert (entry["o"], entry["error"]) == (expected, ""), setting
    assert 0 < errors < len(_DATA[mode]["columns"]["o"])  # both kinds occur


def test_unread_cells_of_a_convolution_equal_arithmetic():
    some = 0
    for setting, entry in _entries("conv"):
        expected = list(unread_positions(**setting)) if entry["o"] else []
        assert entry["unread"] == expected, setting
        some += bool(expected)
    assert some > 0


def _torch_unread(read_map, i):
    """Input cells (0 .. i-1) no output of ``read_map`` depends on: setting the cell alone to 1 (all-ones weights or
    a maximum, so nothing cancels) changes no output of an all-zero input."""
    x = torch.eye(i, dtype=DT).reshape(i, 1, i, 1)
    changed = read_map(x) != read_map(torch.zeros_like(x))
    return [j for j in range(i) if not changed[j].any()]


def test_unread_cells_of_pooling_and_transposed_convolution_equal_pytorch():
    """The hatched cells are the inputs no output of PyTorch's layer depends on (cropped ones, skipped ones)."""
    some = 0
    for i, k, s, p, d in itertools.product(range(1, 8), range(1, 5), range(1, 4), range(0, 3), range(1, 3)):
        w = torch.ones(1, 1, k, 1, dtype=DT)
        for op in range(max(s, d)):
            entry = explorer_axis("transposed", i, k, s, p, d, output_padding=op)
            if entry["o"]:
                some += bool(entry["unread"])
                assert entry["unread"] == _torch_unread(lambda x, w=w, s=s, p=p, d=d, op=op: F.conv_transpose2d(
                    x, w, stride=(s, 1), padding=(p, 0), output_padding=(op, 0), dilation=(d, 1)), i)
        for ceil_mode in (False, True):
            entry = explorer_axis("pool", i, k, s, p, d, ceil_mode=ceil_mode)
            if entry["o"]:
                assert entry["unread"] == _torch_unread(lambda x, k=k, s=s, p=p, d=d, c=ceil_mode: F.max_pool2d(
                    x, (k, 1), (s, 1), (p, 0), (d, 1), ceil_mode=c), i), (i, k, s, p, d, ceil_mode)
                some += bool(entry["unread"])
    assert some > 0


@pytest.mark.parametrize("mode", MODES)
def test_the_drawn_windows_read_exactly_the_cells_not_hatched(mode):
    """Window a reads the drawn positions first + a*step + u*d: inside the drawing, on every non-hatched input."""
    for setting, entry in _entries(mode):
        cells, k, d = entry["cells"], setting["k"], setting["d"]
        inputs = [t for t, c in enumerate(cells) if c in "iC"]
        assert len(inputs) == setting["i"]
        read = {entry["first"] + a * entry["step"] + u * d for a in range(entry["o"]) for u in range(k)}
        assert read <= set(range(len(cells))), setting
        assert not read & {t for t, c in enumerate(cells) if c in "cC"}, setting  # cropped cells are never read
        if entry["o"]:
            assert [j for j, t in enumerate(inputs) if t not in read] == entry["unread"], setting
        assert cells.count("b") == entry["hang"] and not cells.rstrip("b").count("b")


def _evaluate(side):
    """A filled-in side of a formula as Python: ⌊a / b⌋ -> a // b, ⌈a / b⌉ -> -(-a // b), · and − as * and -."""
    side = side.replace("(dropped)", "").replace("·", "*").replace("−", "-")
    side = re.sub(r"⌊([^⌋]*)/([^⌋]*)⌋", r"((\1)//(\2))", side)
    side = re.sub(r"⌈([^⌉]*)/([^⌉]*)⌉", r"(-(-(\1)//(\2)))", side)
    return eval(side, {"__builtins__": {}})  # digits and operators only, from the explorer's own templates


@pytest.mark.parametrize("mode", MODES)
def test_every_filled_in_formula_is_true(mode):
    """Each side of the formula the reader sees, evaluated, equals the size dlbook.arithmetic gives."""
    dropped = 0
    for setting, entry in _entries(mode):
        text = _fill(FORMULAS[entry["formula"]], setting, entry)
        assert "{" not in text
        symbolic, *sides = text.removesuffix(": PyTorch raises").split(" = ")
        assert symbolic == "o" and re.search("[ikpsd]", sides[0])  # the formula with letters, then numbers
        values = [_evaluate(side) for side in sides[1:]]
        if entry["error"]:
            assert text.endswith(": PyTorch raises") and not entry["o"]
            continue
        if entry["formula"] == "dropped":  # the rounded-up count, then one window fewer
            dropped += 1
            assert values[:-2] == [entry["o"] + 1] * (len(values) - 2) and values[-2:] == [entry["o"]] * 2, setting
        else:
            assert values == [entry["o"]] * len(values), (setting, text)
    assert (dropped > 0) == (mode == "pool")


def test_the_formula_numbers_come_from_the_setting():
    assert explorer_axis("conv", 8, 3, 3, 0, 1)["num"] == 8 - effective_kernel_size(3)
    entry = explorer_axis("pool", 5, 2, 2, 1, 1, ceil_mode=True)
    assert (entry["o"], entry["rounded"], entry["formula"]) == (3, 4, "dropped") and "dropped" in entry["notes"]
    assert explorer_axis("transposed", 3, 3, 2, 4, 1, output_padding=1)["q"] == 3 - 1 - 4  # crops 2 each side


@pytest.mark.parametrize("mode", MODES)
def test_every_note_is_filled_in(mode):
    for setting, entry in _entries(mode):
        assert entry["notes"] == list(dict.fromkeys(entry["notes"]))
        for key in entry["notes"]:
            assert "{" not in _fill(NOTES[key], setting, entry)


def test_notes_follow_the_setting():
    assert explorer_axis("conv", 8, 3, 3, 0, 1)["notes"] == ["remainder", "unread"]
    assert explorer_axis("conv", 9, 3, 2, 0, 1)["notes"] == ["border"]
    assert explorer_axis("pool", 6, 3, 2, 1, 1, ceil_mode=True)["notes"] == ["hangs"]
    assert explorer_axis("transposed", 3, 3, 2, 0, 1, output_padding=1)["cells"] == "ppizizippp"
    assert explorer_axis("transposed", 3, 3, 2, 4, 1, output_padding=1)["cells"] == "CcizC"


# ---------------------------------------------------------------------------------------------------- the page


def _embedded(html):
    return unpack(re.search(r'"packed": "([A-Za-z0-9+/=]+)"', html).group(1))


def test_the_page_embeds_the_table_and_the_package_files():
    html = arithmetic_explorer(modes=("conv", "pool")).html
    assert _embedded(html) == explorer_data(("conv", "pool"))
    files = resources.files("dlbook") / "explorer_files"
    assert (files / "explorer.js").read_text(encoding="utf-8") in html
    assert (files / "explorer.css").read_text(encoding="utf-8") in html


def test_the_wheel_ships_the_page_files():
    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dlbook"]
    shipped = [f"explorer_files/{f.name}" for f in (resources.files("dlbook") / "explorer_files").iterdir()]
    assert {"explorer_files/explorer.js", "explorer_files/explorer.css"} <= set(shipped)
    assert all(any(fnmatch.fnmatch(name, glob) for glob in globs) for name in shipped)


def test_the_page_stays_light():
    assert len(arithmetic_explorer().html) < 80_000
    assert len(arithmetic_explorer(modes=("conv",)).html) < 30_000


def test_initial_values_are_in_the_markup():
    html = arithmetic_explorer(mode="pool", i=9, k=2, s=2, ceil_mode=True).html
    assert 'data-param="i" aria-label="input size i"><output>9</output>' in html
    assert '<option value="pool" selected>' in html
    assert 'class="dlbook-explorer-ceil" aria-label="ceil_mode" checked' in html


def test_modes_restrict_the_menu_and_the_table():
    html = arithmetic_explorer(modes=("conv",)).html
    assert 'value="transposed"' not in html and 'value="pool"' not in html
    assert set(_embedded(html)) == {"conv"}


def test_no_hover_only_wording():
    html = arithmetic_explorer().html.lower()
    assert "hover" not in html and "tap or click" in html


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(mode="deconv"), ValueError, "^mode must"),
    (dict(mode="pool", modes=("conv",)), ValueError, "^mode must"),
    (dict(modes=("conv", "bogus")), ValueError, "^modes must"),
    (dict(modes=[]), ValueError, "^modes must"),
    (dict(i=0), ValueError, "^i must"),
    (dict(k=6), ValueError, "^k must"),
    (dict(p=5, limits=ExplorerLimits(p=(0, 4))), ValueError, "^p must"),
    (dict(output_padding=4), ValueError, "^output_padding must"),
    (dict(s=1.5), ValueError, "^s must"),
    (dict(ceil_mode="yes"), TypeError, "^ceil_mode"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        arithmetic_explorer(**kwargs)


def test_modes_constant():
    assert MODES == ("conv", "transposed", "pool")


# ---------------------------------------------------------------------------------------------------- in Chromium

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
      if (el.value !== String(value)) { throw new Error(`slider ${name} refused ${value}`); }
    }
    app.querySelector('input[data-param="i"]').dispatchEvent(new Event('input', {bubbles: true}));
    out.push([size.dataset.size, size.dataset.unread, app.querySelector('.dlx-formula').textContent]);
  }
  return out;
}
"""


def _write(tmp_path, *apps) -> str:
    path = tmp_path / "explorer.html"
    body = "".join(app.html for app in apps)
    path.write_text('<!doctype html><html><head><meta charset="utf-8">'
                    '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
                    f"<body>{body}</body></html>", encoding="utf-8")
    return path.as_uri()


def _open(page, url):
    page.goto(url, wait_until="load")
    page.wait_for_function("() => [...document.querySelectorAll('.dlbook-explorer')].every(e => e.dataset.ready)")
    return page


@pytest.fixture
def explorer(page, tmp_path):
    return _open(page, _write(tmp_path, arithmetic_explorer()))


def _case(mode, i, k, s, p, d, op=0, ceil_mode=False):
    return {"mode": mode, "ceil_mode": ceil_mode,
            "values": {"i": i, "k": k, "s": s, "p": p, "d": d, "output_padding": op}}


@pytest.mark.browser
def test_the_page_shows_the_tables_entry(explorer):
    """The page's lookup finds the right entry: a seeded sample of settings of every mode, size, unread, formula."""
    rng, cases, expected = random.Random(0), [], []
    for mode in MODES:
        entries = list(_entries(mode))
        for setting, entry in rng.sample(entries, 150):
            full = {"output_padding": 0, "ceil_mode": False, **setting}
            cases.append(_case(mode, *(full[n] for n in ("i", "k", "s", "p", "d", "output_padding")),
                               ceil_mode=full["ceil_mode"]))
            expected.append(["error" if entry["error"] else str(entry["o"]), ",".join(map(str, entry["unread"])),
                             _fill(FORMULAS[entry["formula"]], full, entry)])
    assert explorer.evaluate(_DRIVE, [cases, 0]) == expected
    assert not explorer.js_errors


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


def _read_cells(page):
    return sorted(map(tuple, page.evaluate(
        "() => [...document.querySelectorAll('svg.dlx-input rect.dlx-read')].map(e => [+e.dataset.r, +e.dataset.c])")))


def _chosen(page):
    cell = page.locator("svg.dlx-output rect.dlx-selected")
    return int(cell.get_attribute("data-r")), int(cell.get_attribute("data-c"))


@pytest.mark.browser
def test_a_clicked_cell_shows_the_cells_it_reads(explorer):
    # i=9, k=3, s=2, p=1, d=2: output (r, c) reads padded rows 2r + 2u and columns 2c + 2u, u = 0, 1, 2.
    explorer.evaluate(_DRIVE, [[_case("conv", 9, 3, 2, 1, 2)], 0])
    explorer.wait_for_function("() => document.querySelectorAll('svg.dlx-output rect.dlx-cell').length === 16")
    for r, c in [(0, 0), (1, 3), (3, 2)]:
        explorer.locator(f"svg.dlx-output rect.dlx-cell[data-r='{r}'][data-c='{c}']").click()
        assert _read_cells(explorer) == sorted((2 * r + 2 * u, 2 * c + 2 * v) for u in range(3) for v in range(3))
        assert _chosen(explorer) == (r, c)
        assert f"output cell ({r}, {c}) reads" in explorer.locator(".dlx-in-caption").text_content()
    assert not explorer.js_errors


@pytest.mark.browser
def test_a_mouse_previews_and_the_click_stays(explorer):
    explorer.locator("svg.dlx-output rect.dlx-cell[data-r='0'][data-c='0']").click()
    explorer.locator("svg.dlx-output rect.dlx-cell[data-r='2'][data-c='2']").hover()
    assert _chosen(explorer) == (2, 2)  # the preview
    explorer.mouse.move(1, 1)  # leaving the output grid returns to the clicked cell
    assert _chosen(explorer) == (0, 0)
    assert not explorer.js_errors


@pytest.mark.browser
def test_arrow_keys_move_the_chosen_cell(explorer):
    grid = explorer.locator("svg.dlx-output")
    grid.focus()
    assert _chosen(explorer) == (3, 3)  # 6 - 3 + 1 = 4 outputs: the last one is shown first
    grid.press("ArrowUp")
    grid.press("ArrowLeft")
    grid.press("ArrowLeft")
    assert _chosen(explorer) == (2, 1)
    assert _read_cells(explorer) == sorted((2 + u, 1 + v) for u in range(3) for v in range(3))


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
    explorer.evaluate(_DRIVE, [[_case("transposed", 3, 3, 2, 0, 1, 1)], 0])  # 1 zero inserted, pad 2 (+1)
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
    assert "= 4 − 1 (dropped) = 3" in explorer.locator(".dlx-formula").text_content()


@pytest.mark.browser
def test_two_explorers_on_one_page_are_independent(page, tmp_path):
    _open(page, _write(tmp_path, arithmetic_explorer(i=5), arithmetic_explorer(mode="pool", i=8, k=2, s=2)))
    ids = page.evaluate("() => [...document.querySelectorAll('.dlbook-app')].map(e => e.id)")
    assert len(ids) == 2 and len(set(ids)) == 2
    sizes = page.locator(".dlbook-explorer-size")
    assert [sizes.nth(j).get_attribute("data-size") for j in range(2)] == ["3", "4"]
    page.evaluate(_DRIVE, [[_case("conv", 12, 3, 1, 1, 1)], 0])
    assert [sizes.nth(j).get_attribute("data-size") for j in range(2)] == ["12", "4"]
    patterns = page.evaluate("() => [...document.querySelectorAll('pattern')].map(e => e.id)")
    assert len(patterns) == len(set(patterns)) == 2
    assert not page.js_errors


@pytest.mark.browser
@pytest.mark.parametrize("width,touch", [(390, True), (1280, False)])
def test_a_tap_on_a_phone_and_a_click_on_a_desktop_change_the_drawn_numbers(browser, tmp_path, width, touch):
    """The stride chapter's explorer: tap (390 px, touch) or click (1280 px) an output cell, then move a slider."""
    context = browser.new_context(viewport={"width": width, "height": 844}, has_touch=touch, is_mobile=touch)
    page = context.new_page()
    _open(page, _write(tmp_path, arithmetic_explorer(i=8, k=3, s=3, p=0)))
    caption = page.locator(".dlx-in-caption")
    assert "output cell (1, 1) reads" in caption.text_content()
    cell = page.locator("svg.dlx-output rect.dlx-cell[data-r='0'][data-c='1']")
    cell.tap() if touch else cell.click()
    assert "output cell (0, 1) reads" in caption.text_content()
    assert _read_cells(page) == sorted((u, 3 + v) for u in range(3) for v in range(3))
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width  # nothing sticks out sideways
    formula = page.locator(".dlx-formula")
    assert formula.text_content().endswith("⌊5 / 3⌋ + 1 = 2")
    page.mouse.move(1, 1)  # a mouse over the output grid would preview the cell under it
    page.locator('input[data-param="p"]').fill("1")  # p = 1: 8 + 2 - 2 - 1 = 7 and ⌊7 / 3⌋ + 1 = 3
    assert formula.text_content().endswith("⌊7 / 3⌋ + 1 = 3")
    assert page.locator(".dlbook-explorer-size").text_content() == "output 3 × 3 (from input 8 × 8)"
    assert "output cell (0, 1) reads" in caption.text_content()  # the tapped cell stays chosen
    context.close()
