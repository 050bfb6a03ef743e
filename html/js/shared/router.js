/* The URL's hash names the view and carries the checkout: #/store, #/checkout?key=…,
 * #/pay?key=…&payment=…, #/order?id=…&key=…. Each view registers what showing it means;
 * `route()` shows the view the URL names, once per distinct URL, and gives each showing a
 * token, so that a view's loop can tell when the shopper has moved on. */

let views = {};
let whenNone = () => false;
let shownKey = null;
let token = 0;

/**
 * `table`: {view: show(params, {token, focus})}, its `store` entry also showing any view the
 * page does not know. `none()`: for a URL without a view (a fresh visit to /); it may go
 * elsewhere and answer true, or answer false to show the store.
 */
export function defineRoutes(table, none) {
  views = table;
  whenNone = none;
}

function parseRoute() {
  const hash = window.location.hash;
  if (!hash.startsWith("#/")) return null;
  const [path, query] = hash.slice(2).split("?");
  return { view: path || "store", params: new URLSearchParams(query || "") };
}

export const currentView = () => parseRoute()?.view;

/** The token of the view shown now. */
export const currentToken = () => token;

export const isCurrentRoute = (routeToken) => routeToken === token;

export function go(view, params = {}, { replace = false } = {}) {
  const query = new URLSearchParams(params).toString();
  const hash = `#/${view}${query ? `?${query}` : ""}`;
  if (window.location.hash !== hash) {
    if (replace) window.history.replaceState(null, "", hash);
    else window.history.pushState(null, "", hash);
  }
  route({ focus: true });
}

export function route({ focus = false } = {}) {
  let current = parseRoute();
  if (!current) {
    if (whenNone()) return;
    current = { view: "store", params: new URLSearchParams() };
  }
  const key = `${current.view}?${current.params.toString()}`;
  if (key === shownKey) return;
  shownKey = key;
  token += 1;
  const show = views[current.view] || views.store;
  show(current.params, { token, focus });
}

/** Shows one view, hides the others, titles the page and, on `focus`, moves focus to the view. */
export function showView(name, { focus = false, title = "Widget Store" } = {}) {
  for (const view of document.querySelectorAll("[data-view]")) {
    view.hidden = view.dataset.view !== name;
  }
  document.title = title;
  if (focus) {
    const heading = document.querySelector(`[data-view="${name}"] h1, [data-view="${name}"] h2`);
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: false });
    }
  }
}

export function startRouting() {
  window.addEventListener("popstate", () => route({ focus: true }));
  window.addEventListener("hashchange", () => route({ focus: true }));
  route();
}
