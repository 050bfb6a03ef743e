/* The built-in shoppers (demo mode only: /load answers 404 in production): the form that starts
 * or changes them, its purchase mix, and their state as each STATS event tells it. */
import { api, detailOf } from "../net/api.js";
import { el, setBusy, setNotice } from "../shared/dom.js";
import { HEALTH, STATS, on } from "../shared/events.js";
import { plural } from "../shared/format.js";
import { refreshFiguresNow } from "./figures.js";

const LOAD_FIELDS = [
  ["shoppers", "load-shoppers", 1, 64, "Shoppers"],
  ["pay_weight", "load-pay", 0, 100, "Pay"],
  ["decline_weight", "load-decline", 0, 100, "Decline"],
  ["abandon_weight", "load-abandon", 0, 100, "Abandon"],
];

let touched = false; // the operator is editing the form: do not overwrite it

function readLoadForm() {
  const body = {};
  for (const [name, id, min, max, label] of LOAD_FIELDS) {
    const input = el[id];
    const raw = input.value.trim();
    const value = Number(raw);
    const valid = raw !== "" && Number.isInteger(value) && value >= min && value <= max;
    if (valid) input.removeAttribute("aria-invalid");
    else input.setAttribute("aria-invalid", "true");
    if (!valid) return { error: `${label}: enter a whole number from ${min} to ${max}.`, input };
    body[name] = value;
  }
  return { body };
}

function renderMix() {
  const weight = (id) => {
    const value = Number(el[id].value);
    return Number.isFinite(value) && value > 0 ? value : 0;
  };
  const parts = [
    ["pay", weight("load-pay")],
    ["decline", weight("load-decline")],
    ["abandon", weight("load-abandon")],
  ];
  const total = parts.reduce((sum, [, value]) => sum + value, 0);
  const bar = el["load-mix-bar"];
  for (const [name, value] of parts) {
    bar.querySelector(`.mix-${name}`).style.flexGrow = String(total ? value : name === "pay" ? 1 : 0);
  }
  el["load-mix"].textContent = total
    ? parts
        .filter(([, value]) => value > 0)
        .map(([name, value]) => `${Math.round((value / total) * 100)}% ${name}`)
        .join(" · ") + (weight("load-abandon") ? " (an abandoned checkout times out)" : "")
    : "No weights: every shopper pays.";
}

function renderLoad(load) {
  const node = el["load-state"];
  node.dataset.running = String(Boolean(load.running));
  node.querySelector(".load-state-text").textContent = load.running
    ? `Running · ${plural(load.shoppers, "shopper")} · generation ${load.generation}`
    : "Stopped";
  el["load-start"].textContent = load.running ? "Apply to the shoppers" : "Start shoppers";
  if (!el["load-stop"].hasAttribute("aria-busy")) el["load-stop"].disabled = !load.running;
  // Show what is running, unless the operator is editing the form.
  if (load.running && !touched) {
    el["load-shoppers"].value = String(load.shoppers);
    el["load-pay"].value = String(load.pay_weight);
    el["load-decline"].value = String(load.decline_weight);
    el["load-abandon"].value = String(load.abandon_weight);
    renderMix();
  }
}

async function postLoad(path, body, button, done) {
  const message = el["load-message"];
  button.disabled = true;
  setBusy(button, true);
  let answer = null;
  try {
    answer = await api(path, { method: "POST", body });
  } catch {
    setNotice(message, "The store is restarting: try again in a moment.", "warn");
  } finally {
    setBusy(button, false);
    button.disabled = false;
  }
  if (!answer) return;
  if (answer.ok && answer.data) {
    touched = false;
    renderLoad(answer.data);
    setNotice(message, done(answer.data), "ok");
    refreshFiguresNow();
  } else if (answer.status === 404) {
    setNotice(message, "The built-in shoppers are off: this store runs in production mode.", "error");
  } else {
    setNotice(message, `The store refused: ${detailOf(answer)}`, "error");
  }
}

function onLoadStart(event) {
  event.preventDefault();
  const { body, error, input } = readLoadForm();
  if (error) {
    setNotice(el["load-message"], error, "error");
    input.focus();
    return;
  }
  postLoad("/load", body, el["load-start"], (load) =>
    `Started ${plural(load.shoppers, "shopper")} (generation ${load.generation}). They buy through the same doors as a person.`,
  );
}

function onLoadStop() {
  postLoad("/load/stop", undefined, el["load-stop"], () =>
    "Stopping: each shopper finishes its current purchase, then leaves.",
  );
}

export function initShoppers() {
  renderMix();
  const form = el["load-form"];
  form.addEventListener("submit", onLoadStart);
  form.addEventListener("input", () => {
    touched = true;
    renderMix();
  });
  el["load-stop"].addEventListener("click", onLoadStop);
  on(STATS, ({ stats }) => {
    if (stats.load) renderLoad(stats.load);
  });
  on(HEALTH, ({ demo }) => {
    el["load-panel"].hidden = !demo;
  });
}
