/* The operator panel's head: the serving process's facts (restarts, since when, workflows
 * recovered, pid, database), from HEALTH events, and the operator token form (production). */
import { operatorToken, setOperatorToken } from "../net/operator-auth.js";
import { el } from "../shared/dom.js";
import { HEALTH, on } from "../shared/events.js";
import { ago, clock, parseTime, plural } from "../shared/format.js";

function renderServer({ health, demo }) {
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
  el["token-form"].hidden = demo;
}

export function initPanel() {
  const input = el["operator-token"];
  input.value = operatorToken();
  el["token-form"].addEventListener("submit", (event) => {
    event.preventDefault();
    setOperatorToken(input.value.trim());
  });
  on(HEALTH, renderServer);
}
