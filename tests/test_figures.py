"""The chapters' figures draw what their docstrings say: the right cells, numbers, windows and titles."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from dlbook import autograd as ag  # noqa: E402
from dlbook import figures  # noqa: E402
from dlbook.autograd import Tensor  # noqa: E402
from dlbook.plotting import sliding_window_animation, write_numbers  # noqa: E402
from dlbook.widgets import render_png  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def texts(ax) -> list[str]:
    """What is written on ``ax``: its Text artists, then the numbers it draws as outlines."""
    numbers = [t for c in ax.collections for t in getattr(c, "written", [])]
    return [t.get_text() for t in ax.texts] + numbers


# ------------------------------------------------------------------------------------------------ the graph
def test_graph_levels_put_results_right_of_their_inputs():
    x, w, b = Tensor(np.ones((2, 3)), "x"), Tensor(np.ones((3, 4)), "W"), Tensor(np.zeros(4), "b")
    g = ag.graph(ag.relu(x @ w + b).sum())
    levels = figures.graph_levels(g)
    names = [n.label or n._op for n in g.nodes]
    assert all(levels[p] < levels[c] for p, c in g.edges)
    assert levels[names.index("b")] == levels[names.index("+")] - 1  # a leaf sits next to its first use
    assert levels[names.index("x")] == levels[names.index("W")] == levels[names.index("@")] - 1


def test_draw_graph_draws_every_node():
    x, w = Tensor(np.ones((2, 3)), "x"), Tensor(np.ones((3, 2)), "W")
    loss = ag.cross_entropy(x @ w, np.array([0, 1]))
    loss.backward()
    fig = figures.draw_graph(loss)
    assert len(fig.axes[0].patches) == len(ag.graph(loss).nodes)
    assert any(t.startswith("W\n(3×2)") for t in texts(fig.axes[0]))
    assert any("cross_entropy" in t for t in texts(fig.axes[0]))
    scalar = ag.tanh(Tensor(0.5, "w") * Tensor(2.0, "x"))
    scalar.backward()
    fig = figures.draw_graph(scalar, values=True)
    assert any("grad 0.42" in t for t in texts(fig.axes[0]))  # 1 - tanh(1)^2 = 0.42


def test_draw_graph_draws_into_a_given_axes():
    fig, ax = plt.subplots()
    assert figures.draw_graph(Tensor(2.0, "a") * 3.0, ax=ax) is fig
    assert len(ax.patches) == 3


# ------------------------------------------------------------------------------------ transposed convolution
X2, W3 = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.arange(1.0, 10.0).reshape(3, 3)


def test_transposed_conv_captions_count_the_steps():
    captions = figures.transposed_conv_captions(X2, W3, stride=2, padding=1, output_padding=1)
    assert len(captions) == 4 + 16  # 4×4 output
    assert captions[1].endswith("(3×3)") and captions[2].endswith("(6×6)")
    assert captions[-1] == "5. output (3, 3)"


def test_transposed_conv_step_fills_the_output_of_conv_transpose2d():
    y = F.conv_transpose2d(X2[None, None], W3[None, None], stride=2, padding=1, output_padding=1)[0, 0]
    fig = figures.transposed_conv_step(X2, W3, 4 + 15, stride=2, padding=1, output_padding=1)
    left, kernel, output = fig.axes
    assert sorted(float(t) for t in texts(output)) == sorted(y.flatten().tolist())
    assert texts(kernel) == [f"{v:g}" for v in W3.flip(0, 1).flatten().tolist()]  # flipped from step 3 on
    assert len(texts(left)) == 36 and sorted(texts(left))[-4:] == ["1", "2", "3", "4"]
    first = figures.transposed_conv_step(X2, W3, 0, stride=2, padding=1, output_padding=1)
    assert sorted(texts(first.axes[0])) == ["1", "2", "3", "4"] and texts(first.axes[2]) == []
    assert first.axes[0].get_title() == "input (2×2)"
    assert texts(first.axes[1]) == [f"{v:g}" for v in W3.flatten().tolist()]  # not yet flipped


# ---------------------------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("k, s", [(2, 2), (3, 1), (2, 3)])
def test_pooling_windows_counts_reads_and_titles_sizes(k, s):
    photo = torch.rand(20, 16, generator=torch.Generator().manual_seed(0))
    fig = figures.pooling_windows(photo, k, s)
    reads = np.array([int(t) for t in texts(fig.axes[0])]).reshape(12, 12)
    brute = np.zeros((12, 12), dtype=int)
    for i in range(0, 12 - k + 1, s):
        for j in range(0, 12 - k + 1, s):
            brute[i:i + k, j:j + k] += 1
    np.testing.assert_array_equal(reads, brute)
    oh, ow = F.max_pool2d(photo[None, None], k, s).shape[-2:]
    assert fig.axes[1].get_title().endswith(f"20×16 → {oh}×{ow}")


# ------------------------------------------------------------------------------------------- sliding window
def test_sliding_window_animation_writes_the_sum_of_products():
    x = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [2.0, 1.0, 0.0]])
    w = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    anim = sliding_window_animation(x, w)
    anim._init_draw()
    anim._func(3)  # the last of the 2×2 outputs
    fig = anim._fig
    assert fig.texts[0].get_text() == "y[1,1] = 1·1 + 3·(-1) + 1·0 + 0·2 = -2"
    assert "-2" in texts(fig.axes[2]) and fig.axes[2].get_title() == "output  (2×2)"
    with pytest.raises(ValueError, match="2-D"):
        sliding_window_animation(torch.ones(3, 4, 4), w)  # an RGB image


# ------------------------------------------------------------------------------------------ the other figures
def test_image_panels_titles_each_panel_and_the_figure():
    images = [torch.zeros(4, 4), torch.ones(1, 1, 4, 4), torch.full((4, 4), 0.5)]
    fig = figures.image_panels([("a", images[0]), ("a", images[1]), ("c", (images[2], dict(cmap="magma")))],
                               ncols=2, figsize=(4, 4), title="all")
    assert [ax.get_title() for ax in fig.axes] == ["a", "a", "c", ""]  # repeated titles kept; the 4th unused
    assert fig._suptitle.get_text() == "all"
    assert fig.axes[2].images[0].get_cmap().name == "magma" and fig.axes[0].images[0].get_clim() == (0.0, 1.0)
    assert not fig.axes[3].axison


def test_sample_positions_draws_one_dot_per_output():
    fig = figures.sample_positions(4, {"a": [0.0, 1.5, 3.0], "b": [0.5]})
    assert [len(ax.collections[1].get_offsets()) for ax in fig.axes] == [3, 1]
    assert [len(ax.patches) for ax in fig.axes] == [4, 4]  # the input pixels


def test_read_count_grid_writes_counts_and_hatches_unread_cells():
    counts = np.outer([1, 1, 0, 1], [1, 1, 0, 1])
    fig = figures.read_count_grid(counts, "t", padding=1, unread=(2,), frame=1)
    ax = fig.axes[0]
    cells = [c for c in ax.collections if not hasattr(c, "written")]
    assert sum(len(c.get_paths()) for c in cells) == 6 * 6  # the padded grid
    hatched = [len(c.get_paths()) for c in cells if c.get_hatch() == "////"]
    assert hatched == [7]  # row 2 and column 2 of the 4×4 input
    assert texts(ax) == ["1"] * 9
    numbers = next(c for c in ax.collections if hasattr(c, "written"))
    np.testing.assert_array_equal(numbers.get_offsets(), [(c, r) for r in (0, 1, 3) for c in (0, 1, 3)])
    assert numbers.get_zorder() > max(c.get_zorder() for c in cells)  # written on the cells, not under them


def test_window_strips_draws_every_window():
    fig = figures.window_strips(8, 3, 2, {"a": (1, 1), "b": (0, 1)}, "t")
    bars = [len(ax.lines) for ax in fig.axes]
    assert bars == [F.conv1d(torch.zeros(1, 1, 8 + p), torch.zeros(1, 1, 3), stride=2).shape[-1] for p in (2, 1)]


def test_backprop_figures():
    w, x = Tensor(-0.5, "w"), Tensor(1.5, "x")
    y = ag.tanh(w * x + 0.3)
    loss = (y - 0.5) ** 2
    loss.backward()
    factors = (2 * (y.item() - 0.5), 1 - y.item() ** 2, 1.5)
    fig = figures.neuron_chain_rule(loss, w, factors, (np.linspace(-3, 3, 5), np.zeros(5)))
    assert any(t.get_text().endswith(f"{w.grad.item():.3f}$") for t in fig.axes[1].texts)
    depth = {"tanh": {"activations": np.ones(3), "weights": np.ones(3)}}
    fig = figures.gradient_norms(depth, "t")
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]  # the curve and the dotted line at 1
    dx = np.zeros((5, 5))
    dx[1:4, 2:5] = 1.0
    fig = figures.conv_backward_one_hot(np.ones((5, 5)), np.eye(3), dx, np.ones((3, 3)), 1, 2)
    assert len(texts(fig.axes[0])) == 25 and len(texts(fig.axes[2])) == 9  # zeros of dx left blank


@pytest.mark.parametrize("fn, args", [
    (figures.lp_pooling, (torch.rand(4, 4), 2.0, 1.0, (torch.arange(1.0, 4.0), torch.ones(3)), torch.rand(6, 6),
                          torch.rand(6, 6) + 1)),
    (figures.receptive_field_map, (torch.rand(9, 9), 5, "t")),
    (figures.downsampled_stripes, (torch.rand(80), 0.45, {"a": torch.rand(1, 1, 2, 40)})),
    (figures.impulse_response, (torch.eye(3), torch.rand(3, 3), (1.0, 1.0), "t")),
    (figures.filtered_photo, (torch.rand(8, 8), torch.rand(3, 3), torch.rand(8, 8), "t", True)),
])
def test_figures_return_a_figure(fn, args):
    assert isinstance(fn(*args), matplotlib.figure.Figure)


# ------------------------------------------------------------------------------------------------ regularization
class _History(dict):
    """What the training loop returns, as the dropout figure reads it: losses per evaluation and their steps."""

    def __init__(self, losses):
        super().__init__(train_loss=losses, val_loss=losses, val_accuracy=[0.5] * len(losses))
        self.epoch_steps = [10 * (k + 1) for k in range(len(losses))]


def test_ridge_fit_circles_the_chosen_strength():
    x = torch.linspace(-1, 1, 5)
    fig = figures.ridge_fit((x, x), (x, x, x), 0.1, [0.01, 0.1, 1.0], {"training": [1, 2, 3], "validation": [3, 2, 4]},
                            0.5, 3)
    fit_ax, err_ax = fig.axes
    assert len(fit_ax.lines) == 2 and len(fit_ax.collections) == 1  # truth, fit; the points
    assert len(err_ax.lines) == 4  # two error curves, the noise floor, the circles
    assert list(err_ax.lines[-1].get_ydata()) == [2, 2]
    assert err_ax.get_title() == "training 2, validation 2"


def test_decay_paths_draw_two_weights_and_the_decay_per_optimizer():
    path = torch.ones(4, 2)
    fig = figures.decay_paths(path, path, 0.3, 0.01)
    assert [len(ax.lines) for ax in fig.axes] == [3, 3]
    torch.testing.assert_close(torch.as_tensor(fig.axes[0].lines[2].get_ydata()), 0.997 ** torch.arange(4.0))


def test_sparse_weights_count_the_exact_zeros():
    w = torch.tensor([0.0, 1.0, 0.0, -1.0])
    fig = figures.sparse_weights({"L1": w, "L2": w + 0.1}, w, 0.1)
    assert [len(ax.patches) for ax in fig.axes] == [4, 4]  # a bar per feature
    assert "2 exact zeros" in fig.axes[0].get_title() and "0 exact zeros" in fig.axes[1].get_title()


def test_clipped_descent_draws_every_path_and_both_minima():
    path = torch.tensor([[-4.0, 2.5], [0.0, 1.0], [1.0, 0.5]])
    fig = figures.clipped_descent(torch.eye(2), torch.tensor([1.0, 0.5]), torch.zeros(2), {"a": path, "b": path})
    (ax,) = fig.axes
    assert len(ax.lines) == 4  # two paths, two minima
    assert ax.get_title().endswith("after 2 steps at (1.000, 0.500)")


def test_smooth_fit_and_early_stop():
    x = torch.linspace(-1, 1, 6)
    fig = figures.smooth_fit((x[:3], x[:3]), x, x, x, 2 * torch.ones(6), 0.25)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    assert fig.axes[1].get_title() == "slope; mean $f'^2$ = 4.00"
    fig = figures.early_stop([10, 20, 30, 40], [2.0, 1.0, 1.5, 1.6], 3, 1, 2)
    assert len(fig.axes[0].lines) == 3 and fig.axes[0].get_title().endswith("stop at step 40, keep step 20")


def test_dropout_runs_compare_with_the_run_without_dropout():
    histories = {0.0: _History([2.0, 1.0]), 0.5: _History([2.0, 1.2])}
    fig = figures.dropout_runs(histories, 0.5)
    assert [len(ax.lines) for ax in fig.axes[:2]] == [2, 2]
    assert len(fig.axes[2].patches) == 2 and texts(fig.axes[2]) == ["50.0%", "50.0%"]


def test_checkerboard_titles_the_flat_range():
    fig = figures.checkerboard(torch.full((4, 4), 1.5), torch.rand(8, 8), torch.rand(8, 8), 3, 2)
    assert len(fig.axes) == 3 and "values 1.50 … 1.50" in fig.axes[0].get_title()


def test_downsampling_and_upsampling_panels():
    photo = torch.rand(1, 1, 8, 8)
    down = {"max": F.max_pool2d(photo, 2), "avg": F.avg_pool2d(photo, 2)}
    back = {name: F.interpolate(y, scale_factor=2) for name, y in down.items()}
    s2d = F.pixel_unshuffle(photo, 2)
    fig = figures.downsampling(photo, 2, down, s2d, back, F.pixel_shuffle(s2d, 2))
    assert len(fig.axes) == 8  # two rows of four, the last of each row unused
    assert fig.axes[5].get_title() == "pixel_shuffle: max error 0.000"  # the second row starts at axes[4]
    assert fig.axes[2].get_title() == "space-to-depth\n(4, 4, 4)"
    fig = figures.upsampling(down["avg"], photo, {**back, "same": photo}, {"max": 0.5, "avg": 0.25, "same": 0.0})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:5] == ["input (4×4)", "max\nerror 0.500", "avg\nerror 0.250", "same\nerror 0.000", "original (8×8)"]


@pytest.mark.parametrize("dpi", [72, 160])
def test_numbers_drawn_as_outlines_are_as_large_as_text_and_centred_on_their_point(dpi):
    def ink(draw) -> tuple[np.ndarray, np.ndarray]:  # dark pixels' box (top, bottom, left, right); the point's pixel
        fig, ax = plt.subplots(figsize=(2, 2), dpi=50)  # made at one dpi, saved at another
        ax.set(xlim=(-1, 1), ylim=(-1, 1))
        ax.axis("off")
        draw(ax)
        image = np.asarray(Image.open(io.BytesIO(render_png(fig, dpi=dpi))).convert("L"))
        rows, cols = np.nonzero(image < 128)
        fig.set_dpi(dpi)  # render_png gave the figure back the dpi it was made at
        x, y = ax.transData.transform((0.3, -0.2))
        return np.array([rows.min(), rows.max(), cols.min(), cols.max()]), np.array([image.shape[0] - y, x])

    text, _ = ink(lambda ax: ax.text(0.3, -0.2, "48", ha="center", va="center", fontsize=30))
    outline, point = ink(lambda ax: write_numbers(ax, np.array([[0.3, -0.2]]), ["48"], 30, ["black"]))
    height, width = text[1] - text[0], text[3] - text[2]
    assert height > dpi * 30 / 72 * 0.6  # the digits' height in pixels grows with the dpi
    assert abs((outline[1] - outline[0]) - height) <= 2 and abs((outline[3] - outline[2]) - width) <= 2
    # the ink's centre is the point (Text centres its line box instead, a little higher for digits)
    np.testing.assert_allclose([(outline[0] + outline[1]) / 2, (outline[2] + outline[3]) / 2], point, atol=1.5)


def _edge_ink(fig, dpi: int) -> list[int]:
    """Rows and columns of dark pixels at the border of the saved image: top, bottom, left, right."""
    image = np.asarray(Image.open(io.BytesIO(render_png(fig, dpi=dpi))).convert("L")) < 200
    return [int(image[0].sum()), int(image[-1].sum()), int(image[:, 0].sum()), int(image[:, -1].sum())]


@pytest.mark.parametrize("dpi", [80, 160])
def test_slider_figures_are_not_cut_at_the_edge_of_their_frame(dpi):
    photo = torch.rand(128, 128, generator=torch.Generator().manual_seed(0))
    kernel = torch.full((3, 3), 1 / 9)
    with matplotlib.rc_context({"figure.dpi": dpi}):  # made at the dpi they are saved at, as slider frames are
        made = {"filtered_photo": figures.filtered_photo(photo, kernel, photo, "box blur"),
                "pooling_windows": figures.pooling_windows(photo, 3, 2),
                "read_count_grid": figures.read_count_grid(np.outer([1, 2, 1], [1, 2, 1]), "t\nt", padding=1)}
    for name, fig in made.items():
        assert _edge_ink(fig, dpi) == [0, 0, 0, 0], name  # e.g. a title above the top of the image
