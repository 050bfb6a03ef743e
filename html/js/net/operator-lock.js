/* Operator routes answer 401 in production until the token is given: after a 401 a module stops
 * asking (no console error every second) until the token changes. */
import { api } from "./api.js";
import { operatorToken, tokenVersion } from "./operator-auth.js";

/** GETs of one operator route, that stop after a 401 until `reopen()`. */
export function operatorLock() {
  let shut = false;
  return {
    reopen() {
      shut = false;
    },
    /** The answer, with the operator token; null without asking while a 401 stands. */
    async get(path) {
      if (shut) return null;
      const sentUnder = tokenVersion();
      const answer = await api(path, { operator: true });
      // A 401 to a request sent under an older token says nothing of the new one.
      if (answer.status === 401 && sentUnder === tokenVersion()) shut = true;
      return answer;
    },
  };
}

/** What a locked panel says instead of `what`: enter the token, or enter it again. */
export const lockedText = (what) =>
  operatorToken()
    ? `The operator token was refused: enter it again to see ${what}.`
    : `Enter the operator token to see ${what}.`;
