/**
 * The report page's own script (plain JS, inlined after uPlot). It draws the plot specs with uPlot
 * and runs the rollout browser. Everything from the data reaches the DOM through textContent or
 * attribute setters, never innerHTML, so rollout text cannot inject markup or script.
 *
 * window.__arpoReport records what happened (plots created and series drawn, errors) so a
 * browser test can check that every plot actually drew.
 */
export const CLIENT_JS = String.raw`
(function () {
  "use strict";
  var R = (window.__arpoReport = { plots: {}, errors: [], trees: 0, shownTree: null });
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : [];
  }
  function h(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(x) {
    if (typeof x !== "number" || !isFinite(x)) return "–";
    if (Math.round(x) === x) return String(x);
    var a = Math.abs(x);
    if (a >= 1000) return x.toFixed(0);
    if (a >= 100) return x.toFixed(1);
    if (a !== 0 && a < 0.001) return x.toExponential(2);
    return x.toFixed(3);
  }

  // ---------------------------------------------------------------- plots
  var specs = data("arpo-plots");
  var made = [];
  function widthOf(el) {
    return Math.max(320, Math.min(900, (el.clientWidth || 600) - 4));
  }
  function padRange(u, min, max) {
    if (min === null || max === null) return [0, 1];
    if (min === max) return [min - 1, max + 1];
    return [min, max];
  }
  specs.forEach(function (s) {
    var el = document.getElementById("plot-" + s.id);
    if (!el) {
      R.errors.push("no container for plot " + s.id);
      return;
    }
    var points = 0;
    s.series.forEach(function (ser) {
      ser.values.forEach(function (v) { if (v !== null) points++; });
    });
    var rec = (R.plots[s.id] = {
      kind: s.kind,
      series: s.series.length,
      points: points,
      seriesDrawn: 0,
      drawn: false,
      width: 0,
      height: 0,
    });
    var series = [{ label: s.xLabel }];
    s.series.forEach(function (ser) {
      var o = { label: ser.label, stroke: ser.color, width: 1.75, spanGaps: true };
      if (ser.dash) o.dash = ser.dash;
      if (s.kind === "scatter") {
        o.paths = function () { return null; };
        o.points = { show: true, size: 7, width: 1, fill: ser.color + "99", stroke: ser.color };
        o.spanGaps = false;
      } else if (s.kind === "bars") {
        o.paths = uPlot.paths.bars({ size: [0.7, 60] });
        o.fill = ser.color + "55";
        o.points = { show: false };
        o.spanGaps = false;
      } else {
        o.points = { show: s.x.length <= 40, size: 5 };
      }
      series.push(o);
    });
    var xRange = s.kind === "bars"
      ? function (u, min, max) { return [min - 0.5, max + 0.5]; }
      : padRange;
    var scales = { x: { time: false, range: xRange } };
    // Bars grow from zero; without this uPlot fits the y range to the data and cuts them.
    if (s.kind === "bars") {
      scales.y = { range: function (u, min, max) { return [0, Math.max(1, max) * 1.08]; } };
    }
    var opts = {
      width: widthOf(el),
      height: 260,
      series: series,
      scales: scales,
      axes: [{ label: s.xLabel }, { label: s.yLabel }],
      legend: {
        show: true,
        live: s.kind !== "scatter",
        // Show a series' dash in its legend marker too (CSS has only dashed and dotted).
        markers: {
          dash: function (u, i) {
            var d = u.series[i].dash;
            return d && d.length ? (d[0] <= 2 ? "dotted" : "dashed") : "solid";
          },
        },
      },
      cursor: { points: { show: s.kind !== "scatter" } },
      hooks: {
        drawSeries: [function () { rec.seriesDrawn++; }],
        draw: [function (u) {
          rec.drawn = true;
          rec.width = u.width;
          rec.height = u.height;
        }],
      },
    };
    try {
      var u = new uPlot(opts, [s.x].concat(s.series.map(function (x) { return x.values; })), el);
      made.push({ u: u, el: el });
    } catch (e) {
      R.errors.push("plot " + s.id + ": " + (e && e.message ? e.message : String(e)));
    }
  });
  var resizeTimer = 0;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      made.forEach(function (m) { m.u.setSize({ width: widthOf(m.el), height: 260 }); });
    }, 100);
  });

  // ---------------------------------------------------------------- rollout browser
  var trees = data("arpo-trees");
  R.trees = trees.length;
  var list = document.getElementById("tree-list");
  var view = document.getElementById("tree-view");
  if (!list || !view) return;

  function kv(parent, k, v) {
    var s = h("span", "kv");
    s.appendChild(h("b", null, k + " "));
    s.appendChild(document.createTextNode(v));
    parent.appendChild(s);
    return s;
  }
  function pre(text, cls) {
    return h("pre", cls ? "txt " + cls : "txt", text);
  }

  function renderTree(t) {
    view.textContent = "";
    var head = h("div", "tree-head");
    head.appendChild(h("h3", null, t.taskId + (t.step !== undefined ? " · step " + t.step : "")));
    kv(head, "run", t.run);
    kv(head, "stage", t.stage);
    if (t.answers && t.answers.length) kv(head, "answer", t.answers.join(" | "));
    view.appendChild(head);
    view.appendChild(pre(t.question, "question"));

    // trajectories table
    var tbl = h("table", "tbl traj");
    var tr = h("tr");
    ["traj", "kind", "parent", "end", "tool calls", "length", "reward", "reward parts", "advantage"]
      .forEach(function (c) { tr.appendChild(h("th", null, c)); });
    var thead = h("thead");
    thead.appendChild(tr);
    tbl.appendChild(thead);
    var tb = h("tbody");
    t.trajectories.forEach(function (j) {
      var r = h("tr");
      var parts = j.rewardParts
        ? Object.keys(j.rewardParts).sort().map(function (k) {
          var v = j.rewardParts[k];
          return k + "=" + (typeof v === "number" ? fmt(v) : String(v));
        }).join(", ")
        : "";
      [
        "#" + j.index, j.kind, j.parent === null || j.parent === undefined ? "–" : "#" + j.parent,
        j.end || "–", j.toolCalls !== undefined ? j.toolCalls : "–",
        j.responseLength !== undefined ? j.responseLength : "–", fmt(j.reward), parts,
        fmt(j.advantage),
      ].forEach(function (c) { r.appendChild(h("td", null, c)); });
      tb.appendChild(r);
    });
    tbl.appendChild(tb);
    view.appendChild(tbl);

    // index the tree
    var segs = {}, kids = {}, roots = [];
    t.segments.forEach(function (s) {
      segs[s.id] = s;
      if (s.parent === null || s.parent === undefined) roots.push(s);
      else (kids[s.parent] = kids[s.parent] || []).push(s);
    });
    var callByResult = {}, callBySeg = {}, forkAt = {}, trajsOf = {};
    t.toolCalls.forEach(function (c) { callByResult[c.result] = c; callBySeg[c.segment] = c; });
    t.forks.forEach(function (f) { (forkAt[f.at] = forkAt[f.at] || []).push(f); });
    t.trajectories.forEach(function (j) {
      j.segments.forEach(function (id) { (trajsOf[id] = trajsOf[id] || []).push(j.index); });
    });

    function segBox(s) {
      var box = h("div", "seg seg-" + s.kind);
      box.setAttribute("data-seg", String(s.id));
      var hd = h("div", "seg-head");
      var label = s.kind === "gen" ? "generated" : s.kind === "result" ? "tool result" : s.kind;
      hd.appendChild(h("span", "tag", label));
      kv(hd, "seg", "#" + s.id);
      kv(hd, "traj", (trajsOf[s.id] || [s.trajectory]).map(function (i) { return "#" + i; })
        .join(" "));
      if (s.tokens !== undefined) kv(hd, "tokens", String(s.tokens));
      if (s.meanEntropy !== undefined) kv(hd, "H̄", fmt(s.meanEntropy));
      if (s.stop) kv(hd, "stop", s.stop);
      box.appendChild(hd);
      var c = s.kind === "result" ? callByResult[s.id] : null;
      if (c) {
        var ci = h("div", "call");
        kv(ci, "tool", c.tool);
        if (c.error) ci.appendChild(h("span", "flag err", "error"));
        if (c.timedOut) ci.appendChild(h("span", "flag err", "timeout"));
        if (c.cached) ci.appendChild(h("span", "flag", "cached"));
        box.appendChild(ci);
        box.appendChild(h("div", "lbl", "input"));
        box.appendChild(pre(c.input, "input"));
        box.appendChild(h("div", "lbl", "output"));
      }
      box.appendChild(pre(s.text, c ? "output" : ""));
      (forkAt[s.id] || []).forEach(function (f) {
        var fk = h("div", "fork fork-" + f.decision);
        fk.appendChild(h("span", "tag", "fork"));
        kv(fk, "ΔH", fmt(f.deltaH));
        kv(fk, "P", fmt(f.p));
        kv(fk, "decision", f.decision);
        if (f.children && f.children.length) {
          kv(fk, "children", f.children.map(function (i) { return "#" + i; }).join(" "));
        }
        box.appendChild(fk);
      });
      return box;
    }
    // A chain of single children renders flat; a node with several children opens branches.
    function chain(s, into) {
      var cur = s;
      while (cur) {
        into.appendChild(segBox(cur));
        var ch = (kids[cur.id] || []).slice().sort(function (a, b) { return a.id - b.id; });
        if (ch.length === 1) {
          cur = ch[0];
          continue;
        }
        if (ch.length > 1) {
          var br = h("div", "branches");
          ch.forEach(function (c) {
            var b = h("div", "branch");
            b.appendChild(h("div", "branch-label", c.trajectory === cur.trajectory
              ? "continues trajectory #" + c.trajectory
              : "branch → trajectory #" + c.trajectory));
            chain(c, b);
            br.appendChild(b);
          });
          into.appendChild(br);
        }
        cur = null;
      }
    }
    var treeEl = h("div", "tree");
    var rs = roots.slice().sort(function (a, b) { return a.id - b.id; });
    if (rs.length > 1) {
      var br = h("div", "branches");
      rs.forEach(function (s) {
        var b = h("div", "branch");
        b.appendChild(h("div", "branch-label", "trajectory #" + s.trajectory + " (from the prompt)"));
        chain(s, b);
        br.appendChild(b);
      });
      treeEl.appendChild(br);
    } else if (rs.length === 1) chain(rs[0], treeEl);
    view.appendChild(treeEl);
    R.shownTree = t.taskId;
  }

  var buttons = [];
  trees.forEach(function (t, i) {
    var b = h("button", "q");
    b.type = "button";
    b.setAttribute("data-tree", String(i));
    b.appendChild(h("span", "q-id", t.taskId));
    b.appendChild(h("span", "q-meta", [t.run, t.stage, t.step !== undefined ? "step " + t.step : ""]
      .filter(function (x) { return x; }).join(" · ")));
    b.appendChild(h("span", "q-text", t.question.length > 90 ? t.question.slice(0, 90) + "…" : t.question));
    b.addEventListener("click", function () {
      buttons.forEach(function (x) { x.classList.remove("on"); });
      b.classList.add("on");
      try {
        renderTree(t);
      } catch (e) {
        R.errors.push("tree " + t.taskId + ": " + (e && e.message ? e.message : String(e)));
        throw e;
      }
    });
    buttons.push(b);
    list.appendChild(b);
  });
  if (buttons.length) buttons[0].click();
})();
`;

/** Where the sweep additions go: right before a plot is created. */
const BANDS_ANCHOR = "    try {\n      var u = new uPlot(opts, ";

/**
 * Sweep plots' extras, inserted before each plot is created: per-series line widths, hidden
 * point markers (band edges), and uPlot bands filled between two series.
 */
const BANDS_JS = String.raw`    s.series.forEach(function (ser, i) {
      if (typeof ser.width === "number") series[i + 1].width = ser.width;
      if (ser.points === false) series[i + 1].points = { show: false };
    });
    if (s.bands && s.bands.length) {
      opts.bands = s.bands.map(function (b) {
        return { series: [b.upper + 1, b.lower + 1], fill: b.fill };
      });
    }
`;

if (CLIENT_JS.split(BANDS_ANCHOR).length !== 2) {
  throw new Error("report/client.ts: the sweep additions' anchor is not in CLIENT_JS once");
}

/**
 * The page script of a sweep report: CLIENT_JS plus band support. CLIENT_JS itself is unchanged,
 * so single-run and comparison reports keep their bytes.
 */
export const SWEEP_CLIENT_JS = CLIENT_JS.replace(BANDS_ANCHOR, BANDS_JS + BANDS_ANCHOR);
