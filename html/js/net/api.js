/* The store's HTTP API: fetch with a deadline, that tells the connectivity module whether the
 * store answered. */
import { requestStarted, serverAnswered, serverAway } from "./connectivity.js";
import { operatorToken } from "./operator-auth.js";

export class NetworkError extends Error {}

// 502/503/504: a proxy or the store itself says it is not serving right now. Any other answer,
// even an error, comes from a serving store.
const AWAY_STATUSES = new Set([502, 503, 504]);

export const isAwayStatus = (status) => AWAY_STATUSES.has(status);

/**
 * Resolves with {status, ok, data, text} for any HTTP answer; rejects with NetworkError when
 * none came. `operator`: send the operator token.
 */
export async function api(
  path,
  { method = "GET", timeoutMs = 8000, operator = false, credentials = "same-origin", body } = {},
) {
  const seq = requestStarted();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const headers = { Accept: "application/json, text/plain;q=0.9" };
  const token = operatorToken();
  if (operator && token) headers.Authorization = `Bearer ${token}`;
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
  if (isAwayStatus(response.status)) serverAway();
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

/** `api`, resolving with null instead of rejecting when no answer came. */
export async function tryGet(path, options) {
  try {
    return await api(path, options);
  } catch {
    return null;
  }
}

export const detailOf = (answer) =>
  (answer.data && typeof answer.data.detail === "string" && answer.data.detail) ||
  `HTTP ${answer.status}`;

/** The order id in the text of an answer that names one (a settled payment, a cancel). */
export const orderIdOf = (answer) => Number.parseInt(answer.text.trim(), 10);
