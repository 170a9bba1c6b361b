// One child's detail: inputs, consensus output, assertion actual vs expected, the per-pass votes.

import { get } from "./api.js";
import { h, replace } from "./dom.js";
import { duration, pct, preview, scoreClass } from "./fmt.js";
import { childStatus } from "./results.js";
import { collection, isTerminal } from "./vocab.js";
import { badge, json } from "./widgets.js";

const MAX_ROWS = 300;

/** path → leaf value, depth first ("line_items.0.price"). */
export function leaves(value, prefix = "", out = new Map()) {
  if (out.size > MAX_ROWS) return out;
  if (value !== null && typeof value === "object" && Object.keys(value).length) {
    for (const [k, v] of Object.entries(value)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix || "(value)", value);
  }
  return out;
}

function at(tree, path) {
  if (typeof tree === "number") return path === "(value)" ? tree : null;
  let cur = tree;
  for (const part of path.split(".")) {
    if (cur == null || typeof cur !== "object") return null;
    cur = cur[part];
  }
  return typeof cur === "number" ? cur : null;
}

export function votesTable(consensus, choices, likelihoods) {
  const paths = new Map(leaves(consensus));
  for (const c of choices) for (const p of leaves(c).keys()) if (!paths.has(p)) paths.set(p, undefined);
  const passes = choices.map((c) => leaves(c));
  const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  return h("div", { class: "table-wrap" },
    h("table", { class: "grid votes-table" },
      h("caption", { class: "sr-only" }, "Per-pass votes against the consensus"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Consensus"),
        choices.map((_, i) => h("th", { scope: "col" }, `Pass ${i + 1}`)), h("th", { scope: "col", class: "num" }, "Agreement"))),
      h("tbody", {}, [...paths.keys()].slice(0, MAX_ROWS).map((p) => {
        const cons = paths.get(p);
        const lk = at(likelihoods, p);
        return h("tr", {},
          h("th", { scope: "row", class: "mono" }, p),
          h("td", { class: "mono" }, preview(cons ?? null, 60)),
          passes.map((m) => h("td", { class: `mono ${same(m.get(p), cons) ? "agree" : "disagree"}` }, preview(m.get(p) ?? null, 60))),
          h("td", { class: `num mono score-${scoreClass(lk)}` }, pct(lk, 0)));
      }))));
}

export function childPanel(runId, kind, close) {
  const el = h("aside", { class: "card child-panel", "aria-labelledby": "child-title", hidden: true });
  let current = null;

  async function show(childId) {
    current = childId ?? null;
    if (!childId) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    replace(el, head("Loading…"), h("p", { class: "muted" }, "Loading the result…"));
    try {
      const r = await get(`/v1/workflows/${collection(runId)}/results/${encodeURIComponent(childId)}`);
      const art = r.artifact?.id ? await get(`/v1/workflows/artifacts/${encodeURIComponent(r.artifact.id)}`).catch(() => null) : null;
      if (current === childId) render(r, art);
    } catch (err) {
      if (current === childId) replace(el, head("Result"), h("p", { class: "error" }, `Could not load ${childId}: ${err.message}`));
    }
  }

  function head(text, status) {
    return h("div", { class: "card-head" },
      h("h2", { id: "child-title" }, text), status ? badge(status) : null,
      h("button", { type: "button", class: "icon-btn close", "aria-label": "Close result", onclick: close }, "✕"));
  }

  // How many of the passes the pass cache served (the artifact says it per pass): those were not called again.
  function passesLabel(r, art) {
    const n = r.n_passes ?? art?.n_consensus ?? "—";
    const cached = (art?.passes ?? []).filter((p) => p.cached).length;
    return cached ? `${n} (${cached} from the cache)` : String(n);
  }

  // The simulated engine answers with deterministic rules, not a model: say so wherever a result shows.
  function modelLabel(r) {
    const model = r.model ?? "—";
    return r.engine === "simulated" ? `${model} (simulated engine, no language model)` : model;
  }

  function render(r, art) {
    const st = childStatus(r);
    const a = r.assertion_result;
    const outputs = Object.fromEntries(Object.entries(r.handle_outputs ?? {}).map(([k, v]) => [k, v?.data ?? v]));
    const facts = [
      ["Result", r.id], [kind === "experiment" ? "Document" : "Eval", r.document_id ?? r.eval_id ?? r.test_id],
      ["Duration", duration(r.timing?.duration_ms)], ["Model", modelLabel(r)], ["Passes", passesLabel(r, art)],
    ];
    if (r.score != null) facts.push(["Score", pct(r.score)]);
    const sections = [
      head(kind === "experiment" ? "Document result" : "Result", st),
      h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", { class: "mono" }, String(v))))),
    ];
    if (r.lifecycle?.status === "error") sections.push(h("p", { class: "error" }, `Error: ${r.lifecycle.message ?? "(no message)"}`));
    if (a) {
      sections.push(h("h3", {}, "Assertion"),
        h("div", { class: "assertion" },
          h("div", { class: "av" }, h("div", { class: "stat-label" }, "Actual"), json(a.actual_value ?? null, "Actual value")),
          h("div", { class: "av" }, h("div", { class: "stat-label" }, "Expected"), json(a.expected_value ?? null, "Expected value"))),
        h("p", { class: a.outcome === "passed" ? "ok" : "error" },
          `${a.condition_kind ?? "condition"}: ${a.outcome}${a.failure?.message ? ` — ${a.failure.message}` : ""}`));
    }
    const cons = art?.consensus;
    if (cons?.choices?.length) {
      sections.push(h("h3", {}, `Votes (${cons.choices.length} passes)`), votesTable(art.output ?? {}, cons.choices, cons.likelihoods));
    }
    sections.push(h("h3", {}, "Consensus output"), json(outputs, "Consensus output"));
    sections.push(h("h3", {}, "Inputs"), json(r.handle_inputs ?? {}, "Inputs"));
    if (!isTerminal(r.lifecycle?.status)) sections.push(h("p", { class: "muted" }, "Not finished yet."));
    replace(el, ...sections);
  }

  return { el, show };
}
