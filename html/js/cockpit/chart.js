/* The throughput chart: purchases per second over the last 5 minutes (5 s bars, as /stats
 * buckets them), and a vertical mark at every process restart. Drawn at the box's own pixel
 * width, so text stays crisp and readable on a phone; redrawn when the box is resized. */
import { el, setText } from "../shared/dom.js";
import { clock, count, parseTime, plural, rate } from "../shared/format.js";

const PAD = { left: 38, right: 12, top: 36, bottom: 24 };

let last = null; // the reading last drawn, to draw again at a new width
let drawnWidth = 0;

function svgEl(name, attributes = {}, text) {
  const node = document.createElementNS(el["throughput-chart"].namespaceURI, name);
  for (const [attribute, value] of Object.entries(attributes)) node.setAttribute(attribute, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The chart's top: at least `value`, with a round half-way line (1, 2, 4, 6, 8, 10 × 10ⁿ). */
function niceCeil(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 6, 8, 10]) if (step * power >= value - 1e-9) return step * power;
  return 10 * power;
}

const chartLabel = (value) => String(Number(value.toPrecision(3)));

/** Where things go: the time span shown, the plot's size, and x(t), y(value) in pixels. */
function makeScale(stats, series, width, height) {
  const end = parseTime(stats.now)?.getTime() ?? Date.now();
  const bucketMs = series.length > 1 ? series[1].at - series[0].at : 5000;
  const start = series.length ? series[0].at : end - 300000;
  const span = Math.max(1, end - start);
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const peak = series.reduce((max, bucket) => Math.max(max, bucket.value), 0);
  const top = niceCeil(Math.max(peak, 1));
  return {
    width, height, start, end, span, bucketMs, plotW, plotH, peak, top,
    bottom: PAD.top + plotH,
    x: (t) => PAD.left + ((t - start) / span) * plotW,
    y: (value) => PAD.top + plotH - (value / top) * plotH,
  };
}

/** Grid and the y axis (0, half, top); the x axis, a label a minute. */
function drawGrid(s) {
  const grid = svgEl("g", { class: "chart-grid" });
  for (const value of [0, s.top / 2, s.top]) {
    grid.append(svgEl("line", { x1: PAD.left, x2: s.width - PAD.right, y1: s.y(value), y2: s.y(value) }));
    grid.append(
      svgEl("text", { x: PAD.left - 6, y: s.y(value) + 4, "text-anchor": "end" }, value === s.top ? `${chartLabel(value)}/s` : chartLabel(value)),
    );
  }
  for (const minutes of s.plotW < 300 ? [5, 3, 1, 0] : [5, 4, 3, 2, 1, 0]) {
    const at = s.end - minutes * 60000;
    const anchor = minutes === 5 ? "start" : minutes === 0 ? "end" : "middle";
    grid.append(
      svgEl("text", { x: s.x(at), y: s.height - 6, "text-anchor": anchor }, minutes === 0 ? "now" : `−${minutes} min`),
    );
  }
  return grid;
}

/** The bars: only the buckets with purchases. */
function drawBars(s, series) {
  const bars = svgEl("g", { class: "chart-bars" });
  const barW = Math.max(1, (s.bucketMs / s.span) * s.plotW - (s.plotW > 400 ? 2 : 1));
  for (const bucket of series) {
    if (bucket.value <= 0) continue;
    const barTop = s.y(bucket.value);
    const bar = svgEl("rect", {
      x: s.x(bucket.at) + 0.5,
      y: barTop,
      width: barW,
      height: Math.max(1, s.bottom - barTop),
      rx: Math.min(2, barW / 2),
      "data-testid": "throughput-bar",
      "data-value": bucket.value,
    });
    bar.append(
      svgEl("title", {}, `${clock(new Date(bucket.at))}–${clock(new Date(bucket.at + s.bucketMs))}: ${rate(bucket.value)} purchases`),
    );
    bars.append(bar);
  }
  return bars;
}

/** A mark at every restart in view, labelled with its number, staggered when close. */
function drawMarks(s, restarts) {
  const marks = svgEl("g", { class: "chart-marks" });
  let lastLabelX = -Infinity;
  let row = 0;
  for (const restart of restarts) {
    const mx = s.x(restart.t);
    row = mx - lastLabelX < 24 ? 1 - row : 0;
    lastLabelX = mx;
    const labelY = row ? 11 : 25;
    const mark = svgEl("g", {
      class: "chart-mark",
      "data-testid": "restart-mark",
      "data-restart-count": restart.restart_count,
    });
    mark.append(
      svgEl("title", {}, `Restart ${restart.restart_count} at ${clock(new Date(restart.t))}: ${plural(restart.workflows_recovered, "workflow")} recovered`),
      svgEl("line", { x1: mx, x2: mx, y1: labelY + 5, y2: s.bottom }),
      svgEl("rect", { x: mx - 11, y: labelY - 9, width: 22, height: 14, rx: 7 }),
      svgEl("text", { x: mx, y: labelY + 2, "text-anchor": "middle" }, `#${restart.restart_count}`),
    );
    marks.append(mark);
  }
  return marks;
}

/** The figures under the chart, and its description for screen readers. */
function describe(svg, s, series, restarts) {
  const total = series.reduce((sum, bucket) => sum + bucket.value * (s.bucketMs / 1000), 0);
  const last30 = series.slice(-6);
  const recent = last30.length ? last30.reduce((sum, b) => sum + b.value, 0) / last30.length : 0;
  setText(el["throughput-now"], rate(recent));
  setText(el["throughput-peak"], rate(s.peak));
  setText(el["throughput-total"], count.format(Math.round(total)));
  const marked = restarts.length
    ? ` Restarts marked at ${restarts.map((r) => `${clock(new Date(r.t))} (restart ${r.restart_count}, ${plural(r.workflows_recovered, "workflow")} recovered)`).join(", ")}.`
    : " No restart in this window.";
  svg.querySelector("desc").textContent =
    `Bar chart of purchases per second in 5-second buckets over the last 5 minutes: ` +
    `${rate(recent)} over the last 30 seconds, peak ${rate(s.peak)}, ${plural(Math.round(total), "purchase")} in all.${marked}`;
}

export function renderChart(stats) {
  last = stats;
  const svg = el["throughput-chart"];
  const width = Math.max(240, Math.round(el.throughput.clientWidth || 600));
  const height = width < 520 ? 170 : 236;
  drawnWidth = width;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  for (const child of Array.from(svg.children)) if (child.tagName !== "desc") child.remove();

  const series = (stats.throughput || []).map((bucket) => ({
    at: parseTime(bucket.at)?.getTime() ?? 0,
    value: Number(bucket.per_second) || 0,
  }));
  const s = makeScale(stats, series, width, height);
  const restarts = (stats.process_starts || [])
    .filter((start) => start.restart_count > 0)
    .map((start) => ({ ...start, t: parseTime(start.at)?.getTime() ?? 0 }))
    .filter((start) => start.t >= s.start && start.t <= s.end)
    .sort((a, b) => a.t - b.t);
  svg.append(drawGrid(s), drawBars(s, series), drawMarks(s, restarts));
  describe(svg, s, series, restarts);
}

function onResize() {
  if (!last || el.figures.hidden) return;
  const width = Math.round(el.throughput.clientWidth);
  if (width && Math.abs(width - drawnWidth) > 1) renderChart(last);
}

export function initChart() {
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(onResize).observe(el.throughput);
  } else {
    window.addEventListener("resize", onResize);
  }
}
