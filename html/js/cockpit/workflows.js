/* "Workflows in flight": GET /workflows?status=PENDING every second (an operator route), as a
 * table whose rows are kept and updated in place, so focus on a row's button survives each
 * refresh. Choosing a row goes to the handler given to `bindWorkflowOpen`. */
import { lockedText, operatorLock } from "../net/operator-lock.js";
import { poller } from "../net/poller.js";
import { el, placeInOrder } from "../shared/dom.js";
import { OPERATOR_TOKEN, on } from "../shared/events.js";

const WORKFLOWS_POLL_MS = 1000;
const LIMIT = 50;

const workflows = operatorLock();
// What the table last said about each workflow, for the steps drawer's summary line.
const info = new Map();

/** The table's last word on workflow `id`: {name, status, recoveries, …}, if listed. */
export const workflowInfo = (id) => info.get(id);

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

const shortId = (id) => (id.length > 30 ? `${id.slice(0, 29)}…` : id);

function makeRow(workflowId) {
  const row = document.createElement("tr");
  row.dataset.testid = "workflow-row";
  row.dataset.workflowId = workflowId;
  row.className = "wf-row";
  const idCell = document.createElement("td");
  const open = document.createElement("button");
  open.type = "button";
  open.className = "wf-open";
  open.dataset.testid = "workflow-open";
  open.setAttribute("aria-haspopup", "dialog");
  open.setAttribute("aria-label", `Show the steps of workflow ${workflowId}`);
  const code = document.createElement("code");
  code.textContent = shortId(workflowId);
  code.title = workflowId;
  open.append(code);
  idCell.append(open);
  row.append(idCell, cell("", "wf-name"), cell("", "wf-status"), cell("", "wf-step"), cell("", "num"));
  return row;
}

function renderWorkflows(list) {
  const body = el["workflows-table"].tBodies[0];
  const existing = new Map(Array.from(body.rows, (row) => [row.dataset.workflowId, row]));
  info.clear();
  const rows = list.map((wf) => {
    info.set(wf.workflow_id, wf);
    const row = existing.get(wf.workflow_id) || makeRow(wf.workflow_id);
    const cells = row.cells;
    cells[1].textContent = wf.name;
    cells[2].textContent = wf.status;
    cells[3].textContent = wf.current_step || "–";
    cells[4].textContent = wf.recoveries == null ? "–" : String(wf.recoveries);
    return row;
  });
  placeInOrder(body, rows);
  el["workflows-wrap"].dataset.empty = String(rows.length === 0);
  el["workflows-count"].textContent = rows.length ? `· ${rows.length}${rows.length >= LIMIT ? "+" : ""}` : "";
  el["workflows-empty"].textContent = "No workflows in flight.";
  el["workflows-empty"].hidden = rows.length > 0;
}

function lockWorkflows() {
  el["workflows-table"].tBodies[0].replaceChildren();
  el["workflows-wrap"].dataset.empty = "true";
  el["workflows-count"].textContent = "";
  el["workflows-empty"].hidden = false;
  el["workflows-empty"].textContent = lockedText("the workflows");
}

async function refreshWorkflows() {
  const answer = await workflows.get(`/workflows?status=PENDING&limit=${LIMIT}`);
  if (!answer) return;
  if (answer.ok && Array.isArray(answer.data)) renderWorkflows(answer.data);
  else if (answer.status === 401) lockWorkflows();
}

/** A row of the table (or Enter on its button) calls `handler(workflowId, rowButton)`. */
export function bindWorkflowOpen(handler) {
  el["workflows-table"].tBodies[0].addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-workflow-id]");
    if (row) handler(row.dataset.workflowId, row.querySelector("button"));
  });
}

export function initWorkflows() {
  const workflowsPoller = poller(refreshWorkflows, WORKFLOWS_POLL_MS);
  on(OPERATOR_TOKEN, () => {
    workflows.reopen();
    workflowsPoller.now();
  });
}
