/* The order view: one order's status, timeline and dispatch progress, polled until it is
 * dispatched or cancelled; while the shopper's own order waits for payment, pay it or cancel it. */
import { detailOf, orderIdOf, tryGet } from "../net/api.js";
import { sleep } from "../net/retry.js";
import {
  activeCheckout,
  adoptCheckout,
  currentCheckout,
  findCheckout,
  postCancel,
  recordOrder,
  saveCheckout,
  validKey,
} from "../shared/checkouts.js";
import { announce, byTestId, el, isBusy, setAutoNotice, setBusy, setNotice } from "../shared/dom.js";
import { ORDER_SHOWN, PRODUCT, emit, on } from "../shared/events.js";
import { money } from "../shared/format.js";
import {
  DISPATCH_STEPS,
  FINAL,
  badgeText,
  isFinal,
  setProgress,
  statusName,
} from "../shared/order-status.js";
import { currentToken, go, isCurrentRoute, showView } from "../shared/router.js";
import { buy } from "./store.js";

const ORDER_POLL_MS = 500;
const TIMELINE = ["placed", "paid", "dispatching", "dispatched", "cancelled"];
const STATE_WORDS = { done: "done", current: "in progress", todo: "to come", failed: "" };

let shown = null; // {order_id, status} of the order shown (status null until read)
const lookingUp = new Set(); // checkout keys being looked up with GET /checkout/{key}

function timelineStates(status) {
  switch (status) {
    case "PENDING":
      return { placed: "done", paid: "current", dispatching: "todo", dispatched: "todo" };
    case "PAID":
      return { placed: "done", paid: "done", dispatching: "current", dispatched: "todo" };
    case "DISPATCHED":
      return { placed: "done", paid: "done", dispatching: "done", dispatched: "done" };
    case "CANCELLED":
      return { placed: "done", cancelled: "failed" };
    default:
      return {};
  }
}

function setShown(orderId, status) {
  shown = { order_id: orderId, status };
  emit(ORDER_SHOWN, { orderId });
}

function renderOrder(order) {
  const status = statusName(order);
  const badge = el["order-status"];
  const changed = badge.dataset.status !== status;
  setShown(order.order_id, status);
  el["order-id"].textContent = `#${order.order_id}`;
  badge.dataset.status = status;
  badge.textContent = badgeText(status);

  const states = timelineStates(status);
  for (const step of TIMELINE) {
    const item = byTestId("timeline").querySelector(`[data-step="${step}"]`);
    const stepState = states[step];
    item.hidden = !stepState;
    item.dataset.state = stepState || "todo";
    item.querySelector(".tl-state").textContent = stepState ? `: ${STATE_WORDS[stepState]}` : "";
    if (stepState === "current") item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  }

  const done = setProgress(el.progress, order);
  el["progress-text"].textContent = `${done} / ${DISPATCH_STEPS}`;
  el["progress-block"].hidden = status === "CANCELLED";

  const checkout = currentCheckout();
  const mine = checkout && checkout.order === order.order_id;
  const headlines = {
    PENDING: "Waiting for your payment.",
    PAID: `Paid. Your widget is being dispatched: step ${done} of ${DISPATCH_STEPS}.`,
    DISPATCHED: "Dispatched! Your widget is on its way.",
    CANCELLED:
      mine && checkout.cancelled
        ? "Cancelled at your request: the widget went back in stock."
        : "Cancelled: the payment was declined or timed out, and the widget went back in stock.",
  };
  el["order-headline"].textContent = headlines[status] || status;
  if (changed) announce(`Order ${order.order_id}: ${headlines[status] || status}`);

  const final = FINAL.has(status);
  if (final && mine && !checkout.ended) adoptCheckout(checkout.key, { ended: true });
  el["buy-another"].hidden = !(final && !activeCheckout());
  renderOrderActions(order.order_id, status);
}

/** The shopper's own checkout for this order, if it is theirs and still open. */
function ownOpenCheckout(orderId) {
  const checkout = activeCheckout();
  if (!checkout) return null;
  return checkout.order === orderId || checkout.pendingOrder === orderId ? checkout : null;
}

/** While the shopper's own order waits for payment: pay it, or cancel it. */
function renderOrderActions(orderId, status) {
  let own = status === "PENDING" ? ownOpenCheckout(orderId) : null;
  const checkout = activeCheckout();
  if (status === "PENDING" && !own && checkout && checkout.pendingOrder == null && !lookingUp.has(checkout.key)) {
    // Opened from the recent orders, say: is this pending order the shopper's own checkout?
    lookingUp.add(checkout.key);
    const token = currentToken();
    findCheckout(checkout.key).finally(() => {
      lookingUp.delete(checkout.key);
      if (isCurrentRoute(token) && shown && shown.order_id === orderId) {
        renderOrderActions(orderId, shown.status);
      }
    });
  }
  own = status === "PENDING" ? ownOpenCheckout(orderId) : null;
  const cancel = el["order-cancel"];
  if (!own) setBusy(cancel, false);
  cancel.hidden = !own;
  cancel.disabled = isBusy(cancel);
  el["order-pay"].hidden = !(own && own.payment);
}

async function cancelFromOrder() {
  const current = shown;
  const checkout = current && ownOpenCheckout(current.order_id);
  if (!checkout) return;
  const token = currentToken();
  const button = el["order-cancel"];
  const message = el["order-message"];
  button.disabled = true;
  el["order-pay"].disabled = true;
  setBusy(button, true);
  setNotice(message, "Cancelling your order…");
  const answer = await postCancel(checkout.key, token, message);
  if (!answer) return;
  setBusy(button, false);
  el["order-pay"].disabled = false;
  if (answer.status === 200) {
    const order = orderIdOf(answer);
    recordOrder(checkout.key, order, { pendingOrder: order, cancelled: true });
    setNotice(message, "Order cancelled: the widget is back in stock.", "ok");
    refreshShownOrder(order, token);
    return;
  }
  button.disabled = false;
  if (answer.status === 409) {
    setNotice(message, `This order can no longer be cancelled: ${detailOf(answer)}`, "error");
  } else {
    setNotice(message, `The order could not be cancelled: ${detailOf(answer)}`, "error");
  }
  refreshShownOrder(current.order_id, token);
}

/** One read of the order now; the view's own loop catches up if it fails. */
async function refreshShownOrder(id, token) {
  const answer = await tryGet(`/order/${id}`);
  if (answer && isCurrentRoute(token) && answer.ok && answer.data) renderOrder(answer.data);
}

/** While the order waits for payment: back to its payment page. */
function payShownOrder() {
  const current = shown;
  const checkout = current && ownOpenCheckout(current.order_id);
  if (!checkout || !checkout.payment) return;
  // Not settled yet: the checkout's place is the payment page again.
  adoptCheckout(checkout.key, { order: undefined, pendingOrder: current.order_id });
  go("pay", { key: checkout.key, payment: checkout.payment });
}

function resetOrderView(id) {
  el["order-id"].textContent = `#${id}`;
  const badge = el["order-status"];
  badge.dataset.status = "";
  badge.textContent = "Loading…";
  el["order-headline"].textContent = "Fetching your order…";
  setNotice(el["order-message"], "");
  el["buy-another"].hidden = true;
  el["order-cancel"].hidden = true;
  el["order-pay"].hidden = true;
  setShown(id, null);
}

/** Poll GET /order/{id} about every 500 ms until the order is DISPATCHED or CANCELLED. */
async function watchOrder(id, token) {
  resetOrderView(id);
  const message = el["order-message"];
  while (isCurrentRoute(token)) {
    const answer = await tryGet(`/order/${id}`);
    if (!isCurrentRoute(token)) return;
    if (answer && answer.ok && answer.data) {
      setAutoNotice(message, null);
      renderOrder(answer.data);
      if (isFinal(answer.data)) return;
    } else if (answer && answer.status === 404) {
      el["order-status"].textContent = "Not found";
      el["order-headline"].textContent = `There is no order #${id}.`;
      el["buy-another"].hidden = false;
      return;
    } else if (answer && answer.status < 500) {
      setAutoNotice(message, "read-error", `Could not read the order: ${detailOf(answer)}`, "error");
    } else {
      setAutoNotice(message, "away", "Waiting for the store to come back; your order is safe.", "warn");
    }
    await sleep(ORDER_POLL_MS);
  }
}

/** #/order?id=…(&key=…): that order, and the checkout it belongs to. */
export function showOrder(params, { token, focus }) {
  const id = Number.parseInt(params.get("id") || "", 10);
  if (!Number.isInteger(id) || id < 0) return go("store", {}, { replace: true });
  const key = validKey(params.get("key"));
  if (key) adoptCheckout(key, { order: id });
  showView("order", { focus, title: "Your order · Widget Store" });
  watchOrder(id, token);
}

export function initOrder() {
  el["order-cancel"].addEventListener("click", cancelFromOrder);
  el["order-pay"].addEventListener("click", payShownOrder);
  el["back-to-store"].addEventListener("click", () => go("store"));
  el["buy-another"].addEventListener("click", () => {
    if (!activeCheckout()) saveCheckout(null);
    buy();
  });
  on(PRODUCT, ({ product }) => {
    el["order-price"].textContent = money.format(product.price);
    el["order-product"].textContent = product.product;
  });
}
