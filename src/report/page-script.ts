/**
 * The report page's only script, inlined as text. It adds hover read-outs to the server-drawn charts
 * and checks, in the browser, that each chart actually drew something: it sets `data-drawn` on every
 * chart and `data-rendered="ok" | "error"` on <body>, and lists any failure in #script-errors, so a
 * headless browser (the test) and a person can both see that the page worked.
 *
 * Plain ES2017 with no imports: it runs as is in any browser that opens the file.
 */
export const PAGE_SCRIPT = String.raw`
(function () {
  "use strict";
  var failures = 0;
  function fail(msg) {
    failures++;
    document.body.setAttribute("data-rendered", "error");
    var box = document.getElementById("script-errors");
    if (!box) return;
    var li = document.createElement("li");
    li.textContent = msg;
    box.querySelector("ul").appendChild(li);
    box.hidden = false;
  }
  window.addEventListener("error", function (e) { fail("script error: " + e.message); });

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "\u2013";
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a < 1e-3 || a >= 1e7) return v.toExponential(2);
    if (Math.round(v) === v) return String(v);
    return String(Number(v.toPrecision(4)));
  }

  var tip = document.createElement("div");
  tip.className = "tooltip";
  tip.hidden = true;
  document.body.appendChild(tip);

  function wire(fig, svg) {
    var el = fig.querySelector("script.hover-data");
    if (!el) return;
    var data = JSON.parse(el.textContent);
    var log = svg.getAttribute("data-x-scale") === "log2";
    var d0 = Number(svg.getAttribute("data-x0")), d1 = Number(svg.getAttribute("data-x1"));
    var p0 = Number(svg.getAttribute("data-px0")), p1 = Number(svg.getAttribute("data-px1"));
    var t = function (v) { return log ? Math.log2(v) : v; };
    var toPx = function (v) { return p0 + (t(v) - t(d0)) * (p1 - p0) / (t(d1) - t(d0) || 1); };
    var guide = svg.querySelector(".hover-line");
    var pt = svg.createSVGPoint();
    function hide() { tip.hidden = true; if (guide) guide.setAttribute("visibility", "hidden"); }
    svg.addEventListener("mouseleave", hide);
    svg.addEventListener("mousemove", function (ev) {
      var m = svg.getScreenCTM();
      if (!m || data.xs.length === 0) return;
      pt.x = ev.clientX; pt.y = ev.clientY;
      var local = pt.matrixTransform(m.inverse());
      var best = 0, bestD = Infinity;
      for (var i = 0; i < data.xs.length; i++) {
        var d = Math.abs(toPx(data.xs[i]) - local.x);
        if (d < bestD) { bestD = d; best = i; }
      }
      var px = toPx(data.xs[best]);
      if (guide) { guide.setAttribute("x1", px); guide.setAttribute("x2", px); guide.setAttribute("visibility", "visible"); }
      tip.textContent = "";
      var head = document.createElement("div");
      head.className = "tip-head";
      head.textContent = data.xLabel + " " + data.xs[best];
      tip.appendChild(head);
      data.rows.forEach(function (r) {
        var row = document.createElement("div");
        var sw = document.createElement("span");
        sw.className = "sw";
        sw.style.background = r.color;
        row.appendChild(sw);
        row.appendChild(document.createTextNode(r.name + ": " + fmt(r.values[best])));
        tip.appendChild(row);
      });
      var note = data.notes && data.notes[best];
      if (note) {
        var nd = document.createElement("div");
        nd.className = "tip-note";
        nd.textContent = note;
        tip.appendChild(nd);
      }
      tip.hidden = false;
      var x = ev.clientX + 14, y = ev.clientY + 14;
      var w = tip.offsetWidth, h = tip.offsetHeight;
      if (x + w > window.innerWidth - 8) x = ev.clientX - w - 14;
      if (y + h > window.innerHeight - 8) y = ev.clientY - h - 14;
      tip.style.left = x + "px";
      tip.style.top = y + "px";
    });
  }

  try {
    var figs = document.querySelectorAll("figure.plot");
    for (var f = 0; f < figs.length; f++) {
      var fig = figs[f];
      var svg = fig.querySelector("svg.chart");
      if (!svg) continue;
      var marks = svg.querySelectorAll(".mark");
      var drawn = 0;
      for (var k = 0; k < marks.length; k++) {
        var b = marks[k].getBBox();
        if (b.width > 0 || b.height > 0) drawn++;
      }
      svg.setAttribute("data-drawn", String(drawn));
      if (drawn === 0) fail("chart " + fig.id + " drew nothing");
      wire(fig, svg);
    }
  } catch (e) {
    fail("script error: " + (e && e.message ? e.message : String(e)));
  }
  if (failures === 0) document.body.setAttribute("data-rendered", "ok");
})();
`;
