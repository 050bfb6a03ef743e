/* The workflow drawer: a modal dialog with one workflow's checkpointed steps (an operator
 * route), refreshed on demand; closing it puts focus back where the operator was. */
import { detailOf, isAwayStatus, tryGet } from "../net/api.js";
import { el, setBusy, setNotice } from "../shared/dom.js";
import { clock, plural } from "../shared/format.js";
import { stepItem } from "./workflow-steps.js";
import { workflowInfo } from "./workflows.js";

const detail = { id: null, opener: null, token: 0 };

function detailSummary(id) {
  const wf = workflowInfo(id);
  if (!wf) return "";
  const parts = [`${wf.name} workflow`, wf.status];
  if (wf.recoveries != null) parts.push(`recovered ${wf.recoveries}×`);
  if (wf.executor_id) parts.push(`executor ${wf.executor_id}`);
  return parts.join(" · ");
}

/** Opens the drawer on workflow `id`; `opener` gets focus back when it closes. */
export function openDetail(id, opener) {
  const dialog = el["workflow-detail"];
  detail.id = id;
  detail.opener = opener || null;
  el["detail-workflow-id"].textContent = id;
  el["detail-summary"].textContent = detailSummary(id);
  el["detail-updated"].textContent = "";
  el["detail-steps"].replaceChildren();
  setNotice(el["detail-message"], "Loading the steps…");
  if (!dialog.open) dialog.showModal();
  refreshDetail();
}

const openChild = (childId) => openDetail(childId, detail.opener);

async function refreshDetail() {
  const id = detail.id;
  if (!id) return;
  const token = ++detail.token;
  const button = el["detail-refresh"];
  setBusy(button, true);
  const answer = await tryGet(`/workflows/${encodeURIComponent(id)}/steps`, { operator: true });
  if (token !== detail.token) return;
  setBusy(button, false);
  const message = el["detail-message"];
  if (answer && answer.ok && Array.isArray(answer.data)) {
    el["detail-steps"].replaceChildren(...answer.data.map((step) => stepItem(step, openChild)));
    const summary = detailSummary(id);
    if (summary) el["detail-summary"].textContent = summary;
    setNotice(message, answer.data.length ? "" : "No step recorded yet.");
    el["detail-updated"].textContent = `${plural(answer.data.length, "step")} · updated ${clock(new Date())}`;
  } else if (!answer || isAwayStatus(answer.status)) {
    setNotice(message, "The store is restarting: refresh in a moment.", "warn");
  } else if (answer.status === 404) {
    setNotice(message, `There is no workflow ${id}.`, "error");
  } else if (answer.status === 401) {
    setNotice(message, "Seeing the steps needs the operator token.", "error");
  } else {
    setNotice(message, `Could not read the steps: ${detailOf(answer)}`, "error");
  }
}

function onClosed() {
  detail.token++;
  const opener = detail.opener;
  detail.id = null;
  detail.opener = null;
  // Back where the operator was: the row's button if the row is still there.
  if (opener && opener.isConnected) opener.focus();
  else el["workflows-wrap"].focus();
}

export function initWorkflowDrawer() {
  const dialog = el["workflow-detail"];
  el["detail-close"].addEventListener("click", () => dialog.close());
  el["detail-refresh"].addEventListener("click", refreshDetail);
  dialog.addEventListener("close", onClosed);
  // A click on the backdrop (the dialog itself, outside its content) closes it too.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
}
