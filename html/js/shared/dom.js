/* Finding the page's elements, and writing into them so that live regions speak only when
 * something really changes. */

export const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

/** `el.buy`, `el["pay-message"]`: the element with that data-testid. */
export const el = new Proxy({}, { get: (_, id) => byTestId(String(id)) });

export function setNotice(node, text, tone = "") {
  delete node.dataset.kind;
  node.textContent = text;
  if (tone) node.dataset.tone = tone;
  else delete node.dataset.tone;
}

/** A notice that states a fact (sold out, checkout pending) and goes when it stops being true. */
export function setAutoNotice(node, kind, text = "", tone = "") {
  if (kind) {
    if (node.dataset.kind !== kind) {
      setNotice(node, text, tone);
      node.dataset.kind = kind;
    }
  } else if (node.dataset.kind) {
    setNotice(node, "");
  }
}

/** Writes only a change: live regions then speak only when a figure really moves. */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function announce(text) {
  el.announcer.textContent = text;
}

export function setBusy(button, busy) {
  if (busy) button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
}

export const isBusy = (button) => button.getAttribute("aria-busy") === "true";

/** Disables or enables every button given. */
export function setDisabled(buttons, disabled) {
  for (const button of buttons) button.disabled = disabled;
}

/**
 * Makes `nodes` the children of `parent`, in order, moving only what moved (so focus and hover
 * survive a refresh) and removing the rest.
 */
export function placeInOrder(parent, nodes) {
  nodes.forEach((node, index) => {
    if (parent.children[index] !== node) parent.insertBefore(node, parent.children[index] || null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}
