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

  // ---------------------------------------------------------------- plots
  var specs = data("arpo-plots");
  var made = [];
  // The training controls: smoothing weight, x axis (step | progress | minutes), log y.
  var ctl = { smooth: 0, x: "step", log: false };
  function widthOf(el) {
    return Math.max(320, Math.min(900, (el.clientWidth || 600) - 4));
  }
  function padRange(u, min, max) {
    if (min === null || max === null) return [0, 1];
    if (min === max) return [min - 1, max + 1];
    return [min, max];
  }
  var INT_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000,
    20000, 50000, 100000];
  function intValues(u, splits) {
    return splits.map(function (v) { return Math.round(v) === v ? String(v) : ""; });
  }
  // (x, y) pairs of each series → aligned data on the sorted union of x.
  function realign(pairs) {
    var xs = {};
    pairs.forEach(function (ps) { ps.forEach(function (p) { xs[p[0]] = true; }); });
    var x = Object.keys(xs).map(Number).sort(function (a, b) { return a - b; });
    var at = {};
    x.forEach(function (v, i) { at[v] = i; });
    var ys = pairs.map(function (ps) {
      var v = x.map(function () { return null; });
      ps.forEach(function (p) { v[at[p[0]]] = p[1]; });
      return v;
    });
    return { x: x, ys: ys };
  }
  // TensorBoard's smoothing: a debiased exponential moving average over the defined values.
  function smooth(values, w) {
    var last = 0, n = 0;
    return values.map(function (v) {
      if (v === null || !isFinite(v)) return v;
      last = last * w + (1 - w) * v;
      n++;
      return last / (1 - Math.pow(w, n));
    });
  }
  // A training plot's data under the controls; "note" says what could not be applied.
  function trainingData(s) {
    var note = "";
    var mode = ctl.x;
    if (mode === "minutes" && !s.series.every(function (ser) { return ser.minutes; })) {
      mode = "step";
      note = "no step times in this run's data: x is the step";
    }
    var pairs = s.series.map(function (ser) {
      var xs = s.x;
      if (mode === "minutes") xs = ser.minutes;
      if (mode === "progress") {
        var def = s.x.filter(function (x, i) { return ser.values[i] !== null; });
        var lo = Math.min.apply(null, def), hi = Math.max.apply(null, def);
        xs = s.x.map(function (x) { return hi > lo ? (x - lo) / (hi - lo) : 0; });
      }
      var out = [];
      ser.values.forEach(function (v, i) {
        if (v !== null && xs[i] !== null && xs[i] !== undefined) out.push([xs[i], v]);
      });
      return out;
    });
    var al = realign(pairs);
    var ys = ctl.smooth > 0 ? al.ys.map(function (v) { return smooth(v, ctl.smooth); }) : al.ys;
    var positive = al.ys.every(function (v) {
      return v.every(function (y) { return y === null || y > 0; });
    });
    if (ctl.log && !positive) note = (note ? note + "; " : "") + "log scale needs positive values";
    return {
      x: al.x,
      ys: ys,
      raw: ctl.smooth > 0 ? al.ys : null,
      log: ctl.log && positive,
      xLabel: mode === "minutes" ? "wall time (min)" : mode === "progress"
        ? "fraction of the stage's steps" : s.xLabel,
      xInteger: mode === "step" && s.xInteger,
      note: note,
    };
  }
  function draw(s, el) {
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
    var td = s.training ? trainingData(s) : null;
    var xInteger = td ? td.xInteger : s.xInteger;
    var series = [{ label: td ? td.xLabel : s.xLabel }];
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
        o.points = { show: (td ? td.x : s.x).length <= 40, size: 5 };
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
    if (s.kind === "line") {
      // a flat series (all zero tool errors, say) gets a unit range around it, not 0…100
      scales.y = { range: function (u, min, max) {
        if (min === null || max === null) return [0, 1];
        if (min === max) return [min - Math.max(1, Math.abs(min) * 0.1), max + Math.max(1, Math.abs(max) * 0.1)];
        var pad = (max - min) * 0.05;
        return [min - pad, max + pad];
      } };
    }
    if (td && td.log) scales.y = { distr: 3 };
    var xAxis = { label: td ? td.xLabel : s.xLabel };
    if (xInteger) {
      xAxis.incrs = INT_INCRS;
      xAxis.values = intValues;
    }
    var yAxis = { label: s.yLabel };
    if (s.yInteger) {
      yAxis.incrs = INT_INCRS;
      yAxis.values = intValues;
    }
    var opts = {
      width: widthOf(el),
      height: 260,
      series: series,
      scales: scales,
      axes: [xAxis, yAxis],
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
          // where the x axis put its ticks (a test checks integer axes tick at whole numbers)
          rec.xSplits = (u.axes[0]._splits || []).slice();
          rec.series = u.series.length - 1;
        }],
      },
    };
    var cols = td ? [td.x].concat(td.ys) : [s.x].concat(s.series.map(function (x) { return x.values; }));
    if (td && td.raw) {
      // the raw values, faint, after every other series (band indices stay valid)
      s.series.forEach(function (ser, i) {
        series.push({ label: ser.label + " (raw)", stroke: ser.color + "40", width: 1,
          points: { show: false }, spanGaps: true });
        cols.push(td.raw[i]);
      });
    }
    var noteEl = el.parentNode ? el.parentNode.querySelector(".ctl-note") : null;
    if (noteEl) noteEl.textContent = td ? td.note : "";
    try {
      var u = new uPlot(opts, cols, el);
      made.push({ u: u, el: el, s: s });
      if (td && td.raw) {
        // the faint raw lines need no legend entries of their own
        var rows = u.root.querySelectorAll(".u-legend .u-series");
        for (var ri = s.series.length + 1; ri < rows.length; ri++) rows[ri].style.display = "none";
      }
    } catch (e) {
      R.errors.push("plot " + s.id + ": " + (e && e.message ? e.message : String(e)));
    }
  }
  specs.forEach(function (s) {
    var el = document.getElementById("plot-" + s.id);
    if (!el) {
      R.errors.push("no container for plot " + s.id);
      return;
    }
    if (s.training && el.parentNode) el.parentNode.appendChild(h("div", "note ctl-note"));
    draw(s, el);
  });
  function redrawTraining() {
    var old = made.filter(function (m) { return m.s.training; });
    made = made.filter(function (m) { return !m.s.training; });
    old.forEach(function (m) {
      m.u.destroy();
      m.el.textContent = "";
      draw(m.s, m.el); // pushes the new plot onto made
    });
    R.controls = { smooth: ctl.smooth, x: ctl.x, log: ctl.log };
  }
  var sm = document.getElementById("ctl-smooth"), xs = document.getElementById("ctl-x"),
    lg = document.getElementById("ctl-log");
  if (sm) {
    sm.addEventListener("input", function () {
      ctl.smooth = Number(sm.value);
      document.getElementById("ctl-smooth-v").textContent = String(ctl.smooth);
      redrawTraining();
    });
  }
  if (xs) xs.addEventListener("change", function () { ctl.x = xs.value; redrawTraining(); });
  if (lg) lg.addEventListener("change", function () { ctl.log = lg.checked; redrawTraining(); });
  var resizeTimer = 0;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      made.forEach(function (m) { m.u.setSize({ width: widthOf(m.el), height: 260 }); });
    }, 100);
  });

  // ---------------------------------------------------------------- sample browser
  (function samples() {
    var all = data("arpo-samples");
    R.samples = { total: all.length, shown: 0, listed: 0, view: null };
    var listEl = document.getElementById("sample-list");
    var viewEl = document.getElementById("sample-view");
    if (!listEl || !viewEl || !all.length) return;
    var search = document.getElementById("sample-search");
    var stageSel = document.getElementById("sample-stage");
    var whereSel = document.getElementById("sample-where");
    var sortSel = document.getElementById("sample-sort");
    var countEl = document.getElementById("sample-count");
    var PAGE = 100;
    var limit = PAGE;
    var tokenMode = "text";
    all.forEach(function (x, i) {
      x._i = i;
      x._text = [x.question, x.answers.join(" ")].concat(x.parts.map(function (p) {
        return p.text + (p.call ? " " + p.call.tool + " " + p.call.input : "");
      })).join("\n").toLowerCase();
    });
    function matches(x, q, stage, where) {
      if (stage && x.stage !== stage) return false;
      if (where === "correct" && x.correct !== true) return false;
      if (where === "wrong" && x.correct !== false) return false;
      if (where === "tool_error" && !(x.toolErrors > 0)) return false;
      if (where === "timeout" && !(x.timeouts > 0)) return false;
      return !q || x._text.indexOf(q) >= 0;
    }
    function key(x, by) {
      var v = by === "reward" || by === "-reward" ? x.reward
        : by === "entropy" ? x.meanEntropy : by === "length" ? x.responseTokens : undefined;
      return typeof v === "number" && isFinite(v) ? v : -Infinity;
    }
    function selected() {
      var q = search.value.trim().toLowerCase();
      var out = all.filter(function (x) { return matches(x, q, stageSel.value, whereSel.value); });
      var by = sortSel.value;
      if (by) {
        out.sort(function (a, b) {
          var d = by === "-reward" ? key(a, by) - key(b, by) : key(b, by) - key(a, by);
          if (by === "-reward" && !isFinite(d)) d = (isFinite(key(a, by)) ? 0 : 1) - (isFinite(key(b, by)) ? 0 : 1);
          return d || a._i - b._i;
        });
      }
      return out;
    }
    function verdict(x) {
      return x.correct === true ? "correct" : x.correct === false ? "wrong" : "";
    }
    function entColor(hh, min, max) {
      var t = max > min ? Math.max(0, Math.min(1, (hh - min) / (max - min))) : 0.5;
      return "rgba(213,94,0," + (0.08 + 0.72 * t).toFixed(3) + ")";
    }
    function lpColor(lp) {
      var t = Math.max(0, Math.min(1, -lp / 6));
      return "rgba(0,114,178," + (0.05 + 0.75 * t).toFixed(3) + ")";
    }
    function showSample(x) {
      viewEl.textContent = "";
      var head = h("div", "tree-head");
      head.appendChild(h("h3", null, x.taskId + " · trajectory #" + x.trajectory));
      kv(head, "run", x.run);
      kv(head, "stage", x.stage + (x.step !== undefined ? " · step " + x.step : ""));
      kv(head, "kind", x.kind);
      if (x.reward !== undefined) kv(head, "reward", fmt(x.reward));
      if (x.rewardParts) {
        kv(head, "parts", Object.keys(x.rewardParts).sort().map(function (k) {
          var v = x.rewardParts[k];
          return k + "=" + (typeof v === "number" ? fmt(v) : String(v));
        }).join(", "));
      }
      if (verdict(x)) head.appendChild(h("span", x.correct ? "s-ok" : "s-bad", verdict(x)));
      kv(head, "end", x.end || "–");
      kv(head, "tool calls", x.toolCalls + (x.toolErrors ? " (" + x.toolErrors + " failed)" : ""));
      if (x.meanEntropy !== undefined) kv(head, "H̄", fmt(x.meanEntropy));
      viewEl.appendChild(head);
      viewEl.appendChild(pre(x.question, "question"));
      if (x.answers.length) viewEl.appendChild(h("div", "lbl", "answer: " + x.answers.join(" | ")));
      var hasTokens = x.parts.some(function (p) { return p.tokens; });
      var bar = h("div", "toolbar");
      ["text", "entropy", "logprob"].forEach(function (m) {
        var b = h("button", null, m === "text" ? "text" : m === "entropy"
          ? "tokens: entropy" : "tokens: log-prob");
        b.type = "button";
        b.setAttribute("data-mode", m);
        if (m !== "text" && !hasTokens) b.disabled = true;
        if (m === tokenMode) b.style.fontWeight = "700";
        b.addEventListener("click", function () { tokenMode = m; showSample(x); });
        bar.appendChild(b);
      });
      if (!hasTokens) bar.appendChild(h("span", "note", "no per-token data for this sample"));
      var maxH = 0, minH = Infinity;
      x.parts.forEach(function (p) {
        if (p.kind === "result") return;
        (p.tokens || []).forEach(function (t) {
          if (t.entropy > maxH) maxH = t.entropy;
          if (t.entropy < minH) minH = t.entropy;
        });
      });
      if (!isFinite(minH)) minH = 0;
      if (tokenMode !== "text" && hasTokens) {
        bar.appendChild(h("span", "note", tokenMode === "entropy"
          ? "darker = higher entropy (" + fmt(minH) + " to " + fmt(maxH) + " nats in this sample); hover a token for its values"
          : "darker = less likely (log-prob down to −6); hover a token for its values"));
      }
      viewEl.appendChild(bar);
      var mode = hasTokens ? tokenMode : "text";
      x.parts.forEach(function (p) {
        var box = h("div", "part part-" + p.kind);
        var hd = h("div", "seg-head");
        hd.appendChild(h("span", "tag", p.kind === "gen" ? "generated" : p.kind === "result"
          ? "tool result" : p.kind));
        if (p.call) {
          kv(hd, "tool", p.call.tool);
          if (p.call.error) hd.appendChild(h("span", "flag err", "error"));
          if (p.call.timedOut) hd.appendChild(h("span", "flag err", "timeout"));
          hd.appendChild(h("span", "note", "not sampled by the policy"));
        }
        box.appendChild(hd);
        if (p.call) {
          box.appendChild(h("div", "lbl", "input"));
          box.appendChild(pre(p.call.input, "input"));
          box.appendChild(h("div", "lbl", "output"));
        }
        if (mode !== "text" && p.tokens && p.kind !== "result") {
          var tk = h("div", "tokens");
          p.tokens.forEach(function (t, i) {
            var sp = h("span", "tok", t.text);
            sp.style.background = mode === "entropy"
              ? entColor(t.entropy, minH, maxH) : lpColor(t.logprob);
            sp.title = "#" + i + "  H " + fmt(t.entropy) + "  log p " + fmt(t.logprob);
            tk.appendChild(sp);
          });
          box.appendChild(tk);
        } else box.appendChild(pre(p.text, p.call ? "output" : ""));
        viewEl.appendChild(box);
      });
      R.samples.view = { stage: x.stage, taskId: x.taskId, trajectory: x.trajectory, mode: mode };
    }
    function refresh() {
      var sel = selected();
      listEl.textContent = "";
      sel.slice(0, limit).forEach(function (x) {
        var b = h("button", "q");
        b.type = "button";
        b.setAttribute("data-sample", String(x._i));
        b.appendChild(h("span", "q-id", x.taskId + " #" + x.trajectory +
          (x.reward !== undefined ? " · reward " + fmt(x.reward) : "")));
        b.appendChild(h("span", "q-meta", [x.run, x.stage, x.step !== undefined ? "step " + x.step : "",
          verdict(x), x.toolErrors ? x.toolErrors + " tool error(s)" : "",
          x.timeouts ? x.timeouts + " timeout(s)" : ""].filter(function (z) { return z; }).join(" · ")));
        var last = x.parts.length ? x.parts[x.parts.length - 1].text : "";
        b.appendChild(h("span", "q-text", last.length > 90 ? last.slice(-90) : last));
        b.addEventListener("click", function () {
          Array.prototype.forEach.call(listEl.querySelectorAll("button.q"), function (z) {
            z.classList.remove("on");
          });
          b.classList.add("on");
          showSample(x);
        });
        listEl.appendChild(b);
      });
      if (sel.length > limit) {
        var more = h("button", "q", "show " + Math.min(PAGE, sel.length - limit) + " more of " +
          (sel.length - limit));
        more.type = "button";
        more.id = "sample-more";
        more.addEventListener("click", function () { limit += PAGE; refresh(); });
        listEl.appendChild(more);
      }
      countEl.textContent = sel.length + " of " + all.length + " samples";
      R.samples.shown = sel.length;
      R.samples.listed = Math.min(sel.length, limit);
      var first = listEl.querySelector("button.q[data-sample]");
      if (first) first.click();
      else viewEl.textContent = "no sample matches";
    }
    [search, stageSel, whereSel, sortSel].forEach(function (el) {
      el.addEventListener(el === search ? "input" : "change", function () { limit = PAGE; refresh(); });
    });
    refresh();
  })();

  // ---------------------------------------------------------------- rollout browser
  var trees = data("arpo-trees");
  R.trees = trees.length;
  var list = document.getElementById("tree-list");
  var view = document.getElementById("tree-view");
  if (!list || !view) return;


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
