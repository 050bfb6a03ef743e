/* An order's status as the page shows it: its name, its badge, and its dispatch progress bar
 * (the order view's and each recent order's). */

const STATUS_NAMES = { "-1": "CANCELLED", 0: "PENDING", 2: "PAID", 1: "DISPATCHED" };
export const FINAL = new Set(["DISPATCHED", "CANCELLED"]);
export const DISPATCH_STEPS = 10;

const BADGE_TEXT = {
  PENDING: "Awaiting payment",
  PAID: "Dispatching",
  DISPATCHED: "Dispatched",
  CANCELLED: "Cancelled",
};

export const badgeText = (status) => BADGE_TEXT[status] || status;

export const statusName = (order) => order.status || STATUS_NAMES[order.order_status] || "UNKNOWN";

export const isFinal = (order) => FINAL.has(statusName(order));

export function stepsDone(order) {
  const status = statusName(order);
  if (status === "DISPATCHED") return DISPATCH_STEPS;
  if (status === "PAID") return DISPATCH_STEPS - Number(order.progress_remaining || 0);
  return 0;
}

export function setProgress(bar, order, label) {
  const status = statusName(order);
  const done = Math.max(0, Math.min(DISPATCH_STEPS, stepsDone(order)));
  bar.dataset.status = status;
  bar.setAttribute("aria-valuenow", String(done));
  bar.setAttribute("aria-valuetext", label || `${done} of ${DISPATCH_STEPS} dispatch steps done`);
  bar.querySelector(".progress-fill").style.width = `${(done / DISPATCH_STEPS) * 100}%`;
  return done;
}

export function makeProgressBar() {
  const bar = document.createElement("div");
  bar.className = "progress";
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", String(DISPATCH_STEPS));
  const fill = document.createElement("div");
  fill.className = "progress-fill";
  bar.append(fill);
  return bar;
}
