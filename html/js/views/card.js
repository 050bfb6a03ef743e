/* Stripe mode: the card the payment view takes. GET /health names Stripe.js and the store's
 * publishable key; Stripe.js is loaded from there once (the Content-Security-Policy allows
 * that origin and no other) and mounts its card element in the view. Paying turns the card into
 * a token (stripe.createToken) in the browser: the card itself never reaches the store. */

let ready = null; // the promise of {stripe, card}, once Stripe.js is loading
let loadedFrom = null;

/** Stripe's part of a /health answer: {publishable_key, js_url}, or null without Stripe. */
export const stripeOf = (health) =>
  health && health.stripe && typeof health.stripe.js_url === "string" ? health.stripe : null;

function loadScript(url) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = url;
    script.async = true;
    script.addEventListener("load", resolve);
    script.addEventListener("error", () => reject(new Error(`Stripe.js did not load from ${url}`)));
    document.head.append(script);
  });
}

/**
 * Stripe.js loaded and its card element mounted in `container`: resolves with {stripe, card}.
 * A failed load is forgotten, so the next call tries again.
 */
export function mountCard(config, container) {
  if (ready && loadedFrom === config.js_url) return ready;
  loadedFrom = config.js_url;
  ready = (async () => {
    await loadScript(config.js_url);
    const stripe = window.Stripe(config.publishable_key);
    const card = stripe.elements().create("card");
    card.mount(container);
    return { stripe, card };
  })();
  ready.catch(() => {
    ready = null;
    loadedFrom = null;
  });
  return ready;
}

/** The card's token, or {error} with Stripe's words for what is wrong with the card. */
export async function tokenFor({ stripe, card }) {
  try {
    const made = await stripe.createToken(card);
    if (made && made.token && made.token.id) return { token: made.token.id };
    const error = made && made.error;
    return { error: (error && error.message) || "Stripe did not take this card" };
  } catch (error) {
    return { error: (error && error.message) || "Stripe did not answer" };
  }
}

/** A card that asks the shopper to authenticate (3-D Secure): Stripe.js does it. */
export async function authenticate({ stripe }, clientSecret) {
  try {
    const done = await stripe.confirmCardPayment(clientSecret);
    return done && done.error ? done.error.message || "Authentication failed" : null;
  } catch (error) {
    return (error && error.message) || "Authentication failed";
  }
}
