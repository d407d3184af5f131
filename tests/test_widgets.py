"""dlbook.widgets: live sliders recompute in the kernel; static sliders carry the right frame for every setting."""

from __future__ import annotations

import base64
import io
import json
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from dlbook.widgets import (  # noqa: E402
    BUSY_CLASS,
    PREFETCH_DELAY_S,
    SCALE,
    FrameBudget,
    LiveFigure,
    StaticFigure,
    animation_html,
    frame_key,
    html_app,
    interact,
    render_frame,
    render_png,
    widget_mode,
)


def _marker_png(**values) -> bytes:
    """A tiny PNG that encodes its arguments, so tests can tell frames apart without decoding images."""
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.set_title(frame_key(values), fontsize=4)
    ax.plot([0, len(frame_key(values))], [0, 1])
    return render_png(fig, dpi=30)


def test_mode_from_environment(monkeypatch):
    monkeypatch.delenv("DLBOOK_WIDGETS", raising=False)
    assert widget_mode() == "live"
    monkeypatch.setenv("DLBOOK_WIDGETS", "static")
    assert widget_mode() == "static"
    assert widget_mode("live") == "live"
    monkeypatch.setenv("DLBOOK_WIDGETS", "kernelless")
    with pytest.raises(ValueError, match="DLBOOK_WIDGETS"):
        widget_mode()
    with pytest.raises(ValueError, match="mode must be one of"):
        widget_mode("both")


def test_live_slider_recomputes_for_the_new_value():
    calls = []

    def render(k, s):
        calls.append((k, s))
        return _marker_png(k=k, s=s)

    live = interact(render, {"k": [1, 3, 5], "s": [1, 2]}, mode="live")
    assert isinstance(live, LiveFigure)
    assert live.image.value == _marker_png(k=1, s=1)
    live.sliders["k"].value = 5
    assert calls[-1] == (5, 1)
    assert live.image.value == _marker_png(k=5, s=1)
    live.sliders["s"].value = 2
    assert live.values() == {"k": 5, "s": 2}
    assert live.image.value == _marker_png(k=5, s=2)
    n = len(calls)
    live.sliders["s"].value = 1  # a setting seen before is served from the cache
    assert len(calls) == n and live.image.value == _marker_png(k=5, s=1)


def test_live_sliders_of_a_figure_share_one_label_width():
    live = interact(lambda k, weight_scale: _marker_png(k=k, w=weight_scale),
                    {"k": [1, 2], "weight_scale": [0.5, 1.0]}, mode="live")
    widths = {slider.style.description_width for slider in live.sliders.values()}
    assert len(widths) == 1 and widths.pop() == f"{len('weight_scale') + 2}ch"
    assert len({slider.layout.width for slider in live.sliders.values()}) == 1
    # and one read-out width, the longest value label's, scoped to this figure
    style = live.widget.children[0].value
    figure_class = next(c for c in live.widget._dom_classes if c.startswith("dlbook-live-"))
    assert f".{figure_class} .widget-slider .widget-readout{{width:{len('0.5') + 1}ch;" in style


def test_live_image_is_marked_busy_while_a_new_frame_renders():
    seen = []
    made = {}

    def render(k):
        seen.append("live" in made and BUSY_CLASS in made["live"].image._dom_classes)
        return _marker_png(k=k)

    live = made["live"] = interact(render, {"k": [1, 2, 3]}, mode="live")
    assert seen == [False]  # the first frame renders before the image exists: nothing to dim
    live.sliders["k"].value = 2
    assert seen[-1] is True  # dimmed in the page while the kernel renders
    assert BUSY_CLASS not in live.image._dom_classes and live.image.value == _marker_png(k=2)
    classes = []
    live.image.observe(lambda change: classes.append(list(change.new)), names="_dom_classes")
    live.sliders["k"].value = 1  # cached: shown at once, never dimmed
    assert classes == [] and live.image.value == _marker_png(k=1)


def test_live_image_is_not_left_busy_when_the_render_fails():
    def render(k):
        if k == 2:
            raise RuntimeError("broken frame")
        return _marker_png(k=k)

    live = interact(render, {"k": [1, 2]}, mode="live")
    with pytest.raises(RuntimeError, match="broken frame"):
        live.sliders["k"].value = 2
    assert BUSY_CLASS not in live.image._dom_classes


def test_live_figure_displays_as_a_widget():
    live = interact(lambda k: _marker_png(k=k), {"k": [1, 2]}, mode="live", title="T")
    bundle = live._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_static_figure_embeds_every_frame_and_the_js_swaps_by_key():
    fig = interact(lambda k, s: _marker_png(k=k, s=s), {"k": [1, 3, 5], "s": [1, 2]}, defaults={"k": 3},
                   mode="static", title="demo")
    assert isinstance(fig, StaticFigure)
    assert set(fig.frames) == {frame_key({"k": k, "s": s}) for k in (1, 3, 5) for s in (1, 2)}
    for key, png in fig.frames.items():
        k, s = (int(part.split("=")[1]) for part in key.split("|"))
        assert png == _marker_png(k=k, s=s)
    html = fig._repr_html_()
    data = json.loads(re.search(r'<script type="application/json" class="dlbook-data">(.*?)</script>', html).group(1))
    assert data["labels"] == {"k": ["1", "3", "5"], "s": ["1", "2"]}
    for key, index in data["frames"].items():
        assert base64.b64decode(data["images"][index]) == fig.frames[key]
    # the initial image is the default's frame, and the sliders start at the default's position
    start = re.search(r'<img class="dlbook-frame"[^>]*data-key="([^"]*)"', html).group(1)
    assert start == "k=3|s=1"
    assert 'value="1" data-param="k"' in html and 'value="0" data-param="s"' in html
    assert "<script>" in html and "http" not in html  # self-contained: no CDN, no external script


def test_static_ids_are_unique_per_output():
    a = interact(lambda k: _marker_png(k=k), {"k": [1, 2]}, mode="static").html
    b = interact(lambda k: _marker_png(k=k), {"k": [1, 2]}, mode="static").html
    id_a, id_b = (re.search(r'id="(dlbook-[^"]+)"', h).group(1) for h in (a, b))
    assert id_a != id_b


def test_static_deduplicates_identical_frames():
    with pytest.raises(ValueError, match="slider 's' never changes the figure"):
        interact(lambda k, s: _marker_png(k=k), {"k": [1, 2], "s": [1, 2, 3]}, mode="static")
    shared = interact(lambda k, s: _marker_png(k=min(k, s)), {"k": [1, 2], "s": [1, 2]}, mode="static")
    data = json.loads(re.search(r'class="dlbook-data">(.*?)</script>', shared.html).group(1))
    assert len(data["images"]) == 2 and len(data["frames"]) == 4  # 4 settings, 2 distinct pictures


def test_grid_too_large_is_refused_before_rendering():
    calls = []

    def render(a, b):
        calls.append(1)
        return _marker_png(a=a, b=b)

    with pytest.raises(ValueError, match="too large to precompute.*20 a x 20 b = 400 frames"):
        interact(render, {"a": list(range(20)), "b": list(range(20))}, mode="static")
    assert not calls
    # in live mode the same grid is fine: frames are rendered on demand
    assert isinstance(interact(render, {"a": list(range(20)), "b": list(range(20))}, mode="live"), LiveFigure)


def test_byte_budget():
    with pytest.raises(ValueError, match="exceed the page budget"):
        interact(lambda k: _marker_png(k=k), {"k": [1, 2, 3]}, mode="static",
                 budget=FrameBudget(max_frames=10, max_bytes=500))


@pytest.mark.parametrize("params,defaults,match", [
    ({}, None, "non-empty mapping"),
    ({"k": []}, None, "non-empty list"),
    ({"k": "135"}, None, "non-empty list"),
    ({"bad name": [1]}, None, "params.*identifier"),
    ({"k": [1, 1]}, None, "repeated values"),
    ({"k": [1, 2]}, {"s": 1}, "not a parameter"),
    ({"k": [1, 2]}, {"k": 3}, "not one of the slider values"),
])
def test_bad_params(params, defaults, match):
    with pytest.raises(ValueError, match=match):
        interact(lambda **kw: _marker_png(**kw), params, defaults=defaults, mode="static")


def test_render_must_return_a_figure():
    with pytest.raises(TypeError, match="matplotlib Figure or PNG bytes"):
        interact(lambda k: "not a figure", {"k": [1, 2]}, mode="static")
    with pytest.raises(ValueError, match="image_format"):
        interact(lambda k: _marker_png(k=k), {"k": [1, 2]}, mode="static", image_format="gif")


def test_jpeg_frames_for_photos():
    def render(k):
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.imshow([[0, k], [k, 0]], vmin=0, vmax=2)
        return fig

    fig = interact(render, {"k": [1, 2]}, mode="static", image_format="jpeg")
    assert all(png[:2] == b"\xff\xd8" for png in fig.frames.values())  # JPEG magic number
    assert '"mime": "image/jpeg"' in fig.html


def test_render_png_is_deterministic():
    def fig():
        f, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1], [1, 0])
        return f

    assert render_png(fig()) == render_png(fig())


def test_html_app_is_self_contained_and_scoped():
    app = html_app('<span class="out"></span>', "root.querySelector('.out').textContent = config.n * 2;", {"n": 21})
    html = app._repr_html_()
    uid = re.search(r'id="(dlbook-app-[^"]+)"', html).group(1)
    assert f'document.getElementById("{uid}")' in html
    assert '{"n": 21}' in html and "http" not in html
    with pytest.raises(TypeError, match="config must be of type Mapping"):
        html_app("", "", [1, 2])


def test_static_sliders_share_one_label_column():
    html = interact(lambda k, weight_scale: _marker_png(k=k, w=weight_scale),
                    {"k": [1, 2], "weight_scale": [0.5, 1.0]}, mode="static").html
    assert "grid-template-columns:max-content" in html and "label{display:contents}" in html


@pytest.mark.browser
def test_keys_on_controls_stay_with_the_controls(page):
    """In a notebook, a bare key pressed on a slider must move the slider, not the notebook's cells."""
    app = html_app('<input type="range" class="r" min="0" max="5" value="2" aria-label="r">'
                   '<select class="m" aria-label="m"><option>a</option><option>b</option></select>', "", {})
    static = interact(lambda k: _marker_png(k=k), {"k": [1, 2, 3]}, mode="static")
    page.set_content(
        "<html><body><script>window.seen = []; document.addEventListener('keydown', e => seen.push(e.key));"
        f"</script>{app.html}{static.html}</body></html>")
    page.focus("input.r")
    page.keyboard.press("ArrowRight")
    assert page.input_value("input.r") == "3"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Home")
    page.keyboard.press("a")  # in JupyterLab's command mode: insert a cell above
    assert page.input_value("input.r") == "0"
    page.focus("select.m")
    page.keyboard.press("m")  # in JupyterLab's command mode: make the cell Markdown
    page.focus("input.dlbook-slider")
    page.keyboard.press("ArrowRight")
    assert page.text_content(".dlbook-interact output") == "2"
    assert page.evaluate("seen") == []
    page.keyboard.press("Escape")  # leaving the control, saving and running cells still reach the notebook
    page.keyboard.press("Control+s")
    page.keyboard.press("Shift+Enter")
    assert page.evaluate("seen") == ["Escape", "Control", "s", "Enter"]  # (a bare Shift stays: it does nothing)
    assert page.js_errors == []


def test_animation_player_needs_no_cdn():
    from matplotlib import animation

    f, ax = plt.subplots(figsize=(1, 1))
    (line,) = ax.plot([0, 1], [0, 1])
    anim = animation.FuncAnimation(f, lambda i: line.set_ydata([0, i]) or [line], frames=3)
    page = animation_html(anim).data
    assert "maxcdn" not in page and "fa fa-" not in page and "&#9654;" in page
    plt.close(f)


# -- frames at 2x: rendered at SCALE * dpi, shown at their CSS size


def _wide_figure(k):
    """A 2 x 1 inch figure: at dpi 30 it is 60 CSS pixels wide, 120 device pixels."""
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, k], [0, 1])
    return fig


def _pixel_width(image: bytes) -> int:
    from PIL import Image

    return Image.open(io.BytesIO(image)).width


@pytest.mark.parametrize("image_format", ["png", "jpeg"])
@pytest.mark.parametrize("case", ["tight_layout()", "no layout, see-through", "constrained", "animated",
                                  "savefig.facecolor"])
def test_a_frame_is_what_savefig_writes_drawn_once_when_savefig_would_add_nothing(monkeypatch, image_format, case):
    from matplotlib.figure import Figure

    def figure():  # made at 90 dpi and saved at 70: the saved bytes must not depend on the dpi it was made at
        fig, ax = plt.subplots(figsize=(2.4, 1.6), dpi=90, layout="constrained" if case == "constrained" else None)
        ax.imshow([[0.0, 0.5], [0.75, 1.0]], alpha=0.6)
        ax.set_title("a title of some length")
        ax.text(0.5, 0.5, "7", color="crimson", animated=case == "animated")
        if case == "no layout, see-through":  # JPEG blends what shows through against white
            fig.patch.set_alpha(0.0)
        if case == "tight_layout()":
            fig.tight_layout()
        return fig

    saved = io.BytesIO()
    kwargs = {"png": dict(metadata={"Software": None}), "jpeg": dict(pil_kwargs={"quality": 85, "optimize": True})}
    rc = {"savefig.facecolor": "lightyellow"} if case == "savefig.facecolor" else {}
    with plt.rc_context(rc):
        fig = figure()
        fig.savefig(saved, format=image_format, dpi=70, **kwargs[image_format])
        plt.close(fig)
        draws = []
        draw = Figure.draw
        monkeypatch.setattr(Figure, "draw", lambda self, renderer: draws.append(1) or draw(self, renderer))
        assert render_png(figure(), dpi=70, image_format=image_format) == saved.getvalue()
    # savefig draws a figure with a layout engine twice, the first time without output: needed for constrained
    # layout, which settles while drawing; wasted after tight_layout(), whose engine is a placeholder
    assert len(draws) == (2 if case == "constrained" else 1)


def test_a_figure_made_at_the_dpi_it_is_saved_at_is_drawn_by_the_renderer_that_laid_it_out(monkeypatch):
    from matplotlib.backends.backend_agg import RendererAgg

    def figure():
        fig, ax = plt.subplots(figsize=(2.4, 1.6), dpi=70)
        ax.semilogy([1, 2, 3], [1e-3, 1.0, 1e3])
        ax.set_title(r"$\alpha$ and some text")
        fig.tight_layout()
        return fig

    saved = io.BytesIO()
    fig = figure()
    fig.savefig(saved, format="png", dpi=70, metadata={"Software": None})
    plt.close(fig)
    made = []
    init = RendererAgg.__init__
    monkeypatch.setattr(RendererAgg, "__init__", lambda self, *a: made.append(1) or init(self, *a))
    assert render_png(figure(), dpi=70) == saved.getvalue()
    assert len(made) == 1  # tight_layout's renderer draws it too: the texts are not measured again by a second one


def _math_figure(k):
    fig, ax = plt.subplots(figsize=(2.4, 1.6))
    ax.semilogy([1, 2, 3], [1e-3, 10.0**k, 1e3])  # tick labels $10^{-3}$ ... are mathtext
    ax.set_title(rf"$\beta = {k}$")
    fig.tight_layout()
    return fig


def test_slider_frames_parse_each_mathtext_string_once(monkeypatch):
    from matplotlib import _mathtext
    from matplotlib.backends import backend_agg

    made_by = backend_agg.MathTextParser
    render_frame(_math_figure, {"k": 0}, 50)
    parsed = []
    parse = _mathtext.Parser.parse
    monkeypatch.setattr(_mathtext.Parser, "parse", lambda self, s, *a: parsed.append(s) or parse(self, s, *a))
    again = render_frame(_math_figure, {"k": 0}, 50)
    assert parsed == []  # a new figure, a new renderer, but the same parser: every label was parsed before
    render_frame(_math_figure, {"k": 1}, 50)
    assert parsed == [r"$\beta = 1$"]  # only what is new
    assert backend_agg.MathTextParser is made_by  # figures outside a frame make their own parser, as before
    monkeypatch.undo()
    with plt.rc_context({"figure.dpi": 50}):
        fig = _math_figure(0)
    saved = io.BytesIO()
    fig.savefig(saved, format="png", dpi=50, metadata={"Software": None})
    plt.close(fig)
    assert again == saved.getvalue()  # the same pixels as a figure parsed afresh


def _saved_afresh(render, values, dpi) -> bytes:
    """What savefig writes for ``render(**values)`` made at ``dpi`` outside a frame: parsed by a parser of its own."""
    with plt.rc_context({"figure.dpi": dpi}):
        fig = render(**values)
    saved = io.BytesIO()
    fig.savefig(saved, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return saved.getvalue()


@pytest.mark.parametrize("setting", [{"font.sans-serif": ["DejaVu Serif"]},  # the font \mathdefault labels use
                                     {"mathtext.default": "bf"}])  # read by the parser, in no font property
def test_a_shared_mathtext_parse_is_one_a_fresh_parser_would_make_under_the_settings_in_force(setting):
    with plt.rc_context({"mathtext.fontset": "dejavusans", "font.family": "sans-serif"}):
        before = render_frame(_math_figure, {"k": 2}, 50)
        with plt.rc_context(setting):
            after = render_frame(_math_figure, {"k": 2}, 50)  # the same strings, parsed before under other settings
            assert after == _saved_afresh(_math_figure, {"k": 2}, 50)
        assert after != before  # the setting shows: a parse kept from the first frame would have hidden it


def test_a_frame_rendered_on_another_thread_leaves_the_parsers_alone():
    from concurrent.futures import ThreadPoolExecutor

    from matplotlib.backends import backend_agg

    made_by = backend_agg.MathTextParser

    def render_off_the_main_thread(k):
        assert backend_agg.MathTextParser is made_by  # no swap: another thread may be drawing meanwhile
        return _math_figure(k)

    with ThreadPoolExecutor(1) as pool:
        frame = pool.submit(render_frame, render_off_the_main_thread, {"k": 1}, 50).result()
    assert frame == _saved_afresh(_math_figure, {"k": 1}, 50)


def test_the_mathtext_parser_is_given_back_when_a_frame_fails():
    from matplotlib.backends import backend_agg

    made_by = backend_agg.MathTextParser

    def broken(k):
        raise RuntimeError("no figure")

    with pytest.raises(RuntimeError, match="no figure"):
        render_frame(broken, {"k": 1}, 50)
    assert backend_agg.MathTextParser is made_by


def test_looking_for_animated_artists_makes_no_ticks_on_an_axis_turned_off():
    fig, ax = plt.subplots()
    ax.imshow([[0.0, 1.0]])
    ax.axis("off")
    fig.tight_layout()
    render_png(fig, dpi=40)
    assert len(ax.xaxis.majorTicks) + len(ax.yaxis.majorTicks) <= 2  # the one each axis starts with; findobj: 10+


def test_a_figure_made_without_pyplot_keeps_its_canvas_and_dpi():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1), dpi=50)
    fig.add_subplot().plot([0, 1])
    fig.tight_layout()  # drawn once: the figure's dpi and canvas are changed while drawing, then given back
    canvas = fig.canvas
    assert _pixel_width(render_png(fig, dpi=70)) == 140
    assert fig.canvas is canvas and fig.dpi == 50


def test_a_frame_is_made_at_the_dpi_it_is_saved_at():
    made_at = []

    def render(k):
        fig = plt.figure(figsize=(2, 1))
        made_at.append(fig.dpi)
        return fig

    dpi_before = plt.rcParams["figure.dpi"]
    frame = render_frame(render, {"k": 1}, 60)
    assert made_at == [60] and _pixel_width(frame) == 120
    assert plt.rcParams["figure.dpi"] == dpi_before  # the notebook's own figures keep their dpi
    live = LiveFigure(render, {"k": [1, 2]}, {"k": 1}, 30, None, schedule=lambda *a: None)
    live.sliders["k"].value = 2
    assert made_at[1:] == [SCALE * 30, SCALE * 30]  # the live path renders the same way


def test_static_frames_are_rendered_at_twice_the_dpi_and_declared_at_half_their_width():
    fig = interact(_wide_figure, {"k": [1, 2, 3]}, mode="static", dpi=30)
    assert SCALE == 2 and {_pixel_width(png) for png in fig.frames.values()} == {120}
    data = json.loads(re.search(r'class="dlbook-data">(.*?)</script>', fig.html).group(1))
    assert data["widths"] == [60, 60, 60]
    assert re.search(r'<img class="dlbook-frame"[^>]* width="60" src="data:image/png;base64,', fig.html)
    assert "max-width:100%;height:auto" in fig.html  # still shrinks on a narrow screen


def test_the_site_build_keeps_the_declared_width_when_frames_become_files(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "book" / "_ext" / "dlbook_sphinx.py"
    spec = importlib.util.spec_from_file_location("dlbook_sphinx_under_test", path)
    sphinx_ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sphinx_ext)
    fig = interact(_wide_figure, {"k": [1, 2]}, mode="static", dpi=30)
    body = sphinx_ext.frames_as_files(fig.html, tmp_path, lambda name: name)
    assert re.search(r'<img class="dlbook-frame"[^>]* width="60" src="_images/frames/\w+\.png"', body)
    assert json.loads(re.search(r'class="dlbook-data">(.*?)</script>', body).group(1))["widths"] == [60, 60]


def test_live_frames_are_rendered_at_twice_the_dpi_and_shown_at_half_their_width():
    live = interact(_wide_figure, {"k": [1, 2]}, mode="live", dpi=30)
    assert _pixel_width(live.image.value) == 120 and live.image.width == "60"
    assert live.image.layout.max_width == "100%" and live.image.layout.height == "auto"
    sizes = {1: (2, 1), 2: (3, 1)}  # a frame of another size gets its own width
    live = interact(lambda k: plt.subplots(figsize=sizes[k])[0], {"k": [1, 2]}, mode="live", dpi=30)
    live.sliders["k"].value = 2
    assert _pixel_width(live.image.value) == 180 and live.image.width == "90"


@pytest.mark.browser
def test_static_frame_is_shown_at_half_its_natural_width(page):
    fig = interact(_wide_figure, {"k": [1, 2]}, mode="static", dpi=100)
    page.set_content(f"<html><body>{fig.html}</body></html>")
    img = page.locator("img.dlbook-frame")
    page.wait_for_function("() => document.querySelector('img.dlbook-frame').complete")
    assert img.evaluate("i => [i.naturalWidth, i.getBoundingClientRect().width]") == [400, 200]
    page.set_viewport_size({"width": 150, "height": 600})  # narrower than the figure: it shrinks, proportions kept
    shown = img.evaluate("i => [i.getBoundingClientRect().width, i.getBoundingClientRect().height]")
    assert shown[0] < 150 and abs(shown[0] / shown[1] - 2) < 0.05


# -- live figures render the neighbours of the current setting ahead, one per idle callback


class _Loop:
    """A stand-in for the kernel's event loop: callbacks wait in a list until ``run`` calls them."""

    def __init__(self):
        self.pending, self.delays = [], []

    def __call__(self, delay, callback):
        self.delays.append(delay)
        self.pending.append(callback)

    def run(self, n=None):
        done = 0
        while self.pending and (n is None or done < n):
            self.pending.pop(0)()
            done += 1
        return done


def _counting_render(calls):
    def render(k, s):
        calls.append((k, s))
        return _marker_png(k=k, s=s)

    return render


def test_live_figure_renders_the_neighbours_ahead_when_idle():
    calls, loop = [], _Loop()
    live = LiveFigure(_counting_render(calls), {"k": [1, 3, 5], "s": [1, 2]}, {"k": 3, "s": 1}, 30, None,
                      schedule=loop)
    assert calls == [(3, 1)] and len(loop.pending) == 1  # nothing rendered ahead until the loop runs
    assert loop.run() == 3  # one frame per callback
    assert loop.delays == [PREFETCH_DELAY_S, 0, 0]  # the first waits for an idle kernel, the next follow at once
    assert calls == [(3, 1), (5, 1), (1, 1), (3, 2)]  # one step along each slider; s = 0 is not on the grid
    live.sliders["k"].value = 5  # a neighbour: served from the cache, no render
    assert len(calls) == 4 and live.image.value == _marker_png(k=5, s=1)
    loop.run()
    assert calls[4:] == [(5, 2)]  # k = 7 is past the grid's end; (3, 1) is cached


def test_a_slider_event_during_the_prefetch_is_served_and_the_queue_follows_it():
    calls, loop = [], _Loop()
    live = LiveFigure(_counting_render(calls), {"k": [1, 3, 5, 7, 9], "s": [1, 2]}, {"k": 1, "s": 1}, 30, None,
                      schedule=loop)
    loop.run(1)  # (3, 1) rendered ahead; (1, 2) still queued
    live.sliders["k"].value = 9  # not cached: rendered now, at once
    assert calls == [(1, 1), (3, 1), (9, 1)] and live.image.value == _marker_png(k=9, s=1)
    loop.run()
    assert calls[3:] == [(7, 1), (9, 2)]  # the neighbours of the new setting, not (1, 2) of the old one
    assert len(loop.pending) == 0


def test_nothing_is_rendered_ahead_while_cells_run(monkeypatch):
    from dlbook import widgets

    cells = [7]
    monkeypatch.setattr(widgets, "_cells_run", lambda: cells[0])
    calls, loop = [], _Loop()
    LiveFigure(_counting_render(calls), {"k": [1, 3], "s": [1]}, {"k": 1, "s": 1}, 30, None, schedule=loop)
    cells[0] += 1  # the next cell of the notebook ran before the callback
    loop.run(1)
    assert calls == [(1, 1)] and len(loop.pending) == 1  # put off, not dropped
    loop.run()
    assert calls == [(1, 1), (3, 1)]


def test_a_frame_that_fails_ahead_is_skipped_and_fails_when_shown():
    loop = _Loop()

    def render(k):
        if k == 2:
            raise RuntimeError("broken frame")
        return _marker_png(k=k)

    live = LiveFigure(render, {"k": [1, 2, 3]}, {"k": 1}, 30, None, schedule=loop)
    loop.run()
    with pytest.raises(RuntimeError, match="broken frame"):
        live.sliders["k"].value = 2


def test_without_an_event_loop_nothing_is_rendered_ahead():
    calls = []
    live = interact(_counting_render(calls), {"k": [1, 3], "s": [1, 2]}, mode="live")
    assert calls == [(1, 1)] and live.neighbours() == [{"k": 3, "s": 1}, {"k": 1, "s": 2}]


@pytest.mark.browser
def test_static_frame_of_another_size_gets_its_own_width(page):
    sizes = {1: (2, 1), 2: (3, 1)}
    fig = interact(lambda k: plt.subplots(figsize=sizes[k])[0], {"k": [1, 2]}, mode="static", dpi=100)
    page.set_content(f"<html><body>{fig.html}</body></html>")
    page.locator("input.dlbook-slider").first.press("ArrowRight")
    page.wait_for_function("() => { const i = document.querySelector('img.dlbook-frame'); "
                           "return i.dataset.key === 'k=2' && i.complete && i.naturalWidth > 0; }")
    assert page.locator("img.dlbook-frame").evaluate("i => [i.naturalWidth, i.getBoundingClientRect().width]") \
        == [600, 300]


def test_a_live_figure_made_on_a_running_loop_renders_ahead_on_it():
    import asyncio

    calls = []

    async def make_and_pause():
        LiveFigure(_counting_render(calls), {"k": [1, 3], "s": [1]}, {"k": 1, "s": 1}, 30, None)  # no schedule=
        assert calls == [(1, 1)]
        await asyncio.sleep(PREFETCH_DELAY_S + 0.5)  # the loop is idle: the neighbour is rendered ahead

    import threading

    # a loop of its own, in a thread: the browser tests' sync API may leave a loop running in this one
    thread = threading.Thread(target=asyncio.run, args=(make_and_pause(),))
    thread.start()
    thread.join()
    assert calls == [(1, 1), (3, 1)]


def test_a_frame_that_fails_ahead_is_skipped_and_the_next_one_is_rendered():
    loop, calls = _Loop(), []

    def render(k, s):
        calls.append((k, s))
        if k == 2:
            plt.figure()  # a figure the failing render leaves open
            raise RuntimeError("broken frame")
        return _marker_png(k=k, s=s)

    open_before = len(plt.get_fignums())
    LiveFigure(render, {"k": [1, 2], "s": [1, 2]}, {"k": 1, "s": 1}, 30, None, schedule=loop)
    loop.run()
    assert calls == [(1, 1), (2, 1), (1, 2)]  # the failure did not stop the queue
    assert len(plt.get_fignums()) == open_before, "the failed render's figure is still open"
