/* The live figures: GET /stats every second (an operator route), orders by state, the stock
 * ledger and its verdicts, refunds due, restarts, the throughput chart, and a throttled summary for screen
 * readers. Each reading also goes out as a STATS event. */
import { detailOf, isAwayStatus } from "../net/api.js";
import { lockedText, operatorLock } from "../net/operator-lock.js";
import { poller } from "../net/poller.js";
import { el, setText } from "../shared/dom.js";
import { CONNECTION, OPERATOR_TOKEN, STATS, emit, on } from "../shared/events.js";
import { clock, count, money, plural } from "../shared/format.js";
import { initChart, renderChart } from "./chart.js";

const STATS_POLL_MS = 1000;
const LIVE_SUMMARY_MS = 30000;
// /stats reads the ledger's terms with separate statements: on Postgres, under load, an order
// can commit between two of them and one reading is off by one. A real loss never goes away,
// so the red verdict waits for this many consecutive readings (a few seconds); until then the
// reading shows as being re-checked.
const LEDGER_CONFIRM_READINGS = 3;

const stats = operatorLock();
const figures = {
  lastAt: null,
  announced: "",
  announcedAt: 0,
  unbalanced: 0, // consecutive readings in which the ledger did not add up
};
let away = false;
let statsPoller = null;

/** Reads the figures again now (after the shoppers started or stopped, say). */
export const refreshFiguresNow = () => statsPoller.now();

async function refreshStats() {
  const answer = await stats.get("/stats");
  if (!answer) return;
  if (answer.ok && answer.data) {
    renderStats(answer.data);
  } else if (answer.status === 401) {
    lockFigures();
  } else if (!isAwayStatus(answer.status)) {
    el["figures-empty"].hidden = false;
    el["figures-empty"].textContent = `Could not read the live figures: ${detailOf(answer)}`;
  }
}

function lockFigures() {
  el.figures.hidden = true;
  el["figures-updated"].textContent = "";
  el["figures-empty"].hidden = false;
  el["figures-empty"].textContent = lockedText("the live figures");
}

function renderUpdated() {
  if (!figures.lastAt) return;
  el["figures-updated"].textContent = away
    ? `Reconnecting… showing the figures of ${clock(figures.lastAt)}`
    : `Updated ${clock(figures.lastAt)}`;
}

function renderStats(reading) {
  figures.lastAt = new Date();
  el["figures-empty"].hidden = true;
  el.figures.hidden = false; // before the chart: it sizes itself to the space it gets
  renderUpdated();
  const orders = reading.orders || {};
  const setFigure = (id, value) => {
    setText(el[id], count.format(value || 0));
  };
  setFigure("fig-pending", orders.PENDING ?? reading.waiting_for_payment);
  setFigure("fig-paid", orders.PAID ?? reading.dispatching);
  setFigure("fig-dispatched", orders.DISPATCHED);
  setFigure("fig-cancelled", orders.CANCELLED);
  renderLedger(reading.ledger, reading.oversold);
  renderStranded(reading.stranded);
  renderRefundsDue(reading.refunds_due, reading.refunds_due_amount);
  renderRestarts(reading.process_starts || []);
  renderChart(reading);
  emit(STATS, { stats: reading });
  announceFigures(reading);
}

function renderLedger(ledger, oversold) {
  setText(el["ledger-restock-level"], count.format(ledger.restock_level));
  setText(el["ledger-inventory"], count.format(ledger.inventory));
  setText(el["ledger-live"], count.format(ledger.live_orders));
  setText(el["ledger-returned"], count.format(ledger.returned_from_before));
  const balanced = ledger.unaccounted === 0;
  figures.unbalanced = balanced ? 0 : figures.unbalanced + 1;
  const verdict = balanced
    ? "true"
    : figures.unbalanced >= LEDGER_CONFIRM_READINGS
      ? "false"
      : "checking";
  setText(el["ledger-equals"], balanced ? "=" : "≠");
  setText(el.unaccounted, count.format(ledger.unaccounted));
  el["unaccounted-row"].dataset.ok = verdict;
  setText(el["unaccounted-note"], verdict === "checking" ? "re-checking…" : "");
  setText(el.oversold, count.format(oversold));
  el["oversold-row"].dataset.ok = String(oversold === 0);
  el.ledger.dataset.ok = oversold !== 0 ? "false" : verdict;
}

/** Orders no running or queued workflow will move on: red whenever there is one. */
function renderStranded(stranded) {
  if (stranded === undefined) return;
  setText(el.stranded, count.format(stranded));
  el["stranded-row"].dataset.ok = String(stranded === 0);
}

/** Money received for checkouts that had already ended, owed back: red until refunded. */
function renderRefundsDue(due, amount) {
  if (due === undefined) return;
  setText(el["refunds-due"], count.format(due));
  setText(el["refunds-due-amount"], due > 0 ? money.format(amount || 0) : "");
  el["refunds-due-row"].dataset.ok = String(due === 0);
}

function renderRestarts(starts) {
  const latest = starts[0];
  if (!latest) return;
  setText(el["fig-restarts"], count.format(latest.restart_count));
  setText(el["fig-recovered"], plural(latest.workflows_recovered, "workflow"));
  el["fig-recovered"].title = "Workflows resumed by the latest process start";
}

/** A polite, throttled summary for screen readers: the visible figures change every second. */
function announceFigures(reading) {
  const ledgerOk = el.ledger.dataset.ok;
  const starts = reading.process_starts;
  const restarts = starts && starts[0] ? starts[0].restart_count : 0;
  const key = `${ledgerOk}|${restarts}`;
  const now = Date.now();
  if (key === figures.announced && now - figures.announcedAt < LIVE_SUMMARY_MS) return;
  const o = reading.orders || {};
  el["figures-live"].textContent =
    `Live figures: ${count.format(o.PENDING || 0)} waiting for payment, ` +
    `${count.format(o.PAID || 0)} dispatching, ${count.format(o.DISPATCHED || 0)} dispatched, ` +
    `${count.format(o.CANCELLED || 0)} cancelled. ${plural(restarts, "restart")}. ` +
    `Unaccounted widgets: ${reading.ledger.unaccounted}. Oversold: ${reading.oversold}. ` +
    `Stranded orders: ${reading.stranded ?? 0}. Refunds due: ${reading.refunds_due ?? 0}.`;
  figures.announced = key;
  figures.announcedAt = now;
}

export function initFigures() {
  statsPoller = poller(refreshStats, STATS_POLL_MS);
  initChart();
  on(CONNECTION, (change) => {
    away = change.away;
    el.figures.dataset.stale = String(away);
    renderUpdated();
  });
  on(OPERATOR_TOKEN, () => {
    stats.reopen();
    el["figures-empty"].textContent = "Loading the live figures…";
    statsPoller.now();
  });
}
