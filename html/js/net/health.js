/* GET /health every second: which process serves (the crash test waits for another one), on
 * which database, and in which mode. Each answer goes out as a HEALTH event with the mode read
 * from it: `demo`, and `sandbox` (the sandbox provider's Pay and Decline exist). */
import { HEALTH, emit } from "../shared/events.js";
import { api } from "./api.js";
import { serverSeen } from "./connectivity.js";
import { poller } from "./poller.js";

const HEALTH_POLL_MS = 1000;

let known = false;

async function refreshHealth() {
  const answer = await api("/health");
  if (!answer.ok || !answer.data) return;
  const health = answer.data;
  const first = !known;
  known = true;
  serverSeen(health);
  const demo = health.demo !== false;
  const sandbox = typeof health.sandbox === "boolean" ? health.sandbox : demo;
  emit(HEALTH, { health, demo, sandbox, first });
}

export function initHealth() {
  poller(refreshHealth, HEALTH_POLL_MS);
}
