/* "Recent orders": in demo mode the store's latest orders; in production, where that list is the
 * operator's, the orders of the checkouts this browser started. */
import { NetworkError, api } from "../net/api.js";
import { poller } from "../net/poller.js";
import {
  checkoutPath,
  forgetCheckout,
  loadRecentCheckouts,
  rememberCheckout,
} from "../shared/checkouts.js";
import { byTestId, el, placeInOrder } from "../shared/dom.js";
import { HEALTH, ORDER_SHOWN, on } from "../shared/events.js";
import { ago, parseTime } from "../shared/format.js";
import {
  DISPATCH_STEPS,
  badgeText,
  isFinal,
  makeProgressBar,
  setProgress,
  statusName,
  stepsDone,
} from "../shared/order-status.js";
import { currentView } from "../shared/router.js";

const RECENT_POLL_MS = 1000;

let demo = null; // which list: unknown until /health says
let shownOrderId = null; // the order the order view shows
// This browser's orders as last read; a settled one (dispatched, cancelled) is not read again.
const ownOrders = new Map();

function markCurrent() {
  const onOrder = currentView() === "order" && shownOrderId !== null;
  for (const item of byTestId("recent-orders").children) {
    const isCurrent = onOrder && Number(item.dataset.orderId) === shownOrderId;
    item.setAttribute("aria-current", isCurrent ? "true" : "false");
  }
}

function hidden(text) {
  const span = document.createElement("span");
  span.className = "visually-hidden";
  span.textContent = text;
  return span;
}

function makeItem(id) {
  const item = document.createElement("li");
  item.dataset.orderId = id;
  item.dataset.testid = "recent-order";
  const link = document.createElement("a");
  link.href = `#/order?id=${id}`;
  // The link's accessible name is its own visible text ("#12 Paid 5 s ago"), with the words a
  // screen reader needs around it in visually hidden spans: never a label that differs from
  // what is seen.
  const before = hidden("Order ");
  const label = document.createElement("span");
  label.className = "r-id";
  label.textContent = `#${id}`;
  const badge = document.createElement("span");
  badge.className = "badge";
  const time = document.createElement("span");
  time.className = "r-time";
  const steps = hidden("");
  steps.className += " r-steps";
  // The bar shows what r-steps says.
  const bar = makeProgressBar();
  bar.setAttribute("aria-hidden", "true");
  link.append(before, label, " ", badge, " ", time, steps, bar);
  item.append(link);
  return item;
}

function renderRecent(orders) {
  const list = byTestId("recent-orders");
  const existing = new Map(Array.from(list.children, (item) => [item.dataset.orderId, item]));
  const items = orders.map((order) => {
    const id = String(order.order_id);
    const item = existing.get(id) || makeItem(id);
    const status = statusName(order);
    const badge = item.querySelector(".badge");
    badge.dataset.status = status;
    badge.textContent = badgeText(status);
    item.querySelector(".r-time").textContent = ago(parseTime(order.created_at));
    item.querySelector(".r-steps").textContent =
      `, ${stepsDone(order)} of ${DISPATCH_STEPS} dispatch steps`;
    item.dataset.status = status;
    setProgress(item.querySelector(".progress"), order);
    return item;
  });
  placeInOrder(list, items);
  el["recent-empty"].hidden = items.length > 0;
  markCurrent();
}

async function ownOrder(entry) {
  let id = entry.order;
  try {
    if (!Number.isInteger(id)) {
      const answer = await api(checkoutPath(entry.key));
      if (answer.status === 404) forgetCheckout(entry.key); // gone from the store
      if (!answer.ok || !answer.data) return null;
      id = answer.data.order_id;
      rememberCheckout(entry.key, id);
    }
    const known = ownOrders.get(id);
    if (known && isFinal(known)) return known;
    const answer = await api(`/order/${id}`);
    if (answer.status === 404) forgetCheckout(entry.key);
    if (answer.ok && answer.data) ownOrders.set(id, answer.data);
  } catch (error) {
    if (!(error instanceof NetworkError)) throw error;
  }
  return ownOrders.get(id) || null;
}

async function refreshRecent() {
  if (demo === null) return;
  if (demo) {
    const answer = await api("/orders?limit=10");
    if (answer.ok && Array.isArray(answer.data)) renderRecent(answer.data);
    return;
  }
  const orders = await Promise.all(loadRecentCheckouts().map(ownOrder));
  renderRecent(orders.filter(Boolean).sort((a, b) => b.order_id - a.order_id));
}

export function initRecent() {
  const recentPoller = poller(refreshRecent, RECENT_POLL_MS);
  on(HEALTH, (mode) => {
    demo = mode.demo;
    el["recent-title"].textContent = demo ? "Recent orders" : "Your recent orders";
    el["recent-empty"].textContent = demo ? "No orders yet." : "No orders from this browser yet.";
    if (mode.first) recentPoller.now();
  });
  on(ORDER_SHOWN, ({ orderId }) => {
    shownOrderId = orderId;
    markCurrent();
  });
}
