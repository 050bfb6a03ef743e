/* A workflow's checkpointed steps as list items: name, duration, what the step does, its output
 * or error, its child workflow, and when it ran. */
import { clockMs, duration, parseTime } from "../shared/format.js";

const STEP_HINTS = {
  place_order: "order created and its widget reserved, in one transaction",
  mark_paid: "order marked paid",
  release_order: "order cancelled and its widget put back",
  tick_dispatch: "one dispatch step; the output is the steps left",
  "DBOS.setEvent": "published an event (payment id or outcome)",
  "DBOS.recv": "waited for the payment, or the shopper's cancel",
  "DBOS.sleep": "the payment deadline, set durably",
  dispatch: "started the dispatch workflow",
  plan_purchase: "a built-in shopper chose what to do",
  buy: "a built-in shopper pressed Buy Now",
  settle: "a built-in shopper paid or declined",
  restock: "a built-in shopper restocked",
};

function formatOutput(value) {
  if (typeof value === "number" && value > 1e9 && value < 1e10) {
    // Epoch seconds (mark_paid's moment of payment, the payment deadline): say when.
    return `${value} (${clockMs(new Date(value * 1000))})`;
  }
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text;
}

function node(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

/** "output" or "error", and the value (cut at 160 characters, whole in its title). */
function resultLine(step) {
  const result = node("p", step.error ? "step-error" : "step-output");
  result.dataset.testid = step.error ? "step-error" : "step-output";
  const code = node("code");
  const text = step.error ? step.error : formatOutput(step.output);
  code.textContent = text.length > 160 ? `${text.slice(0, 159)}…` : text;
  code.title = text;
  result.append(node("span", "step-label", step.error ? "error" : "output"), code);
  return result;
}

function childLine(childId, openChild) {
  const child = node("p", "step-child");
  const open = node("button", "btn-link", childId);
  open.type = "button";
  open.dataset.testid = "step-child";
  open.setAttribute("aria-label", `Show the steps of child workflow ${childId}`);
  open.addEventListener("click", () => openChild(childId));
  child.append(node("span", "step-label", "child"), open);
  return child;
}

/** One step as an <li>; its child workflow's button calls `openChild(childId)`. */
export function stepItem(step, openChild) {
  const item = node("li", "step");
  item.dataset.testid = "workflow-step";
  item.dataset.stepName = step.name;
  item.dataset.state = step.error ? "error" : step.completed_at ? "done" : "running";

  const number = node("span", "step-id", String(step.step_id));
  number.setAttribute("aria-label", `Step ${step.step_id}`);

  const body = node("div", "step-body");
  const head = node("p", "step-head");
  const name = node("span", "step-name", step.name);
  name.dataset.testid = "step-name";
  const started = parseTime(step.started_at);
  const completed = parseTime(step.completed_at);
  const took = node(
    "span",
    "step-duration",
    started && completed ? duration(completed - started) : started ? "running…" : "",
  );
  took.dataset.testid = "step-duration";
  head.append(name, took);
  body.append(head);

  if (STEP_HINTS[step.name]) body.append(node("p", "step-hint", STEP_HINTS[step.name]));
  if (step.error || step.output != null) body.append(resultLine(step));
  if (step.child_workflow_id) body.append(childLine(step.child_workflow_id, openChild));
  body.append(
    node(
      "p",
      "step-times",
      started ? `${clockMs(started)} → ${completed ? clockMs(completed) : "…"}` : "not started",
    ),
  );

  item.append(number, body);
  return item;
}
