/* The "Store restarting" banner and the server pill in the top bar: whether the store is there,
 * as CONNECTION events say, and which database it runs on, as HEALTH events say. */
import { el } from "../shared/dom.js";
import { CONNECTION, HEALTH, on } from "../shared/events.js";

let away = false;
let health = null;

function render() {
  el.banner.hidden = !away;
  const pill = el["server-pill"];
  const text = pill.querySelector(".server-pill-text");
  if (away) {
    pill.dataset.state = "away";
    text.textContent = "Reconnecting…";
  } else if (health) {
    pill.dataset.state = "online";
    text.textContent = `Online · ${health.database}`;
  }
}

export function initConnection() {
  on(CONNECTION, (change) => {
    away = change.away;
    render();
  });
  on(HEALTH, (mode) => {
    health = mode.health;
    render();
  });
}
