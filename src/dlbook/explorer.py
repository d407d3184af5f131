"""The convolution-arithmetic explorer: sliders for i, k, s, p, d and a diagram that JavaScript computes and draws.

Chapters: ``book/convnets/padding.ipynb`` and ``book/convnets/stride.ipynb``.

:func:`arithmetic_explorer` returns a self-contained block (see :func:`dlbook.widgets.html_app`) that works in the
static site, JupyterLab, VS Code and Colab alike, without a kernel and without any download. It shows, for a square
input and the same settings along both axes:

* the input grid with its padded border (a dashed frame), and in ``transposed`` mode the zeros inserted between input
  cells and the cells a large padding crops;
* which input cells the selected output cell reads (hover over an output cell to select it; click to keep it);
* the input cells no window reads (hatched), e.g. the last rows and columns when ``i + 2p - d(k - 1) - 1`` is not a
  multiple of ``s``;
* the output size with its formula filled in, or the error PyTorch raises for those settings.

Three modes: ``conv`` (``nn.Conv2d``), ``transposed`` (``nn.ConvTranspose2d``, drawn as the equivalent stride-1
convolution over the stretched, padded input) and ``pool`` (``nn.MaxPool2d`` with a ``ceil_mode`` switch).

The page's JavaScript recomputes the arithmetic of :mod:`dlbook.arithmetic`; ``tests/test_explorer.py`` checks in
Chromium, over a grid of settings, that the size it shows equals the Python functions'. The size shown is in the
element ``.dlbook-explorer-size`` (attribute ``data-size``: the output size, or ``"error"``), and the unread input
positions of one axis in its ``data-unread`` attribute (comma-separated, ``0 .. i - 1``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from dlbook.widgets import html_app

__all__ = ["MODES", "ExplorerLimits", "arithmetic_explorer"]

MODES = ("conv", "transposed", "pool")
_MODE_LABELS = {"conv": "convolution", "transposed": "transposed convolution", "pool": "max pooling"}
_PARAM_LABELS = {
    "i": "input size i",
    "k": "kernel size k",
    "s": "stride s",
    "p": "padding p",
    "d": "dilation d",
    "output_padding": "output_padding",
}


@dataclass(frozen=True)
class ExplorerLimits:
    """The (min, max) range of every slider of the explorer."""

    i: tuple[int, int] = (1, 12)
    k: tuple[int, int] = (1, 5)
    s: tuple[int, int] = (1, 4)
    p: tuple[int, int] = (0, 4)
    d: tuple[int, int] = (1, 3)
    output_padding: tuple[int, int] = (0, 3)

    def as_dict(self) -> dict[str, tuple[int, int]]:
        return {name: getattr(self, name) for name in _PARAM_LABELS}


def arithmetic_explorer(
    mode: str = "conv",
    i: int = 6,
    k: int = 3,
    s: int = 1,
    p: int = 0,
    d: int = 1,
    output_padding: int = 0,
    ceil_mode: bool = False,
    *,
    modes: tuple[str, ...] = MODES,
    limits: ExplorerLimits = ExplorerLimits(),
    title: str | None = None,
) -> Any:
    """The convolution-arithmetic explorer, starting at the given settings; display it as a cell's last value.

    ``modes`` lists the modes the reader may switch between (the first sets the order of the menu); ``limits`` the
    slider ranges. Raises ``ValueError`` when a starting value lies outside its slider's range or ``mode`` is not
    one of ``modes``.
    """
    if not isinstance(modes, tuple) or not modes or any(m not in MODES for m in modes):
        raise ValueError(f"modes must be a non-empty tuple drawn from {MODES}, got {modes!r}")
    if mode not in modes:
        raise ValueError(f"mode must be one of {modes}, got {mode!r}")
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
    values = {"i": i, "k": k, "s": s, "p": p, "d": d, "output_padding": output_padding}
    ranges = limits.as_dict()
    for name, value in values.items():
        lo, hi = ranges[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"{name}={value} is outside its slider's range {lo}..{hi}")
    options = "".join(
        f'<option value="{m}"{" selected" if m == mode else ""}>{_MODE_LABELS[m]}</option>' for m in modes
    )
    menu = (f'<label class="dlx-row"><span>mode</span><select class="dlbook-explorer-mode" aria-label="mode">'
            f"{options}</select></label>")
    if len(modes) == 1:
        menu = menu.replace("<label ", '<label style="display:none" ', 1)
    sliders = []
    for name, value in values.items():
        lo, hi = ranges[name]
        sliders.append(
            f'<label class="dlx-row" data-row="{name}"><span>{html.escape(_PARAM_LABELS[name])}</span>'
            f'<input class="dlbook-explorer-slider" type="range" min="{lo}" max="{hi}" step="1" value="{value}" '
            f'data-param="{name}" aria-label="{html.escape(_PARAM_LABELS[name])}"><output>{value}</output></label>'
        )
    ceil = (f'<label class="dlx-row" data-row="ceil_mode"><span>ceil_mode</span><input type="checkbox" '
            f'class="dlbook-explorer-ceil" aria-label="ceil_mode"{" checked" if ceil_mode else ""}></label>')
    heading = f'<div class="dlx-title">{html.escape(title)}</div>' if title else ""
    body = (
        f'<div class="dlbook-explorer">{heading}'
        f'<div class="dlx-controls">{menu}{"".join(sliders)}{ceil}</div>'
        '<div class="dlx-result"><span class="dlbook-explorer-size" data-size=""></span>'
        '<div class="dlx-formula"></div><ul class="dlx-notes"></ul></div>'
        '<div class="dlx-panels"><figure class="dlx-panel"><figcaption class="dlx-in-caption"></figcaption>'
        '<svg class="dlx-input" xmlns="http://www.w3.org/2000/svg"></svg></figure>'
        '<figure class="dlx-panel"><figcaption class="dlx-out-caption"></figcaption>'
        '<svg class="dlx-output" xmlns="http://www.w3.org/2000/svg"></svg></figure></div>'
        f'<div class="dlx-legend">{_LEGEND}</div></div>'
    )
    return html_app(body, _SCRIPT, {"modes": list(modes)}, css=_CSS)


def _swatch(fill: str, label: str, extra: str = "") -> str:
    return (f'<span class="dlx-key"><svg width="14" height="14"><rect x="1" y="1" width="12" height="12" '
            f'fill="{fill}" stroke="#666" stroke-width="0.8" {extra}/></svg>{label}</span>')


_LEGEND = "".join([
    _swatch("#cfe3f5", "input cell"),
    _swatch("#ffffff", "padding", 'stroke-dasharray="2,2"'),
    _swatch("#f0f0f0", "inserted zero (transposed)"),
    _swatch("#f28e2b", "read by the selected output cell"),
    _swatch("#fbd3a5", "padding / zero read by it"),
    _swatch("#f4a6a6", "input cell no window reads"),
    _swatch("#d9d9d9", "cropped (transposed) / past the edge (ceil_mode)", 'stroke-dasharray="1,2"'),
])

_CSS = """
.dlbook-explorer{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:8px 0;font-family:sans-serif;
  font-size:14px;max-width:100%}
.dlbook-explorer .dlx-title{font-weight:bold;margin-bottom:4px}
.dlbook-explorer .dlx-controls{display:grid;grid-template-columns:repeat(auto-fill,minmax(310px,1fr));gap:0 18px}
.dlbook-explorer .dlx-row{display:flex;align-items:center;gap:8px;margin:2px 0}
.dlbook-explorer .dlx-row span{min-width:108px}
.dlbook-explorer .dlx-row input[type=range]{width:150px}
.dlbook-explorer .dlx-row output{font-family:monospace;min-width:18px}
.dlbook-explorer .dlx-result{margin:6px 0}
.dlbook-explorer .dlbook-explorer-size{font-weight:bold}
.dlbook-explorer .dlbook-explorer-size[data-size=error]{color:#b00020}
.dlbook-explorer .dlx-formula{font-family:monospace;font-size:13px;margin-top:2px;white-space:pre-wrap}
.dlbook-explorer .dlx-notes{margin:4px 0 0 0;padding-left:18px;font-size:13px}
.dlbook-explorer .dlx-panels{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.dlbook-explorer figure.dlx-panel{margin:0}
.dlbook-explorer figure.dlx-panel figcaption{font-size:13px;color:#333 !important;margin:0 0 2px 0;padding:0;
  text-align:left;font-family:sans-serif}
.dlbook-explorer svg.dlx-input rect,.dlbook-explorer svg.dlx-output rect{shape-rendering:crispEdges}
.dlbook-explorer svg.dlx-output rect.dlx-cell{cursor:pointer}
.dlbook-explorer .dlx-legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin-top:6px;color:#333}
.dlbook-explorer .dlx-key{display:inline-flex;align-items:center;gap:4px}
"""

# The arithmetic below repeats dlbook.arithmetic in JavaScript so that the page needs no kernel; the browser test
# compares the two over a grid of settings.
_SCRIPT = r"""
var app = root.querySelector('.dlbook-explorer');
var sizeEl = app.querySelector('.dlbook-explorer-size');
var formulaEl = app.querySelector('.dlx-formula');
var notesEl = app.querySelector('.dlx-notes');
var svgIn = app.querySelector('svg.dlx-input');
var svgOut = app.querySelector('svg.dlx-output');
var capIn = app.querySelector('.dlx-in-caption');
var capOut = app.querySelector('.dlx-out-caption');
var modeEl = app.querySelector('select.dlbook-explorer-mode');
var ceilEl = app.querySelector('input.dlbook-explorer-ceil');
var sliders = {};
app.querySelectorAll('input.dlbook-explorer-slider').forEach(function (el) { sliders[el.dataset.param] = el; });
var hatch = root.id + '-unread';
var selected = null;   // [row, col] of the selected output cell, or null for the last one
var pinned = false;

function fdiv(a, b) { return Math.floor(a / b); }
function cdiv(a, b) { return -Math.floor(-a / b); }
function range(n) { var r = []; for (var t = 0; t < n; t++) { r.push(t); } return r; }

// One axis. Returns the output size o (or an error), the drawn cells with their kind and input index, and the
// drawn positions each output window reads.
function axis(mode, v, ceil) {
  var i = v.i, k = v.k, s = v.s, p = v.p, d = v.d, op = v.output_padding;
  var span = d * (k - 1) + 1;
  var r = {kinds: [], index: [], taps: null, o: 0, error: null, formula: '', notes: [], inputStart: 0};
  if (mode === 'transposed') {
    r.formula = 'o = (i \u2212 1)s \u2212 2p + d(k \u2212 1) + output_padding + 1 = (' + i + ' \u2212 1)\u00b7' + s +
      ' \u2212 2\u00b7' + p + ' + ' + d + '\u00b7(' + k + ' \u2212 1) + ' + op + ' + 1';
    if (op >= Math.max(s, d)) {
      r.error = 'output_padding = ' + op + ' must be smaller than the stride s = ' + s + ' or the dilation d = ' + d +
        ': PyTorch raises';
    }
    var o = (i - 1) * s - 2 * p + d * (k - 1) + op + 1;
    if (!r.error && o < 1) { r.error = 'the output size would be ' + o + ': PyTorch raises'; }
    r.formula += ' = ' + o;
    var m = (i - 1) * s + 1, q = d * (k - 1) - p, lo = -q, hi = m + q + op;
    var zmin = Math.min(0, lo), zmax = Math.max(m, hi);
    for (var z = zmin; z < zmax; z++) {
      var kind = (z < lo || z >= hi) ? 'crop' : (z < 0 || z >= m) ? 'pad' : (z % s !== 0) ? 'zero' : 'in';
      r.kinds.push(kind);
      r.index.push(z >= 0 && z < m && z % s === 0 ? z / s : -1);  // cropped input cells keep their index
    }
    r.inputStart = -zmin;
    r.o = r.error ? 0 : o;
    r.taps = function (a) { return range(k).map(function (u) { return lo + a + u * d - zmin; }); };
    r.notes.push('Drawn as the equivalent stride-1 convolution: s \u2212 1 = ' + (s - 1) + ' zero(s) inserted ' +
      'between input cells, d(k \u2212 1) \u2212 p = ' + q + (q >= 0 ? ' cell(s) of zero padding on each side' :
      ' (negative: the padding crops ' + (-q) + ' cell(s) on each side)') +
      (op ? ', output_padding = ' + op + ' extra cell(s) at the bottom/right' : '') + '.');
    return r;
  }
  var n = i + 2 * p;
  for (var t = 0; t < n; t++) {
    var inside = t >= p && t < p + i;
    r.kinds.push(inside ? 'in' : 'pad');
    r.index.push(inside ? t - p : -1);
  }
  r.inputStart = p;
  var num = n - span;
  var head = 'o = \u230a(i + 2p \u2212 d(k \u2212 1) \u2212 1) / s\u230b + 1 = \u230a(' + i + ' + 2\u00b7' + p + ' \u2212 ' + d +
    '\u00b7(' + k + ' \u2212 1) \u2212 1) / ' + s + '\u230b + 1';
  if (mode === 'pool') {
    if (p > fdiv(k, 2)) {
      r.error = 'p = ' + p + ' is more than half the kernel, k // 2 = ' + fdiv(k, 2) + ': PyTorch\u2019s pooling raises';
    }
    var o = fdiv(num + (ceil ? s - 1 : 0), s) + 1;
    if (ceil) {
      head = head.replace(/\u230a/g, '\u2308').replace(/\u230b/g, '\u2309');
      r.formula = head + ' = \u2308' + num + ' / ' + s + '\u2309 + 1 = ' + o;
      if ((o - 1) * s >= i + p) {
        r.notes.push('The last window would start at (o \u2212 1)s = ' + ((o - 1) * s) + ' \u2265 i + p = ' + (i + p) +
          ', in the right padding: PyTorch drops it, so o = ' + (o - 1) + '.');
        r.formula += ' \u2212 1 (dropped) = ' + (o - 1);
        o -= 1;
      }
    } else {
      r.formula = head + ' = \u230a' + num + ' / ' + s + '\u230b + 1 = ' + o;
    }
    if (!r.error && o < 1) { r.error = 'no pooling window fits (o = ' + o + '): PyTorch raises'; }
  } else {
    var o = fdiv(num, s) + 1;
    r.formula = head + ' = \u230a' + num + ' / ' + s + '\u230b + 1 = ' + o;
    if (span > n) {
      r.error = 'the kernel spans d(k \u2212 1) + 1 = ' + span + ' cells, more than the padded input i + 2p = ' + n +
        ': PyTorch raises';
    }
  }
  r.o = r.error ? 0 : o;
  r.taps = function (a) { return range(k).map(function (u) { return a * s + u * d; }); };
  if (!r.error && r.o > 0) {
    var last = r.taps(r.o - 1), end = last[last.length - 1];
    for (var t = n; t <= end; t++) { r.kinds.push('beyond'); r.index.push(-1); }  // a ceil_mode window hangs over
    if (end >= n) {
      r.notes.push('ceil_mode: the last window hangs ' + (end - n + 1) + ' cell(s) past the padded input; ' +
        'pooling ignores the cells it does not have.');
    }
    var rem = ((num % s) + s) % s;
    if (s > 1 && (mode === 'conv' || !ceil)) {
      r.notes.push('(i + 2p \u2212 d(k \u2212 1) \u2212 1) mod s = ' + num + ' mod ' + s + ' = ' + rem +
        (rem ? ': the last ' + rem + ' row(s)/column(s) of the padded input are never reached by a window.' :
        ': the windows end exactly at the border.'));
    }
  }
  return r;
}

function readValues() {
  var v = {};
  Object.keys(sliders).forEach(function (name) {
    v[name] = Number(sliders[name].value);
    sliders[name].parentNode.querySelector('output').textContent = sliders[name].value;
  });
  return v;
}

function fillFor(kind, read, unread) {
  if (read) { return kind === 'in' ? '#f28e2b' : '#fbd3a5'; }
  if (unread) { return 'url(#' + hatch + ')'; }
  return {in: '#cfe3f5', pad: '#ffffff', zero: '#f0f0f0', crop: '#d9d9d9', beyond: '#d9d9d9'}[kind];
}

function combine(a, b) {
  var order = ['crop', 'beyond', 'pad', 'zero', 'in'];
  return order[Math.min(order.indexOf(a), order.indexOf(b))];
}

// The settings -> the arithmetic and the text (at once, on every change) -> the drawing (once per frame).
var model = null, drawPending = false;

function update() {
  var mode = modeEl.value, ceil = ceilEl.checked, v = readValues();
  app.querySelector('[data-row=output_padding]').style.display = mode === 'transposed' ? '' : 'none';
  app.querySelector('[data-row=ceil_mode]').style.display = mode === 'pool' ? '' : 'none';
  var ax = axis(mode, v, ceil);
  var N = ax.kinds.length, o = ax.o;
  // Which drawn positions the windows read, and which input cells no window reads.
  var readBy = [], covered = {};
  for (var a = 0; a < o; a++) {
    readBy.push(ax.taps(a));
    ax.taps(a).forEach(function (t) { covered[t] = true; });
  }
  var unread = [];  // drawn positions of input cells (cropped ones included) that no window reads
  ax.index.forEach(function (x, t) { if (x >= 0 && !covered[t] && !ax.error) { unread.push(t); } });
  var unreadIdx = unread.map(function (t) { return ax.index[t]; });
  sizeEl.dataset.size = ax.error ? 'error' : String(o);
  sizeEl.dataset.unread = unreadIdx.join(',');
  sizeEl.textContent = ax.error ? 'PyTorch raises for these settings' : 'output ' + o + ' \u00d7 ' + o +
    ' (from input ' + v.i + ' \u00d7 ' + v.i + ')';
  formulaEl.textContent = ax.formula;
  var notes = ax.error ? [ax.error].concat(ax.notes) : ax.notes.slice();
  if (!ax.error && unread.length) {
    notes.push(unread.length + ' input row(s) and column(s) are never read (hatched): index ' + unreadIdx.join(', ') + '.');
  }
  notesEl.innerHTML = '';
  notes.forEach(function (text) { var li = document.createElement('li'); li.textContent = text; notesEl.appendChild(li); });
  model = {mode: mode, v: v, ax: ax, N: N, o: o, readBy: readBy, unread: unread};
}

function draw() {
  drawPending = false;
  var mode = model.mode, v = model.v, ax = model.ax, N = model.N, o = model.o, readBy = model.readBy;
  var unread = model.unread;
  if (selected && (selected[0] >= o || selected[1] >= o)) { selected = null; pinned = false; }
  var sel = selected || [o - 1, o - 1];
  var rowsRead = {}, colsRead = {};
  if (o > 0) {
    readBy[sel[0]].forEach(function (t) { rowsRead[t] = true; });
    readBy[sel[1]].forEach(function (t) { colsRead[t] = true; });
  }
  var unreadSet = {};
  unread.forEach(function (t) { unreadSet[t] = true; });
  var cs = Math.max(5, Math.min(24, Math.floor(380 / Math.max(N, o, 1))));
  var pad = 2, parts = [];
  parts.push('<defs><pattern id="' + hatch + '" width="4" height="4" patternUnits="userSpaceOnUse" ' +
    'patternTransform="rotate(45)"><rect width="4" height="4" fill="#f4a6a6"/>' +
    '<line x1="0" y1="0" x2="0" y2="4" stroke="#c0392b" stroke-width="1.5"/></pattern></defs>');
  for (var r = 0; r < N; r++) {
    for (var c = 0; c < N; c++) {
      var kind = combine(ax.kinds[r], ax.kinds[c]);
      var read = rowsRead[r] && colsRead[c];
      var isUnread = ax.index[r] >= 0 && ax.index[c] >= 0 && (unreadSet[r] || unreadSet[c]);
      var dash = kind === 'pad' ? ' stroke-dasharray="2,2"' : (kind === 'crop' || kind === 'beyond') ?
        ' stroke-dasharray="1,2"' : '';
      parts.push('<rect class="dlx-grid dlx-k-' + kind + (read ? ' dlx-read' : '') + (isUnread ? ' dlx-unread' : '') +
        '" data-r="' + r + '" data-c="' + c + '" x="' + (pad + c * cs) + '" y="' + (pad + r * cs) + '" width="' + cs +
        '" height="' + cs + '" fill="' + fillFor(kind, read, isUnread) + '" stroke="#888" stroke-width="0.6"' +
        dash + '/>');
    }
  }
  // The window of the selected output cell, from its first to its last tap.
  if (o > 0) {
    var tr = readBy[sel[0]], tc = readBy[sel[1]];
    parts.push('<rect class="dlx-window" x="' + (pad + tc[0] * cs) + '" y="' + (pad + tr[0] * cs) + '" width="' +
      ((tc[tc.length - 1] - tc[0] + 1) * cs) + '" height="' + ((tr[tr.length - 1] - tr[0] + 1) * cs) +
      '" fill="none" stroke="#a0450a" stroke-width="2"/>');
  }
  // The input itself (without padding or inserted zeros): a solid frame.
  var inLen = mode === 'transposed' ? (v.i - 1) * v.s + 1 : v.i;
  parts.push('<rect x="' + (pad + ax.inputStart * cs) + '" y="' + (pad + ax.inputStart * cs) + '" width="' +
    (inLen * cs) + '" height="' + (inLen * cs) + '" fill="none" stroke="#1f4e79" stroke-width="1.6"/>');
  var side = N * cs + 2 * pad;
  svgIn.setAttribute('width', side); svgIn.setAttribute('height', side);
  svgIn.setAttribute('viewBox', '0 0 ' + side + ' ' + side);
  svgIn.innerHTML = parts.join('');
  var n = mode === 'transposed' ? N : v.i + 2 * v.p;
  capIn.textContent = (mode === 'transposed' ? 'stretched and padded input: ' : 'padded input: ') + n + ' \u00d7 ' + n +
    (N > n ? ' (+ ' + (N - n) + ' past the edge)' : '') +
    (o > 0 ? ' \u2014 output cell (' + sel[0] + ', ' + sel[1] + ') reads the orange cells' : '');
  var out = [];
  for (var r2 = 0; r2 < o; r2++) {
    for (var c2 = 0; c2 < o; c2++) {
      var on = r2 === sel[0] && c2 === sel[1];
      out.push('<rect class="dlx-cell' + (on ? ' dlx-selected' : '') + '" data-r="' + r2 + '" data-c="' + c2 +
        '" x="' + (pad + c2 * cs) + '" y="' + (pad + r2 * cs) + '" width="' + cs + '" height="' + cs +
        '" fill="' + (on ? '#f28e2b' : '#dcefdc') + '" stroke="#5a8f5a" stroke-width="0.6"/>');
    }
  }
  var oside = Math.max(o, 1) * cs + 2 * pad;
  svgOut.setAttribute('width', oside); svgOut.setAttribute('height', oside);
  svgOut.setAttribute('viewBox', '0 0 ' + oside + ' ' + oside);
  svgOut.innerHTML = out.join('');
  capOut.textContent = o > 0 ? 'output: ' + o + ' \u00d7 ' + o + ' (hover to select a cell, click to keep it)' :
    'output: none';
}

// Hover selects an output cell; a click keeps it selected (a second click on it lets hover select again).
function pick(event, click) {
  var cell = event.target.closest ? event.target.closest('rect.dlx-cell') : null;
  if (!cell) { return; }
  var rc = [Number(cell.dataset.r), Number(cell.dataset.c)];
  var same = selected && selected[0] === rc[0] && selected[1] === rc[1];
  if (click) {
    pinned = !(pinned && same);
  } else if (pinned || same) {
    return;  // nothing changes: no redraw (a redraw under a still pointer would fire mouseover again)
  }
  selected = rc;
  draw();
}
svgOut.addEventListener('mouseover', function (e) { pick(e, false); });
svgOut.addEventListener('click', function (e) { pick(e, true); });
function onChange() {
  update();
  if (!drawPending) { drawPending = true; window.requestAnimationFrame(draw); }
}
app.addEventListener('input', onChange);
app.addEventListener('change', onChange);
update();
draw();
"""
