"""The small support modules: seed_everything, display, plotting, exercises, argument checks."""

from __future__ import annotations

import re
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlbook import seed_everything  # noqa: E402
from dlbook._checks import (  # noqa: E402
    check_tensor,
    dim_size,
    divides,
    has_shape,
    instance,
    integer_tensor,
    pair,
    same_dtype,
)
from dlbook.conv import conv2d  # noqa: E402
from dlbook.display import FOLD_LINES, _listing, docstring_span, show_source, source_of  # noqa: E402
from dlbook.exercises import check  # noqa: E402
from dlbook.plotting import (  # noqa: E402
    as_image,
    image_grid,
    sample_photo,
    shape_title,
    show_images,
    show_kernel,
    write_numbers,
)


def test_seed_everything_makes_runs_repeat():
    g1 = seed_everything(3)
    a = (torch.rand(3), np.random.rand(2), torch.rand(2, generator=g1))
    g2 = seed_everything(3)
    b = (torch.rand(3), np.random.rand(2), torch.rand(2, generator=g2))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)
    with pytest.raises(TypeError, match="seed"):
        seed_everything(1.0)


def test_show_source_is_the_package_code():
    md = show_source(conv2d)
    assert md.data.startswith("`dlbook.conv.conv2d`")
    assert source_of(conv2d) in md.data
    with pytest.raises(TypeError, match="cannot show the source"):
        source_of(len)


def _code_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block, in order."""
    return re.findall(r"```(\w+)\n(.*?)```", markdown, flags=re.S)


def test_a_long_listing_folds_its_docstring_and_shows_every_line_of_code():
    from dlbook.attention import flash_attention

    source = source_of(flash_attention)
    assert len(source.splitlines()) > FOLD_LINES  # else this test shows nothing
    md = show_source(flash_attention).data
    blocks = _code_blocks(md)
    assert [lang for lang, _ in blocks] == ["python"] * 3
    head, docstring, body = (code for _, code in blocks)
    assert head.startswith("def flash_attention(") and head.rstrip().endswith(") -> torch.Tensor:")
    assert docstring.lstrip().startswith('"""Attention one block') and docstring.rstrip().endswith('"""')
    assert head + docstring + body == source  # nothing left out, nothing re-typed
    assert md.index("<details") < md.index(docstring) < md.index("</details>")
    summary = re.search(r"<summary>(.*?)</summary>", md).group(1)
    assert summary.startswith('"""Attention one block of keys at a time: the Tq x Tk scores are never held at once.')
    assert f"(the docstring, {len(docstring.splitlines())} lines)" in summary


@pytest.mark.parametrize("opening, closing", [('"""', '"""'), ("r'''", "'''"), ('"""\n    ', '"""')])
def test_the_summary_is_the_docstrings_first_line_of_text_with_its_own_quotes(opening, closing):
    body = "    x = 1\n" * (FOLD_LINES + 5)
    source = f"def long():\n    {opening}Sum <a> & b.\n\n    More.\n    {closing}\n{body}    return x\n"
    md = _listing(source)
    summary = re.search(r"<summary>(.*?) … <span", md).group(1)
    assert summary == opening.strip() + "Sum &lt;a&gt; &amp; b."
    assert "".join(code for _, code in _code_blocks(md)) == source


def test_a_listing_of_a_screen_or_less_or_without_a_docstring_is_one_block():
    short = show_source(conv2d).data
    assert "<details" not in short and len(_code_blocks(short)) == 1
    undocumented = "def long():\n" + "    x = 1\n" * (FOLD_LINES + 5) + "    return x\n"
    assert _listing(undocumented) == f"```python\n{undocumented}```"
    assert docstring_span("def f():\n    return 1\n") is None
    assert docstring_span('class C:\n    """One.\n\n    Two.\n    """\n') == (1, 4)
    assert docstring_span('def f():\n    """Only one line."""\n    return 1\n') == (1, 1)
    # a method whose multi-line string keeps a line at column 0 cannot be parsed alone: shown whole, not folded
    assert docstring_span('    def m(self):\n        """Doc."""\n        return """a\nb"""\n') is None


def test_check_reports_the_first_counter_example(capsys):
    result = check(lambda a, b: a + b if a < 3 else 0, lambda a, b: a + b, [dict(a=i, b=1) for i in range(5)])
    assert not result and result.counter_example == {"a": 3, "b": 1} and result.expected == 4 and result.got == 0
    assert "counter-example: f(a=3, b=1)" in capsys.readouterr().out
    ok = check(lambda a: torch.ones(a), lambda a: torch.ones(a), [dict(a=2)], quiet=True)
    assert ok and ok.n_cases == 1
    # a case the reference rejects must be rejected by the answer too
    assert not check(lambda a: a, lambda a: pair(a, "a"), [dict(a=0)], quiet=True)
    assert check(lambda a: pair(a, "a"), lambda a: pair(a, "a"), [dict(a=0)], quiet=True)
    # tensors of different shapes never agree
    assert not check(lambda: torch.zeros(2), lambda: torch.zeros(3), [{}], quiet=True)


def test_plot_helpers_title_with_shapes():
    x = torch.rand(1, 3, 8, 6)
    assert as_image(x).shape == (8, 6, 3)
    assert shape_title("x", torch.zeros(2, 3)) == "x  (2×3)"
    fig = show_images([torch.rand(5, 4), torch.rand(3, 5, 4)], ["a", "b"])
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a  (5×4)", "b  (5×4×3)"]
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        show_images([torch.rand(2, 2)] * 2, ["a"])
    assert show_kernel(torch.eye(3)).axes[0].get_title() == "kernel  (3×3)"


def test_show_kernel_writes_each_weight_in_its_cell():
    import matplotlib.colors as mcolors

    ax = show_kernel(torch.tensor([[0.5, -1.0], [0.25, 0.0]]), fmt="{:.2f}", fontsize=9).axes[0]
    (numbers,) = [c for c in ax.collections if hasattr(c, "written")]
    assert numbers.written == ["0.50", "\N{MINUS SIGN}1.00", "0.25", "0.00"] and not ax.texts
    assert numbers.get_offsets().tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]  # (column, row) of each weight
    white = [tuple(c) == mcolors.to_rgba("white") for c in numbers.get_facecolors()]
    assert white == [False, True, False, False]  # white only on the dark cell, |w| > 0.6 max|w|
    big = show_kernel(torch.tensor([[0.5, -1.0], [0.25, 0.0]]), fmt="{:.2f}", fontsize=18).axes[0].collections[0]
    heights = [c.get_paths()[0].get_extents().height for c in (numbers, big)]  # "0.50" in points
    assert heights[1] == pytest.approx(2 * heights[0], rel=0.02)  # written at the fontsize asked for
    assert not show_kernel(torch.eye(3), fmt="").axes[0].collections  # fmt="": no numbers
    assert not show_kernel(torch.eye(10)).axes[0].collections  # above 81 weights: none


def test_write_numbers_refuses_labels_positions_and_colours_that_do_not_match():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="2 labels for 3 positions xy"):
        write_numbers(ax, np.zeros((3, 2)), ["1", "2"], 9, ["black"])
    with pytest.raises(ValueError, match="colours must hold 1 colour or one per label"):
        write_numbers(ax, np.zeros((3, 2)), ["1", "2", "3"], 9, ["black", "white"])
    blank = write_numbers(ax, np.zeros((2, 2)), ["", " "], 9, ["black"])  # written as nothing, as Text would
    assert [len(p.vertices) for p in blank.get_paths()] == [1, 1]
    sans = write_numbers(ax, np.zeros((1, 2)), ["4"], 9, ["black"]).get_paths()[0]
    with matplotlib.rc_context({"font.family": "serif"}):  # the font in use now, not the one first cached
        serif = write_numbers(ax, np.zeros((1, 2)), ["4"], 9, ["black"]).get_paths()[0]
    assert sans.vertices.shape != serif.vertices.shape or not np.allclose(sans.vertices, serif.vertices)
    plt.close(fig)


def test_sample_photo():
    gray, rgb = sample_photo(32), sample_photo(32, gray=False)
    assert gray.shape == (1, 32, 32) and rgb.shape == (3, 32, 32)
    assert 0 <= float(gray.min()) and float(gray.max()) <= 1
    assert gray.dtype == torch.get_default_dtype()


def test_check_tensor_messages():
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        check_tensor([1], "x", (1,))
    with pytest.raises(ValueError, match=r"x must have 2 dimensions, got shape \(3,\)"):
        check_tensor(torch.zeros(3), "x", (2,))
    with pytest.raises(TypeError, match="pair of ints"):
        pair((1, 2, 3), "kernel_size")
    with pytest.raises(TypeError, match="pair of ints"):
        pair(True, "stride")


def test_shape_and_value_checks_pass_good_input_through_and_name_bad_input():
    ids = torch.tensor([0, 2, 1])
    assert integer_tensor(ids, "ids", (1,), values=range(3)) is ids
    with pytest.raises(ValueError, match=r"ids must hold values in 0\.\.1, got values from 0 to 2"):
        integer_tensor(ids, "ids", values=range(2))
    for bad in (ids.float(), ids.bool()):
        with pytest.raises(TypeError, match="ids must be an integer tensor"):
            integer_tensor(bad, "ids")
    w = torch.zeros(6, 2)
    assert has_shape(w, "w", (3, 2), (6, None)) is w
    with pytest.raises(ValueError, match=r"w must have shape \(6, 3\) or \(_, 3\), got \(6, 2\)"):
        has_shape(w, "w", (6, 3), (None, 3))
    assert divides(3, 12, "heads", "D") == 3
    for heads in (5, 0):
        with pytest.raises(ValueError, match=f"heads={heads} must divide D, got 12"):
            divides(heads, 12, "heads", "D")
    assert dim_size(w, 0, 4, "w", at_least=True) is w
    with pytest.raises(ValueError, match=r"w must have size >= 7 in dimension 0 \(rows\), got shape \(6, 2\)"):
        dim_size(w, 0, 7, "w", " (rows)", at_least=True)
    with pytest.raises(ValueError, match="w must have size 3 in dimension -1"):
        dim_size(w, -1, 3, "w")
    with pytest.raises(TypeError, match="a and b must have the same dtype"):
        same_dtype(w, w.double(), "a", "b")
    assert instance(len, Callable, "f") is len
    with pytest.raises(TypeError, match="loss_fn must be of type Callable, got str"):
        instance("mse", Callable, "loss_fn")
    assert instance(w, torch.Tensor, "w") is w
    with pytest.raises(TypeError, match="config must be of type dict or list, got str"):
        instance("cfg", (dict, list), "config")


def test_check_refuses_cases_that_do_not_fit_the_reference():
    with pytest.raises(TypeError, match="does not fit the reference's parameters"):
        check(lambda x: x, lambda image: image, [dict(x=1)])


def test_image_grid_tiles_row_by_row():
    imgs = torch.arange(5 * 2 * 3, dtype=torch.float64).reshape(5, 2, 3)
    grid = image_grid(imgs, ncols=3, pad=1, pad_value=-1.0)
    assert grid.shape == (2 * 3 - 1, 3 * 4 - 1)
    torch.testing.assert_close(grid[0:2, 0:3], imgs[0])
    torch.testing.assert_close(grid[0:2, 8:11], imgs[2])
    torch.testing.assert_close(grid[3:5, 4:7], imgs[4])
    assert torch.all(grid[2] == -1) and torch.all(grid[3:5, 8:11] == -1)  # separator row, unused tile
    torch.testing.assert_close(image_grid(imgs[:, None], 5, pad=0), torch.cat(list(imgs), dim=1))
    with pytest.raises(ValueError, match="ncols"):
        image_grid(imgs, 0)
    with pytest.raises(ValueError, match="images"):
        image_grid(torch.zeros(2, 3, 4, 4, dtype=torch.float64), 2)
