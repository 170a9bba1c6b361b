// Number, time and percentage formatting shared by the views.

const nf = new Intl.NumberFormat();

export function num(n) {
  return n == null ? "—" : nf.format(n);
}

export function pct(x, digits = 1) {
  return x == null || Number.isNaN(x) ? "—" : `${(x * 100).toFixed(digits)}%`;
}

export function delta(now, before) {
  if (now == null || before == null) return null;
  return now - before;
}

/** "+2.5 pts" / "−1.0 pts" for a change of a [0,1] score. */
export function pts(d) {
  if (d == null) return "";
  const v = (d * 100).toFixed(1);
  return `${d >= 0 ? "+" : "−"}${v.replace("-", "")} pts`;
}

export function duration(ms) {
  if (ms == null) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "—";
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return new Date(iso).toLocaleDateString();
}

export function clock(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function shortId(id) {
  if (!id) return "—";
  const i = id.indexOf("_");
  return i > 0 && id.length - i > 9 ? `${id.slice(0, i + 1)}…${id.slice(-6)}` : id;
}

export function rate(perSecond) {
  if (perSecond == null || !Number.isFinite(perSecond)) return "—";
  return perSecond >= 100 ? `${Math.round(perSecond)}/s` : `${perSecond.toFixed(1)}/s`;
}

/** A short one-line preview of any JSON value. */
export function preview(value, max = 80) {
  if (value === undefined) return "";
  let s = typeof value === "string" ? value : JSON.stringify(value);
  if (s === undefined) s = String(value);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export function scoreClass(x) {
  if (x == null) return "na";
  return x >= 0.9 ? "good" : x >= 0.7 ? "fair" : "poor";
}
