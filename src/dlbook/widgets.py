"""Sliders that change figures: live with a kernel, and still working in the static site without one.

One call, :func:`interact`, gives

* **live** mode (a Jupyter kernel is attached): ipywidgets sliders above an image; every change re-renders the figure
  in the kernel, and while the kernel is idle the frames one slider step away are rendered ahead of the reader;
* **static** mode (the built site): every frame of the slider grid is rendered once at build time and written into a
  self-contained HTML block with a few lines of JavaScript that swap the frame. No kernel, no CDN, no require.js.

Frames are rendered at twice the ``dpi`` asked for and shown at half their pixel width, as matplotlib's "retina"
figures are: the same size on the page, sharp on high-density screens.

A second call, :func:`html_app`, embeds a small JavaScript program that *computes* what it draws (e.g. the
convolution-arithmetic explorer). It needs no kernel in either mode.

The mode comes from the environment variable ``DLBOOK_WIDGETS`` (``live`` or ``static``), which ``make book`` and the
site test set to ``static``; it defaults to ``live``. Pass ``mode=`` to override.

``ipywidgets`` and ``matplotlib`` are imported inside the functions that need them, so that the compute modules of
dlbook never pull them in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import io
import itertools
import json
import math
import os
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from dlbook._checks import instance, one_of

__all__ = [
    "MODE_ENV",
    "BUSY_CLASS",
    "FrameBudget",
    "widget_mode",
    "SCALE",
    "PREFETCH_DELAY_S",
    "render_png",
    "render_frame",
    "css_width",
    "interact",
    "StaticFigure",
    "LiveFigure",
    "html_app",
    "frame_key",
    "animation_html",
]

MODE_ENV = "DLBOOK_WIDGETS"
_MODES = ("live", "static")
SCALE = 2  # device pixels per CSS pixel of a frame: rendered at SCALE * dpi, shown at 1 / SCALE of its pixel width
PREFETCH_DELAY_S = 0.2  # a live figure starts rendering ahead once the kernel has been idle this long


@dataclass(frozen=True)
class FrameBudget:
    """How much a static slider figure may embed in a page.

    A grid larger than this is refused with a ``ValueError`` instead of producing a page of tens of megabytes:
    make the grid coarser, or split the figure. The byte limit is for frames at 2x (:data:`SCALE`), which take 1.8 to
    2.7 times the bytes of the same frames at 1x: 8 MB admits the grids that 3 MB admits at 1x.
    """

    max_frames: int = 240
    max_bytes: int = 8_000_000


def widget_mode(mode: str | None = None) -> str:
    """Return ``"live"`` or ``"static"``: ``mode`` if given, else ``$DLBOOK_WIDGETS``, else ``"live"``."""
    if mode is not None:
        return one_of(mode, "mode", _MODES)
    return one_of(os.environ.get(MODE_ENV, "live"), f"${MODE_ENV}", _MODES)


_FORMATS = {"png": "image/png", "jpeg": "image/jpeg"}


def render_png(figure: Any, dpi: int = 80, image_format: str = "png") -> bytes:
    """Image bytes of a matplotlib figure (closed afterwards), or ``figure`` itself if it already is image bytes.

    ``image_format`` is ``"png"`` (exact; best for plots and small grids) or ``"jpeg"`` (several times smaller for
    photographs). No timestamp or software tag is written, so the same figure gives the same bytes on every run.
    """
    one_of(image_format, "image_format", tuple(_FORMATS))
    if isinstance(figure, bytes | bytearray):
        return bytes(figure)
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if not isinstance(figure, Figure):
        raise TypeError(f"render must return a matplotlib Figure or PNG bytes, got {type(figure).__name__}")
    save = {"png": dict(metadata={"Software": None}), "jpeg": dict(pil_kwargs={"quality": 85, "optimize": True})}
    buf = io.BytesIO()
    try:
        if _laid_out(figure):
            _save_drawn_once(figure, buf, dpi, image_format, **save[image_format])
        else:  # no layout engine (savefig draws once anyway), or one that needs savefig's two draws
            figure.savefig(buf, format=image_format, dpi=dpi, **save[image_format])
    finally:  # a figure that failed to save is not left open for the notebook to show later
        plt.close(figure)
    return buf.getvalue()


def _laid_out(figure: Any) -> bool:
    """True if savefig's first, output-less draw would add nothing: the layout engine is the placeholder that
    ``tight_layout()`` leaves (nothing left to lay out); no animated artist (savefig draws those, a plain draw skips
    them); savefig's colours, transparency and bounding box at their defaults (it applies them, a plain draw does not).
    """
    import matplotlib as mpl
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    defaults = (mpl.rcParams["savefig.facecolor"] == "auto" and mpl.rcParams["savefig.edgecolor"] == "auto"
                and not mpl.rcParams["savefig.transparent"] and mpl.rcParams["savefig.bbox"] is None)
    return isinstance(figure.get_layout_engine(), PlaceHolderLayoutEngine) and defaults and not _animated(figure)


def _animated(artist: Any) -> bool:
    """Whether ``artist`` or one of its children is animated. Axis objects are not entered: asking them for their
    children makes every tick, also on an axis that is turned off and would never draw one (tens of ms a figure)."""
    from matplotlib.axis import Axis

    return artist.get_animated() or (not isinstance(artist, Axis)
                                     and any(_animated(child) for child in artist.get_children()))


def _save_drawn_once(figure: Any, buf: io.BytesIO, dpi: int, image_format: str, **kwargs: Any) -> None:
    """What ``figure.savefig(buf, format=image_format, dpi=dpi, **kwargs)`` writes with the Agg backend, for a figure
    that :func:`_laid_out` accepts, drawn once: the same bytes wherever one draw settles every position (matplotlib
    places a few artists only while drawing, e.g. a title above top ticks; an annotation anchored on such an artist
    could land elsewhere; the book's slider figures have none).

    savefig draws a figure that has a layout engine twice, first without output so that the layout can settle; after
    ``tight_layout()`` the engine is a placeholder with nothing to settle, and that first draw is 15-25 % of a slider
    frame's time. This is the Agg backend's own save (``_print_pil``) without it. The figure keeps its canvas and dpi.

    A figure made at ``dpi`` on an Agg canvas (what pyplot makes in Jupyter and with the Agg backend) is drawn on that
    canvas: its renderer is the one ``tight_layout()`` measured the texts with, and it remembers their sizes and the
    parsed mathtext (a new renderer measures and parses every text again: a quarter of a draw with log-scale labels).
    """
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas, made_at = figure.canvas, figure.dpi
    if type(canvas) is FigureCanvasAgg and made_at == dpi:
        agg = canvas  # nothing to resize: draw where the layout was measured
    else:
        agg = FigureCanvasAgg(figure)  # no window manager: changing the dpi resizes no window
    try:
        figure.set_dpi(dpi)
        agg.draw()
        # JPEG has no alpha: blend against white, as savefig does for it (rc_context copies every rcParam: only then)
        with mpl.rc_context({"savefig.facecolor": "white"}) if image_format == "jpeg" else contextlib.nullcontext():
            mpl.image.imsave(buf, agg.buffer_rgba(), format=image_format, origin="upper", dpi=dpi, **kwargs)
    finally:
        figure.set_dpi(made_at)
        figure.set_canvas(canvas)


def render_frame(render: Callable[..., Any], values: Mapping[str, Any], dpi: int, image_format: str = "png") -> bytes:
    """The image bytes of one slider frame: the figure ``render(**values)``, made and saved at ``dpi`` dots per inch.

    Made at the dpi it is saved at, a figure is laid out (``tight_layout``) and drawn by one renderer, which keeps the
    sizes of the texts it measured: saving it at another dpi would measure every text again (2-12 % of a frame's time
    on the benchmark figures here). Its mathtext (``$10^{-4}$`` tick labels, ``$\\beta$`` in titles) is parsed once
    for the frames of a slider, not once per frame (:func:`_mathtext_parsed_once`).
    """
    import matplotlib as mpl

    with _mathtext_parsed_once():
        with mpl.rc_context({"figure.dpi": dpi}):
            figure = render(**values)
        return render_png(figure, dpi=dpi, image_format=image_format)


# Deliberately remembered for the life of the process, as matplotlib remembers its fonts: one mathtext parser for each
# combination of the settings a parse reads, so that the frames of every slider share their parses (a few per book).
_MATHTEXT_PARSERS: dict[tuple[str, tuple[str, ...]], Any] = {}
# What parsing mathtext reads besides its arguments: the math fonts (mathtext.*), the text font the fonts are found
# from (font.*: the family lists, the last-resort font) and the text settings (text.kerning_factor, text.antialiased).
_MATHTEXT_SETTINGS = ("mathtext.", "font.", "text.")


class _SharedMathtextParser:
    """What a renderer calls ``parse`` on: the parser of the settings in force *when it parses*, shared by renderers."""

    def __init__(self, output: str) -> None:
        self.output = output

    def parse(self, s: str, dpi: float = 72, prop: Any = None, *, antialiased: bool | None = None) -> Any:
        import matplotlib as mpl
        from matplotlib.mathtext import MathTextParser

        key = (self.output, tuple(f"{name}={mpl.rcParams[name]!r}" for name in sorted(mpl.rcParams)
                                  if name.startswith(_MATHTEXT_SETTINGS)))
        if key not in _MATHTEXT_PARSERS:
            _MATHTEXT_PARSERS[key] = MathTextParser(self.output)
        return _MATHTEXT_PARSERS[key].parse(s, dpi, prop, antialiased=antialiased)


@contextlib.contextmanager
def _mathtext_parsed_once() -> Any:
    """Within the block, the Agg renderers made on this (the main) thread share their mathtext parsers.

    matplotlib caches parsed mathtext by parser (one cache of 50 entries, keyed on the parser, the text, the font
    properties, the dpi and the antialiasing), and every renderer makes its own parser; a slider frame is a new figure,
    so a new renderer, and parsed each of its labels again: ~10 ms each, a third of a frame of the log-scale gradient
    figure. Here the parser is chosen by the settings a parse reads (:data:`_MATHTEXT_SETTINGS`), so a shared parse is
    one a fresh parser would make: the frames' bytes do not change. Parses are shared while fewer than about 50
    strings take turns. The swap is of a module attribute, so it is made on the main thread only (where the kernel
    renders); another thread renders as before.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from matplotlib.backends import backend_agg

    made_by = backend_agg.MathTextParser  # the name RendererAgg.__init__ makes its parser with
    backend_agg.MathTextParser = _SharedMathtextParser
    try:
        yield
    finally:
        backend_agg.MathTextParser = made_by


def css_width(image: bytes) -> int:
    """The width in CSS pixels at which a frame is shown: its pixel width over :data:`SCALE`."""
    from PIL import Image

    return round(Image.open(io.BytesIO(image)).width / SCALE)


def frame_key(values: Mapping[str, Any]) -> str:
    """The key of one frame: ``"name=value|name=value"`` in parameter order (the same string the page's JS builds)."""
    return "|".join(f"{name}={_label(value)}" for name, value in values.items())


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _check_params(params: Mapping[str, Sequence[Any]], defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(params, Mapping) or not params:
        raise ValueError("params must be a non-empty mapping of parameter name -> sequence of slider values")
    for name, values in params.items():
        if not (isinstance(name, str) and name.isidentifier() and isinstance(values, Sequence)
                and not isinstance(values, str | bytes) and 0 < len(values) == len({_label(v) for v in values})):
            raise ValueError(f"params[{name!r}] must be a non-empty list without repeated values, name an identifier")
    defaults = dict(defaults or {})
    if any(name not in params or value not in params[name] for name, value in defaults.items()):
        raise ValueError(f"defaults {defaults}: a name not a parameter or a value not one of the slider values")
    return {name: defaults.get(name, values[0]) for name, values in params.items()}


@dataclass
class StaticFigure:
    """Precomputed frames of a slider grid and the self-contained HTML that shows them.

    ``frames`` maps :func:`frame_key` of every combination to its PNG bytes; ``html`` is what the page shows.
    """

    params: dict[str, list[Any]]
    initial: dict[str, Any]
    frames: dict[str, bytes]
    html: str = field(repr=False)

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:  # the plain-text twin of the HTML output: short, never the frame bytes
        sizes = ", ".join(f"{name}: {len(values)}" for name, values in self.params.items())
        return f"StaticFigure({sizes}; {len(self.frames)} frames, {sum(map(len, self.frames.values())):,} bytes)"


BUSY_CLASS = "dlbook-busy"


def _live_style(figure_class: str, readout_chars: int) -> str:
    """CSS of one live figure.

    While the kernel renders a new frame the image is dimmed, so a reader sees that the slider was heard (a quick
    drag shows only the frame of the last value, a moment after release); the delay keeps fast renders from
    flickering. The value read-outs of the figure get one width (ipywidgets sizes each to its text), so that its
    bars end together.
    """
    return (
        "<style>.dlbook-live-frame{transition:opacity .1s}"
        ".dlbook-live-frame.dlbook-busy{opacity:.4;transition:opacity .15s ease .1s;cursor:progress}"
        f".{figure_class} .widget-slider .widget-readout{{width:{readout_chars}ch;min-width:{readout_chars}ch;"
        "max-width:none;flex:0 0 auto}</style>"
    )


def _description_width(names: Sequence[str]) -> str:
    """One label width for all sliders of a figure (the longest name's), so that their bars start and end together."""
    return f"{max(len(name) for name in names) + 2}ch"


def _kernel_schedule() -> Callable[[float, Callable[[], None]], Any] | None:
    """``call_later`` of the running event loop (in a Jupyter kernel, the loop that handles the slider events), or
    ``None`` without one (a script, a test): then nothing is rendered ahead."""
    try:
        return asyncio.get_running_loop().call_later
    except RuntimeError:
        return None


def _cells_run() -> int:
    """How many cells the IPython shell has run (0 outside IPython): a change means the kernel was not idle."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell.execution_count if shell is not None else 0


def _sliders(params: dict[str, list[Any]], initial: dict[str, Any], readout_chars: int) -> dict[str, Any]:
    """One ``SelectionSlider`` per parameter, all with one label width and one bar width."""
    import ipywidgets

    label_width = _description_width(list(params))
    # 420px as before, wider when long names or values would leave the bar short
    slider_width = f"max(420px, calc({label_width} + {readout_chars}ch + 240px))"
    return {
        name: ipywidgets.SelectionSlider(options=[(_label(v), v) for v in values], value=initial[name],
                                         description=name, continuous_update=True,
                                         style={"description_width": label_width},
                                         layout=ipywidgets.Layout(width=slider_width))
        for name, values in params.items()
    }


class LiveFigure:
    """ipywidgets sliders above an image that is re-rendered in the kernel on every change.

    ``sliders`` maps parameter name to its ``SelectionSlider``; ``image`` is the ``ipywidgets.Image`` showing the
    current frame (it carries the CSS class ``BUSY_CLASS`` while a new frame is being rendered); ``values()`` gives
    the current parameter values.

    After a frame is shown, the frames one step away along each slider are rendered ahead, one per callback of the
    kernel's event loop (``schedule(delay, callback)``, default: the running loop's ``call_later``), so that a slider
    event waits for at most one render; pyplot is not thread-safe, so no thread. The first of them waits until no cell
    has run for ``PREFETCH_DELAY_S``: a notebook executed cell after cell renders nothing ahead, unless the cell that
    made the figure runs on for ``PREFETCH_DELAY_S`` after making it (the chapters end such cells with the figure).
    """

    def __init__(self, render: Callable[..., Any], params: dict[str, list[Any]], initial: dict[str, Any], dpi: int,
                 title: str | None, image_format: str = "png",
                 schedule: Callable[[float, Callable[[], None]], Any] | None = None) -> None:
        import ipywidgets

        self._render = render
        self._params = params
        self._dpi = SCALE * dpi  # the raster's dots per inch; ``dpi`` counts CSS pixels
        self._format = image_format
        self._cache: dict[str, bytes] = {}
        self._schedule = schedule if schedule is not None else _kernel_schedule()
        self._ahead: list[dict[str, Any]] = []  # settings still to render ahead, nearest first
        self._waiting = False  # a callback is scheduled
        readout_chars = max(len(_label(v)) for values in params.values() for v in values) + 1
        self.sliders = _sliders(params, initial, readout_chars)
        # flex-start: shown at its own CSS size, not stretched (and blurred) to the width of the output area;
        # max-width and height auto shrink it, proportions kept, on a narrow screen
        first = self._frame(initial)
        self.image = ipywidgets.Image(format=image_format, value=first, width=str(css_width(first)),
                                      layout=ipywidgets.Layout(align_self="flex-start", max_width="100%",
                                                               height="auto"))
        self.image.add_class("dlbook-live-frame")
        header = [ipywidgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        figure_class = f"dlbook-live-{secrets.token_hex(4)}"
        style = ipywidgets.HTML(_live_style(figure_class, readout_chars), layout=ipywidgets.Layout(display="none"))
        self.widget = ipywidgets.VBox([style, *header, *self.sliders.values(), self.image])
        self.widget.add_class(figure_class)
        for slider in self.sliders.values():
            slider.observe(self._update, names="value")
        self._render_ahead()

    def values(self) -> dict[str, Any]:
        return {name: slider.value for name, slider in self.sliders.items()}

    def _frame(self, values: dict[str, Any]) -> bytes:
        key = frame_key(values)
        if key not in self._cache:  # moving back to a setting already seen costs nothing
            self._cache[key] = render_frame(self._render, values, self._dpi, self._format)
        return self._cache[key]

    def _show(self, frame: bytes) -> None:
        with self.image.hold_sync():  # one message: a frame of another size is never drawn at the old width
            self.image.value = frame
            self.image.width = str(css_width(frame))

    def _update(self, _change: Any = None) -> None:
        values = self.values()
        if frame_key(values) in self._cache:
            self._show(self._frame(values))
        else:
            self.image.add_class(BUSY_CLASS)  # sent to the page at once, before the render starts
            try:
                self._show(self._frame(values))
            finally:
                self.image.remove_class(BUSY_CLASS)
        self._render_ahead()

    def neighbours(self) -> list[dict[str, Any]]:
        """The settings one step from the current one along each slider, in slider order (none past a grid's end)."""
        current = self.values()
        out = []
        for name, values in self._params.items():
            i = [_label(v) for v in values].index(_label(current[name]))
            out += [{**current, name: values[j]} for j in (i + 1, i - 1) if 0 <= j < len(values)]
        return out

    def _render_ahead(self) -> None:
        """Queue the neighbours of the current setting (they replace an older queue) and wake the idle loop."""
        self._ahead = self.neighbours()
        self._next_ahead(PREFETCH_DELAY_S)

    def _next_ahead(self, delay: float) -> None:
        self._ahead = [values for values in self._ahead if frame_key(values) not in self._cache]
        if self._ahead and self._schedule is not None and not self._waiting:
            self._waiting = True
            self._schedule(delay, partial(self._render_one_ahead, _cells_run()))

    def _render_one_ahead(self, cells_run: int) -> None:
        """Render the first queued frame if no cell ran since this was scheduled (the kernel is idle); go on later."""
        self._waiting = False
        if _cells_run() != cells_run:
            self._next_ahead(PREFETCH_DELAY_S)
            return
        if self.image.comm is None:  # the widget was closed: nothing left to show
            self._ahead = []
            return
        if self._ahead:
            import matplotlib.pyplot as plt

            before = set(plt.get_fignums())
            try:
                self._frame(self._ahead.pop(0))
            except Exception:  # skipped here: the reader meets the error if they move there
                for num in set(plt.get_fignums()) - before:  # left open, it would be drawn under the next cell run
                    plt.close(num)
        self._next_ahead(0.0)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def interact(
    render: Callable[..., Any],
    params: Mapping[str, Sequence[Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    title: str | None = None,
    mode: str | None = None,
    dpi: int = 80,
    image_format: str = "png",
    budget: FrameBudget = FrameBudget(),
) -> StaticFigure | LiveFigure:
    """Sliders for ``params`` that redraw ``render(**values)``, live in a kernel or precomputed for the static site.

    Args:
        render: called with one keyword argument per parameter; returns a matplotlib ``Figure`` (or image bytes,
            shown like every frame at 1 / :data:`SCALE` of their pixel width).
            It must be a pure function of its arguments: the static site shows what it returned at build time.
        params: parameter name -> the slider's values, in slider order, e.g. ``{"kernel_size": [1, 3, 5, 7]}``.
        defaults: starting value per parameter (default: the first value of each).
        title: a heading shown above the sliders.
        mode: ``"live"`` or ``"static"``; default from ``$DLBOOK_WIDGETS`` (see :func:`widget_mode`).
        dpi: CSS pixels per inch of the figure on the page; frames are rendered at ``SCALE * dpi``.
        image_format: ``"png"`` or ``"jpeg"`` (use JPEG for figures that are mostly photographs: far smaller pages).
        budget: limits on the number and total size of precomputed frames (static mode only).

    Returns:
        A :class:`LiveFigure` or a :class:`StaticFigure`; either displays itself when it is a cell's last value.

    Raises:
        ValueError: bad ``params``/``defaults``; in static mode, a grid over ``budget``, or a slider that never
        changes the figure (a slider that moves while its figure stays the same is a bug).
    """
    initial = _check_params(params, defaults)
    one_of(image_format, "image_format", tuple(_FORMATS))
    grid = {name: list(values) for name, values in params.items()}
    if widget_mode(mode) == "live":
        return LiveFigure(render, grid, initial, dpi, title, image_format)
    return _static_figure(render, grid, initial, dpi, title, image_format, budget)


def _static_figure(render, grid, initial, dpi, title, image_format, budget: FrameBudget) -> StaticFigure:
    n_frames = math.prod(len(values) for values in grid.values())
    sizes = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
    if n_frames > budget.max_frames:
        raise ValueError(f"slider grid too large to precompute: {sizes} = {n_frames} frames > {budget.max_frames}")
    frames: dict[str, bytes] = {}
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo, strict=True))
        frames[frame_key(values)] = render_frame(render, values, SCALE * dpi, image_format)
        if sum(map(len, frames.values())) > budget.max_bytes:
            raise ValueError(f"slider frames exceed the page budget of {budget.max_bytes:,} bytes: lower dpi or values")
    idle = _idle_sliders(grid, frames)
    if idle:
        raise ValueError(f"slider {idle[0]!r} never changes the figure: every value of it renders the same frame")
    return StaticFigure(grid, initial, frames, _static_html(grid, initial, frames, title, _FORMATS[image_format]))


def _idle_sliders(grid: dict[str, list[Any]], frames: dict[str, bytes]) -> list[str]:
    """The sliders that change no frame: each would move while its figure stays the same."""

    def moves_the_figure(name: str) -> bool:  # some setting of the other sliders shows two pictures along this one
        others = [n for n in grid if n != name]
        for combo in itertools.product(*(grid[n] for n in others)):
            base = dict(zip(others, combo, strict=True))
            if len({frames[frame_key({n: v if n == name else base[n] for n in grid})] for v in grid[name]}) > 1:
                return True
        return False

    return [name for name, values in grid.items() if len(values) > 1 and not moves_the_figure(name)]


# Notebook front ends bind bare keys in command mode (JupyterLab: arrows select or collapse cells, letters insert or
# change cells). A key pressed on one of our controls is the control's: it stops here, before the notebook's handler
# (JupyterLab listens on the document, in the bubbling phase). Escape, Tab and chords with Ctrl, Alt, Meta or
# Shift+Enter still reach the notebook, so a reader can leave the control and save or run cells from it.
_KEY_GUARD_JS = (
    "root.addEventListener('keydown',function(e){var t=e.target;"
    "if(!t||!t.matches||!t.matches('input,select,textarea,button'))return;"
    "if(e.key==='Escape'||e.key==='Tab'||e.ctrlKey||e.altKey||e.metaKey||(e.shiftKey&&e.key==='Enter'))return;"
    "e.stopPropagation();});"
)

_STATIC_JS = """
(function () {
  var root = document.getElementById(__ROOT_ID__);
  if (!root || root.dataset.ready) { return; }
  root.dataset.ready = "1";
  __KEY_GUARD__
  var data = JSON.parse(root.querySelector("script.dlbook-data").textContent);
  var img = root.querySelector("img.dlbook-frame");
  var inputs = root.querySelectorAll("input.dlbook-slider");
  function show() {
    var parts = [];
    inputs.forEach(function (input) {
      var name = input.dataset.param;
      var label = data.labels[name][Number(input.value)];
      input.parentNode.querySelector("output").textContent = label;
      input.setAttribute("aria-valuetext", label);
      parts.push(name + "=" + label);
    });
    var key = parts.join("|");
    img.width = data.widths[data.frames[key]];
    img.src = source(data.frames[key]);
    img.dataset.key = key;
    prefetch(parts);
  }
  // In Jupyter the frames are inline; on the site they are files (data.urls), fetched when first shown.
  function source(i) { return data.urls ? data.urls[i] : "data:" + data.mime + ";base64," + data.images[i]; }
  // Load the frames one slider step away, so that the next move shows a frame already in the browser's cache.
  function prefetch(parts) {
    if (!data.urls) { return; }
    inputs.forEach(function (input, n) {
      [-1, 1].forEach(function (step) {
        var labels = data.labels[input.dataset.param], v = Number(input.value) + step;
        if (v < 0 || v >= labels.length) { return; }
        var next = parts.slice();
        next[n] = input.dataset.param + "=" + labels[v];
        new Image().src = source(data.frames[next.join("|")]);
      });
    });
  }
  inputs.forEach(function (input) { input.addEventListener("input", show); });
  show();
})();
"""

_STYLE = (
    ".dlbook-interact{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:8px 0;max-width:100%}"
    # one grid for all sliders of a figure: every name gets the width of the longest, so the bars line up
    ".dlbook-interact .dlbook-controls{display:grid;grid-template-columns:max-content minmax(120px,260px) "
    "max-content;align-items:center;gap:2px 10px;font-family:sans-serif;font-size:14px}"
    ".dlbook-interact label{display:contents}.dlbook-interact input{width:100%;margin:2px 0}"
    ".dlbook-interact output{font-family:monospace;min-width:60px}"
    ".dlbook-interact img{max-width:100%;height:auto;display:block;margin-top:6px}"
)


def _static_html(grid, initial, frames: dict[str, bytes], title: str | None, mime: str) -> str:
    # Identical frames (a slider value that changes nothing at some setting) are stored once.
    images: list[str] = []
    widths: list[int] = []  # CSS pixels: frames of one figure may differ in size
    index_of: dict[bytes, int] = {}
    frame_index: dict[str, int] = {}
    for key, png in frames.items():
        if png not in index_of:
            index_of[png] = len(images)
            images.append(base64.b64encode(png).decode("ascii"))
            widths.append(css_width(png))
        frame_index[key] = index_of[png]
    labels = {name: [_label(v) for v in values] for name, values in grid.items()}
    data = {"labels": labels, "frames": frame_index, "images": images, "widths": widths, "mime": mime}
    digest = hashlib.sha1(json.dumps(frame_index, sort_keys=True).encode()).hexdigest()[:8]
    uid = f"dlbook-{digest}-{secrets.token_hex(3)}"  # unique per output, so two figures on a page never collide
    controls = []
    for name, values in grid.items():
        start = values.index(initial[name])
        controls.append(
            f'<label><span>{html.escape(name)}</span>'
            f'<input class="dlbook-slider" type="range" min="0" max="{len(values) - 1}" step="1" value="{start}" '
            f'data-param="{html.escape(name)}" aria-label="{html.escape(name)}">'
            f"<output>{html.escape(_label(initial[name]))}</output></label>"
        )
    first = frame_index[frame_key(initial)]
    heading = f"<div><b>{html.escape(title)}</b></div>" if title else ""
    payload = json.dumps(data).replace("</", "<\\/")  # never close the script tag early
    return (
        f'<div class="dlbook-interact" id="{uid}"><style>{_STYLE}</style>{heading}'
        f'<div class="dlbook-controls">{"".join(controls)}</div>'
        # the width comes before src: the site's build moves src to a file and keeps what stands before it
        f'<img class="dlbook-frame" alt="figure for the slider settings" data-key="{html.escape(frame_key(initial))}" '
        f'width="{widths[first]}" src="data:{mime};base64,{images[first]}">'
        f'<script type="application/json" class="dlbook-data">{payload}</script>'
        f"<script>{_STATIC_JS.replace('__ROOT_ID__', json.dumps(uid)).replace('__KEY_GUARD__', _KEY_GUARD_JS)}"
        "</script></div>"
    )


@dataclass
class _HTMLApp:
    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:  # the plain-text twin of the HTML output: short, never the whole page
        return f"<interactive figure: {len(self.html):,} bytes of self-contained HTML and JavaScript>"


def html_app(body: str, script: str, config: Mapping[str, Any], *, css: str = "") -> _HTMLApp:
    """A self-contained interactive block whose JavaScript computes what it draws (no kernel, no CDN).

    ``body`` is HTML placed in a fresh ``<div>``; ``script`` is the body of a JavaScript function called with
    ``(root, config)``: ``root`` is that ``<div>`` (query inside it only, so several apps on one page never collide)
    and ``config`` is ``config`` serialised as JSON. Works in the static site, JupyterLab, VS Code and Colab alike.
    """
    instance(config, Mapping, "config")  # passed to the script as JSON
    uid = f"dlbook-app-{secrets.token_hex(4)}"
    payload = json.dumps(dict(config)).replace("</", "<\\/")
    js = (
        "(function(){var root=document.getElementById(" + json.dumps(uid) + ");"
        "if(!root||root.dataset.ready){return;}root.dataset.ready='1';" + _KEY_GUARD_JS +
        "(function(root,config){" + script + "\n})(root," + payload + ");})();"
    )
    style = f"<style>{css}</style>" if css else ""
    return _HTMLApp(f'<div class="dlbook-app" id="{uid}">{style}{body}<script>{js}</script></div>')


# matplotlib's JavaScript player draws its buttons with Font Awesome icons fetched from a CDN; offline they are blank.
# The same buttons as plain Unicode symbols need nothing from the network.
_PLAYER_ICONS = {
    '<i class="fa fa-minus"></i>': "&#8722;",
    '<i class="fa fa-fast-backward"></i>': "&#8676;",
    '<i class="fa fa-step-backward"></i>': "&#9664;&#10073;",
    '<i class="fa fa-play fa-flip-horizontal"></i>': "&#9664;",
    '<i class="fa fa-pause"></i>': "&#10073;&#10073;",
    '<i class="fa fa-play"></i>': "&#9654;",
    '<i class="fa fa-step-forward"></i>': "&#10073;&#9654;",
    '<i class="fa fa-fast-forward"></i>': "&#8677;",
    '<i class="fa fa-plus"></i>': "+",
}


def animation_html(anim: Any, *, default_mode: str = "loop") -> Any:
    """Display a ``matplotlib.animation.Animation`` as a self-contained JavaScript player (no kernel, no CDN).

    This is ``anim.to_jshtml()`` with the Font Awesome stylesheet link removed and the button icons replaced by
    Unicode symbols, so the controls are visible offline too.
    """
    import re

    from IPython.display import HTML

    page = anim.to_jshtml(default_mode=default_mode)
    page = re.sub(r'<link rel="stylesheet"\s+href="https://maxcdn[^"]*">', "", page)
    for icon, symbol in _PLAYER_ICONS.items():
        page = page.replace(icon, symbol)
    if "fa fa-" in page or "maxcdn" in page:
        raise RuntimeError("matplotlib's animation player changed: update dlbook.widgets._PLAYER_ICONS")
    return HTML(page)
