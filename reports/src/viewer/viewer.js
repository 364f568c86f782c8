// Faultline's counterexample viewer: draws one key's operations per process on a canvas, zoomable and pannable
// in time; only the visible rows and time range are drawn (per-row binary search), so large histories stay
// responsive. Reads its data from the JSON element #viewer-data (see reports/src/viewer/data.rs).
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("viewer-data").textContent);
  const S = D.strings;
  const O = D.ops;
  const ROW_H = 26, BAR_H = 16, AXIS_H = 34, LABEL_W = 96;
  const COLORS = {
    ok: "#8fb8e3", prefix: "#7cc47c", blocked: "#e0403a", fail: "#dddddd", info: "#f4c27a",
    fault: "rgba(255, 140, 0, 0.18)", instant: "rgba(214, 39, 40, 0.8)", read: "#7b3fd0", source: "#138a8a",
    missed: "#e07000",
  };
  const canvas = document.getElementById("chart");
  const ctx = canvas.getContext("2d");
  const tooltip = document.getElementById("tooltip");
  const details = document.getElementById("details");

  const view = { key: -1, t0: 0, t1: 1, top: 0, hover: -1, mark: null };
  let K = null; // the derived data of the shown key

  const ret = (id) => (O.ret[id] < 0 ? D.end : O.ret[id]);
  const rel = (t) => t - D.start;
  function fmtTime(ns) {
    const ms = ns / 1e6;
    if (Math.abs(ms) >= 10000) return (ms / 1000).toFixed(3) + " s";
    if (Math.abs(ms) >= 1) return ms.toFixed(3) + " ms";
    return (ns / 1000).toFixed(3) + " µs";
  }
  // A tick label in one unit for the whole axis, chosen from the tick step, with just enough decimals.
  function fmtTick(ns, stepNs) {
    const [unit, scale] = stepNs >= 1e8 ? ["s", 1e9] : stepNs >= 1e5 ? ["ms", 1e6] : stepNs >= 100 ? ["µs", 1e3] : ["ns", 1];
    const decimals = Math.max(0, Math.ceil(-Math.log10(stepNs / scale) - 1e-9));
    return (ns / scale).toFixed(decimals) + " " + unit;
  }
  const OUTCOME = ["ok", "fail", "info"];
  function opLabel(id) {
    return S[O.f[id]] + " " + S[O.value[id]];
  }
  function lowerBound(arr, pred) {
    let lo = 0, hi = arr.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (pred(arr[mid])) hi = mid; else lo = mid + 1;
    }
    return lo;
  }

  // Derives rows (one per process), per-row operations sorted by call, and the linearization positions.
  function derive(k) {
    const key = D.keys[k];
    const procs = Array.from(new Set(key.ops.map((id) => O.process[id]))).sort((a, b) => a - b);
    const rowOf = new Map(procs.map((p, i) => [p, i]));
    const rows = procs.map(() => []);
    const open = procs.map(() => []);
    const maxDur = procs.map(() => 0);
    for (const id of key.ops) {
      const r = rowOf.get(O.process[id]);
      if (O.ret[id] < 0) { open[r].push(id); continue; }
      rows[r].push(id);
      maxDur[r] = Math.max(maxDur[r], O.ret[id] - O.call[id]);
    }
    rows.forEach((list) => list.sort((a, b) => O.call[a] - O.call[b]));
    const step = new Map();
    key.order.forEach((id, i) => step.set(id, i));
    let first = D.end, last = D.start;
    for (const id of key.ops) { first = Math.min(first, O.call[id]); last = Math.max(last, ret(id)); }
    return { k, key, procs, rowOf, rows, open, maxDur, step, first, last, failing: key.blocked !== null };
  }

  // The canvas' CSS size, read once per draw: reading clientWidth per operation forces a layout each time.
  const size = { w: canvas.clientWidth, h: canvas.clientHeight };
  function plotWidth() { return size.w - LABEL_W; }
  function xOf(t) { return LABEL_W + ((t - view.t0) / (view.t1 - view.t0)) * plotWidth(); }
  function tOf(x) { return view.t0 + ((x - LABEL_W) / plotWidth()) * (view.t1 - view.t0); }
  function rowY(r) { return AXIS_H + r * ROW_H - view.top; }

  // The operations of row r overlapping the visible time range, in call order.
  function visibleInRow(r, fn) {
    const list = K.rows[r];
    const from = view.t0 - K.maxDur[r];
    let i = lowerBound(list, (id) => O.call[id] >= from);
    for (; i < list.length && O.call[list[i]] <= view.t1; i++) {
      if (O.ret[list[i]] >= view.t0) fn(list[i]);
    }
    for (const id of K.open[r]) if (O.call[id] <= view.t1) fn(id);
  }

  function fillOf(id) {
    if (id === K.key.blocked) return COLORS.blocked;
    if (O.outcome[id] === 1) return COLORS.fail;
    if (O.outcome[id] === 2) return COLORS.info;
    if (K.failing && K.step.has(id)) return COLORS.prefix;
    return COLORS.ok;
  }

  let pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    size.w = canvas.clientWidth;
    size.h = canvas.clientHeight;
    const w = size.w, h = size.h;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px DejaVu Sans, Verdana, sans-serif";
    ctx.textBaseline = "middle";
    drawFaults(h);
    const firstRow = Math.max(0, Math.floor(view.top / ROW_H));
    const lastRow = Math.min(K.procs.length - 1, Math.ceil((view.top + h - AXIS_H) / ROW_H));
    ctx.save();
    ctx.beginPath();
    ctx.rect(LABEL_W, AXIS_H, w - LABEL_W, h - AXIS_H);
    ctx.clip();
    for (let r = firstRow; r <= lastRow; r++) drawRow(r);
    ctx.restore();
    drawLabels(firstRow, lastRow, h);
    drawAxis(w);
  }

  function drawRow(r) {
    const y = Math.round(rowY(r) + (ROW_H - BAR_H) / 2);
    if (r % 2 === 1) { ctx.fillStyle = "rgba(0,0,0,0.025)"; ctx.fillRect(LABEL_W, rowY(r), plotWidth(), ROW_H); }
    let lastX = -Infinity;
    visibleInRow(r, (id) => {
      // Whole pixels: anti-aliased fractional rectangles cost ten times more to fill.
      const x0 = Math.round(Math.max(LABEL_W - 2, xOf(O.call[id])));
      const x1 = Math.round(Math.min(size.w + 2, xOf(ret(id))));
      const special = id === K.key.blocked || id === view.hover || (view.mark && view.mark.has(id));
      const width = Math.max(special ? 5 : 1, x1 - x0); // the operations in focus stay visible
      if (!special && x0 + width <= lastX) return; // its pixels are already drawn
      lastX = Math.max(lastX, x0 + width);
      ctx.fillStyle = fillOf(id);
      ctx.fillRect(x0, y, width, BAR_H);
      if (O.outcome[id] === 2) { // open-ended: fade marks
        ctx.fillStyle = "rgba(255,255,255,0.5)";
        for (let x = x0 + 6; x < x1; x += 8) ctx.fillRect(x, y, 3, BAR_H);
      }
      let outline = null, lw = 1;
      if (id === K.key.blocked) { outline = "#7a0000"; lw = 3; }
      if (view.mark && view.mark.has(id)) { outline = COLORS[view.mark.get(id)]; lw = 3; }
      if (id === view.hover) { outline = "#000"; lw = 2; }
      if (outline) { ctx.strokeStyle = outline; ctx.lineWidth = lw; ctx.strokeRect(x0, y, width, BAR_H); }
      else if (width > 3) { ctx.strokeStyle = "rgba(0,0,0,0.35)"; ctx.lineWidth = 1; ctx.strokeRect(x0, y, width, BAR_H); }
      if (width > 16) barText(id, x0, width, y);
    });
  }

  function barText(id, x0, width, y) {
    let text = "";
    if (K.step.has(id)) text += "#" + (K.step.get(id) + 1) + " ";
    if (id === K.key.blocked) text += "✗ ";
    text += opLabel(id);
    if (O.node[id] >= 0) text += " @" + S[O.node[id]];
    if (view.mark && view.mark.has(id)) text = view.mark.get(id) + ": " + text;
    ctx.save();
    ctx.beginPath();
    ctx.rect(x0, y, width, BAR_H);
    ctx.clip();
    ctx.fillStyle = id === K.key.blocked ? "#fff" : "#111";
    ctx.fillText(text, Math.max(x0, LABEL_W) + 3, y + BAR_H / 2 + 1);
    ctx.restore();
  }

  function drawFaults(h) {
    for (const f of D.faults) {
      if (f.end < view.t0 || f.start > view.t1) continue;
      const x0 = Math.max(LABEL_W, xOf(f.start));
      const x1 = Math.min(size.w, xOf(f.end));
      if (f.end === f.start) {
        ctx.fillStyle = COLORS.instant;
        ctx.fillRect(x0 - 1, AXIS_H - 8, 2, h);
      } else {
        ctx.fillStyle = COLORS.fault;
        ctx.fillRect(x0, AXIS_H - 8, Math.max(1, x1 - x0), h);
      }
      ctx.fillStyle = "#a04000";
      ctx.fillText(f.kind + (f.description ? " " + f.description : ""), x0 + 3, AXIS_H - 4);
    }
  }

  function drawLabels(firstRow, lastRow, h) {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, AXIS_H, LABEL_W, h - AXIS_H);
    ctx.fillStyle = "#333";
    for (let r = firstRow; r <= lastRow; r++) {
      const y = rowY(r) + ROW_H / 2;
      if (y < AXIS_H) continue;
      ctx.fillText("process " + K.procs[r], 6, y);
    }
    ctx.strokeStyle = "#ccc";
    ctx.beginPath(); ctx.moveTo(LABEL_W - 0.5, AXIS_H); ctx.lineTo(LABEL_W - 0.5, h); ctx.stroke();
  }

  function drawAxis(w) {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, AXIS_H - 12);
    const span = view.t1 - view.t0;
    const raw = span / Math.max(2, Math.floor(plotWidth() / 110));
    const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    const stepNs = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
    ctx.strokeStyle = "#e4e4e4";
    ctx.fillStyle = "#333";
    const firstTick = Math.ceil(rel(view.t0) / stepNs) * stepNs;
    for (let t = firstTick; t <= rel(view.t1); t += stepNs) {
      const x = xOf(t + D.start);
      ctx.beginPath(); ctx.moveTo(x, 14); ctx.lineTo(x, size.h); ctx.stroke();
      ctx.fillText(fmtTick(t, stepNs), x + 2, 8);
    }
  }

  // ---- interaction ----------------------------------------------------------------------------------

  function hit(x, y) {
    if (x < LABEL_W || y < AXIS_H) return -1;
    const r = Math.floor((y + view.top - AXIS_H) / ROW_H);
    if (r < 0 || r >= K.procs.length) return -1;
    const yIn = y - rowY(r);
    if (yIn < (ROW_H - BAR_H) / 2 || yIn > (ROW_H + BAR_H) / 2) return -1;
    const t = tOf(x), slack = 3 * (view.t1 - view.t0) / plotWidth();
    let best = -1, bestLen = Infinity;
    visibleInRow(r, (id) => {
      if (O.call[id] - slack <= t && t <= ret(id) + slack && ret(id) - O.call[id] < bestLen) {
        best = id;
        bestLen = ret(id) - O.call[id];
      }
    });
    return best;
  }

  // What the model did with an operation: its step, states before and after, or why it is not in the order.
  function stateText(id) {
    const key = K.key;
    if (K.step.has(id)) {
      const i = K.step.get(id);
      const before = i === 0 ? S[key.initial] : S[key.states[i - 1]];
      return { step: i + 1, before, after: S[key.states[i]],
        text: "linearized #" + (i + 1) + " of " + key.order.length + ": state " + before + " → " + S[key.states[i]] };
    }
    if (id === key.blocked) {
      const before = key.order.length ? S[key.states[key.order.length - 1]] : S[key.initial];
      return { step: null, before, after: null,
        text: "cannot follow the longest linearizable prefix (" + key.order.length + " ops): state before " + before +
          ", no state after" };
    }
    if (O.outcome[id] === 1) return { step: null, before: null, after: null, text: "failed: did not happen, not linearized" };
    if (key.verdict === "invalid") return { step: null, before: null, after: null, text: "not in the prefix (after the failure, or a crashed op never placed)" };
    if (key.verdict === "unknown") return { step: null, before: null, after: null, text: "undecided: the search ran out of budget" };
    return { step: null, before: null, after: null, text: "not placed (crashed op that need not take effect, or a crashed read)" };
  }

  function describe(id) {
    const s = stateText(id);
    const lines = [
      "process " + O.process[id] + "  " + opLabel(id) + "  [" + OUTCOME[O.outcome[id]] + "]",
      "invoked " + fmtTime(rel(O.call[id])) + (O.ret[id] < 0 ? ", never completed" :
        ", completed " + fmtTime(rel(O.ret[id])) + " (took " + fmtTime(O.ret[id] - O.call[id]) + ")"),
      "served by " + (O.node[id] >= 0 ? S[O.node[id]] : "unknown member") +
        (O.line[id] ? "; line " + O.line[id] : "") + "; index " + O.index[id],
      s.text,
    ];
    return { lines, state: s };
  }

  function showTooltip(id, x, y) {
    if (id < 0) { tooltip.hidden = true; return; }
    const d = describe(id);
    tooltip.textContent = d.lines.join("\n");
    tooltip.dataset.op = String(id);
    tooltip.dataset.before = d.state.before === null ? "" : d.state.before;
    tooltip.dataset.after = d.state.after === null ? "" : d.state.after;
    tooltip.hidden = false;
    const wrap = canvas.parentElement.getBoundingClientRect();
    const left = Math.min(x + 14, wrap.width - tooltip.offsetWidth - 4);
    tooltip.style.left = Math.max(0, left) + "px";
    tooltip.style.top = (y + 16) + "px";
    details.textContent = d.lines.join("\n");
  }

  function setView(t0, t1) {
    const minSpan = 50;
    if (t1 - t0 < minSpan) { const c = (t0 + t1) / 2; t0 = c - minSpan / 2; t1 = c + minSpan / 2; }
    view.t0 = t0; view.t1 = t1;
    redraw();
  }
  function zoom(factor, atX) {
    const t = tOf(atX === undefined ? LABEL_W + plotWidth() / 2 : atX);
    setView(t - (t - view.t0) * factor, t + (view.t1 - t) * factor);
  }
  function fit() {
    const pad = Math.max(1, (K.last - K.first) * 0.02);
    setView(K.first - pad, K.last + pad);
  }
  function scrollToRow(r) {
    const visible = size.h - AXIS_H;
    const y = r * ROW_H;
    if (y < view.top || y + ROW_H > view.top + visible) view.top = Math.max(0, y - visible / 2);
  }
  function focusOn(ids) {
    let a = Infinity, b = -Infinity;
    for (const id of ids) { a = Math.min(a, O.call[id]); b = Math.max(b, ret(id)); }
    if (!isFinite(a)) return fit();
    const pad = Math.max((b - a) * 0.15, 1);
    scrollToRow(K.rowOf.get(O.process[ids[ids.length - 1]]));
    setView(a - pad, b + pad);
  }
  function zoomToFailure() {
    const key = K.key;
    if (key.blocked === null) return fit();
    focusOn(key.order.slice(-4).concat([key.blocked]));
  }

  let drag = null;
  canvas.addEventListener("mousedown", (e) => {
    drag = { x: e.offsetX, y: e.offsetY, t0: view.t0, t1: view.t1, top: view.top };
    canvas.classList.add("dragging");
  });
  window.addEventListener("mouseup", () => { drag = null; canvas.classList.remove("dragging"); });
  canvas.addEventListener("mousemove", (e) => {
    if (drag) {
      const dt = ((e.offsetX - drag.x) / plotWidth()) * (drag.t1 - drag.t0);
      view.top = clampTop(drag.top - (e.offsetY - drag.y));
      setView(drag.t0 - dt, drag.t1 - dt);
      return;
    }
    const id = hit(e.offsetX, e.offsetY);
    if (id !== view.hover) { view.hover = id; redraw(); }
    showTooltip(id, e.offsetX, e.offsetY);
  });
  canvas.addEventListener("mouseleave", () => { view.hover = -1; tooltip.hidden = true; redraw(); });
  function clampTop(top) {
    const max = Math.max(0, K.procs.length * ROW_H - (size.h - AXIS_H));
    return Math.min(max, Math.max(0, top));
  }
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    if (e.shiftKey) { view.top = clampTop(view.top + e.deltaY); redraw(); return; }
    zoom(Math.exp(e.deltaY * 0.0015), e.offsetX);
  }, { passive: false });
  document.getElementById("zoom-fit").addEventListener("click", fit);
  document.getElementById("zoom-failure").addEventListener("click", zoomToFailure);
  document.getElementById("zoom-in").addEventListener("click", () => zoom(0.5));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(2));
  window.addEventListener("resize", redraw);

  // ---- key picker, notes, tables ------------------------------------------------------------------

  const picker = document.getElementById("key-picker");
  D.keys.forEach((key, i) => {
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = key.key + " — " + key.verdict + " (" + key.ops.length + " ops)";
    picker.appendChild(option);
  });
  picker.addEventListener("change", () => { view.mark = null; showKey(Number(picker.value), true); });

  function badge(el, verdict) { el.textContent = verdict; el.className = "badge " + verdict; }

  function showKey(k, refit) {
    view.key = k;
    K = derive(k);
    picker.value = String(k);
    view.top = 0;
    // As tall as the key's processes need, up to a screenful (then shift+wheel or drag scrolls them).
    canvas.style.height = Math.min(560, Math.max(140, AXIS_H + K.procs.length * ROW_H + 10)) + "px";
    size.w = canvas.clientWidth;
    size.h = canvas.clientHeight;
    badge(document.getElementById("key-verdict"), K.key.verdict);
    document.getElementById("zoom-failure").hidden = K.key.blocked === null;
    const note = document.getElementById("failure-note");
    const b = K.key.blocked;
    if (b !== null) {
      const before = K.key.order.length ? S[K.key.states[K.key.order.length - 1]] : S[K.key.initial];
      note.className = "bad";
      note.textContent = "Not linearizable: process " + O.process[b] + " " + opLabel(b) +
        (O.node[b] >= 0 ? " (served by " + S[O.node[b]] + ")" : "") + ", invoked at " + fmtTime(rel(O.call[b])) +
        ", cannot follow the longest linearizable prefix of " + K.key.order.length + " operations, which ends in state " +
        before + ".";
    } else {
      note.className = "";
      note.textContent = K.key.verdict === "valid"
        ? "Linearizable: the numbers give the order found."
        : "Undecided for this key: the search ran out of its budget.";
    }
    if (refit) (b !== null ? zoomToFailure() : fit());
    redraw();
  }

  function fillStale() {
    if (!D.stale.length) return;
    document.getElementById("stale-section").hidden = false;
    const body = document.querySelector("#stale-table tbody");
    D.stale.forEach((s, i) => {
      const tr = document.createElement("tr");
      const who = (id) => "p" + O.process[id] + " " + opLabel(id) + " @" + fmtTime(rel(O.call[id]));
      const cells = [
        D.keys[s.key].key,
        who(s.read),
        O.node[s.read] >= 0 ? S[O.node[s.read]] : "?",
        s.source === null ? "initial value" : who(s.source),
        s.missed.length + ": " + s.missed.map((id) => S[O.value[id]]).join(", "),
        fmtTime(s.behind_ns),
      ];
      for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
      tr.addEventListener("click", () => showStale(i, tr));
      body.appendChild(tr);
    });
  }

  function showStale(i, tr) {
    const s = D.stale[i];
    document.querySelectorAll("#stale-table tr.chosen").forEach((t) => t.classList.remove("chosen"));
    if (tr) tr.classList.add("chosen");
    showKey(s.key, false);
    view.mark = new Map();
    for (const id of s.missed) view.mark.set(id, "missed");
    if (s.source !== null) view.mark.set(s.source, "source");
    view.mark.set(s.read, "read");
    focusOn((s.source === null ? [] : [s.source]).concat(s.missed, [s.read]));
    details.textContent = "Stale read: " + describe(s.read).lines.join("\n") + "\nIt saw " +
      (s.source === null ? "the initial value" : "the write of process " + O.process[s.source]) + " and missed " +
      s.missed.length + " newer acknowledged write(s).";
  }

  function fillFaults() {
    if (!D.faults.length) return;
    document.getElementById("faults-section").hidden = false;
    const body = document.querySelector("#fault-table tbody");
    for (const f of D.faults) {
      const tr = document.createElement("tr");
      for (const c of [f.kind, fmtTime(rel(f.start)), fmtTime(rel(f.end)), f.description]) {
        const td = document.createElement("td"); td.textContent = c; tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  badge(document.getElementById("verdict"), D.verdict);
  document.getElementById("model").textContent = D.model;
  fillStale();
  fillFaults();
  if (D.keys.length) showKey(D.start_key, true);

  // A small API for tests and the console: where an operation is drawn, and the shown key's witness.
  window.faultlineViewer = {
    data: D,
    view,
    key: () => K && K.key,
    showKey: (k) => showKey(k, true),
    fit: () => fit(),
    zoomAround: (factor) => zoom(factor),
    // Draws at once (the page otherwise draws on the next animation frame).
    drawNow: () => draw(),
    showStale: (i) => showStale(i, null),
    // The operation's bar centre in client coordinates, or null when it is off screen.
    locate(id) {
      if (!K || !K.rowOf.has(O.process[id])) return null;
      draw();
      const rect = canvas.getBoundingClientRect();
      const x0 = Math.max(LABEL_W, xOf(O.call[id])), x1 = Math.min(size.w, xOf(ret(id)));
      const y = rowY(K.rowOf.get(O.process[id])) + ROW_H / 2;
      if (x1 < x0 || y < AXIS_H || y > size.h) return null;
      return { x: rect.left + (x0 + x1) / 2, y: rect.top + y };
    },
    // The colour drawn at a client point, as [r, g, b].
    colourAt(x, y) {
      const rect = canvas.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      const px = ctx.getImageData(Math.round((x - rect.left) * dpr), Math.round((y - rect.top) * dpr), 1, 1).data;
      return [px[0], px[1], px[2]];
    },
  };
})();
