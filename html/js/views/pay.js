/* The payment view. Demo mode: the sandbox provider's page, Pay and Decline. Production (no
 * sandbox): the payment id, to pay at the real provider, and a wait for its webhook; no button
 * that would call /sandbox. Neither until /health has said which. */
import { detailOf, orderIdOf, tryGet } from "../net/api.js";
import { postUntilAnswered, sleep } from "../net/retry.js";
import {
  adoptCheckout,
  checkoutPath,
  currentCheckout,
  findCheckout,
  isFreshPayment,
  notePendingOrder,
  postCancel,
  recordOrder,
  saveCheckout,
  validKey,
} from "../shared/checkouts.js";
import { announce, el, isBusy, setBusy, setDisabled, setNotice } from "../shared/dom.js";
import { HEALTH, PRODUCT, on } from "../shared/events.js";
import { money } from "../shared/format.js";
import { badgeText } from "../shared/order-status.js";
import { currentToken, currentView, go, isCurrentRoute, showView } from "../shared/router.js";

const PAYMENT_POLL_MS = 1000;

let sandbox = null; // the sandbox provider's Pay and Decline exist (demo mode); null until known
let watching = 0; // the route whose checkout the production payment view is watching

const payTitle = () => (sandbox === false ? "Pay · Widget Store" : "Pay · SandboxPay");

/** Pay, Decline and Cancel order. */
const controls = () => [el.pay, el.decline, el["cancel-order"]];

function renderPay(checkout) {
  el["payment-id"].textContent = checkout.payment;
  const ended = Boolean(checkout.ended);
  setDisabled(controls(), ended);
  for (const button of controls()) setBusy(button, false);
  renderPayEnded(checkout);
  if (!ended) setNotice(el["pay-message"], "");
}

function renderPayEnded(checkout) {
  const ended = Boolean(checkout.ended);
  el["pay-ended"].hidden = !ended;
  el["pay-waiting"].hidden = ended || el["view-pay"].dataset.mode !== "provider";
  el["pay-cancel-row"].hidden = ended;
  el["pay-see-order"].hidden = !(ended && Number.isInteger(checkout.pendingOrder));
}

function renderPayMode() {
  const mode = sandbox === null ? "" : sandbox ? "sandbox" : "provider";
  const view = el["view-pay"];
  if (view.dataset.mode === mode) return;
  view.dataset.mode = mode;
  for (const node of view.querySelectorAll("[data-sandbox-only]")) node.hidden = mode !== "sandbox";
  for (const node of view.querySelectorAll("[data-provider-only]")) node.hidden = mode !== "provider";
  el["pay-title"].textContent = mode === "provider" ? "Complete your payment" : "Confirm your payment";
  if (!view.hidden) document.title = payTitle();
  renderPayEnded(currentCheckout() || {});
}

/** After a reload or a return visit: has the checkout ended meanwhile (timed out, paid elsewhere)? */
async function lookUpCheckout(key, token) {
  const found = await findCheckout(key);
  if (found && isCurrentRoute(token) && currentView() === "pay" && found.status !== "PENDING") {
    if (!currentCheckout().ended) {
      adoptCheckout(key, { ended: true });
      setDisabled([el.pay, el.decline], true);
      const status = badgeText(found.status).toLowerCase();
      setNotice(
        el["pay-message"],
        `This checkout already ended: order #${found.order_id} is ${status}.`,
        "warn",
      );
    }
    renderPayEnded(currentCheckout());
  }
}

/**
 * After the store said this checkout is over (409) or unknown (404): say why, show the ended
 * state, and on a 409 look up how it ended.
 */
function showCheckoutEnded(answer, { key, token, message, unknown }) {
  adoptCheckout(key, { ended: true });
  const reason =
    answer.status === 409 ? "This checkout already ended" : `The store does not know this ${unknown}`;
  setNotice(message, `${reason}: ${detailOf(answer)}`, "error");
  renderPayEnded(currentCheckout());
  if (answer.status === 409) lookUpCheckout(key, token);
}

/** "Cancel order": the checkout ends CANCELLED and the widget goes back. */
async function cancelFromPay() {
  const token = currentToken();
  const checkout = currentCheckout();
  if (!checkout || !checkout.payment) return;
  const { key } = checkout;
  const button = el["cancel-order"];
  const message = el["pay-message"];
  setDisabled(controls(), true);
  setBusy(button, true);
  setNotice(message, "Cancelling your order…");
  const answer = await postCancel(key, token, message);
  if (!answer) return;
  setBusy(button, false);
  if (answer.status === 200) {
    const order = orderIdOf(answer);
    recordOrder(key, order, { pendingOrder: order, cancelled: true });
    announce(`Order ${order} cancelled. The widget is back in stock.`);
    go("order", { id: order, key }, { replace: true });
    return;
  }
  if (answer.status === 409 || answer.status === 404) {
    showCheckoutEnded(answer, { key, token, message, unknown: "checkout" });
    return;
  }
  setDisabled(controls(), false);
  setNotice(message, `The order could not be cancelled: ${detailOf(answer)}`, "error");
}

/** Pay or decline; the provider's webhook delivery is idempotent, so retries are safe. */
async function settle(status) {
  const token = currentToken();
  const checkout = currentCheckout();
  if (!checkout || !checkout.payment) return;
  const { key, payment } = checkout;
  const button = status === "paid" ? el.pay : el.decline;
  const message = el["pay-message"];
  setDisabled(controls(), true);
  setBusy(button, true);
  setNotice(message, status === "paid" ? "Processing your payment…" : "Declining the payment…");
  const answer = await postUntilAnswered(
    `/sandbox/payments/${encodeURIComponent(payment)}/${status}`,
    {
      token,
      message,
      waiting: "The store is restarting. Your payment will be delivered as soon as it is back…",
      timeoutMs: 70000,
    },
  );
  if (!answer) return;
  if (answer.status === 200) {
    const order = orderIdOf(answer);
    recordOrder(key, order);
    go("order", { id: order, key }, { replace: true });
    return;
  }
  setBusy(button, false);
  if (answer.status === 409 || answer.status === 404) {
    showCheckoutEnded(answer, { key, token, message, unknown: "payment" });
  } else {
    setDisabled(controls(), false);
    setNotice(message, `The payment did not go through: ${detailOf(answer)}`, "error");
  }
}

/**
 * Production: poll GET /checkout/{key} until the provider's webhook has settled the checkout
 * (or it was cancelled, or timed out), then show the order.
 */
async function watchPayment(key, token) {
  if (watching === token) return;
  watching = token;
  while (isCurrentRoute(token)) {
    const answer = await tryGet(checkoutPath(key));
    if (!isCurrentRoute(token)) return;
    // The shopper's own cancel, in flight, moves on to the order itself.
    const cancelling = isBusy(el["cancel-order"]);
    if (answer && answer.ok && answer.data && !cancelling) {
      const found = answer.data;
      notePendingOrder(key, found.order_id);
      if (found.status !== "PENDING") {
        adoptCheckout(key, { order: found.order_id });
        go("order", { id: found.order_id, key }, { replace: true });
        return;
      }
    } else if (answer && answer.status === 404) {
      adoptCheckout(key, { ended: true });
      setNotice(el["pay-message"], `The store does not know this checkout: ${detailOf(answer)}`, "error");
      renderPayEnded(currentCheckout());
      return;
    }
    await sleep(PAYMENT_POLL_MS);
  }
}

/** #/pay?key=…&payment=…: this checkout's payment page. */
export function showPay(params, { token, focus }) {
  const key = validKey(params.get("key"));
  const payment = params.get("payment");
  if (!key) return go("store", {}, { replace: true });
  if (!validKey(payment)) return go("checkout", { key }, { replace: true });
  const checkout = adoptCheckout(key, { payment });
  showView("pay", { focus, title: payTitle() });
  renderPay(checkout);
  // Production: the shopper pays at the provider; watch for its webhook's effect.
  // Demo: after a reload or a return visit the checkout may have ended meanwhile (timed
  // out, paid in another tab): ask the store. A payment page just handed out needs no check.
  if (sandbox === false) watchPayment(key, token);
  else if (!isFreshPayment(payment)) lookUpCheckout(key, token);
}

export function initPay() {
  el.pay.addEventListener("click", () => settle("paid"));
  el.decline.addEventListener("click", () => settle("failed"));
  el["cancel-order"].addEventListener("click", cancelFromPay);
  el["pay-see-order"].addEventListener("click", () => {
    const checkout = currentCheckout();
    if (checkout && Number.isInteger(checkout.pendingOrder)) {
      go("order", { id: checkout.pendingOrder, key: checkout.key });
    }
  });
  el["start-over"].addEventListener("click", () => {
    const checkout = currentCheckout();
    if (checkout && checkout.ended) saveCheckout(null);
    go("store");
  });
  on(PRODUCT, ({ product }) => {
    const price = money.format(product.price);
    for (const id of ["pay-price", "amount", "pay-amount"]) el[id].textContent = price;
    el["pay-product"].textContent = product.product;
  });
  on(HEALTH, (mode) => {
    if (mode.sandbox === sandbox) return;
    sandbox = mode.sandbox;
    renderPayMode();
    const checkout = currentCheckout();
    if (!sandbox && currentView() === "pay" && checkout && checkout.payment) {
      watchPayment(checkout.key, currentToken());
    }
  });
}
