/* The operator panel's head: the serving process's facts (restarts, since when, workflows
 * recovered, pid, database), the executors (Postgres: which are alive, which were taken over
 * and by whom), from HEALTH events, and the operator token form (production). */
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
  const ran = health.workflows_run_after_recovery;
  el["workflows-run-after-recovery"].textContent = ran == null ? "–" : plural(ran, "workflow");
  renderExecutors(health.executors || []);
  el["token-form"].hidden = demo;
}

function renderExecutors(executors) {
  const list = el.executors;
  list.hidden = executors.length === 0;
  list.replaceChildren(
    ...executors.map((e) => {
      const item = document.createElement("li");
      item.dataset.alive = String(e.alive);
      let text = `${e.executor_id}: ${e.alive ? "alive" : "dead"}`;
      if (e.taken_over_by) {
        const n = plural(e.workflows_taken_over, "workflow");
        text += `, taken over by ${e.taken_over_by} (${n}) at ${clock(parseTime(e.taken_over_at))}`;
      }
      item.textContent = text;
      return item;
    }),
  );
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
