/* The store view: the product and its stock, Buy Now (which starts the checkout, or continues
 * the one in progress); and the restock the cockpit offers the operator (cockpit/chaos.js). */
import { api, detailOf } from "../net/api.js";
import { poller } from "../net/poller.js";
import { postUntilAnswered } from "../net/retry.js";
import {
  activeCheckout,
  adoptCheckout,
  checkoutPath,
  noteFreshPayment,
  rememberCheckout,
  resumeCheckout,
  saveCheckout,
  startCheckout,
  validKey,
} from "../shared/checkouts.js";
import { el, setAutoNotice, setBusy, setNotice } from "../shared/dom.js";
import { PRODUCT, emit } from "../shared/events.js";
import { money } from "../shared/format.js";
import { currentView, go, showView } from "../shared/router.js";

const LOW_STOCK = 10;
const PRODUCT_POLL_MS = 2000;

let product = null;

/** Shows the product as last read; a PRODUCT event takes it to the other views. */
function showProduct(next) {
  product = next;
  el["product-name"].textContent = product.product;
  el["product-description"].textContent = product.description;
  el.price.textContent = money.format(product.price);
  emit(PRODUCT, { product });
  renderStore();
}

function renderStore() {
  const stock = el.stock;
  const buyButton = el.buy;
  const checkingOut = currentView() === "checkout";
  const pending = activeCheckout();

  if (product) {
    const inventory = product.inventory;
    el.inventory.textContent = String(inventory);
    const level = inventory <= 0 ? "out" : inventory <= LOW_STOCK ? "low" : "plenty";
    stock.dataset.level = level;
    el["stock-message"].textContent =
      level === "out" ? "Sold out" : level === "low" ? `Only ${inventory} left` : "In stock";
    stock.querySelector(".stock-count").hidden = level !== "plenty";
    el["view-store"].dataset.soldOut = String(level === "out");
  }

  if (checkingOut) {
    buyButton.disabled = true;
    setBusy(buyButton, true);
    buyButton.textContent = "Reserving your widget…";
    return;
  }
  setBusy(buyButton, false);
  const message = el["store-message"];
  if (pending) {
    buyButton.disabled = false;
    buyButton.textContent = "Continue checkout";
    if (!message.textContent || message.dataset.kind) {
      setAutoNotice(message, "pending", "You have a checkout in progress: continue it to pay.");
    }
    return;
  }
  buyButton.textContent = "Buy Now";
  buyButton.disabled = !product || product.inventory <= 0;
  if (product && product.inventory <= 0) {
    setAutoNotice(message, "soldout", "Sold out for now. More widgets are on their way.", "warn");
  } else {
    setAutoNotice(message, null);
  }
}

async function refreshProduct() {
  const answer = await api("/product");
  if (answer.ok && answer.data) showProduct(answer.data);
}

/** Buy Now: continue the checkout in progress, or start one with a new key. */
export function buy() {
  const pending = activeCheckout();
  setNotice(el["store-message"], "");
  if (pending) return resumeCheckout(pending);
  go("checkout", { key: startCheckout() });
}

/** POST /checkout/{key} until it answers: network errors and 503s retry with the same key. */
async function runCheckout(key, token) {
  const message = el["store-message"];
  setNotice(message, "Reserving your widget…");
  const answer = await postUntilAnswered(checkoutPath(key), {
    token,
    message,
    waiting:
      "The store is restarting. Your checkout continues with the same key as soon as it is back…",
    timeoutMs: 45000,
  });
  if (!answer) return;
  if (answer.status === 200) {
    const payment = answer.text.trim();
    adoptCheckout(key, { payment });
    rememberCheckout(key);
    setNotice(message, "");
    noteFreshPayment(payment);
    go("pay", { key, payment }, { replace: true });
    return;
  }
  saveCheckout(null);
  go("store", {}, { replace: true });
  if (answer.status === 404) {
    setNotice(message, `Sold out: ${detailOf(answer)}`, "warn");
    refreshProduct().catch(() => {});
  } else {
    setNotice(message, `The store refused this checkout: ${detailOf(answer)}`, "error");
  }
}

/** POST /restock (the operator's, in production), saying how it went in `messageNode`. */
export async function restock(messageNode, button) {
  button.disabled = true;
  setBusy(button, true);
  try {
    const answer = await api("/restock", { method: "POST", operator: true });
    if (answer.ok && answer.data) {
      showProduct(answer.data);
      setNotice(messageNode, `Restocked: ${answer.data.inventory} widgets on the shelf.`, "ok");
    } else if (answer.status === 401) {
      setNotice(messageNode, "Restocking needs the operator token (see the operator panel).", "error");
    } else {
      setNotice(messageNode, `Restock failed: ${detailOf(answer)}`, "error");
    }
  } catch {
    setNotice(messageNode, "The store is restarting; try the restock again in a moment.", "warn");
  } finally {
    button.disabled = false;
    setBusy(button, false);
  }
}

/** #/store, and any view the page does not know. */
export function showStore(_params, { focus }) {
  showView("store", { focus });
  renderStore();
}

/** #/checkout?key=…: reserve the widget under that key, then on to the payment page. */
export function showCheckout(params, { token, focus }) {
  const key = validKey(params.get("key"));
  if (!key) return go("store", {}, { replace: true });
  adoptCheckout(key);
  showView("store", { focus });
  renderStore();
  runCheckout(key, token);
}

export function initStore() {
  el.buy.addEventListener("click", buy);
  poller(refreshProduct, PRODUCT_POLL_MS);
}
