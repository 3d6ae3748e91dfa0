// Companion dashboard: polls /dashboard/data and draws small SVG line charts by hand.
// No library: seven charts of a few hundred points need ~100 lines, and nothing to build or fetch.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#ad1457"];
const W = 340, H = 150, PAD = { l: 42, r: 8, t: 8, b: 18 };

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
  if (a >= 10 || v === 0) return v.toFixed(0);
  return v.toPrecision(2);
}

// series: [{name, points: [[t, value|null], ...]}]; draws into the <figure> `figure`.
function lineChart(figure, series, opts = {}) {
  for (const old of figure.querySelectorAll("svg, .legend, .empty")) old.remove();
  const all = series.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined));
  if (all.length === 0) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = opts.empty || "no data yet";
    figure.appendChild(p);
    return;
  }
  const ts = all.map((p) => p[0]), vs = all.map((p) => p[1]);
  const t0 = Math.min(...ts), t1 = Math.max(...ts, t0 + 1);
  const v0 = opts.min !== undefined ? opts.min : Math.min(0, ...vs);
  const v1 = opts.max !== undefined ? opts.max : (Math.max(...vs) > v0 ? Math.max(...vs) * 1.1 : v0 + 1);
  const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - ((v - v0) / (v1 - v0)) * (H - PAD.t - PAD.b);
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img" }, figure);
  el("line", { class: "axis", x1: PAD.l, x2: W - PAD.r, y1: y(v0), y2: y(v0) }, svg);
  el("line", { class: "axis", x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b }, svg);
  for (const v of [v0, (v0 + v1) / 2, v1]) {
    el("text", { x: PAD.l - 4, y: y(v) + 3, "text-anchor": "end" }, svg).textContent = fmt(v) + (opts.unit || "");
  }
  const span = Math.round(t1 - t0);
  el("text", { x: W - PAD.r, y: H - 4, "text-anchor": "end" }, svg).textContent = `last ${span} s`;
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const segments = [];
    let current = [];
    for (const [t, v] of s.points) {
      if (v === null || v === undefined) { if (current.length) segments.push(current); current = []; continue; }
      current.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    }
    if (current.length) segments.push(current);
    const d = segments.map((seg) => "M" + seg.join("L") + (seg.length === 1 ? "h1" : "")).join("");
    if (d) el("path", { class: "series", d, stroke: colour, "data-series": s.name }, svg);
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = colour;
    item.append(swatch, `${s.name}: ${fmt(s.points.length ? s.points[s.points.length - 1][1] : null)}${opts.unit || ""}`);
    legend.appendChild(item);
  });
  figure.appendChild(legend);
}

function keysOf(points, pick) {
  const names = new Set();
  for (const p of points) for (const k of Object.keys(pick(p) || {})) names.add(k);
  return [...names].sort();
}

function seriesOf(points, pick, names) {
  return names.map((name) => ({ name, points: points.map((p) => [p.t, (pick(p) || {})[name] ?? null]) }));
}

function byId(id) { return document.getElementById(id); }

function routesByTraffic(points) {
  const last = points[points.length - 1].routes;
  return Object.keys(last).sort((a, b) => last[b].count - last[a].count);
}

function drawLatency(points) {
  const holder = byId("latency");
  const routes = routesByTraffic(points).slice(0, 6);
  for (const fig of [...holder.children]) if (!routes.includes(fig.dataset.route)) fig.remove();
  routes.forEach((route) => {
    let fig = [...holder.children].find((f) => f.dataset.route === route);
    if (!fig) {
      fig = document.createElement("figure");
      fig.className = "card latency";
      fig.dataset.route = route;
      const caption = document.createElement("figcaption");
      caption.textContent = route;
      fig.appendChild(caption);
      holder.appendChild(fig);
    }
    const series = ["p50", "p95", "p99"].map((q) => ({
      name: q, points: points.map((p) => [p.t, p.routes[route] ? p.routes[route][q] : null]),
    }));
    lineChart(fig, series, { unit: " ms", min: 0 });
  });
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function when(s) { return s ? new Date(s * 1000).toLocaleTimeString() : "–"; }

function drawTables(data) {
  const alerts = byId("alerts").tBodies[0];
  alerts.replaceChildren();
  const seen = new Set();
  for (const a of [...data.alerts.active, ...data.alerts.recent]) {
    const id = `${a.name}|${a.fired_at_s}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const row = alerts.insertRow();
    cell(row, a.state, a.state);
    cell(row, a.level);
    cell(row, a.name);
    cell(row, fmt(a.value));
    cell(row, fmt(a.threshold));
    cell(row, when(a.fired_at_s));
    cell(row, when(a.resolved_at_s));
  }
  if (!alerts.rows.length) cell(alerts.insertRow(), "no alerts", "ok");
  const health = byId("health").tBodies[0];
  health.replaceChildren();
  for (const c of (data.health && data.health.checks) || []) {
    const row = health.insertRow();
    cell(row, c.name);
    cell(row, c.status, c.status);
    cell(row, c.duration_ms.toFixed(1));
    cell(row, c.error || c.detail || "");
  }
  if (!health.rows.length) cell(health.insertRow(), "not checked yet");
}

function draw(data) {
  const points = data.points;
  if (!points.length) return;
  const routes = routesByTraffic(points).slice(0, 8);
  lineChart(byId("chart-rate"), seriesOf(points, (p) => Object.fromEntries(Object.entries(p.routes).map(([k, v]) => [k, v.rps])), routes), { min: 0 });
  const tiers = keysOf(points, (p) => p.cache);
  lineChart(byId("chart-cache"), tiers.map((tier) => ({
    name: tier, points: points.map((p) => [p.t, p.cache[tier] && p.cache[tier].hit_rate !== null ? p.cache[tier].hit_rate * 100 : null]),
  })), { unit: "%", min: 0, max: 100 });
  lineChart(byId("chart-sandbox"), seriesOf(points, (p) => p.sandbox.runs, keysOf(points, (p) => p.sandbox.runs)), { min: 0, empty: "no sandboxed runs yet" });
  lineChart(byId("chart-queue"), [{ name: "queued", points: points.map((p) => [p.t, p.sandbox.queued]) }], { min: 0, empty: "sandbox disabled" });
  lineChart(byId("chart-tools"), seriesOf(points, (p) => p.tools, ["calls", "cache_hits"]), { min: 0 });
  lineChart(byId("chart-memory"), [{ name: "rss", points: points.map((p) => [p.t, p.process.rss_bytes / 1048576]) }], { unit: " MiB" });
  lineChart(byId("chart-cpu"), [{ name: "cpu", points: points.map((p) => [p.t, p.process.cpu_percent]) }], { unit: "%", min: 0 });
  drawLatency(points);
  drawTables(data);
}

async function poll() {
  const status = byId("status");
  try {
    const response = await fetch("/dashboard/data", { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401 || response.status === 403) { window.location.assign("/dashboard"); return; }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    draw(data);
    document.body.dataset.points = String(data.points.length);
    status.textContent = `live · ${data.points.length} points · ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    status.textContent = `disconnected (${error.message}); retrying`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const interval = Number(document.body.dataset.intervalMs) || 2000;
  poll();
  setInterval(poll, interval);
});
