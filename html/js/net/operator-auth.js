/* The operator token, kept for the browser session; a new one goes out as an OPERATOR_TOKEN
 * event. */
import { OPERATOR_TOKEN, emit } from "../shared/events.js";
import { readStorage, writeStorage } from "../shared/storage.js";

const TOKEN_STORAGE = "widget-store:operator-token";

let token = "";
let version = 0;

export const operatorToken = () => token;

/** Goes up with each new token: a 401 to a request sent under an older one locks nothing. */
export const tokenVersion = () => version;

export function loadOperatorToken() {
  token = readStorage(window.sessionStorage, TOKEN_STORAGE) || "";
  return token;
}

export function setOperatorToken(value) {
  token = value;
  writeStorage(window.sessionStorage, TOKEN_STORAGE, token || null);
  version += 1;
  emit(OPERATOR_TOKEN);
}
