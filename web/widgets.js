// Small shared pieces: badges, empty rows, JSON blocks, score bars.

import { h } from "./dom.js";
import { pct, pts, scoreClass } from "./fmt.js";
import { kindInfo } from "./vocab.js";

export function badge(status, extra = "") {
  return h("span", { class: `badge st-${status} ${extra}`.trim() }, status);
}

export function kindBadge(kind) {
  return h("span", { class: `kind kind-${kind}`, title: `${kind} run` }, kindInfo(kind).badge);
}

export function emptyRow(cols, text, cls = "empty") {
  return h("tr", { class: cls }, h("td", { colspan: String(cols) }, text));
}

export function json(value, label) {
  return h("pre", { class: "json", tabindex: "0", "aria-label": label }, JSON.stringify(value, null, 2) ?? "null");
}

/** A horizontal bar for a score in [0,1], coloured by how good it is. */
export function scoreBar(score, label, prior = null) {
  const clamp = (x) => `${Math.max(0, Math.min(1, x ?? 0)) * 100}%`;
  const fill = h("span", { class: `fill ${scoreClass(score)}` });
  fill.style.width = clamp(score);
  let mark = null;
  if (prior != null) {
    mark = h("span", { class: "prior-mark", title: `prior ${pct(prior)}` });
    mark.style.left = clamp(prior);
  }
  const name = `${label}: ${pct(score)}${prior != null ? `, prior ${pct(prior)}` : ""}`;
  return h("span", { class: "scorebar", role: "img", "aria-label": name }, fill, mark);
}

export function deltaChip(d) {
  if (d == null) return h("span", { class: "delta none" }, "—");
  const cls = Math.abs(d) < 0.0005 ? "same" : d > 0 ? "up" : "down";
  const arrow = cls === "same" ? "=" : d > 0 ? "▲" : "▼";
  return h("span", { class: `delta ${cls}`, title: "change against the prior run" }, `${arrow} ${pts(d)}`);
}

export function stat(label, valueEl, hint) {
  const hintEl = hint instanceof Node ? hint : hint ? h("div", { class: "stat-hint" }, hint) : null;
  return h("div", { class: "stat" }, h("div", { class: "stat-label" }, label), valueEl, hintEl);
}
