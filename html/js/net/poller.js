/* Loops that read the store: each runs its task, waits its interval, and again, forever. All of
 * them catch up at once when the store comes back. */
import { CONNECTION, on } from "../shared/events.js";
import { NetworkError } from "./api.js";

const pollers = [];

/** A loop of `task` every `interval` ms, started by `startPolling()`; `now()` runs it early. */
export function poller(task, interval) {
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
  const loop = { now: run };
  pollers.push(loop);
  return loop;
}

export function pollAllNow() {
  for (const loop of pollers) loop.now();
}

export function startPolling() {
  on(CONNECTION, ({ away }) => {
    if (!away) pollAllNow();
  });
  pollAllNow();
}
