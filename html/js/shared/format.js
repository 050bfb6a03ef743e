/* How the page writes money, times, durations, rates and counts. */

export const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

export const count = new Intl.NumberFormat("en-US");

export function parseTime(value) {
  if (!value) return null;
  // The store's order times are UTC without a zone; say so before parsing.
  const iso = /([zZ]|[+-]\d\d:?\d\d)$/.test(value) ? value : `${value}Z`;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function ago(date) {
  if (!date) return "";
  const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  return date.toLocaleDateString();
}

export const clock = (date) =>
  date ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** Local time with milliseconds, for workflow steps a few ms apart. */
export const clockMs = (date) =>
  date
    ? `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
    : "";

export function duration(ms) {
  if (ms == null || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export const rate = (perSecond) =>
  `${perSecond >= 10 ? Math.round(perSecond) : Number(perSecond.toFixed(perSecond < 1 ? 2 : 1))}/s`;

export const plural = (n, word, words = `${word}s`) => `${count.format(n)} ${n === 1 ? word : words}`;
