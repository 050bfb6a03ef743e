/* The shopper's checkouts: the one in progress, and the ones this browser started.
 *
 * Never lose the shopper's place: the checkout's idempotency key lives in the URL and in
 * localStorage, so a reload, or a retry after the server crashed, continues the same checkout:
 * the same key gives the same payment id and at most one order. The URL wins over storage: a
 * link or a reload with a key continues that checkout. */
import { api } from "../net/api.js";
import { postUntilAnswered } from "../net/retry.js";
import { go } from "./router.js";
import { readJson, writeStorage } from "./storage.js";

const KEY_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
const CHECKOUT_STORAGE = "widget-store:checkout";
// The checkouts this browser started, newest first: production's "Recent orders".
const RECENT_STORAGE = "widget-store:recent-checkouts";
const RECENT_KEEP = 10;

let checkout = null; // {key, startedAt?, payment?, order?, pendingOrder?, ended?, cancelled?}
let freshPayment = null; // the payment id POST /checkout just answered: no need to look it up

/** The store's URL of checkout `key`: GET it, POST it to start it, POST …/cancel. */
export const checkoutPath = (key) => `/checkout/${encodeURIComponent(key)}`;

/** `value` if it is a well-formed checkout key (or payment id), else null. */
export const validKey = (value) => (value && KEY_PATTERN.test(value) ? value : null);

const isEntry = (saved) => Boolean(saved && typeof saved.key === "string" && validKey(saved.key));

function loadCheckout() {
  const saved = readJson(window.localStorage, CHECKOUT_STORAGE);
  return isEntry(saved) ? saved : null;
}

export const currentCheckout = () => checkout;

export const activeCheckout = () => (checkout && !checkout.ended ? checkout : null);

export function saveCheckout(next) {
  checkout = next;
  writeStorage(window.localStorage, CHECKOUT_STORAGE, next ? JSON.stringify(next) : null);
}

/** Makes `key` the current checkout (kept if it already is), with `fields` added. */
export function adoptCheckout(key, fields = {}) {
  const base = checkout && checkout.key === key ? checkout : { key };
  const next = { ...base, ...fields };
  saveCheckout(next);
  return next;
}

/** A fresh checkout, saved as the current one: its key. */
export function startCheckout() {
  const key = newKey();
  saveCheckout({ key, startedAt: new Date().toISOString() });
  return key;
}

function newKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") {
    return window.crypto.randomUUID();
  }
  // randomUUID needs a secure context; getRandomValues does not.
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Where `saved` continues: its order, its payment page, or its checkout. */
export function resumeCheckout(saved, options) {
  if (saved.order) go("order", { id: saved.order, key: saved.key }, options);
  else if (saved.payment) go("pay", { key: saved.key, payment: saved.payment }, options);
  else go("checkout", { key: saved.key }, options);
}

export function noteFreshPayment(payment) {
  freshPayment = payment;
}

export const isFreshPayment = (payment) => payment === freshPayment;

/**
 * The checkouts this browser started, newest first, as [{key, order?}]. In production the list
 * of every order is the operator's, so "Recent orders" shows these, looked up one by one.
 */
export function loadRecentCheckouts() {
  const saved = readJson(window.localStorage, RECENT_STORAGE);
  if (!Array.isArray(saved)) return [];
  return saved
    .filter(isEntry)
    .map(({ key, order }) => (Number.isInteger(order) ? { key, order } : { key }))
    .slice(0, RECENT_KEEP);
}

function saveRecentCheckouts(entries) {
  writeStorage(window.localStorage, RECENT_STORAGE, JSON.stringify(entries.slice(0, RECENT_KEEP)));
}

/** Called once the store confirmed the checkout exists (and, when known, its order). */
export function rememberCheckout(key, order) {
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

export function forgetCheckout(key) {
  saveRecentCheckouts(loadRecentCheckouts().filter((entry) => entry.key !== key));
}

/** The checkout `key` has its order: paid, declined, or (`fields.cancelled`) cancelled. */
export function recordOrder(key, order, fields = {}) {
  adoptCheckout(key, { order, ...fields });
  rememberCheckout(key, order);
}

/**
 * GET /checkout/{key} for the current checkout: its order, and whether it still waits for
 * payment (null when no answer, or the shopper moved to another checkout meanwhile).
 */
export async function findCheckout(key) {
  let answer;
  try {
    answer = await api(checkoutPath(key));
  } catch {
    return null;
  }
  if (!answer.ok || !answer.data || !checkout || checkout.key !== key) return null;
  notePendingOrder(key, answer.data.order_id);
  return answer.data;
}

/** The store said checkout `key` has order `orderId`, which may still wait for payment. */
export function notePendingOrder(key, orderId) {
  rememberCheckout(key, orderId);
  adoptCheckout(key, { pendingOrder: orderId });
}

/**
 * POST /checkout/{key}/cancel until the store answers: a repeat gets the first answer again,
 * so retrying after a crash is safe. Resolves with the answer, or null if the view changed.
 */
export function postCancel(key, token, message) {
  return postUntilAnswered(`${checkoutPath(key)}/cancel`, {
    token,
    message,
    waiting: "The store is restarting. Your cancellation will be sent as soon as it is back…",
    timeoutMs: 70000,
  });
}

/** Loads the saved checkout now, and again whenever another tab changes it. */
export function loadSavedCheckout() {
  checkout = loadCheckout();
  // Keep the shopper's place for the next visit to "/", too.
  window.addEventListener("storage", (event) => {
    if (event.key === CHECKOUT_STORAGE) checkout = loadCheckout();
  });
}
