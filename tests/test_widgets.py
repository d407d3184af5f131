"""dlbook.widgets: live sliders recompute in the kernel; static sliders carry the right frame for every setting."""

from __future__ import annotations

import base64
import json
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from dlbook.widgets import (  # noqa: E402
    FrameBudget,
    LiveFigure,
    StaticFigure,
    animation_html,
    frame_key,
    html_app,
    interact,
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
    ({"bad name": [1]}, None, "identifiers"),
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
    with pytest.raises(TypeError, match="config must be a mapping"):
        html_app("", "", [1, 2])


def test_animation_player_needs_no_cdn():
    from matplotlib import animation

    f, ax = plt.subplots(figsize=(1, 1))
    (line,) = ax.plot([0, 1], [0, 1])
    anim = animation.FuncAnimation(f, lambda i: line.set_ydata([0, i]) or [line], frames=3)
    page = animation_html(anim).data
    assert "maxcdn" not in page and "fa fa-" not in page and "&#9654;" in page
    plt.close(f)
