// Tokens, cost and the pass cache, as a run's `usage` says them (updated by every feed event).

import { h, setText } from "./dom.js";
import { num, pct } from "./fmt.js";
import { stat } from "./widgets.js";

/** "$0.0123"; tiny amounts keep their digits. Null (no price for a call): never a made-up figure. */
export function usd(x) {
  if (x == null) return null;
  if (x === 0) return "$0.00";
  return x >= 0.01 ? `$${x.toFixed(2)}` : x >= 0.0001 ? `$${x.toFixed(4)}` : `$${x.toPrecision(2)}`;
}

export function tokens(u) {
  return u ? u.input_tokens + u.output_tokens : null;
}

/** One cell of the runs list: tokens, then the cost or why there is none. */
export function usageCell(u) {
  if (!u) return { text: "—", title: "" };
  const cost = usd(u.cost_usd);
  const text = `${num(tokens(u))}${cost ? ` · ${cost}` : ""}`;
  const parts = [`${num(u.input_tokens)} input + ${num(u.output_tokens)} output tokens`];
  parts.push(cost ? `cost ${cost}` : "no cost: no price for the model in the models file");
  if (u.estimated) parts.push("tokens estimated by the simulated engine (no language model)");
  if (u.cache_hits) parts.push(`${num(u.cache_hits)} passes from the cache`);
  return { text, title: parts.join(" · ") };
}

/** The run detail's usage row: tokens, cost, passes from the cache, engine calls. */
export function usagePanel() {
  const v = {
    tokens: h("div", { class: "stat-value mono", "data-stat": "tokens" }, "—"),
    tokensHint: h("div", { class: "stat-hint" }, "input + output"),
    cost: h("div", { class: "stat-value mono", "data-stat": "cost" }, "—"),
    costHint: h("div", { class: "stat-hint" }),
    cached: h("div", { class: "stat-value mono", "data-stat": "cache" }, "—"),
    cachedHint: h("div", { class: "stat-hint" }),
    calls: h("div", { class: "stat-value mono", "data-stat": "engine-calls" }, "—"),
  };
  const el = h("div", { class: "stats usage", "aria-label": "Tokens and cost" },
    stat("Tokens", v.tokens, v.tokensHint),
    stat("Cost", v.cost, v.costHint),
    stat("From the cache", v.cached, v.cachedHint),
    stat("Engine calls", v.calls, "retries included"));

  function update(run) {
    const u = run?.usage;
    if (!u) return;
    setText(v.tokens, num(tokens(u)));
    setText(v.tokensHint, u.estimated
      ? `${num(u.input_tokens)} in · ${num(u.output_tokens)} out, estimated by the simulated engine`
      : `${num(u.input_tokens)} in · ${num(u.output_tokens)} out`);
    const cost = usd(u.cost_usd);
    setText(v.cost, cost ?? "—");
    const failed = u.failed_calls ? ` (${num(u.failed_calls)} failed calls report no tokens: not priced)` : "";
    setText(v.costHint, cost ? `for the calls this run made${failed}` : "no price for the model: add it to [prices] in the models file");
    setText(v.cached, u.cache_hit_rate == null ? (run.cache === false ? "off" : "—") : pct(u.cache_hit_rate, 0));
    const saved = u.saved ?? {};
    const savedCost = usd(saved.cost_usd);
    setText(v.cachedHint, run.cache === false
      ? "this run called every pass"
      : `${num(u.cache_hits)} passes, saved ${num(saved.total_tokens)} tokens${savedCost ? ` (${savedCost})` : ""}`);
    setText(v.calls, num(u.engine_calls));
  }
  return { el, update };
}
