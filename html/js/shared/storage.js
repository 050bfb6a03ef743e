/* localStorage and sessionStorage, when the browser allows them: with storage disabled or full
 * the URL alone still carries the checkout. */

export function readStorage(storage, key) {
  try {
    return storage.getItem(key);
  } catch {
    return null;
  }
}

/** Stores `value`, or removes the key when it is null. */
export function writeStorage(storage, key, value) {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, value);
  } catch {
    /* storage disabled or full */
  }
}

/** The JSON stored under `key`, or null when there is none or it does not parse. */
export function readJson(storage, key) {
  const raw = readStorage(storage, key);
  if (!raw) return null;
  try {
    return JSON.parse(raw);
  } catch {
    return null;
  }
}
