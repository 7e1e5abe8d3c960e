/* spendstream console: draws the uPlot charts described by each .chart[data-chart] element (server-rendered
   JSON, see enforcement/console/charts.py). No inline script anywhere: the CSP allows scripts from 'self' only.
   Colours: Okabe-Ito (colour-blind safe); forecast and limits are also dashed, so colour is never the only cue. */
(function () {
  "use strict";
  var PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"];

  function fmt(u, v) { return v == null ? "—" : v.toFixed(2); }

  function draw(el) {
    if (el.getAttribute("data-drawn")) { return; }
    el.setAttribute("data-drawn", "1");
    var spec = JSON.parse(el.getAttribute("data-chart"));
    if (!spec.x.length || typeof uPlot === "undefined") { el.textContent = "No data to chart yet."; return; }
    var series = [{}], data = [spec.x], ci = 0;
    spec.series.forEach(function (s) {
      var o = { label: s.label, width: 2, value: fmt, spanGaps: false };
      if (s.kind === "bars") {
        o.stroke = PALETTE[0]; o.fill = "rgba(0,114,178,0.6)"; o.paths = uPlot.paths.bars({ size: [0.6, 40] });
      } else if (s.kind === "limit") {
        o.stroke = "#555555"; o.dash = [4, 4]; o.width = 1;
      } else if (s.kind === "dash") {
        o.stroke = PALETTE[3]; o.dash = [10, 5];
      } else {
        o.stroke = PALETTE[ci++ % PALETTE.length];
      }
      series.push(o);
      data.push(s.values);
    });
    var width = Math.max(320, Math.min(el.clientWidth || 640, 900));
    new uPlot({ width: width, height: 240, series: series, scales: { x: { time: true } },
                axes: [{}, { label: "USD", size: 70 }] }, data, el);
  }

  function drawAll(root) {
    var els = (root || document).querySelectorAll(".chart[data-chart]");
    Array.prototype.forEach.call(els, draw);
    document.body.setAttribute("data-charts-ready", "1");
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (e) { drawAll(e.target); });
})();
