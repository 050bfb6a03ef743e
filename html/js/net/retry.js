/* Sending a POST again until the store answers: checkout keys, cancels and payment deliveries
 * are all idempotent, so a retry after a crash, with the same key, is safe. */
import { setNotice } from "../shared/dom.js";
import { isCurrentRoute } from "../shared/router.js";
import { api } from "./api.js";

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * POST `path` until the store answers below 500. Network errors and 5xx (restarting, still
 * starting) are sent again, unchanged, with `waiting` shown in `message` meanwhile. Resolves
 * with the answer, or null if the shopper left the view of route `token` first. `body`, if
 * given, is sent as JSON, the same each time.
 */
export async function postUntilAnswered(path, { token, message, waiting, timeoutMs, body }) {
  let delay = 500;
  while (isCurrentRoute(token)) {
    let answer = null;
    try {
      answer = await api(path, { method: "POST", timeoutMs, body });
    } catch {
      answer = null;
    }
    if (!isCurrentRoute(token)) return null;
    if (answer && answer.status < 500) return answer;
    setNotice(message, waiting, "warn");
    await sleep(delay);
    delay = Math.min(delay * 1.5, 2000);
  }
  return null;
}
