/* Widget Store: the store page, the sandbox payment page, the order tracker and the operator
 * panel, in plain JavaScript.
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
  const ORDER_POLL_MS = 500;
  const RECENT_POLL_MS = 1000;
  const OPERATOR_POLL_MS = 1000;
  const PRODUCT_POLL_MS = 2000;
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
  };

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
  const conn = { away: false, awaySince: 0, crashedPid: null };

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
  }

  /**
   * fetch, with a deadline, that tracks whether the server is there. Resolves with
   * {status, ok, data, text} for any HTTP answer; rejects with NetworkError when none came.
   */
  async function api(
    path,
    { method = "GET", timeoutMs = 8000, operator = false, credentials = "same-origin" } = {},
  ) {
    const seq = ++requestSeq;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const headers = { Accept: "application/json, text/plain;q=0.9" };
    if (operator && state.operatorToken) headers.Authorization = `Bearer ${state.operatorToken}`;
    let response;
    let text;
    try {
      response = await fetch(path, {
        method,
        headers,
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
    const titles = { store: "Widget Store", pay: "Pay · SandboxPay", order: "Your order · Widget Store" };
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

  /** POST /checkout/{key} until it answers: network errors and 503s retry with the same key. */
  async function runCheckout(key, token) {
    const message = el["store-message"];
    setNotice(message, "Reserving your widget…");
    let delay = 500;
    while (token === state.routeToken) {
      let answer;
      try {
        answer = await api(`/checkout/${encodeURIComponent(key)}`, { method: "POST", timeoutMs: 45000 });
      } catch {
        answer = null;
      }
      if (token !== state.routeToken) return;
      if (answer && answer.status === 200) {
        const payment = answer.text.trim();
        adoptCheckout(key, { payment });
        setNotice(message, "");
        go("pay", { key, payment }, { replace: true });
        return;
      }
      if (answer && answer.status === 404) {
        saveCheckout(null);
        go("store", {}, { replace: true });
        setNotice(message, `Sold out: ${detailOf(answer)}`, "warn");
        refreshProduct().catch(() => {});
        return;
      }
      if (answer && answer.status < 500) {
        saveCheckout(null);
        go("store", {}, { replace: true });
        setNotice(message, `The store refused this checkout: ${detailOf(answer)}`, "error");
        return;
      }
      // A network error, a 503 (still starting) or any other 5xx: same key, again, shortly.
      setNotice(
        message,
        "The store is restarting. Your checkout continues with the same key as soon as it is back…",
        "warn",
      );
      await sleep(delay);
      delay = Math.min(delay * 1.5, 2000);
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
    setBusy(el.pay, false);
    setBusy(el.decline, false);
    el["pay-ended"].hidden = !ended;
    if (!ended) setNotice(el["pay-message"], "");
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
    setBusy(button, true);
    setNotice(message, status === "paid" ? "Processing your payment…" : "Declining the payment…");
    let delay = 500;
    while (token === state.routeToken) {
      let answer;
      try {
        answer = await api(`/sandbox/payments/${encodeURIComponent(payment)}/${status}`, {
          method: "POST",
          timeoutMs: 70000,
        });
      } catch {
        answer = null;
      }
      if (token !== state.routeToken) return;
      if (answer && answer.status === 200) {
        const order = Number.parseInt(answer.text.trim(), 10);
        adoptCheckout(key, { order });
        go("order", { id: order, key }, { replace: true });
        return;
      }
      if (answer && answer.status < 500) {
        setBusy(button, false);
        if (answer.status === 409 || answer.status === 404) {
          adoptCheckout(key, { ended: true });
          const reason =
            answer.status === 409 ? "This checkout already ended" : "The store does not know this payment";
          setNotice(message, `${reason}: ${detailOf(answer)}`, "error");
          el["pay-ended"].hidden = false;
        } else {
          el.pay.disabled = false;
          el.decline.disabled = false;
          setNotice(message, `The payment did not go through: ${detailOf(answer)}`, "error");
        }
        return;
      }
      setNotice(
        message,
        "The store is restarting. Your payment will be delivered as soon as it is back…",
        "warn",
      );
      await sleep(delay);
      delay = Math.min(delay * 1.5, 2000);
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

    const headlines = {
      PENDING: "Waiting for your payment.",
      PAID: `Paid. Your widget is being dispatched: step ${done} of ${DISPATCH_STEPS}.`,
      DISPATCHED: "Dispatched! Your widget is on its way.",
      CANCELLED: "Cancelled: the payment was declined or timed out, and the widget went back in stock.",
    };
    el["order-headline"].textContent = headlines[status] || status;
    if (changed) announce(`Order ${order.order_id}: ${headlines[status] || status}`);

    const final = FINAL.has(status);
    const mine = state.checkout && state.checkout.order === order.order_id;
    if (final && mine && !state.checkout.ended) adoptCheckout(state.checkout.key, { ended: true });
    el["buy-another"].hidden = !(final && !activeCheckout());
    markCurrentInRecent();
  }

  function resetOrderView(id) {
    el["order-id"].textContent = `#${id}`;
    const badge = el["order-status"];
    badge.dataset.status = "";
    badge.textContent = "Loading…";
    el["order-headline"].textContent = "Fetching your order…";
    setNotice(el["order-message"], "");
    el["buy-another"].hidden = true;
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
        setNotice(el["order-message"], "");
        renderOrder(answer.data);
        if (FINAL.has(statusName(answer.data))) return;
      } else if (answer && answer.status === 404) {
        el["order-status"].textContent = "Not found";
        el["order-headline"].textContent = `There is no order #${id}.`;
        el["buy-another"].hidden = false;
        return;
      } else if (answer && answer.status < 500) {
        setNotice(el["order-message"], `Could not read the order: ${detailOf(answer)}`, "error");
      } else {
        setNotice(el["order-message"], "Waiting for the store to come back; your order is safe.", "warn");
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

  async function refreshRecent() {
    const answer = await api("/orders?limit=10");
    if (answer.ok && Array.isArray(answer.data)) renderRecent(answer.data);
  }

  /* --------------------------------------------------------- operator panel */

  function renderHealth(health) {
    state.health = health;
    state.demo = health.demo !== false;
    el["restart-count"].textContent = String(health.restart_count);
    const started = parseTime(health.started_at);
    const since = el["started-at"];
    since.textContent = clock(started);
    since.title = health.started_at;
    const small = document.createElement("small");
    small.textContent = ago(started);
    since.append(small);
    el["workflows-recovered"].textContent = `${health.workflows_recovered} workflow${health.workflows_recovered === 1 ? "" : "s"}`;
    el["server-pid"].textContent = `pid ${health.pid}`;
    el["server-database"].textContent = health.database === "postgresql" ? "PostgreSQL" : "SQLite";
    el.crash.hidden = !state.demo;
    document.getElementById("crash-help").hidden = !state.demo;
    el["token-form"].hidden = state.demo;
    renderConnection();
  }

  function renderWorkflows(workflows) {
    const body = el["workflows-table"].tBodies[0];
    const rows = workflows.map((wf) => {
      const row = document.createElement("tr");
      row.dataset.testid = "workflow-row";
      row.dataset.workflowId = wf.workflow_id;
      const idCell = document.createElement("td");
      const code = document.createElement("code");
      code.textContent = wf.workflow_id.length > 30 ? `${wf.workflow_id.slice(0, 29)}…` : wf.workflow_id;
      code.title = wf.workflow_id;
      idCell.append(code);
      const cells = [
        idCell,
        cell(wf.name),
        cell(wf.status, "wf-status"),
        cell(wf.current_step || "–"),
        cell(wf.recovery_attempts == null ? "–" : String(wf.recovery_attempts), "num"),
      ];
      row.append(...cells);
      return row;
    });
    body.replaceChildren(...rows);
    el["workflows-wrap"].dataset.empty = String(rows.length === 0);
    el["workflows-empty"].textContent = "No workflows in flight.";
    el["workflows-empty"].hidden = rows.length > 0;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  async function refreshOperator() {
    const [health, workflows] = await Promise.allSettled([
      api("/health"),
      api("/workflows?status=PENDING&limit=50", { operator: true }),
    ]);
    if (health.status === "fulfilled" && health.value.ok && health.value.data) {
      if (conn.crashedPid !== null && health.value.data.pid !== conn.crashedPid) {
        conn.crashedPid = null;
        serverAnswered(requestSeq);
      }
      renderHealth(health.value.data);
    }
    if (workflows.status === "fulfilled") {
      const answer = workflows.value;
      if (answer.ok && Array.isArray(answer.data)) {
        renderWorkflows(answer.data);
      } else if (answer.status === 401) {
        el["workflows-table"].tBodies[0].replaceChildren();
        el["workflows-wrap"].dataset.empty = "true";
        el["workflows-empty"].hidden = false;
        el["workflows-empty"].textContent = "Enter the operator token to see the workflows.";
      }
    }
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

  const pollers = [
    poller(refreshProduct, PRODUCT_POLL_MS),
    poller(refreshRecent, RECENT_POLL_MS),
    poller(refreshOperator, OPERATOR_POLL_MS),
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
      pollers[2].now();
    });
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
    wire();
    route();
    pollers.forEach((p) => p.start());
  }

  start();
})();
