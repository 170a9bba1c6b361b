// The results of one run, a server-side page at a time (never thousands of DOM rows), patched live.

import { get } from "./api.js";
import { frameScheduler, h, latestOnly, replace, setText, throttle } from "./dom.js";
import { duration, num, pct, preview, shortId } from "./fmt.js";
import { collection } from "./vocab.js";
import { badge, emptyRow, scoreBar } from "./widgets.js";

const PAGE = 50;
const RECENT = 8;

export function childStatus(r) {
  const st = r.lifecycle?.status ?? r.status ?? "pending";
  return st === "completed" && r.verdict ? r.verdict : st;
}

export function inputPreview(inputs) {
  const first = Object.values(inputs ?? {})[0];
  if (!first) return "";
  if (first.document?.filename) return first.document.filename;
  return preview(first.data ?? first, 70);
}

/** labelOf(result) names a row (experiments pass the filenames the metrics know; a result's input names it too). */
export function resultsTable(runId, kind, open, labelOf = () => null) {
  const experiment = kind === "experiment";
  const cursors = [null];
  let next = null;
  let rows = new Map();
  let selected = null;
  let disposed = false;
  const recent = [];

  const cols = experiment
    ? ["#", "Document", "Status", "Score", "Duration"]
    : ["#", "Eval", "Status", "Input", "Actual", "Expected", "Duration"];
  const tbody = h("tbody");
  const range = h("span", { class: "muted" });
  const first = h("button", { type: "button", class: "btn", onclick: () => go(0) }, "First");
  const prev = h("button", { type: "button", class: "btn", onclick: () => go(-1) }, "← Previous");
  const nextBtn = h("button", { type: "button", class: "btn", onclick: () => go(1) }, "Next →");
  const recentList = h("ol", { class: "recent", "aria-label": "Recently finished" });
  const recentWrap = h("div", { class: "recent-wrap", hidden: true }, h("span", { class: "muted" }, "Just finished:"), recentList);
  const el = h("section", { class: "card results", "aria-labelledby": `results-title` },
    h("div", { class: "card-head" }, h("h2", { id: "results-title" }, "Results"), range),
    recentWrap,
    h("div", { class: "table-wrap" },
      h("table", { class: "grid results-table" },
        h("caption", { class: "sr-only" }, `Results of run ${runId}`),
        h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: { "#": "num", Score: "num", Duration: "num c-dur", Input: "c-input" }[c] ?? "" }, c)))),
        tbody)),
    h("nav", { class: "pager", "aria-label": "Results pages" }, first, prev, nextBtn));

  const ticket = latestOnly();
  async function load() {
    const current = ticket();
    try {
      const body = await get(`/v1/workflows/${collection(runId)}/results`, { run_id: runId, limit: PAGE, order: "asc", after: cursors[cursors.length - 1] });
      if (disposed || !current()) return;
      next = body.list_metadata?.after ?? null;
      show(body.data ?? []);
    } catch (err) {
      if (!disposed) replace(tbody, emptyRow(cols.length, `Could not load results: ${err.message}`, "error"));
    }
  }

  function show(list) {
    rows = new Map();
    const offset = (cursors.length - 1) * PAGE;
    replace(tbody, list.length ? list.map((r, i) => makeRow(r, offset + i + 1)) : emptyRow(cols.length, "No results yet."));
    setText(range, list.length ? `rows ${num(offset + 1)}–${num(offset + list.length)}` : "");
    first.disabled = prev.disabled = cursors.length <= 1;
    nextBtn.disabled = !next;
    highlight();
  }

  function makeRow(r, n) {
    const statusCell = h("td", {}, badge(childStatus(r)));
    const id = experiment ? r.document_id : r.eval_id ?? r.test_id ?? r.id;
    // An experiment row is named by its document's filename, from the metrics or from the result's own input.
    const name = labelOf(r) ?? r.eval_name ?? (experiment ? inputPreview(r.handle_inputs) || null : null);
    const link = h("a", { href: `#/runs/${runId}/results/${r.id}`, class: name ? "" : "mono", title: id, "aria-label": `Open result ${n}` }, name ?? shortId(id));
    const cells = [h("td", { class: "num muted" }, String(n)), h("td", {}, link), statusCell];
    let scoreCell = null;
    if (experiment) {
      scoreCell = h("td", { class: "num" }, scoreCellContent(r.score));
      cells.push(scoreCell);
    } else {
      const a = r.assertion_result;
      cells.push(h("td", { class: "ellipsis mono muted c-input", title: inputPreview(r.handle_inputs) }, inputPreview(r.handle_inputs)));
      cells.push(h("td", { class: "ellipsis mono" }, a ? preview(a.actual_value, 40) : ""));
      cells.push(h("td", { class: "ellipsis mono" }, a ? preview(a.expected_value, 40) : ""));
    }
    const dur = h("td", { class: "num mono muted c-dur" }, duration(r.timing?.duration_ms));
    cells.push(dur);
    const tr = h("tr", { "data-result-id": r.id, class: "clickable", onclick: (e) => e.target.closest("a") || open(r.id) }, cells);
    rows.set(r.id, { tr, statusCell, scoreCell, status: childStatus(r) });
    return tr;
  }

  function scoreCellContent(score) {
    return score == null ? "—" : h("span", { class: "score-inline" }, scoreBar(score, "score"), h("span", { class: "mono" }, pct(score)));
  }

  const pending = new Map();
  const paint = frameScheduler(() => {
    for (const [id, c] of pending) {
      const row = rows.get(id);
      if (!row) continue;
      const st = childStatus(c);
      if (st !== row.status) {
        row.status = st;
        replace(row.statusCell, badge(st));
      }
      if (row.scoreCell && c.score != null) replace(row.scoreCell, scoreCellContent(c.score));
    }
    pending.clear();
    recentWrap.hidden = recent.length === 0;
    replace(recentList, recent.map((c) => h("li", {}, h("a", { href: `#/runs/${runId}/results/${c.id}`, "aria-label": `Open recently finished result ${c.id}` }, badge(childStatus(c), "sm"), h("span", { class: "mono" }, shortId(c.id))))));
  }, 100);

  // Fill in what the feed does not carry (actual values, durations) without refetching per event.
  const refetch = throttle(load, 1500);

  function onChild(c) {
    recent.unshift(c);
    if (recent.length > RECENT) recent.length = RECENT;
    if (rows.has(c.id)) {
      pending.set(c.id, c);
      refetch();
    }
    paint();
  }

  function go(step) {
    if (step === 0) cursors.length = 1;
    else if (step > 0 && next) cursors.push(next);
    else if (step < 0 && cursors.length > 1) cursors.pop();
    load();
  }

  function highlight() {
    for (const [id, row] of rows) row.tr.classList.toggle("selected", id === selected);
  }

  return {
    el,
    onChild,
    refresh: load,
    select(id) {
      selected = id;
      highlight();
    },
    dispose() {
      disposed = true;
      refetch.cancel();
    },
  };
}
