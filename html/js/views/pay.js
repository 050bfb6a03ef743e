/* The payment view. Demo mode: the sandbox provider's page, Pay and Decline. Production (no
 * sandbox): the payment id, to pay at the real provider, and a wait for its webhook; no button
 * that would call /sandbox. Stripe mode (/health names Stripe.js), in either: a card, sent to
 * Stripe as a token and then to the store, and a wait for Stripe's webhook. None until /health
 * has said which. */
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
import { authenticate, mountCard, stripeOf, tokenFor } from "./card.js";

const PAYMENT_POLL_MS = 1000;

let sandbox = null; // the sandbox provider's Pay and Decline exist (demo mode); null until known
let stripe = null; // Stripe mode: {publishable_key, js_url} from /health; null without
let watching = 0; // the route whose checkout the payment view is watching for its webhook
let cardSentFor = null; // the key whose card the store took: its view waits for Stripe's webhook

const payMode = () =>
  stripe ? "stripe" : sandbox === null ? "" : sandbox ? "sandbox" : "provider";
/** A real provider settles the checkout: the view watches for its webhook's effect. */
const watched = () => payMode() === "provider" || payMode() === "stripe";
const payTitle = () => (watched() ? "Pay · Widget Store" : "Pay · SandboxPay");

/** Pay, Decline, Pay by card and Cancel order. */
const controls = () => [el.pay, el.decline, el["card-pay"], el["cancel-order"]];

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
  const mode = el["view-pay"].dataset.mode;
  const waiting = mode === "provider" || (mode === "stripe" && cardSentFor === checkout.key);
  el["pay-waiting"].hidden = ended || !waiting;
  el["pay-cancel-row"].hidden = ended;
  el["pay-see-order"].hidden = !(ended && Number.isInteger(checkout.pendingOrder));
}

function renderPayMode() {
  const mode = payMode();
  const view = el["view-pay"];
  if (view.dataset.mode === mode) return;
  view.dataset.mode = mode;
  for (const node of view.querySelectorAll("[data-sandbox-only]")) node.hidden = mode !== "sandbox";
  for (const node of view.querySelectorAll("[data-provider-only]")) node.hidden = mode !== "provider";
  for (const node of view.querySelectorAll("[data-stripe-only]")) node.hidden = mode !== "stripe";
  const titles = { provider: "Complete your payment", stripe: "Pay by card" };
  el["pay-title"].textContent = titles[mode] || "Confirm your payment";
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

/** Stripe mode: Stripe.js loaded, its card element in the view. */
function prepareCard() {
  if (!stripe) return null;
  const ready = mountCard(stripe, el["card-element"]);
  ready.catch((error) => {
    const why = `The card form could not load: ${error.message}. Try again shortly.`;
    setNotice(el["pay-message"], why, "error");
  });
  return ready;
}

/**
 * Stripe mode, "Pay": the card becomes a Stripe token in the browser, which goes to the store;
 * the store sets it on the checkout's PaymentIntent and confirms it. Sent again unchanged across
 * a restart (the store's calls to Stripe are idempotent). Stripe's webhook then settles the
 * checkout, and watchPayment moves on to the order, paid or (a declined card) cancelled.
 */
async function payByCard(event) {
  event.preventDefault();
  const token = currentToken();
  const checkout = currentCheckout();
  if (!checkout || !checkout.payment || checkout.ended) return;
  const { key } = checkout;
  const button = el["card-pay"];
  const message = el["pay-message"];
  const again = () => {
    setBusy(button, false);
    setDisabled(controls(), false);
  };
  setDisabled(controls(), true);
  setBusy(button, true);
  setNotice(message, "Sending your card to Stripe…");
  let elements;
  try {
    elements = await prepareCard();
  } catch {
    again();
    return;
  }
  const made = await tokenFor(elements);
  if (!isCurrentRoute(token)) return;
  if (made.error) {
    again();
    setNotice(message, `Stripe did not take the card: ${made.error}`, "error");
    return;
  }
  setNotice(message, "Processing your payment…");
  const answer = await postUntilAnswered(`${checkoutPath(key)}/card`, {
    token,
    message,
    waiting: "The store is restarting. Your card will be sent as soon as it is back…",
    timeoutMs: 70000,
    body: { token: made.token },
  });
  if (!answer) return;
  setBusy(button, false);
  if (answer.status === 200) {
    if (answer.data && answer.data.status === "requires_action") {
      const found = await tryGet(checkoutPath(key));
      const secret = found && found.data && found.data.stripe_client_secret;
      const failed = secret ? await authenticate(elements, secret) : "no client secret";
      if (failed) setNotice(message, `Your bank did not confirm the payment: ${failed}`, "error");
    }
    cardSentFor = key;
    renderPayEnded(currentCheckout());
    setNotice(message, "Card accepted. Waiting for Stripe to confirm the payment…");
    return;
  }
  if (answer.status === 402) {
    // Stripe's payment_failed webhook ends the checkout; the watch then shows the order.
    cardSentFor = key;
    renderPayEnded(currentCheckout());
    const declined = detailOf(answer).replace(/\.$/, "");
    const why = `${declined}. Your order is being cancelled and the widget put back.`;
    setNotice(message, why, "error");
    return;
  }
  if (answer.status === 409 || answer.status === 404) {
    showCheckoutEnded(answer, { key, token, message, unknown: "checkout" });
    return;
  }
  again();
  setNotice(message, `The payment did not go through: ${detailOf(answer)}`, "error");
}

/**
 * A real provider (production, or Stripe): poll GET /checkout/{key} until the provider's
 * webhook has settled the checkout (or it was cancelled, or timed out), then show the order.
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
  // Production or Stripe: the shopper pays at the provider; watch for its webhook's effect.
  // Demo: after a reload or a return visit the checkout may have ended meanwhile (timed
  // out, paid in another tab): ask the store. A payment page just handed out needs no check.
  if (stripe) prepareCard();
  if (watched()) watchPayment(key, token);
  else if (!isFreshPayment(payment)) lookUpCheckout(key, token);
}

export function initPay() {
  el.pay.addEventListener("click", () => settle("paid"));
  el.decline.addEventListener("click", () => settle("failed"));
  el["card-form"].addEventListener("submit", payByCard);
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
    for (const id of ["pay-price", "amount", "pay-amount", "card-pay-amount"]) {
      el[id].textContent = price;
    }
    el["pay-product"].textContent = product.product;
  });
  on(HEALTH, (mode) => {
    const named = stripeOf(mode.health);
    if (mode.sandbox === sandbox && (named && named.js_url) === (stripe && stripe.js_url)) return;
    sandbox = mode.sandbox;
    stripe = named;
    renderPayMode();
    const checkout = currentCheckout();
    if (currentView() === "pay" && checkout && checkout.payment) {
      if (stripe) prepareCard();
      if (watched()) watchPayment(checkout.key, currentToken());
    }
  });
}
