"""The HTML report's style sheet and script, inlined into every page (it loads nothing).

The table is built by the script from the page's JSON data, so that a report of 10,000 tests
stays small and opens fast: sorting and filtering work on every test, and the table shows the
first `PAGE` rows of the result (a button adds more), since laying out ten thousand rows takes a
browser seconds and no reader scrolls through them. Column order
is `html.COLUMNS`: node ID, status, gated metric, RSS, USS, peak, new mappings, tolerance used
(%), change against the baseline, note.
"""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bad: #cf222e; --good: #1a7f37; --warn: #9a6700;
        --bar: #0969da; --bg2: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0 auto;
       padding: 16px 24px 48px; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); }
.muted { color: var(--muted); }
.verdict { font-size: 16px; font-weight: 600; padding: 8px 12px; border-radius: 6px; background: var(--bg2); }
.verdict.fail { color: var(--bad); } .verdict.pass { color: var(--good); }
.warning { color: var(--warn); margin: 4px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 110px; }
.card b { display: block; font-size: 20px; }
.controls { display: flex; gap: 8px; align-items: center; margin: 8px 0; }
.controls input { flex: 1; max-width: 480px; padding: 4px 8px; font: inherit; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { position: sticky; top: 0; background: var(--bg2); cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " ▲"; } th[aria-sort=descending]::after { content: " ▼"; }
td:first-child, th:first-child, td.note { text-align: left; white-space: normal; word-break: break-all; }
td:first-child { font-family: ui-monospace, monospace; font-size: 12.5px; }
#more { margin: 8px 0; font: inherit; }
.s-regressed td:nth-child(2), .s-budget td:nth-child(2) { color: var(--bad); font-weight: 600; }
.s-improved td:nth-child(2) { color: var(--good); } .s-accepted td:nth-child(2), .s-noise td:nth-child(2) { color: var(--warn); }
svg.chart text { font: 11px system-ui, sans-serif; fill: var(--fg); }
svg.chart text.title { font-weight: 600; }
svg.bars rect.pos { fill: var(--bar); } svg.bars rect.neg { fill: var(--good); }
svg.line polyline { fill: none; stroke: var(--bar); stroke-width: 1.6; } svg.line circle { fill: var(--bar); }
svg.line line.zero { stroke: var(--line); }
.lines { display: flex; flex-wrap: wrap; gap: 12px; }
details { margin: 6px 0; } summary { cursor: pointer; font-family: ui-monospace, monospace; }
pre { background: var(--bg2); padding: 8px; overflow-x: auto; font-size: 12px; }
"""

SCRIPT = r"""
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("pmap-data").textContent);
  var rows = data.rows, body = document.getElementById("tests-body"), count = document.getElementById("shown");
  var filter = document.getElementById("filter"), status = document.getElementById("status");
  var heads = document.querySelectorAll("#tests th"), key = data.sort, down = true;
  var more = document.getElementById("more"), PAGE = 500, limit = PAGE;
  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  function kib(n) { return n === null ? "n/a" : (n < 0 ? "-" : "+") + Math.floor(Math.abs(n) / 1024) + "K"; }
  function cell(r, i) {
    var v = r[i];
    if (i === 0 || i === 1 || i === 9) return v === null ? "" : esc(v);
    if (i === 6) return v === null ? "" : String(v);
    if (i === 7) return v === null ? "" : Math.round(v) + "%";
    return kib(v);
  }
  // Names in natural order: test_x[9] before test_x[10] before test_x[4999].
  var names = new Intl.Collator("en", {numeric: true});
  function compare(a, b) {
    var x = a[key], y = b[key];
    if (x === y) return names.compare(a[0], b[0]);
    if (x === null) return 1;
    if (y === null) return -1;
    var c = typeof x === "string" ? names.compare(x, y) : x < y ? -1 : 1;
    return down ? -c : c;
  }
  function render() {
    var text = filter.value.toLowerCase(), want = status.value, out = [], shown = 0;
    var view = rows.filter(function (r) {
      return (!text || r[0].toLowerCase().indexOf(text) >= 0) && (!want || r[1] === want);
    });
    view.sort(compare);
    for (var i = 0; i < view.length && i < limit; i++) {
      var r = view[i], tds = "";
      for (var c = 0; c < 10; c++) tds += (c === 9 ? '<td class="note">' : "<td>") + cell(r, c) + "</td>";
      out.push('<tr class="s-' + esc(r[1] || "none").replace(/ /g, "-") + '">' + tds + "</tr>");
      shown++;
    }
    body.innerHTML = out.join("");
    count.textContent = (view.length < rows.length ? view.length + " of " + rows.length + " tests match" : rows.length + " tests")
      + (shown < view.length ? ", the first " + shown + " shown" : "");
    more.hidden = shown >= view.length;
    for (var h = 0; h < heads.length; h++) {
      if (h === key) heads[h].setAttribute("aria-sort", down ? "descending" : "ascending");
      else heads[h].removeAttribute("aria-sort");
    }
  }
  for (var h = 0; h < heads.length; h++) {
    heads[h].addEventListener("click", (function (i) {
      return function () { if (key === i) { down = !down; } else { key = i; down = i > 1; } limit = PAGE; render(); };
    })(h));
  }
  filter.addEventListener("input", function () { limit = PAGE; render(); });
  status.addEventListener("change", function () { limit = PAGE; render(); });
  more.addEventListener("click", function () { limit += PAGE; render(); });
  render();
})();
"""
