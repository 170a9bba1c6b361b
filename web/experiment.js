// Experiment metrics: score vs prior, per-field agreement bars, documents worst first, and the
// votes of one document × field.

import { get } from "./api.js";
import { h, latestOnly, replace, setText } from "./dom.js";
import { delta, num, pct, scoreClass } from "./fmt.js";
import { deltaChip, emptyRow, scoreBar } from "./widgets.js";

const DOCS_PAGE = 15;
const METRICS = "/v1/workflows/experiments/metrics";

export function experimentPanel(runId, onNames = () => {}) {
  let docs = [];
  const names = new Map();
  let docPage = 0;
  let priorByField = { key: null, values: new Map() };
  let last = null;
  let disposed = false;
  let openDoc = null;

  const scoreValue = h("div", { class: "big-score mono", "data-metric": "score" }, "—");
  const scoreSub = h("div", { class: "stat-hint" });
  const priorLine = h("div", { class: "prior" });
  const fields = h("ul", { class: "field-bars", "aria-label": "Agreement per field" });
  const docBody = h("tbody");
  const docRange = h("span", { class: "muted" });
  const prevBtn = h("button", { type: "button", class: "btn", onclick: () => pageDocs(-1) }, "← Previous");
  const nextBtn = h("button", { type: "button", class: "btn", onclick: () => pageDocs(1) }, "Next →");
  const detail = h("div", { class: "doc-detail", hidden: true });
  const notice = h("p", { class: "muted notice", hidden: true });

  const grid = h("div", { class: "exp-grid" },
    h("div", { class: "exp-score" }, h("div", { class: "stat-label" }, "Consensus score"), scoreValue, priorLine, scoreSub),
    h("div", { class: "exp-fields" }, h("h3", {}, "Field agreement ", h("span", { class: "muted" }, "(worst first)")), fields));
  const docsBlock = h("div", { class: "exp-docs" },
    h("div", { class: "card-head" }, h("h3", {}, "Documents ", h("span", { class: "muted" }, "(worst first)")), docRange),
    h("div", { class: "table-wrap" },
      h("table", { class: "grid docs-table" },
        h("caption", { class: "sr-only" }, "Documents sorted by score, worst first"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Document"), h("th", { scope: "col" }, "Score"),
          h("th", { scope: "col", class: "num" }, "Prior"), h("th", { scope: "col", class: "num" }, "Change"),
          h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
        docBody)),
    h("nav", { class: "pager", "aria-label": "Document pages" }, prevBtn, nextBtn));
  const el = h("section", { class: "card experiment", "aria-labelledby": "exp-title" },
    h("div", { class: "card-head" }, h("h2", { id: "exp-title" }, "Experiment metrics")),
    notice, grid, docsBlock, detail);

  /** final: the run is over, so the per-field change against the prior run is worth its requests. */
  const ticket = latestOnly();
  async function refresh(final = false) {
    const current = ticket();
    let s;
    try {
      // The 1,000 worst documents (the summary lists a page of them; the list below pages them by 15).
      s = await get(METRICS, { run_id: runId, view: "summary", include_prior: "true", order_by: "score", limit: 1000 });
    } catch (err) {
      return current() && say(`Metrics unavailable: ${err.message}`);
    }
    if (disposed || !current()) return;
    if (s.kind === "stale_metrics") {
      const score = s.last_run?.score;
      return say(`${s.message ?? "These metrics are stale."}${score != null ? ` This run scored ${pct(score)}.` : ""}`, true);
    }
    if (s.kind === "no_metrics") return say(s.message ?? "No metrics yet: they appear as documents finish.", true);
    say("");
    last = s;
    render(s);
    if (final && s.prior_run_id) await fieldPriors(s);
  }

  async function fieldPriors(s) {
    const key = `${s.prior_run_id}:${s.scored_document_count}`;
    if (priorByField.key === key) return;
    priorByField = { key, values: new Map() };
    const paths = Object.keys(s.aggregate?.likelihoods ?? {}).slice(0, 40);
    const answers = await Promise.all(paths.map((p) =>
      get(METRICS, { run_id: runId, view: "by_target", target_path: p, include_prior: "true" }).catch(() => null)));
    if (disposed || priorByField.key !== key) return;
    paths.forEach((p, i) => answers[i]?.prior_score != null && priorByField.values.set(p, answers[i].prior_score));
    render(last);
  }

  function say(text, empty = false) {
    notice.hidden = !text;
    setText(notice, text);
    grid.hidden = docsBlock.hidden = empty && !last;
  }

  function render(s) {
    setText(scoreValue, pct(s.score));
    scoreValue.className = `big-score mono score-${scoreClass(s.score)}`;
    replace(priorLine, s.prior_score == null
      ? h("span", { class: "muted" }, "no prior run to compare")
      : [h("span", { class: "muted" }, `prior ${pct(s.prior_score)} `), deltaChip(delta(s.score, s.prior_score)),
         h("a", { href: `#/runs/${s.prior_run_id}`, class: "prior-link" }, "prior run")]);
    setText(scoreSub, `${num(s.scored_document_count)} of ${num(s.total_document_count)} documents scored`);
    const lk = s.aggregate?.likelihoods ?? s.aggregate?.diag ?? {};
    const entries = Object.entries(lk).sort((a, b) => a[1] - b[1]);
    replace(fields, entries.length ? entries.slice(0, 60).map(([path, v]) => {
      const prior = priorByField.values.get(path) ?? null;
      return h("li", { class: "field-bar", "data-field": path },
        h("span", { class: "fb-name mono", title: path }, path),
        scoreBar(v, `Agreement on ${path}`, prior),
        h("span", { class: "fb-value mono" }, pct(v)),
        s.prior_run_id ? deltaChip(delta(v, prior)) : null);
    }) : h("li", { class: "muted" }, "No field scores yet."));
    docs = [...(s.documents ?? [])].sort((a, b) => (a.score ?? 2) - (b.score ?? 2));
    const before = names.size;
    for (const d of docs) if (d.filename && names.size < 50000) names.set(d.id, d.filename);
    if (names.size !== before) onNames();
    docPage = Math.min(docPage, Math.max(0, Math.ceil(docs.length / DOCS_PAGE) - 1));
    renderDocs();
  }

  function renderDocs() {
    const start = docPage * DOCS_PAGE;
    const slice = docs.slice(start, start + DOCS_PAGE);
    replace(docBody, slice.length ? slice.map((d) => h("tr", { "data-document-id": d.id, class: openDoc === d.id ? "selected" : "" },
      h("td", { class: "ellipsis" }, h("span", { title: d.id }, d.filename || d.id)),
      h("td", {}, h("span", { class: "score-inline" }, scoreBar(d.score, `Score of ${d.filename}`), h("span", { class: "mono" }, pct(d.score)))),
      h("td", { class: "num mono muted" }, pct(d.prior_score)),
      h("td", { class: "num" }, deltaChip(delta(d.score, d.prior_score))),
      h("td", { class: "num" }, h("button", { type: "button", class: "btn sm", "aria-label": `Inspect ${d.filename || d.id}`, onclick: () => inspect(d) }, "Inspect"))))
      : emptyRow(5, "No scored documents yet."));
    setText(docRange, docs.length ? `${num(start + 1)}–${num(start + slice.length)} of ${num(docs.length)}` : "");
    prevBtn.disabled = docPage === 0;
    nextBtn.disabled = start + DOCS_PAGE >= docs.length;
  }

  function pageDocs(step) {
    docPage = Math.max(0, docPage + step);
    renderDocs();
  }

  async function inspect(doc) {
    openDoc = doc.id;
    renderDocs();
    detail.hidden = false;
    replace(detail, h("p", { class: "muted" }, "Loading…"));
    detail.scrollIntoView({ block: "nearest" });
    try {
      const d = await get(METRICS, { run_id: runId, view: "by_document", document_id: doc.id, include_prior: "true" });
      const targets = d.targets ?? [];
      const votesSlot = h("div", { class: "votes-slot" });
      replace(detail,
        h("div", { class: "card-head" }, h("h3", { id: "doc-title" }, `Fields of ${doc.filename || doc.id}`),
          h("button", { type: "button", class: "icon-btn close", "aria-label": "Close document", onclick: () => { openDoc = null; detail.hidden = true; renderDocs(); } }, "✕")),
        h("div", { class: "doc-split" },
          h("ul", { class: "target-list", "aria-label": "Fields of this document, worst first" }, targets.map((t) =>
            h("li", {}, h("button", { type: "button", class: "target-btn", "aria-label": `Votes for ${t.path}`, onclick: (e) => votes(doc, t.path, votesSlot, e.currentTarget) },
              h("span", { class: "mono" }, t.path), scoreBar(t.score, `Agreement on ${t.path}`), h("span", { class: "mono" }, pct(t.score)))))),
          votesSlot));
      if (targets.length) await votes(doc, targets[0].path, votesSlot, detail.querySelector(".target-btn"));
      detail.scrollIntoView({ block: "nearest" });
    } catch (err) {
      replace(detail, h("p", { class: "error" }, `Could not load the document: ${err.message}`));
    }
  }

  async function votes(doc, path, slot, btn) {
    for (const b of detail.querySelectorAll(".target-btn")) b.setAttribute("aria-pressed", String(b === btn));
    replace(slot, h("p", { class: "muted" }, "Loading votes…"));
    try {
      const v = await get(METRICS, { run_id: runId, view: "votes", document_id: doc.id, target_path: path, include_prior: "true" });
      const n = Math.max(0, ...(v.rows ?? []).map((r) => (r.votes ?? []).length));
      const show = (x) => (x === undefined || x === null ? "∅" : typeof x === "string" ? x : JSON.stringify(x));
      replace(slot,
        h("h4", {}, "Votes for ", h("span", { class: "mono" }, path), " ", h("span", { class: "muted" }, `score ${pct(v.score)}`)),
        h("div", { class: "table-wrap" }, h("table", { class: "grid votes-table", "aria-label": `Votes for ${path}` },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Consensus"),
            Array.from({ length: n }, (_, i) => h("th", { scope: "col" }, `Pass ${i + 1}`)), h("th", { scope: "col", class: "num" }, "Agreement"))),
          h("tbody", {}, (v.rows ?? []).map((r) => h("tr", {},
            h("td", { class: "mono strong" }, show(r.consensus)),
            Array.from({ length: n }, (_, i) => {
              const x = r.votes?.[i];
              return h("td", { class: `mono ${JSON.stringify(x ?? null) === JSON.stringify(r.consensus ?? null) ? "agree" : "disagree"}` }, show(x));
            }),
            h("td", { class: `num mono score-${scoreClass(r.score)}` }, pct(r.score))))))));
    } catch (err) {
      replace(slot, h("p", { class: "error" }, `Could not load votes: ${err.message}`));
    }
  }

  return {
    el,
    refresh,
    filename: (documentId) => names.get(documentId) ?? null,
    dispose() {
      disposed = true;
    },
  };
}
