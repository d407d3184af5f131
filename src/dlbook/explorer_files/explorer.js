// The convolution-arithmetic explorer's page side: it looks the current setting up in the table Python computed
// (dlbook.explorer.explorer_data; config.packed is that table, deflated and base64-encoded) and draws it. It computes
// no size: every number it shows comes from the table or from a slider.
// Called as function (root, config), root being the explorer's own <div>.
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
var KINDS = {i: 'in', p: 'pad', z: 'zero', c: 'crop', C: 'crop', b: 'beyond'};
var FILL = {in: '#cfe3f5', pad: '#ffffff', zero: '#f0f0f0', crop: '#d9d9d9', beyond: '#d9d9d9'};
var ORDER = ['crop', 'beyond', 'pad', 'zero', 'in'];  // a 2-D cell is the weaker kind of its row and column
var table = null, shown = null, drawPending = false;
var chosen = null;   // [row, col] chosen by a tap, a click or the arrow keys; null: the last output cell
var pointed = null;  // [row, col] a mouse points at (a preview; touch screens never set it)

function unpack(text) {
  var bytes = Uint8Array.from(atob(text), function (ch) { return ch.charCodeAt(0); });
  return new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'))).json();
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, function (_, name) {
    var v = values[name];
    return Array.isArray(v) ? v.join(', ') : String(v);
  });
}

// The table's entry for the current controls: its columns are indexed like itertools.product over its axes.
function lookup() {
  var part = table[modeEl.value], index = 0, values = {};
  Object.keys(sliders).forEach(function (name) {
    values[name] = Number(sliders[name].value);
    sliders[name].parentNode.querySelector('output').textContent = sliders[name].value;
  });
  values.ceil_mode = ceilEl.checked;
  Object.keys(part.axes).forEach(function (name) {
    index = index * part.axes[name].length + part.axes[name].indexOf(values[name]);
  });
  Object.keys(part.columns).forEach(function (field) { values[field] = part.columns[field][index]; });
  return values;
}

function update() {
  var mode = modeEl.value;
  app.querySelector('[data-row=output_padding]').style.display = mode === 'transposed' ? '' : 'none';
  app.querySelector('[data-row=ceil_mode]').style.display = mode === 'pool' ? '' : 'none';
  var v = lookup();
  v.mode = mode;
  sizeEl.dataset.size = v.error ? 'error' : String(v.o);
  sizeEl.dataset.unread = v.unread.join(',');
  sizeEl.textContent = v.error ? 'PyTorch raises for these settings' :
    'output ' + v.o + ' \u00d7 ' + v.o + ' (from input ' + v.i + ' \u00d7 ' + v.i + ')';
  formulaEl.textContent = fill(config.formulas[v.formula], v);
  notesEl.innerHTML = '';
  v.notes.forEach(function (key) {
    var li = document.createElement('li');
    li.textContent = fill(config.notes[key], v);
    notesEl.appendChild(li);
  });
  shown = v;
}

function rect(cls, r, c, cs, fill, extra) {
  return '<rect class="' + cls + '" data-r="' + r + '" data-c="' + c + '" x="' + (2 + c * cs) + '" y="' +
    (2 + r * cs) + '" width="' + cs + '" height="' + cs + '" fill="' + fill + '"' + extra + '/>';
}

function sizeSvg(svg, cells, cs) {
  var side = Math.max(cells, 1) * cs + 4;
  svg.setAttribute('width', side); svg.setAttribute('height', side);
  svg.setAttribute('viewBox', '0 0 ' + side + ' ' + side);
}

function draw() {
  drawPending = false;
  var v = shown, cells = v.cells, N = cells.length, o = v.o, k = v.k, d = v.d;
  if (chosen && (chosen[0] >= o || chosen[1] >= o)) { chosen = null; }
  if (pointed && (pointed[0] >= o || pointed[1] >= o)) { pointed = null; }
  var sel = pointed || chosen || [o - 1, o - 1];
  var taps = function (a) {  // the drawn positions output a reads: k taps, d apart, from the table's first and step
    var t = [];
    for (var u = 0; u < k; u++) { t.push(v.first + a * v.step + u * d); }
    return t;
  };
  var rowsRead = {}, colsRead = {}, inputAt = [], isInput = {}, hatched = {};
  if (o > 0) {
    taps(sel[0]).forEach(function (t) { rowsRead[t] = true; });
    taps(sel[1]).forEach(function (t) { colsRead[t] = true; });
  }
  for (var t = 0; t < N; t++) { if (cells[t] === 'i' || cells[t] === 'C') { inputAt.push(t); isInput[t] = true; } }
  v.unread.forEach(function (j) { hatched[inputAt[j]] = true; });
  var cs = Math.max(5, Math.min(24, Math.floor(380 / Math.max(N, o, 1))));
  var parts = ['<defs><pattern id="' + hatch + '" width="4" height="4" patternUnits="userSpaceOnUse" ' +
    'patternTransform="rotate(45)"><rect width="4" height="4" fill="#f4a6a6"/>' +
    '<line x1="0" y1="0" x2="0" y2="4" stroke="#c0392b" stroke-width="1.5"/></pattern></defs>'];
  for (var r = 0; r < N; r++) {
    for (var c = 0; c < N; c++) {
      var kind = ORDER[Math.min(ORDER.indexOf(KINDS[cells[r]]), ORDER.indexOf(KINDS[cells[c]]))];
      var read = rowsRead[r] && colsRead[c];
      var unread = !read && isInput[r] && isInput[c] && (hatched[r] || hatched[c]);
      var colour = read ? (kind === 'in' ? '#f28e2b' : '#fbd3a5') : unread ? 'url(#' + hatch + ')' : FILL[kind];
      var dash = kind === 'pad' ? ' stroke-dasharray="2,2"' : kind === 'crop' || kind === 'beyond' ?
        ' stroke-dasharray="1,2"' : '';
      parts.push(rect('dlx-grid dlx-k-' + kind + (read ? ' dlx-read' : '') + (unread ? ' dlx-unread' : ''), r, c, cs,
        colour, ' stroke="#888" stroke-width="0.6"' + dash));
    }
  }
  if (o > 0) {  // the window of the selected output cell, from its first tap to its last
    var tr = taps(sel[0]), tc = taps(sel[1]);
    parts.push('<rect class="dlx-window" x="' + (2 + tc[0] * cs) + '" y="' + (2 + tr[0] * cs) + '" width="' +
      (tc[k - 1] - tc[0] + 1) * cs + '" height="' + (tr[k - 1] - tr[0] + 1) * cs +
      '" fill="none" stroke="#a0450a" stroke-width="2"/>');
  }
  if (inputAt.length) {  // the input itself, without padding: a solid frame
    var a0 = inputAt[0], side = (inputAt[inputAt.length - 1] - a0 + 1) * cs;
    parts.push('<rect x="' + (2 + a0 * cs) + '" y="' + (2 + a0 * cs) + '" width="' + side + '" height="' + side +
      '" fill="none" stroke="#1f4e79" stroke-width="1.6"/>');
  }
  sizeSvg(svgIn, N, cs);
  svgIn.innerHTML = parts.join('');
  var n = N - v.hang;
  capIn.textContent = (v.mode === 'transposed' ? 'stretched and padded input: ' : 'padded input: ') + n +
    ' \u00d7 ' + n + (v.hang ? ' (+ ' + v.hang + ' past the edge)' : '') +
    (o > 0 ? ' \u2014 output cell (' + sel[0] + ', ' + sel[1] + ') reads the orange cells' : '');
  var out = [];
  for (var r2 = 0; r2 < o; r2++) {
    for (var c2 = 0; c2 < o; c2++) {
      var on = r2 === sel[0] && c2 === sel[1];
      out.push(rect('dlx-cell' + (on ? ' dlx-selected' : ''), r2, c2, cs, on ? '#f28e2b' : '#dcefdc',
        ' stroke="#5a8f5a" stroke-width="0.6"'));
    }
  }
  sizeSvg(svgOut, o, cs);
  svgOut.innerHTML = out.join('');
  capOut.textContent = o > 0 ? 'output: ' + o + ' \u00d7 ' + o +
    ' \u2014 tap or click a cell to see its window (arrow keys move it)' : 'output: none';
}

function redraw() {
  if (!drawPending) { drawPending = true; window.requestAnimationFrame(draw); }
}

function cellOf(event) {
  var cell = event.target.closest ? event.target.closest('rect.dlx-cell') : null;
  return cell ? [Number(cell.dataset.r), Number(cell.dataset.c)] : null;
}

function same(a, b) { return a === b || (a && b && a[0] === b[0] && a[1] === b[1]); }

// A tap or a click chooses an output cell; a mouse pointing at one previews it; the arrow keys move the choice.
svgOut.addEventListener('click', function (e) {
  var rc = cellOf(e);
  if (rc && table) { chosen = rc; pointed = null; draw(); }
});
svgOut.addEventListener('pointerover', function (e) {
  var rc = e.pointerType === 'mouse' ? cellOf(e) : null;
  if (rc && table && !same(rc, pointed)) { pointed = rc; draw(); }
});
svgOut.addEventListener('pointerleave', function () {
  if (pointed && table) { pointed = null; draw(); }
});
svgOut.addEventListener('keydown', function (e) {
  if (e.key === 'Tab' || e.key === 'Escape' || e.ctrlKey || e.altKey || e.metaKey) { return; }
  e.stopPropagation();  // in a notebook, keys would otherwise act on the notebook (arrows move between its cells)
  var step = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[e.key];
  if (!step || !table || shown.o < 1) { return; }
  e.preventDefault();
  var at = chosen || [shown.o - 1, shown.o - 1];
  chosen = [Math.min(shown.o - 1, Math.max(0, at[0] + step[0])), Math.min(shown.o - 1, Math.max(0, at[1] + step[1]))];
  pointed = null;
  draw();
});

function onChange() {
  if (!table) { return; }
  update();
  redraw();
}
app.addEventListener('input', onChange);
app.addEventListener('change', onChange);

if (typeof DecompressionStream === 'undefined') {
  sizeEl.textContent = 'This browser cannot unpack the explorer\u2019s table (it lacks DecompressionStream).';
} else {
  unpack(config.packed).then(function (data) {
    table = data;
    update();
    draw();
    app.dataset.ready = '1';
  });
}
