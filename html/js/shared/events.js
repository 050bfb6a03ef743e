/* The page's few events, dispatched on `document`: one module says what happened and any other
 * may listen, so neither needs to know the other.
 *
 *   CONNECTION      {away, restart?}  the store went away, or came back; `restart`, once /health
 *                                     answers from a new process after the crash button:
 *                                     {health, seconds} (`away` may still be true then)
 *   HEALTH          {health, demo, sandbox, first}  each answer of GET /health
 *   PRODUCT         {product}         the product as last read (GET /product, POST /restock)
 *   OPERATOR_TOKEN  {}                the operator entered a token
 *   STATS           {stats}           each answer of GET /stats
 *   ORDER_SHOWN     {orderId}         the order view shows this order
 */
export const CONNECTION = "widget-store:connection";
export const HEALTH = "widget-store:health";
export const PRODUCT = "widget-store:product";
export const OPERATOR_TOKEN = "widget-store:operator-token";
export const STATS = "widget-store:stats";
export const ORDER_SHOWN = "widget-store:order-shown";

export function emit(name, detail = {}) {
  document.dispatchEvent(new CustomEvent(name, { detail }));
}

/** Calls `handler(detail)` for every `name` event. */
export function on(name, handler) {
  document.addEventListener(name, (event) => handler(event.detail));
}
