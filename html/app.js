/* Widget Store: the store page, the payment page (the sandbox provider's Pay and Decline in demo
 * mode; in production the payment id to pay at the real provider, and a wait for its webhook),
 * the order tracker and the operator panel, in plain JavaScript. No inline script or style
 * anywhere: the store's Content-Security-Policy refuses both.
 *
 * Two rules shape this file:
 * - Never lose the shopper's place. The checkout's idempotency key and the current view live in
 *   the URL (#/checkout?key=…, #/pay?key=…&payment=…, #/order?id=…) and in localStorage, so a
 *   reload, or a retry after the server crashed, continues the same checkout: the same key gives
 *   the same payment id and at most one order.
 * - The server may vanish at any moment (the crash button does exactly that). A failed request or
 *   a 5xx shows the "Store restarting" banner; every loop keeps polling or retrying with the same
 *   key and the banner goes away by itself when the server answers again. No reloads.
 */
(() => {
  "use strict";

  const STATUS_NAMES = { "-1": "CANCELLED", 0: "PENDING", 2: "PAID", 1: "DISPATCHED" };
  const FINAL = new Set(["DISPATCHED", "CANCELLED"]);
  const DISPATCH_STEPS = 10;
  const LOW_STOCK = 10;
  const KEY_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
  const CHECKOUT_STORAGE = "widget-store:checkout";
  const TOKEN_STORAGE = "widget-store:operator-token";
  // The checkouts this browser started, newest first: production's "Recent orders".
  const RECENT_STORAGE = "widget-store:recent-checkouts";
  const RECENT_KEEP = 10;
  const ORDER_POLL_MS = 500;
  const PAYMENT_POLL_MS = 1000;
  const RECENT_POLL_MS = 1000;
  const OPERATOR_POLL_MS = 1000;
  const STATS_POLL_MS = 1000;
  const PRODUCT_POLL_MS = 2000;
  const LIVE_SUMMARY_MS = 30000;
  const AWAY_STATUSES = new Set([502, 503, 504]);

  const BADGE_TEXT = {
    PENDING: "Awaiting payment",
    PAID: "Dispatching",
    DISPATCHED: "Dispatched",
    CANCELLED: "Cancelled",
  };

  // For tests and the curious: set once per page load, so a reload is easy to detect.
  const pageLoadId =
    Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  window.widgetStore = { pageLoadId, loadedAt: new Date().toISOString() };

  const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);
  const el = new Proxy({}, { get: (_, id) => byTestId(String(id)) });

  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const state = {
    product: null,
    health: null,
    checkout: null, // {key, payment?, order?, ended?}
    routeToken: 0,
    routeKey: null,
    currentOrder: null, // {order_id, status} shown in the order view
    operatorToken: "",
    demo: true,
    // The sandbox provider's Pay and Decline exist (demo mode); null until /health says.
    sandbox: null,
    paymentWatch: 0, // the route whose checkout the production payment view is watching
    freshPayment: null, // the payment id POST /checkout just answered: no need to look it up
  };

  // Operator routes answer 401 in production until the token is given: after a 401 the page
  // stops asking (no console error every second) until the token changes.
  const auth = { version: 0, statsLocked: false, workflowsLocked: false };

  /* ------------------------------------------------------------------ storage */

  function readStorage(storage, key) {
    try {
      return storage.getItem(key);
    } catch {
      return null; // storage disabled: the URL alone still carries the checkout
    }
  }

  function writeStorage(storage, key, value) {
    try {
      if (value === null) storage.removeItem(key);
      else storage.setItem(key, value);
    } catch {
      /* storage disabled or full: the URL still carries the checkout */
    }
  }

  function loadCheckout() {
    const raw = readStorage(window.localStorage, CHECKOUT_STORAGE);
    if (!raw) return null;
    try {
      const saved = JSON.parse(raw);
      return saved && typeof saved.key === "string" && KEY_PATTERN.test(saved.key) ? saved : null;
    } catch {
      return null;
    }
  }

  function saveCheckout(checkout) {
    state.checkout = checkout;
    writeStorage(window.localStorage, CHECKOUT_STORAGE, checkout ? JSON.stringify(checkout) : null);
  }

  /**
   * The checkouts this browser started, newest first, as [{key, order?}]. In production the list
   * of every order is the operator's, so "Recent orders" shows these, looked up one by one.
   */
  function loadRecentCheckouts() {
    const raw = readStorage(window.localStorage, RECENT_STORAGE);
    if (!raw) return [];
    try {
      const saved = JSON.parse(raw);
      if (!Array.isArray(saved)) return [];
      return saved
        .filter((entry) => entry && typeof entry.key === "string" && KEY_PATTERN.test(entry.key))
        .map(({ key, order }) => (Number.isInteger(order) ? { key, order } : { key }))
        .slice(0, RECENT_KEEP);
    } catch {
      return [];
    }
  }

  function saveRecentCheckouts(entries) {
    writeStorage(window.localStorage, RECENT_STORAGE, JSON.stringify(entries.slice(0, RECENT_KEEP)));
  }

  /** Called once the store confirmed the checkout exists (and, when known, its order). */
  function rememberCheckout(key, order) {
    const entries = loadRecentCheckouts();
    const found = entries.find((entry) => entry.key === key);
    if (found) {
      if (!Number.isInteger(order) || found.order === order) return;
      found.order = order;
    } else {
      entries.unshift(Number.isInteger(order) ? { key, order } : { key });
    }
    saveRecentCheckouts(entries);
  }

  function forgetCheckout(key) {
    saveRecentCheckouts(loadRecentCheckouts().filter((entry) => entry.key !== key));
  }

  /** The URL wins over storage: a link or a reload with a key continues that checkout. */
  function adoptCheckout(key, fields = {}) {
    const current = state.checkout;
    const base = current && current.key === key ? current : { key };
    const next = { ...base, ...fields };
    saveCheckout(next);
    return next;
  }

  const activeCheckout = () =>
    state.checkout && !state.checkout.ended ? state.checkout : null;

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // randomUUID needs a secure context; getRandomValues does not.
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /* ------------------------------------------------------------ connectivity */

  class NetworkError extends Error {}

  let requestSeq = 0;
  // crashedPid: after the crash button, the server counts as away until /health answers
  // from another process (requests queue in the socket's backlog meanwhile, so none fails).
  const conn = { away: false, awaySince: 0, crashedPid: null, crashedAt: 0 };

  function serverAway() {
    // Only a request started after this moment proves the server is back.
    conn.awaySince = requestSeq;
    if (conn.away) return;
    conn.away = true;
    renderConnection();
  }

  function serverAnswered(seq) {
    if (!conn.away || seq <= conn.awaySince || conn.crashedPid !== null) return;
    conn.away = false;
    renderConnection();
    pollers.forEach((poller) => poller.now()); // catch up at once
  }

  function renderConnection() {
    el.banner.hidden = !conn.away;
    const pill = el["server-pill"];
    const text = pill.querySelector(".server-pill-text");
    if (conn.away) {
      pill.dataset.state = "away";
      text.textContent = "Reconnecting…";
    } else if (state.health) {
      pill.dataset.state = "online";
      text.textContent = `Online · ${state.health.database}`;
    }
    el.crash.disabled = conn.away;
    el.figures.dataset.stale = String(conn.away);
    renderFiguresUpdated();
  }

  /**
   * fetch, with a deadline, that tracks whether the server is there. Resolves with
   * {status, ok, data, text} for any HTTP answer; rejects with NetworkError when none came.
   */
  async function api(
    path,
    { method = "GET", timeoutMs = 8000, operator = false, credentials = "same-origin", body } = {},
  ) {
    const seq = ++requestSeq;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const headers = { Accept: "application/json, text/plain;q=0.9" };
    if (operator && state.operatorToken) headers.Authorization = `Bearer ${state.operatorToken}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    let text;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials,
        signal: controller.signal,
      });
      text = await response.text();
    } catch (error) {
      serverAway();
      throw new NetworkError(`${method} ${path}: ${error && error.message}`);
    } finally {
      clearTimeout(timer);
    }
    // 502/503/504: a proxy or the store itself says it is not serving right now. Any other
    // answer, even an error, comes from a serving store.
    if (AWAY_STATUSES.has(response.status)) serverAway();
    else serverAnswered(seq);
    let data = null;
    if ((response.headers.get("content-type") || "").includes("json")) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    return { status: response.status, ok: response.ok, data, text };
  }

  const detailOf = (answer) =>
    (answer.data && typeof answer.data.detail === "string" && answer.data.detail) ||
    `HTTP ${answer.status}`;

  /** A loop that runs `task`, then waits `interval` ms, forever; `now()` runs it early. */
  function poller(task, interval) {
    let timer = null;
    let running = false;
    const run = async () => {
      if (running) return;
      clearTimeout(timer);
      running = true;
      try {
        await task();
      } catch (error) {
        if (!(error instanceof NetworkError)) throw error;
      } finally {
        running = false;
        timer = setTimeout(run, interval);
      }
    };
    return { start: run, now: run };
  }

  /* -------------------------------------------------------------- formatting */

  function parseTime(value) {
    if (!value) return null;
    // The store's order times are UTC without a zone; say so before parsing.
    const iso = /([zZ]|[+-]\d\d:?\d\d)$/.test(value) ? value : `${value}Z`;
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function ago(date) {
    if (!date) return "";
    const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
    if (seconds < 5) return "just now";
    if (seconds < 60) return `${seconds} s ago`;
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.round(minutes / 60);
    if (hours < 24) return `${hours} h ago`;
    return date.toLocaleDateString();
  }

  const clock = (date) =>
    date ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";

  const pad = (n, width = 2) => String(n).padStart(width, "0");

  /** Local time with milliseconds, for workflow steps a few ms apart. */
  const clockMs = (date) =>
    date
      ? `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
      : "";

  function duration(ms) {
    if (ms == null || Number.isNaN(ms)) return "";
    if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
    return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  }

  const count = new Intl.NumberFormat("en-US");
  const rate = (perSecond) =>
    `${perSecond >= 10 ? Math.round(perSecond) : Number(perSecond.toFixed(perSecond < 1 ? 2 : 1))}/s`;
  const plural = (n, word, words = `${word}s`) => `${count.format(n)} ${n === 1 ? word : words}`;

  const statusName = (order) => order.status || STATUS_NAMES[order.order_status] || "UNKNOWN";

  const stepsDone = (order) => {
    const status = statusName(order);
    if (status === "DISPATCHED") return DISPATCH_STEPS;
    if (status === "PAID") return DISPATCH_STEPS - Number(order.progress_remaining || 0);
    return 0;
  };

  function setProgress(bar, order, label) {
    const status = statusName(order);
    const done = Math.max(0, Math.min(DISPATCH_STEPS, stepsDone(order)));
    bar.dataset.status = status;
    bar.setAttribute("aria-valuenow", String(done));
    bar.setAttribute("aria-valuetext", label || `${done} of ${DISPATCH_STEPS} dispatch steps done`);
    bar.querySelector(".progress-fill").style.width = `${(done / DISPATCH_STEPS) * 100}%`;
    return done;
  }

  function makeProgressBar() {
    const bar = document.createElement("div");
    bar.className = "progress";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", String(DISPATCH_STEPS));
    const fill = document.createElement("div");
    fill.className = "progress-fill";
    bar.append(fill);
    return bar;
  }

  function setNotice(node, text, tone = "") {
    delete node.dataset.kind;
    node.textContent = text;
    if (tone) node.dataset.tone = tone;
    else delete node.dataset.tone;
  }

  /** A notice that states a fact (sold out, checkout pending) and goes when it stops being true. */
  function setAutoNotice(node, kind, text = "", tone = "") {
    if (kind) {
      if (node.dataset.kind !== kind) {
        setNotice(node, text, tone);
        node.dataset.kind = kind;
      }
    } else if (node.dataset.kind) {
      setNotice(node, "");
    }
  }

  /** Writes only a change: live regions then speak only when a figure really moves. */
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function announce(text) {
    el.announcer.textContent = text;
  }

  function setBusy(button, busy) {
    if (busy) button.setAttribute("aria-busy", "true");
    else button.removeAttribute("aria-busy");
  }

  /* ------------------------------------------------------------------ router */

  function parseRoute() {
    const hash = window.location.hash;
    if (!hash.startsWith("#/")) return null;
    const [path, query] = hash.slice(2).split("?");
    return { view: path || "store", params: new URLSearchParams(query || "") };
  }

  function go(view, params = {}, { replace = false } = {}) {
    const query = new URLSearchParams(params).toString();
    const hash = `#/${view}${query ? `?${query}` : ""}`;
    if (window.location.hash !== hash) {
      if (replace) window.history.replaceState(null, "", hash);
      else window.history.pushState(null, "", hash);
    }
    route({ focus: true });
  }

  function resumeCheckout(checkout, options) {
    if (checkout.order) go("order", { id: checkout.order, key: checkout.key }, options);
    else if (checkout.payment) go("pay", { key: checkout.key, payment: checkout.payment }, options);
    else go("checkout", { key: checkout.key }, options);
  }

  function showView(name, focus) {
    for (const view of document.querySelectorAll("[data-view]")) {
      view.hidden = view.dataset.view !== name;
    }
    const titles = {
      store: "Widget Store",
      pay: state.sandbox === false ? "Pay · Widget Store" : "Pay · SandboxPay",
      order: "Your order · Widget Store",
    };
    document.title = titles[name] || "Widget Store";
    if (focus) {
      const heading = document.querySelector(`[data-view="${name}"] h1, [data-view="${name}"] h2`);
      if (heading) {
        heading.setAttribute("tabindex", "-1");
        heading.focus({ preventScroll: false });
      }
    }
  }

  function route({ focus = false } = {}) {
    let current = parseRoute();
    if (!current) {
      // No view in the URL (a fresh visit to /): continue an unfinished checkout if there is one.
      const checkout = activeCheckout();
      if (checkout) {
        resumeCheckout(checkout, { replace: true });
        return;
      }
      current = { view: "store", params: new URLSearchParams() };
    }
    const routeKey = `${current.view}?${current.params.toString()}`;
    if (routeKey === state.routeKey) return;
    state.routeKey = routeKey;
    const token = ++state.routeToken;
    const key = current.params.get("key");
    const validKey = key && KEY_PATTERN.test(key) ? key : null;

    switch (current.view) {
      case "checkout":
        if (!validKey) return go("store", {}, { replace: true });
        adoptCheckout(validKey);
        showView("store", focus);
        renderStore();
        runCheckout(validKey, token);
        return;
      case "pay": {
        const payment = current.params.get("payment");
        if (!validKey) return go("store", {}, { replace: true });
        if (!payment || !KEY_PATTERN.test(payment)) return go("checkout", { key: validKey }, { replace: true });
        const checkout = adoptCheckout(validKey, { payment });
        showView("pay", focus);
        renderPay(checkout);
        // Production: the shopper pays at the provider; watch for its webhook's effect.
        // Demo: after a reload or a return visit the checkout may have ended meanwhile (timed
        // out, paid in another tab): ask the store. A payment page just handed out needs no check.
        if (state.sandbox === false) watchPayment(validKey, token);
        else if (payment !== state.freshPayment) lookUpCheckout(validKey, token);
        return;
      }
      case "order": {
        const id = Number.parseInt(current.params.get("id") || "", 10);
        if (!Number.isInteger(id) || id < 0) return go("store", {}, { replace: true });
        if (validKey) adoptCheckout(validKey, { order: id });
        showView("order", focus);
        watchOrder(id, token);
        return;
      }
      default:
        showView("store", focus);
        renderStore();
    }
  }

  /* ------------------------------------------------------------- store view */

  function renderProduct(product) {
    state.product = product;
    el["product-name"].textContent = product.product;
    el["product-description"].textContent = product.description;
    const price = money.format(product.price);
    el.price.textContent = price;
    for (const id of ["pay-price", "amount", "pay-amount", "order-price"]) el[id].textContent = price;
    el["pay-product"].textContent = product.product;
    el["order-product"].textContent = product.product;
    renderStore();
  }

  function renderStore() {
    const product = state.product;
    const stock = el.stock;
    const buy = el.buy;
    const checkingOut = parseRoute()?.view === "checkout";
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
      buy.disabled = true;
      setBusy(buy, true);
      buy.textContent = "Reserving your widget…";
      return;
    }
    setBusy(buy, false);
    const message = el["store-message"];
    if (pending) {
      buy.disabled = false;
      buy.textContent = "Continue checkout";
      if (!message.textContent || message.dataset.kind) {
        setAutoNotice(message, "pending", "You have a checkout in progress: continue it to pay.");
      }
      return;
    }
    buy.textContent = "Buy Now";
    buy.disabled = !product || product.inventory <= 0;
    if (product && product.inventory <= 0) {
      setAutoNotice(message, "soldout", "Sold out for now. Restock to sell more widgets.", "warn");
    } else {
      setAutoNotice(message, null);
    }
  }

  async function refreshProduct() {
    const answer = await api("/product");
    if (answer.ok && answer.data) renderProduct(answer.data);
  }

  function onBuy() {
    const pending = activeCheckout();
    setNotice(el["store-message"], "");
    if (pending) return resumeCheckout(pending);
    const key = newKey();
    saveCheckout({ key, startedAt: new Date().toISOString() });
    go("checkout", { key });
  }

  /**
   * POST `path` until the store answers below 500. Network errors and 5xx (restarting, still
   * starting) are sent again, unchanged: checkout keys, cancels and payment deliveries are all
   * idempotent. Shows `waiting` meanwhile. Resolves with the answer, or null if the shopper
   * moved to another view first.
   */
  async function postUntilAnswered(path, { token, message, waiting, timeoutMs }) {
    let delay = 500;
    while (token === state.routeToken) {
      let answer = null;
      try {
        answer = await api(path, { method: "POST", timeoutMs });
      } catch {
        answer = null;
      }
      if (token !== state.routeToken) return null;
      if (answer && answer.status < 500) return answer;
      setNotice(message, waiting, "warn");
      await sleep(delay);
      delay = Math.min(delay * 1.5, 2000);
    }
    return null;
  }

  /** POST /checkout/{key} until it answers: network errors and 503s retry with the same key. */
  async function runCheckout(key, token) {
    const message = el["store-message"];
    setNotice(message, "Reserving your widget…");
    const answer = await postUntilAnswered(`/checkout/${encodeURIComponent(key)}`, {
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
      state.freshPayment = payment;
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

  async function onRestock(messageNode, button) {
    button.disabled = true;
    setBusy(button, true);
    try {
      const answer = await api("/restock", { method: "POST", operator: true });
      if (answer.ok && answer.data) {
        renderProduct(answer.data);
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

  /* --------------------------------------------------------------- pay view */

  function renderPay(checkout) {
    el["payment-id"].textContent = checkout.payment;
    const ended = Boolean(checkout.ended);
    el.pay.disabled = ended;
    el.decline.disabled = ended;
    el["cancel-order"].disabled = ended;
    setBusy(el.pay, false);
    setBusy(el.decline, false);
    setBusy(el["cancel-order"], false);
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

  /** GET /checkout/{key}: the checkout's order, and whether it still waits for payment. */
  async function lookUpCheckout(key, token) {
    let answer;
    try {
      answer = await api(`/checkout/${encodeURIComponent(key)}`);
    } catch {
      return null;
    }
    if (!answer.ok || !answer.data || !state.checkout || state.checkout.key !== key) return null;
    const found = answer.data;
    rememberCheckout(key, found.order_id);
    const checkout = adoptCheckout(key, { pendingOrder: found.order_id });
    if (token === state.routeToken && parseRoute()?.view === "pay" && found.status !== "PENDING") {
      if (!checkout.ended) {
        adoptCheckout(key, { ended: true });
        el.pay.disabled = true;
        el.decline.disabled = true;
        const status = (BADGE_TEXT[found.status] || found.status).toLowerCase();
        setNotice(
          el["pay-message"],
          `This checkout already ended: order #${found.order_id} is ${status}.`,
          "warn",
        );
      }
      renderPayEnded(state.checkout);
    }
    return found;
  }

  /**
   * POST /checkout/{key}/cancel until the store answers: a repeat gets the first answer again,
   * so retrying after a crash is safe. Resolves with the answer, or null if the view changed.
   */
  async function postCancel(key, token, message) {
    return postUntilAnswered(`/checkout/${encodeURIComponent(key)}/cancel`, {
      token,
      message,
      waiting: "The store is restarting. Your cancellation will be sent as soon as it is back…",
      timeoutMs: 70000,
    });
  }


  /** The payment page's "Cancel order": the checkout ends CANCELLED and the widget goes back. */
  async function cancelFromPay() {
    const token = state.routeToken;
    const checkout = state.checkout;
    if (!checkout || !checkout.payment) return;
    const { key } = checkout;
    const button = el["cancel-order"];
    const message = el["pay-message"];
    el.pay.disabled = true;
    el.decline.disabled = true;
    button.disabled = true;
    setBusy(button, true);
    setNotice(message, "Cancelling your order…");
    const answer = await postCancel(key, token, message);
    if (!answer) return;
    setBusy(button, false);
    if (answer.status === 200) {
      const order = Number.parseInt(answer.text.trim(), 10);
      adoptCheckout(key, { order, pendingOrder: order, cancelled: true });
      rememberCheckout(key, order);
      announce(`Order ${order} cancelled. The widget is back in stock.`);
      go("order", { id: order, key }, { replace: true });
      return;
    }
    if (answer.status === 409 || answer.status === 404) {
      showCheckoutEnded(answer, { key, token, message, unknown: "checkout" });
      return;
    }
    el.pay.disabled = false;
    el.decline.disabled = false;
    button.disabled = false;
    setNotice(message, `The order could not be cancelled: ${detailOf(answer)}`, "error");
  }

  /**
   * The payment page after the store said this checkout is over (409) or unknown (404): say
   * why, show the ended state, and on a 409 look up how it ended.
   */
  function showCheckoutEnded(answer, { key, token, message, unknown }) {
    adoptCheckout(key, { ended: true });
    const reason =
      answer.status === 409 ? "This checkout already ended" : `The store does not know this ${unknown}`;
    setNotice(message, `${reason}: ${detailOf(answer)}`, "error");
    renderPayEnded(state.checkout);
    if (answer.status === 409) lookUpCheckout(key, token);
  }

  /** Pay or decline; the provider's webhook delivery is idempotent, so retries are safe. */
  async function settle(status) {
    const token = state.routeToken;
    const checkout = state.checkout;
    if (!checkout || !checkout.payment) return;
    const { key, payment } = checkout;
    const button = status === "paid" ? el.pay : el.decline;
    const message = el["pay-message"];
    el.pay.disabled = true;
    el.decline.disabled = true;
    el["cancel-order"].disabled = true;
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
      const order = Number.parseInt(answer.text.trim(), 10);
      adoptCheckout(key, { order });
      rememberCheckout(key, order);
      go("order", { id: order, key }, { replace: true });
      return;
    }
    setBusy(button, false);
    if (answer.status === 409 || answer.status === 404) {
      showCheckoutEnded(answer, { key, token, message, unknown: "payment" });
    } else {
      el.pay.disabled = false;
      el.decline.disabled = false;
      el["cancel-order"].disabled = false;
      setNotice(message, `The payment did not go through: ${detailOf(answer)}`, "error");
    }
  }

  /**
   * Demo mode: the sandbox provider's page, Pay and Decline. Production (no sandbox): the payment
   * id, to pay at the real provider, and a wait for its webhook; no button that would call
   * /sandbox. Neither until /health has said which.
   */
  function renderPayMode() {
    const mode = state.sandbox === null ? "" : state.sandbox ? "sandbox" : "provider";
    const view = el["view-pay"];
    if (view.dataset.mode === mode) return;
    view.dataset.mode = mode;
    for (const node of view.querySelectorAll("[data-sandbox-only]")) node.hidden = mode !== "sandbox";
    for (const node of view.querySelectorAll("[data-provider-only]")) node.hidden = mode !== "provider";
    el["pay-title"].textContent = mode === "provider" ? "Complete your payment" : "Confirm your payment";
    if (!view.hidden) document.title = mode === "provider" ? "Pay · Widget Store" : "Pay · SandboxPay";
    renderPayEnded(state.checkout || {});
  }

  /**
   * Production's payment view: poll GET /checkout/{key} until the provider's webhook has settled
   * the checkout (or it was cancelled, or timed out), then show the order.
   */
  async function watchPayment(key, token) {
    if (state.paymentWatch === token) return;
    state.paymentWatch = token;
    while (token === state.routeToken) {
      let answer = null;
      try {
        answer = await api(`/checkout/${encodeURIComponent(key)}`);
      } catch {
        answer = null;
      }
      if (token !== state.routeToken) return;
      // The shopper's own cancel, in flight, moves on to the order itself.
      const cancelling = el["cancel-order"].getAttribute("aria-busy") === "true";
      if (answer && answer.ok && answer.data && !cancelling) {
        const found = answer.data;
        rememberCheckout(key, found.order_id);
        adoptCheckout(key, { pendingOrder: found.order_id });
        if (found.status !== "PENDING") {
          adoptCheckout(key, { order: found.order_id });
          go("order", { id: found.order_id, key }, { replace: true });
          return;
        }
      } else if (answer && answer.status === 404) {
        adoptCheckout(key, { ended: true });
        setNotice(el["pay-message"], `The store does not know this checkout: ${detailOf(answer)}`, "error");
        renderPayEnded(state.checkout);
        return;
      }
      await sleep(PAYMENT_POLL_MS);
    }
  }

  /* ------------------------------------------------------------- order view */

  const TIMELINE = ["placed", "paid", "dispatching", "dispatched", "cancelled"];

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

  const STATE_WORDS = { done: "done", current: "in progress", todo: "to come", failed: "" };

  function renderOrder(order) {
    const status = statusName(order);
    const badge = el["order-status"];
    const changed = badge.dataset.status !== status;
    state.currentOrder = { order_id: order.order_id, status };
    el["order-id"].textContent = `#${order.order_id}`;
    badge.dataset.status = status;
    badge.textContent = BADGE_TEXT[status] || status;

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

    const mine = state.checkout && state.checkout.order === order.order_id;
    const headlines = {
      PENDING: "Waiting for your payment.",
      PAID: `Paid. Your widget is being dispatched: step ${done} of ${DISPATCH_STEPS}.`,
      DISPATCHED: "Dispatched! Your widget is on its way.",
      CANCELLED:
        mine && state.checkout.cancelled
          ? "Cancelled at your request: the widget went back in stock."
          : "Cancelled: the payment was declined or timed out, and the widget went back in stock.",
    };
    el["order-headline"].textContent = headlines[status] || status;
    if (changed) announce(`Order ${order.order_id}: ${headlines[status] || status}`);

    const final = FINAL.has(status);
    if (final && mine && !state.checkout.ended) adoptCheckout(state.checkout.key, { ended: true });
    el["buy-another"].hidden = !(final && !activeCheckout());
    renderOrderActions(order.order_id, status);
    markCurrentInRecent();
  }

  const lookingUp = new Set(); // checkout keys being looked up with GET /checkout/{key}

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
      const token = state.routeToken;
      lookUpCheckout(checkout.key, token).finally(() => {
        lookingUp.delete(checkout.key);
        if (token === state.routeToken && state.currentOrder && state.currentOrder.order_id === orderId) {
          renderOrderActions(orderId, state.currentOrder.status);
        }
      });
    }
    own = status === "PENDING" ? ownOpenCheckout(orderId) : null;
    const cancel = el["order-cancel"];
    if (!own) setBusy(cancel, false);
    cancel.hidden = !own;
    cancel.disabled = cancel.getAttribute("aria-busy") === "true";
    el["order-pay"].hidden = !(own && own.payment);
  }

  async function cancelFromOrder() {
    const current = state.currentOrder;
    const checkout = current && ownOpenCheckout(current.order_id);
    if (!checkout) return;
    const token = state.routeToken;
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
      const order = Number.parseInt(answer.text.trim(), 10);
      adoptCheckout(checkout.key, { order, pendingOrder: order, cancelled: true });
      rememberCheckout(checkout.key, order);
      setNotice(message, "Order cancelled: the widget is back in stock.", "ok");
      refreshCurrentOrder(order, token);
      return;
    }
    button.disabled = false;
    if (answer.status === 409) {
      setNotice(message, `This order can no longer be cancelled: ${detailOf(answer)}`, "error");
    } else {
      setNotice(message, `The order could not be cancelled: ${detailOf(answer)}`, "error");
    }
    refreshCurrentOrder(current.order_id, token);
  }

  async function refreshCurrentOrder(id, token) {
    try {
      const answer = await api(`/order/${id}`);
      if (token === state.routeToken && answer.ok && answer.data) renderOrder(answer.data);
    } catch {
      /* the order view's own loop catches up */
    }
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
    state.currentOrder = { order_id: id, status: null };
  }

  /** Poll GET /order/{id} about every 500 ms until the order is DISPATCHED or CANCELLED. */
  async function watchOrder(id, token) {
    resetOrderView(id);
    while (token === state.routeToken) {
      let answer = null;
      try {
        answer = await api(`/order/${id}`);
      } catch {
        answer = null;
      }
      if (token !== state.routeToken) return;
      if (answer && answer.ok && answer.data) {
        setAutoNotice(el["order-message"], null);
        renderOrder(answer.data);
        if (FINAL.has(statusName(answer.data))) return;
      } else if (answer && answer.status === 404) {
        el["order-status"].textContent = "Not found";
        el["order-headline"].textContent = `There is no order #${id}.`;
        el["buy-another"].hidden = false;
        return;
      } else if (answer && answer.status < 500) {
        setAutoNotice(el["order-message"], "read-error", `Could not read the order: ${detailOf(answer)}`, "error");
      } else {
        setAutoNotice(el["order-message"], "away", "Waiting for the store to come back; your order is safe.", "warn");
      }
      await sleep(ORDER_POLL_MS);
    }
  }

  /* ---------------------------------------------------------- recent orders */

  function markCurrentInRecent() {
    const current = parseRoute()?.view === "order" && state.currentOrder;
    for (const item of byTestId("recent-orders").children) {
      const isCurrent = Boolean(current) && Number(item.dataset.orderId) === current.order_id;
      item.setAttribute("aria-current", isCurrent ? "true" : "false");
    }
  }

  function renderRecent(orders) {
    const list = byTestId("recent-orders");
    const existing = new Map(Array.from(list.children, (item) => [item.dataset.orderId, item]));
    const items = orders.map((order) => {
      const id = String(order.order_id);
      let item = existing.get(id);
      if (!item) {
        item = document.createElement("li");
        item.dataset.orderId = id;
        item.dataset.testid = "recent-order";
        const link = document.createElement("a");
        link.href = `#/order?id=${id}`;
        const label = document.createElement("span");
        label.className = "r-id";
        label.textContent = `#${id}`;
        const badge = document.createElement("span");
        badge.className = "badge";
        const time = document.createElement("span");
        time.className = "r-time";
        const bar = makeProgressBar();
        bar.setAttribute("aria-label", `Order ${id} dispatch progress`);
        link.append(label, badge, time, bar);
        item.append(link);
      }
      const status = statusName(order);
      const badge = item.querySelector(".badge");
      badge.dataset.status = status;
      badge.textContent = BADGE_TEXT[status] || status;
      item.querySelector(".r-time").textContent = ago(parseTime(order.created_at));
      item.querySelector("a").setAttribute(
        "aria-label",
        `Order ${id}, ${BADGE_TEXT[status] || status}, ${stepsDone(order)} of ${DISPATCH_STEPS} dispatch steps`,
      );
      item.dataset.status = status;
      setProgress(item.querySelector(".progress"), order);
      return item;
    });
    // Reorder in place, so focus and hover survive a refresh.
    items.forEach((item, index) => {
      if (list.children[index] !== item) list.insertBefore(item, list.children[index] || null);
    });
    while (list.children.length > items.length) list.lastElementChild.remove();
    el["recent-empty"].hidden = items.length > 0;
    markCurrentInRecent();
  }

  // This browser's orders as last read; a settled one (dispatched, cancelled) is not read again.
  const ownOrders = new Map();

  async function ownOrder(entry) {
    let id = entry.order;
    try {
      if (!Number.isInteger(id)) {
        const answer = await api(`/checkout/${encodeURIComponent(entry.key)}`);
        if (answer.status === 404) forgetCheckout(entry.key); // gone from the store
        if (!answer.ok || !answer.data) return null;
        id = answer.data.order_id;
        rememberCheckout(entry.key, id);
      }
      const known = ownOrders.get(id);
      if (known && FINAL.has(statusName(known))) return known;
      const answer = await api(`/order/${id}`);
      if (answer.status === 404) forgetCheckout(entry.key);
      if (answer.ok && answer.data) ownOrders.set(id, answer.data);
    } catch (error) {
      if (!(error instanceof NetworkError)) throw error;
    }
    return ownOrders.get(id) || null;
  }

  /**
   * Demo mode: the store's latest orders. Production, where that list is the operator's: the
   * orders of the checkouts this browser started.
   */
  async function refreshRecent() {
    if (!state.health) return; // which list depends on the mode
    if (state.demo) {
      const answer = await api("/orders?limit=10");
      if (answer.ok && Array.isArray(answer.data)) renderRecent(answer.data);
      return;
    }
    const orders = await Promise.all(loadRecentCheckouts().map(ownOrder));
    renderRecent(orders.filter(Boolean).sort((a, b) => b.order_id - a.order_id));
  }

  /* --------------------------------------------------------- operator panel */

  function renderHealth(health) {
    const first = !state.health;
    state.health = health;
    state.demo = health.demo !== false;
    const sandbox = typeof health.sandbox === "boolean" ? health.sandbox : state.demo;
    if (sandbox !== state.sandbox) {
      state.sandbox = sandbox;
      renderPayMode();
      const checkout = state.checkout;
      if (!sandbox && parseRoute()?.view === "pay" && checkout && checkout.payment) {
        watchPayment(checkout.key, state.routeToken);
      }
    }
    el["recent-title"].textContent = state.demo ? "Recent orders" : "Your recent orders";
    el["recent-empty"].textContent = state.demo ? "No orders yet." : "No orders from this browser yet.";
    if (first) recentPoller.now();
    el["restart-count"].textContent = String(health.restart_count);
    const started = parseTime(health.started_at);
    const since = el["started-at"];
    since.textContent = clock(started);
    since.title = health.started_at;
    const small = document.createElement("small");
    small.textContent = ago(started);
    since.append(small);
    el["workflows-recovered"].textContent = plural(health.workflows_recovered, "workflow");
    el["server-pid"].textContent = `pid ${health.pid}`;
    el["server-database"].textContent = health.database === "postgresql" ? "PostgreSQL" : "SQLite";
    el.crash.hidden = !state.demo;
    document.getElementById("crash-help").hidden = !state.demo;
    // Production has no crash button: what is left there is the stock.
    document.getElementById("chaos-title").textContent = state.demo ? "Crash test" : "Stock";
    document.getElementById("chaos-intro").hidden = !state.demo;
    el["token-form"].hidden = state.demo;
    // The built-in shoppers exist in demo mode only (/load answers 404 in production).
    el["load-panel"].hidden = !state.demo;
    renderConnection();
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  const shortId = (id) => (id.length > 30 ? `${id.slice(0, 29)}…` : id);

  function makeWorkflowRow(workflowId) {
    const row = document.createElement("tr");
    row.dataset.testid = "workflow-row";
    row.dataset.workflowId = workflowId;
    row.className = "wf-row";
    const idCell = document.createElement("td");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "wf-open";
    open.dataset.testid = "workflow-open";
    open.setAttribute("aria-haspopup", "dialog");
    open.setAttribute("aria-label", `Show the steps of workflow ${workflowId}`);
    const code = document.createElement("code");
    code.textContent = shortId(workflowId);
    code.title = workflowId;
    open.append(code);
    idCell.append(open);
    row.append(idCell, cell("", "wf-name"), cell("", "wf-status"), cell("", "wf-step"), cell("", "num"));
    return row;
  }

  // What the table last said about each workflow, for the detail drawer's summary line.
  const workflowInfo = new Map();

  /** Rows are kept and updated in place, so focus on a row's button survives each refresh. */
  function renderWorkflows(workflows) {
    const body = el["workflows-table"].tBodies[0];
    const existing = new Map(Array.from(body.rows, (row) => [row.dataset.workflowId, row]));
    workflowInfo.clear();
    const rows = workflows.map((wf) => {
      workflowInfo.set(wf.workflow_id, wf);
      const row = existing.get(wf.workflow_id) || makeWorkflowRow(wf.workflow_id);
      const cells = row.cells;
      cells[1].textContent = wf.name;
      cells[2].textContent = wf.status;
      cells[3].textContent = wf.current_step || "–";
      cells[4].textContent = wf.recovery_attempts == null ? "–" : String(wf.recovery_attempts);
      return row;
    });
    rows.forEach((row, index) => {
      if (body.rows[index] !== row) body.insertBefore(row, body.rows[index] || null);
    });
    while (body.rows.length > rows.length) body.lastElementChild.remove();
    el["workflows-wrap"].dataset.empty = String(rows.length === 0);
    el["workflows-count"].textContent = rows.length ? `· ${rows.length}${rows.length >= 50 ? "+" : ""}` : "";
    el["workflows-empty"].textContent = "No workflows in flight.";
    el["workflows-empty"].hidden = rows.length > 0;
  }

  function lockWorkflows() {
    el["workflows-table"].tBodies[0].replaceChildren();
    el["workflows-wrap"].dataset.empty = "true";
    el["workflows-count"].textContent = "";
    el["workflows-empty"].hidden = false;
    el["workflows-empty"].textContent = state.operatorToken
      ? "The operator token was refused: enter it again to see the workflows."
      : "Enter the operator token to see the workflows.";
  }

  async function refreshOperator() {
    const version = auth.version;
    const [health, workflows] = await Promise.allSettled([
      api("/health"),
      auth.workflowsLocked
        ? Promise.resolve(null)
        : api("/workflows?status=PENDING&limit=50", { operator: true }),
    ]);
    if (health.status === "fulfilled" && health.value.ok && health.value.data) {
      const back = health.value.data;
      if (conn.crashedPid !== null && back.pid !== conn.crashedPid) {
        conn.crashedPid = null;
        serverAnswered(requestSeq);
        const seconds = conn.crashedAt ? ((Date.now() - conn.crashedAt) / 1000).toFixed(1) : null;
        setNotice(
          el["operator-message"],
          `Crashed, and back${seconds ? ` within ${seconds} s` : ""}: a new process (pid ${back.pid}, ` +
            `restart ${back.restart_count}) resumed ${plural(back.workflows_recovered, "workflow")}.`,
          "ok",
        );
      }
      renderHealth(back);
    }
    if (workflows.status === "fulfilled" && workflows.value) {
      const answer = workflows.value;
      if (answer.ok && Array.isArray(answer.data)) {
        renderWorkflows(answer.data);
      } else if (answer.status === 401) {
        if (version === auth.version) auth.workflowsLocked = true;
        lockWorkflows();
      }
    }
  }

  /* ------------------------------------------------------------ live figures */

  const figures = {
    last: null,
    lastAt: null,
    chartWidth: 0,
    announced: "",
    announcedAt: 0,
    unbalanced: 0, // consecutive readings in which the ledger did not add up
  };
  // /stats reads the ledger's terms with separate statements: on Postgres, under load, an order
  // can commit between two of them and one reading is off by one. A real loss never goes away,
  // so the red verdict waits for this many consecutive readings (a few seconds); until then the
  // reading shows as being re-checked.
  const LEDGER_CONFIRM_READINGS = 3;

  async function refreshStats() {
    if (auth.statsLocked) return;
    const version = auth.version;
    const answer = await api("/stats", { operator: true });
    if (answer.ok && answer.data) {
      renderStats(answer.data);
    } else if (answer.status === 401) {
      if (version === auth.version) auth.statsLocked = true;
      lockFigures();
    } else if (!AWAY_STATUSES.has(answer.status)) {
      el["figures-empty"].hidden = false;
      el["figures-empty"].textContent = `Could not read the live figures: ${detailOf(answer)}`;
    }
  }

  function lockFigures() {
    figures.last = null;
    el.figures.hidden = true;
    el["figures-updated"].textContent = "";
    el["figures-empty"].hidden = false;
    el["figures-empty"].textContent = state.operatorToken
      ? "The operator token was refused: enter it again to see the live figures."
      : "Enter the operator token to see the live figures.";
  }

  function renderFiguresUpdated() {
    const node = el["figures-updated"];
    if (!figures.lastAt) return;
    node.textContent = conn.away
      ? `Reconnecting… showing the figures of ${clock(figures.lastAt)}`
      : `Updated ${clock(figures.lastAt)}`;
  }

  function renderStats(stats) {
    figures.last = stats;
    figures.lastAt = new Date();
    el["figures-empty"].hidden = true;
    el.figures.hidden = false; // before the chart: it sizes itself to the space it gets
    renderFiguresUpdated();
    const orders = stats.orders || {};
    const setFigure = (id, value) => {
      setText(el[id], count.format(value || 0));
    };
    setFigure("fig-pending", orders.PENDING ?? stats.waiting_for_payment);
    setFigure("fig-paid", orders.PAID ?? stats.dispatching);
    setFigure("fig-dispatched", orders.DISPATCHED);
    setFigure("fig-cancelled", orders.CANCELLED);
    renderLedger(stats.ledger, stats.oversold);
    renderRestarts(stats.process_starts || []);
    renderChart(stats);
    if (stats.load) renderLoad(stats.load);
    announceFigures(stats);
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

  function renderRestarts(starts) {
    const latest = starts[0];
    if (!latest) return;
    setText(el["fig-restarts"], count.format(latest.restart_count));
    setText(el["fig-recovered"], plural(latest.workflows_recovered, "workflow"));
    el["fig-recovered"].title = "Workflows resumed by the latest process start";
  }

  /** A polite, throttled summary for screen readers: the visible figures change every second. */
  function announceFigures(stats) {
    const ledgerOk = el.ledger.dataset.ok;
    const restarts = stats.process_starts && stats.process_starts[0] ? stats.process_starts[0].restart_count : 0;
    const key = `${ledgerOk}|${restarts}`;
    const now = Date.now();
    if (key === figures.announced && now - figures.announcedAt < LIVE_SUMMARY_MS) return;
    const o = stats.orders || {};
    el["figures-live"].textContent =
      `Live figures: ${count.format(o.PENDING || 0)} waiting for payment, ` +
      `${count.format(o.PAID || 0)} dispatching, ${count.format(o.DISPATCHED || 0)} dispatched, ` +
      `${count.format(o.CANCELLED || 0)} cancelled. ${plural(restarts, "restart")}. ` +
      `Unaccounted widgets: ${stats.ledger.unaccounted}. Oversold: ${stats.oversold}.`;
    figures.announced = key;
    figures.announcedAt = now;
  }

  /* -------------------------------------------------------- throughput chart */

  const SVG_NS = el["throughput-chart"].namespaceURI;

  function svgEl(name, attributes = {}, text) {
    const node = document.createElementNS(SVG_NS, name);
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

  /**
   * Purchases per second over the last 5 minutes (5 s bars, as /stats buckets them), and a
   * vertical mark at every process restart. Drawn at the box's own pixel width, so text stays
   * crisp and readable on a phone; redrawn when the box is resized.
   */
  function renderChart(stats) {
    const svg = el["throughput-chart"];
    const box = el.throughput;
    const width = Math.max(240, Math.round(box.clientWidth || 600));
    const height = width < 520 ? 170 : 236;
    figures.chartWidth = width;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    for (const child of Array.from(svg.children)) if (child.tagName !== "desc") child.remove();

    const series = (stats.throughput || []).map((bucket) => ({
      at: parseTime(bucket.at)?.getTime() ?? 0,
      value: Number(bucket.per_second) || 0,
    }));
    const end = parseTime(stats.now)?.getTime() ?? Date.now();
    const bucketMs = series.length > 1 ? series[1].at - series[0].at : 5000;
    const start = series.length ? series[0].at : end - 300000;
    const span = Math.max(1, end - start);
    const pad = { left: 38, right: 12, top: 36, bottom: 24 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const x = (t) => pad.left + ((t - start) / span) * plotW;
    const peak = series.reduce((max, bucket) => Math.max(max, bucket.value), 0);
    const top = niceCeil(Math.max(peak, 1));
    const y = (value) => pad.top + plotH - (value / top) * plotH;

    // Grid and the y axis: 0, half, top.
    const grid = svgEl("g", { class: "chart-grid" });
    for (const value of [0, top / 2, top]) {
      grid.append(svgEl("line", { x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value) }));
      grid.append(
        svgEl("text", { x: pad.left - 6, y: y(value) + 4, "text-anchor": "end" }, value === top ? `${chartLabel(value)}/s` : chartLabel(value)),
      );
    }
    // The x axis: a label a minute.
    for (const minutes of plotW < 300 ? [5, 3, 1, 0] : [5, 4, 3, 2, 1, 0]) {
      const at = end - minutes * 60000;
      const anchor = minutes === 5 ? "start" : minutes === 0 ? "end" : "middle";
      grid.append(
        svgEl("text", { x: x(at), y: height - 6, "text-anchor": anchor }, minutes === 0 ? "now" : `−${minutes} min`),
      );
    }
    svg.append(grid);

    // The bars: only the buckets with purchases.
    const bars = svgEl("g", { class: "chart-bars" });
    const barW = Math.max(1, (bucketMs / span) * plotW - (plotW > 400 ? 2 : 1));
    let total = 0;
    for (const bucket of series) {
      total += bucket.value * (bucketMs / 1000);
      if (bucket.value <= 0) continue;
      const top_ = y(bucket.value);
      const bar = svgEl("rect", {
        x: x(bucket.at) + 0.5,
        y: top_,
        width: barW,
        height: Math.max(1, pad.top + plotH - top_),
        rx: Math.min(2, barW / 2),
        "data-testid": "throughput-bar",
        "data-value": bucket.value,
      });
      bar.append(
        svgEl("title", {}, `${clock(new Date(bucket.at))}–${clock(new Date(bucket.at + bucketMs))}: ${rate(bucket.value)} purchases`),
      );
      bars.append(bar);
    }
    svg.append(bars);

    // A mark at every restart in view, labelled with its number, staggered when close.
    const marks = svgEl("g", { class: "chart-marks" });
    const restarts = (stats.process_starts || [])
      .filter((start_) => start_.restart_count > 0)
      .map((start_) => ({ ...start_, t: parseTime(start_.at)?.getTime() ?? 0 }))
      .filter((start_) => start_.t >= start && start_.t <= end)
      .sort((a, b) => a.t - b.t);
    let lastLabelX = -Infinity;
    let row = 0;
    for (const restart of restarts) {
      const mx = x(restart.t);
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
        svgEl("line", { x1: mx, x2: mx, y1: labelY + 5, y2: pad.top + plotH }),
        svgEl("rect", { x: mx - 11, y: labelY - 9, width: 22, height: 14, rx: 7 }),
        svgEl("text", { x: mx, y: labelY + 2, "text-anchor": "middle" }, `#${restart.restart_count}`),
      );
      marks.append(mark);
    }
    svg.append(marks);

    const last30 = series.slice(-6);
    const recent = last30.length ? last30.reduce((sum, b) => sum + b.value, 0) / last30.length : 0;
    setText(el["throughput-now"], rate(recent));
    setText(el["throughput-peak"], rate(peak));
    setText(el["throughput-total"], count.format(Math.round(total)));
    const marked = restarts.length
      ? ` Restarts marked at ${restarts.map((r) => `${clock(new Date(r.t))} (restart ${r.restart_count}, ${plural(r.workflows_recovered, "workflow")} recovered)`).join(", ")}.`
      : " No restart in this window.";
    svg.querySelector("desc").textContent =
      `Bar chart of purchases per second in 5-second buckets over the last 5 minutes: ` +
      `${rate(recent)} over the last 30 seconds, peak ${rate(peak)}, ${plural(Math.round(total), "purchase")} in all.${marked}`;
  }

  function onChartResize() {
    if (!figures.last || el.figures.hidden) return;
    const width = Math.round(el.throughput.clientWidth);
    if (width && Math.abs(width - figures.chartWidth) > 1) renderChart(figures.last);
  }

  /* ------------------------------------------------------- built-in shoppers */

  const LOAD_FIELDS = [
    ["shoppers", "load-shoppers", 1, 64, "Shoppers"],
    ["pay_weight", "load-pay", 0, 100, "Pay"],
    ["decline_weight", "load-decline", 0, 100, "Decline"],
    ["abandon_weight", "load-abandon", 0, 100, "Abandon"],
  ];
  const loadUi = { touched: false, known: false };

  function readLoadForm() {
    const body = {};
    for (const [name, id, min, max, label] of LOAD_FIELDS) {
      const input = el[id];
      const raw = input.value.trim();
      const value = Number(raw);
      const valid = raw !== "" && Number.isInteger(value) && value >= min && value <= max;
      if (valid) input.removeAttribute("aria-invalid");
      else input.setAttribute("aria-invalid", "true");
      if (!valid) return { error: `${label}: enter a whole number from ${min} to ${max}.`, input };
      body[name] = value;
    }
    return { body };
  }

  function renderMix() {
    const weight = (id) => {
      const value = Number(el[id].value);
      return Number.isFinite(value) && value > 0 ? value : 0;
    };
    const parts = [
      ["pay", weight("load-pay")],
      ["decline", weight("load-decline")],
      ["abandon", weight("load-abandon")],
    ];
    const total = parts.reduce((sum, [, value]) => sum + value, 0);
    const bar = el["load-mix-bar"];
    for (const [name, value] of parts) {
      bar.querySelector(`.mix-${name}`).style.flexGrow = String(total ? value : name === "pay" ? 1 : 0);
    }
    el["load-mix"].textContent = total
      ? parts
          .filter(([, value]) => value > 0)
          .map(([name, value]) => `${Math.round((value / total) * 100)}% ${name}`)
          .join(" · ") + (weight("load-abandon") ? " (an abandoned checkout times out)" : "")
      : "No weights: every shopper pays.";
  }

  function renderLoad(load) {
    loadUi.known = true;
    const node = el["load-state"];
    node.dataset.running = String(Boolean(load.running));
    node.querySelector(".load-state-text").textContent = load.running
      ? `Running · ${plural(load.shoppers, "shopper")} · generation ${load.generation}`
      : "Stopped";
    el["load-start"].textContent = load.running ? "Apply to the shoppers" : "Start shoppers";
    if (!el["load-stop"].hasAttribute("aria-busy")) el["load-stop"].disabled = !load.running;
    // Show what is running, unless the operator is editing the form.
    if (load.running && !loadUi.touched) {
      el["load-shoppers"].value = String(load.shoppers);
      el["load-pay"].value = String(load.pay_weight);
      el["load-decline"].value = String(load.decline_weight);
      el["load-abandon"].value = String(load.abandon_weight);
      renderMix();
    }
  }

  async function postLoad(path, body, button, done) {
    const message = el["load-message"];
    button.disabled = true;
    setBusy(button, true);
    let answer = null;
    try {
      answer = await api(path, { method: "POST", body });
    } catch {
      setNotice(message, "The store is restarting: try again in a moment.", "warn");
    } finally {
      setBusy(button, false);
      button.disabled = false;
    }
    if (!answer) return;
    if (answer.ok && answer.data) {
      loadUi.touched = false;
      renderLoad(answer.data);
      setNotice(message, done(answer.data), "ok");
      statsPoller.now();
    } else if (answer.status === 404) {
      setNotice(message, "The built-in shoppers are off: this store runs in production mode.", "error");
    } else {
      setNotice(message, `The store refused: ${detailOf(answer)}`, "error");
    }
  }

  function onLoadStart(event) {
    event.preventDefault();
    const { body, error, input } = readLoadForm();
    if (error) {
      setNotice(el["load-message"], error, "error");
      input.focus();
      return;
    }
    postLoad("/load", body, el["load-start"], (load) =>
      `Started ${plural(load.shoppers, "shopper")} (generation ${load.generation}). They buy through the same doors as a person.`,
    );
  }

  function onLoadStop() {
    postLoad("/load/stop", undefined, el["load-stop"], () =>
      "Stopping: each shopper finishes its current purchase, then leaves.",
    );
  }

  /* ------------------------------------------------------- workflow detail */

  const detail = { id: null, opener: null, token: 0 };

  const STEP_HINTS = {
    place_order: "order created and its widget reserved, in one transaction",
    mark_paid: "order marked paid",
    release_order: "order cancelled and its widget put back",
    tick_dispatch: "one dispatch step; the output is the steps left",
    "DBOS.setEvent": "published an event (payment id or outcome)",
    "DBOS.recv": "waited for the payment, or the shopper's cancel",
    "DBOS.sleep": "the payment deadline, set durably",
    dispatch: "started the dispatch workflow",
    plan_purchase: "a built-in shopper chose what to do",
    buy: "a built-in shopper pressed Buy Now",
    settle: "a built-in shopper paid or declined",
    restock: "a built-in shopper restocked",
  };

  function formatOutput(value) {
    if (typeof value === "number" && value > 1e9 && value < 1e10) {
      // Epoch seconds (mark_paid's moment of payment, the payment deadline): say when.
      return `${value} (${clockMs(new Date(value * 1000))})`;
    }
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text;
  }

  function renderSteps(steps) {
    const list = el["detail-steps"];
    const items = steps.map((step) => {
      const item = document.createElement("li");
      item.className = "step";
      item.dataset.testid = "workflow-step";
      item.dataset.stepName = step.name;
      item.dataset.state = step.error ? "error" : step.completed_at ? "done" : "running";

      const number = document.createElement("span");
      number.className = "step-id";
      number.textContent = String(step.step_id);
      number.setAttribute("aria-label", `Step ${step.step_id}`);

      const bodyNode = document.createElement("div");
      bodyNode.className = "step-body";
      const head = document.createElement("p");
      head.className = "step-head";
      const name = document.createElement("span");
      name.className = "step-name";
      name.dataset.testid = "step-name";
      name.textContent = step.name;
      const started = parseTime(step.started_at);
      const completed = parseTime(step.completed_at);
      const took = document.createElement("span");
      took.className = "step-duration";
      took.dataset.testid = "step-duration";
      took.textContent =
        started && completed ? duration(completed - started) : started ? "running…" : "";
      head.append(name, took);
      bodyNode.append(head);

      if (STEP_HINTS[step.name]) {
        const hint = document.createElement("p");
        hint.className = "step-hint";
        hint.textContent = STEP_HINTS[step.name];
        bodyNode.append(hint);
      }
      if (step.error || step.output != null) {
        const result = document.createElement("p");
        result.className = step.error ? "step-error" : "step-output";
        result.dataset.testid = step.error ? "step-error" : "step-output";
        const label = document.createElement("span");
        label.className = "step-label";
        label.textContent = step.error ? "error" : "output";
        const code = document.createElement("code");
        const text = step.error ? step.error : formatOutput(step.output);
        code.textContent = text.length > 160 ? `${text.slice(0, 159)}…` : text;
        code.title = text;
        result.append(label, code);
        bodyNode.append(result);
      }

      if (step.child_workflow_id) {
        const child = document.createElement("p");
        child.className = "step-child";
        const label_ = document.createElement("span");
        label_.className = "step-label";
        label_.textContent = "child";
        const open = document.createElement("button");
        open.type = "button";
        open.className = "btn-link";
        open.dataset.testid = "step-child";
        open.textContent = step.child_workflow_id;
        open.setAttribute("aria-label", `Show the steps of child workflow ${step.child_workflow_id}`);
        open.addEventListener("click", () => openDetail(step.child_workflow_id, detail.opener));
        child.append(label_, open);
        bodyNode.append(child);
      }

      const times = document.createElement("p");
      times.className = "step-times";
      times.textContent = started
        ? `${clockMs(started)} → ${completed ? clockMs(completed) : "…"}`
        : "not started";
      bodyNode.append(times);

      item.append(number, bodyNode);
      return item;
    });
    list.replaceChildren(...items);
  }

  function detailSummary(id) {
    const wf = workflowInfo.get(id);
    if (!wf) return "";
    const parts = [`${wf.name} workflow`, wf.status];
    if (wf.recovery_attempts != null) parts.push(`recovery attempts ${wf.recovery_attempts}`);
    if (wf.executor_id) parts.push(`executor ${wf.executor_id}`);
    return parts.join(" · ");
  }

  function openDetail(id, opener) {
    const dialog = el["workflow-detail"];
    detail.id = id;
    detail.opener = opener || null;
    el["detail-workflow-id"].textContent = id;
    el["detail-summary"].textContent = detailSummary(id);
    el["detail-updated"].textContent = "";
    el["detail-steps"].replaceChildren();
    setNotice(el["detail-message"], "Loading the steps…");
    if (!dialog.open) dialog.showModal();
    refreshDetail();
  }

  async function refreshDetail() {
    const id = detail.id;
    if (!id) return;
    const token = ++detail.token;
    const button = el["detail-refresh"];
    setBusy(button, true);
    let answer = null;
    try {
      answer = await api(`/workflows/${encodeURIComponent(id)}/steps`, { operator: true });
    } catch {
      answer = null;
    }
    if (token !== detail.token) return;
    setBusy(button, false);
    const message = el["detail-message"];
    if (answer && answer.ok && Array.isArray(answer.data)) {
      renderSteps(answer.data);
      const summary = detailSummary(id);
      if (summary) el["detail-summary"].textContent = summary;
      setNotice(message, answer.data.length ? "" : "No step recorded yet.");
      el["detail-updated"].textContent = `${plural(answer.data.length, "step")} · updated ${clock(new Date())}`;
    } else if (!answer || AWAY_STATUSES.has(answer.status)) {
      setNotice(message, "The store is restarting: refresh in a moment.", "warn");
    } else if (answer.status === 404) {
      setNotice(message, `There is no workflow ${id}.`, "error");
    } else if (answer.status === 401) {
      setNotice(message, "Seeing the steps needs the operator token.", "error");
    } else {
      setNotice(message, `Could not read the steps: ${detailOf(answer)}`, "error");
    }
  }

  function onDetailClosed() {
    detail.token++;
    const opener = detail.opener;
    detail.id = null;
    detail.opener = null;
    // Back where the operator was: the row's button if the row is still there.
    if (opener && opener.isConnected) opener.focus();
    else el["workflows-wrap"].focus();
  }

  async function onCrash() {
    const message = el["operator-message"];
    const button = el.crash;
    button.disabled = true;
    setNotice(message, "Crashing the server…", "warn");
    const crashed = () =>
      setNotice(
        message,
        "Crashed: the server process is gone. Watch the supervisor restart it and DBOS resume the workflows.",
        "warn",
      );
    try {
      // The server answers 202 and dies 50 ms later. On its own connection (no credentials),
      // so a keep-alive connection the dying server drops is never one a later request reuses.
      const answer = await api("/crash_application", {
        method: "POST",
        timeoutMs: 10000,
        credentials: "omit",
      });
      if (answer.status === 202) {
        conn.crashedPid = state.health ? state.health.pid : -1;
        conn.crashedAt = Date.now();
        serverAway();
        crashed();
        pollers.forEach((poller) => poller.now());
      } else if (answer.status === 404) {
        setNotice(message, "The crash button is off: this store runs in production mode.", "error");
        button.disabled = conn.away;
      } else {
        setNotice(message, `The server answered ${answer.status} instead of crashing.`, "error");
        button.disabled = conn.away;
      }
    } catch {
      crashed(); // the process died before its answer arrived
    }
  }

  /* ------------------------------------------------------------------ wiring */

  const operatorPoller = poller(refreshOperator, OPERATOR_POLL_MS);
  const statsPoller = poller(refreshStats, STATS_POLL_MS);
  const recentPoller = poller(refreshRecent, RECENT_POLL_MS);
  const pollers = [
    poller(refreshProduct, PRODUCT_POLL_MS),
    recentPoller,
    operatorPoller,
    statsPoller,
  ];

  function wire() {
    el.buy.addEventListener("click", onBuy);
    el.restock.addEventListener("click", () => onRestock(el["store-message"], el.restock));
    el["operator-restock"].addEventListener("click", () =>
      onRestock(el["operator-message"], el["operator-restock"]),
    );
    el.crash.addEventListener("click", onCrash);
    el.pay.addEventListener("click", () => settle("paid"));
    el.decline.addEventListener("click", () => settle("failed"));
    el["cancel-order"].addEventListener("click", cancelFromPay);
    el["pay-see-order"].addEventListener("click", () => {
      const checkout = state.checkout;
      if (checkout && Number.isInteger(checkout.pendingOrder)) {
        go("order", { id: checkout.pendingOrder, key: checkout.key });
      }
    });
    el["order-cancel"].addEventListener("click", cancelFromOrder);
    el["order-pay"].addEventListener("click", () => {
      const current = state.currentOrder;
      const checkout = current && ownOpenCheckout(current.order_id);
      if (!checkout || !checkout.payment) return;
      // Not settled yet: the checkout's place is the payment page again.
      adoptCheckout(checkout.key, { order: undefined, pendingOrder: current.order_id });
      go("pay", { key: checkout.key, payment: checkout.payment });
    });
    el["start-over"].addEventListener("click", () => {
      if (state.checkout && state.checkout.ended) saveCheckout(null);
      go("store");
    });
    el["back-to-store"].addEventListener("click", () => go("store"));
    el["buy-another"].addEventListener("click", () => {
      if (!activeCheckout()) saveCheckout(null);
      onBuy();
    });
    el["token-form"].addEventListener("submit", (event) => {
      event.preventDefault();
      state.operatorToken = el["operator-token"].value.trim();
      writeStorage(window.sessionStorage, TOKEN_STORAGE, state.operatorToken || null);
      auth.version += 1;
      auth.statsLocked = false;
      auth.workflowsLocked = false;
      el["figures-empty"].textContent = "Loading the live figures…";
      operatorPoller.now();
      statsPoller.now();
    });
    el["load-form"].addEventListener("submit", onLoadStart);
    el["load-form"].addEventListener("input", () => {
      loadUi.touched = true;
      renderMix();
    });
    el["load-stop"].addEventListener("click", onLoadStop);
    // A row of the workflows table (or Enter on its button) opens that workflow's steps.
    el["workflows-table"].tBodies[0].addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-workflow-id]");
      if (row) openDetail(row.dataset.workflowId, row.querySelector("button"));
    });
    const dialog = el["workflow-detail"];
    el["detail-close"].addEventListener("click", () => dialog.close());
    el["detail-refresh"].addEventListener("click", refreshDetail);
    dialog.addEventListener("close", onDetailClosed);
    // A click on the backdrop (the dialog itself, outside its content) closes it too.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(onChartResize).observe(el.throughput);
    } else {
      window.addEventListener("resize", onChartResize);
    }
    const skip = document.querySelector(".skip-link");
    skip.addEventListener("click", (event) => {
      event.preventDefault();
      document.getElementById("shop").focus();
    });
    window.addEventListener("popstate", () => route({ focus: true }));
    window.addEventListener("hashchange", () => route({ focus: true }));
    // Keep the shopper's place for the next visit to "/", too.
    window.addEventListener("storage", (event) => {
      if (event.key === CHECKOUT_STORAGE) state.checkout = loadCheckout();
    });
  }

  function start() {
    state.checkout = loadCheckout();
    state.operatorToken = readStorage(window.sessionStorage, TOKEN_STORAGE) || "";
    el["operator-token"].value = state.operatorToken;
    renderMix();
    wire();
    route();
    pollers.forEach((p) => p.start());
  }

  start();
})();
