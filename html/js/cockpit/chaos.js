/* The crash test: Restock to 100, and (demo mode only) Crash the server, then say when another
 * process took over and what it resumed. */
import { api } from "../net/api.js";
import { expectRestart } from "../net/connectivity.js";
import { pollAllNow } from "../net/poller.js";
import { el, setNotice } from "../shared/dom.js";
import { CONNECTION, HEALTH, on } from "../shared/events.js";
import { plural } from "../shared/format.js";
import { restock } from "../views/store.js";

let away = false;

function renderMode({ demo }) {
  el.crash.hidden = !demo;
  document.getElementById("crash-help").hidden = !demo;
  // Production has no crash button: what is left there is the stock.
  document.getElementById("chaos-title").textContent = demo ? "Crash test" : "Stock";
  document.getElementById("chaos-intro").hidden = !demo;
  el.crash.disabled = away;
}

function onConnection(change) {
  away = change.away;
  el.crash.disabled = away;
  if (!change.restart) return;
  const { health, seconds } = change.restart;
  setNotice(
    el["operator-message"],
    `Crashed, and back${seconds ? ` within ${seconds} s` : ""}: a new process (pid ${health.pid}, ` +
      `restart ${health.restart_count}) resumed ${plural(health.workflows_recovered, "workflow")}.`,
    "ok",
  );
}

async function crash() {
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
      expectRestart();
      crashed();
      pollAllNow();
    } else if (answer.status === 404) {
      setNotice(message, "The crash button is off: this store runs in production mode.", "error");
      button.disabled = away;
    } else {
      setNotice(message, `The server answered ${answer.status} instead of crashing.`, "error");
      button.disabled = away;
    }
  } catch {
    crashed(); // the process died before its answer arrived
  }
}

export function initChaos() {
  const restockButton = el["operator-restock"];
  restockButton.addEventListener("click", () => restock(el["operator-message"], restockButton));
  el.crash.addEventListener("click", crash);
  on(CONNECTION, onConnection);
  on(HEALTH, renderMode);
}
