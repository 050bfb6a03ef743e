/* Is the store there? Every request says here how it went, and each change (away, or back) goes
 * out as a CONNECTION event; nothing here knows who listens.
 *
 * The server may vanish at any moment (the crash button does exactly that). A failed request or
 * a 502/503/504 makes it away; only a request started after that moment and answered proves it
 * is back. After the crash button it stays away until /health answers from another process:
 * requests queue in the socket's backlog meanwhile, so none need fail. */
import { CONNECTION, emit } from "../shared/events.js";

let requestSeq = 0;
const conn = { away: false, awaySince: 0, servingPid: null, crashedPid: null, crashedAt: 0 };

/** A request is about to start: its number, for `serverAnswered`. */
export const requestStarted = () => ++requestSeq;

function announce(restart) {
  emit(CONNECTION, restart ? { away: conn.away, restart } : { away: conn.away });
}

export function serverAway() {
  conn.awaySince = requestSeq;
  if (conn.away) return;
  conn.away = true;
  announce();
}

/** Whether request `seq`'s answer ends an away spell: then the store counts as back. */
function cameBack(seq) {
  if (!conn.away || seq <= conn.awaySince || conn.crashedPid !== null) return false;
  conn.away = false;
  return true;
}

export function serverAnswered(seq) {
  if (cameBack(seq)) announce();
}

/** The crash button was answered: the serving process is about to die. */
export function expectRestart() {
  conn.crashedPid = conn.servingPid ?? -1;
  conn.crashedAt = Date.now();
  serverAway();
}

/**
 * /health answered. From another process than the crashed one, the crash test is over: that
 * goes out with the CONNECTION event's `restart`, even when a request that failed meanwhile
 * keeps the store away until the next answer.
 */
export function serverSeen(health) {
  if (conn.crashedPid !== null && health.pid !== conn.crashedPid) {
    conn.crashedPid = null;
    cameBack(requestSeq);
    const seconds = conn.crashedAt ? ((Date.now() - conn.crashedAt) / 1000).toFixed(1) : null;
    announce({ health, seconds });
  }
  conn.servingPid = health.pid;
}
