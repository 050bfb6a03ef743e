/* Widget Store's page: the store, the payment page (the sandbox provider's Pay and Decline in
 * demo mode; in production the payment id to pay at the real provider, and a wait for its
 * webhook), the order tracker and the operator cockpit, as ES modules served as they are. No
 * inline script or style anywhere: the store's Content-Security-Policy refuses both.
 *
 * This module only wires the others together. They talk through explicit calls and a few
 * events on `document` (shared/events.js): net/connectivity.js says when the store goes away
 * or comes back, net/health.js what /health said, and each view or cockpit part listens for
 * what it shows. Each piece of state lives in the module whose job it is: the checkout in
 * shared/checkouts.js, the route in shared/router.js, the operator token in
 * net/operator-auth.js.
 *
 * Two rules shape the page:
 * - Never lose the shopper's place: the checkout's key and the current view live in the URL and
 *   in localStorage, so a reload, or a retry after a crash, continues the same checkout.
 * - The server may vanish at any moment. A failed request or a 5xx shows the "Store restarting"
 *   banner; every loop keeps polling or retrying with the same key and the banner goes away by
 *   itself when the server answers again. No reloads.
 */
import { initChaos } from "./cockpit/chaos.js";
import { initFigures } from "./cockpit/figures.js";
import { initPanel } from "./cockpit/panel.js";
import { initShoppers } from "./cockpit/shoppers.js";
import { initWorkflowDrawer, openDetail } from "./cockpit/workflow-drawer.js";
import { bindWorkflowOpen, initWorkflows } from "./cockpit/workflows.js";
import { initHealth } from "./net/health.js";
import { loadOperatorToken } from "./net/operator-auth.js";
import { startPolling } from "./net/poller.js";
import { activeCheckout, loadSavedCheckout, resumeCheckout } from "./shared/checkouts.js";
import { defineRoutes, startRouting } from "./shared/router.js";
import { initConnection } from "./views/connection.js";
import { initOrder, showOrder } from "./views/order.js";
import { initPay, showPay } from "./views/pay.js";
import { initRecent } from "./views/recent.js";
import { initStore, showCheckout, showStore } from "./views/store.js";

// For tests and the curious: set once per page load, so a reload is easy to detect.
const pageLoadId = Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
window.widgetStore = { pageLoadId, loadedAt: new Date().toISOString() };

/** A visit to "/" without a view continues the unfinished checkout, if there is one. */
function continueCheckout() {
  const checkout = activeCheckout();
  if (!checkout) return false;
  resumeCheckout(checkout, { replace: true });
  return true;
}

function start() {
  loadSavedCheckout();
  loadOperatorToken();

  initConnection();
  initStore();
  initPay();
  initOrder();
  initRecent();
  initHealth();
  initPanel();
  initChaos();
  initShoppers();
  initFigures();
  initWorkflows();
  initWorkflowDrawer();
  bindWorkflowOpen(openDetail);

  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("shop").focus();
  });

  defineRoutes(
    { store: showStore, checkout: showCheckout, pay: showPay, order: showOrder },
    continueCheckout,
  );
  startRouting();
  startPolling();
}

start();
