// #/runs: every run, newest first, live from the all-runs feed, filtered and paginated.

import { get } from "./api.js";
import { progressBar } from "./bar.js";
import { frameScheduler, h, latestOnly, replace, setText, throttle } from "./dom.js";
import { Feed, connection } from "./feed.js";
import { ago, duration, num, pct, scoreClass, shortId } from "./fmt.js";
import { usageCell } from "./usage.js";
import { durationMs, finished, isOpen, mergeRun, scoreOf, status, total, workflowName } from "./model.js";
import { KINDS, STATUSES, kindOf } from "./vocab.js";
import { badge, emptyRow, kindBadge } from "./widgets.js";

const PAGE = 25;
const NO_FILTERS = { kind: "", status: "", workflow: "" };

/** The filters an address asks for (#/runs?kind=…&status=…&workflow=…). */
function filtersOf(params) {
  return { kind: params.get("kind") ?? "", status: params.get("status") ?? "", workflow: params.get("workflow") ?? "" };
}

export function runsView(root, route) {
  let filters = filtersOf(route.params);
  const cursors = [null]; // the `after` cursor of each page visited; the last is the current page
  let nextCursor = null;
  const rows = new Map();
  const dirty = new Set();
  let disposed = false;

  const select = (name, label, options) =>
    h("label", { class: "field" }, h("span", {}, label),
      h("select", { name, "aria-label": label, onchange: onFilter },
        options.map(([v, t]) => h("option", { value: v, selected: filters[name] === v }, t))));
  const kindSel = select("kind", "Kind", [["", "All kinds"], ...KINDS.map((k) => [k.kind, k.label])]);
  const statusSel = select("status", "Status", [["", "Any status"], ...STATUSES.map((s) => [s, s])]);
  const wfSel = select("workflow", "Workflow", [["", "All workflows"]]);
  const clearBtn = h("button", { type: "button", class: "btn ghost", onclick: () => choose(NO_FILTERS) }, "Clear filters");
  const count = h("span", { class: "muted", role: "status" });
  const tbody = h("tbody");
  const newer = h("button", { type: "button", class: "btn", onclick: () => page(-1) }, "← Newer");
  const older = h("button", { type: "button", class: "btn", onclick: () => page(1) }, "Older →");
  const pageLabel = h("span", { class: "muted" });

  const view = h("section", { class: "view", "aria-labelledby": "runs-title" },
    h("div", { class: "view-head" }, h("h1", { id: "runs-title" }, "Runs"), count,
      h("a", { href: "#/new", class: "btn primary head-action" }, "New run")),
    h("form", { class: "filters", role: "search", "aria-label": "Filter runs", onsubmit: (e) => e.preventDefault() },
      kindSel, statusSel, wfSel, clearBtn),
    h("div", { class: "table-wrap" },
      h("table", { class: "grid runs-table" },
        h("caption", { class: "sr-only" }, "Runs, newest first"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Run"), h("th", { scope: "col", class: "c-wf" }, "Workflow"),
          h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "c-progress" }, "Progress"),
          h("th", { scope: "col", class: "num c-fin" }, "Finished"), h("th", { scope: "col", class: "num c-dur" }, "Duration"),
          h("th", { scope: "col", class: "num" }, "Score"), h("th", { scope: "col", class: "num c-usage" }, "Tokens · cost"),
          h("th", { scope: "col", class: "c-when" }, "Created"))),
        tbody)),
    h("nav", { class: "pager", "aria-label": "Runs pages" }, newer, pageLabel, older));
  replace(root, view);

  const control = { kind: kindSel, status: statusSel, workflow: wfSel };

  function onFilter(e) {
    // Only the control that changed: the workflow of a link may not be among the options yet.
    choose({ ...filters, [e.target.name]: e.target.value });
  }

  /** The user's choice: applied at once (controls and list), then written to the address. The
   *  hashchange comes later, as a separate task, and finds it applied. Waiting for it instead left the
   *  old values in the controls meanwhile, and a filter changed in between read them back and
   *  undid "Clear filters". */
  function choose(f) {
    applyFilters(f);
    const q = new URLSearchParams(Object.entries(f).filter(([, v]) => v)).toString();
    const hash = `#/runs${q ? `?${q}` : ""}`;
    if (location.hash !== hash) location.hash = hash;
  }

  /** Show the runs matching `f` from the first page (from a choice, or the address: back, a link). */
  function applyFilters(f) {
    for (const [k, el] of Object.entries(control)) {
      const sel = el.querySelector("select");
      if (sel.value !== f[k]) sel.value = f[k];
    }
    if (JSON.stringify(f) === JSON.stringify(filters)) return;
    filters = { ...f };
    cursors.length = 1;
    load();
  }

  function matches(run) {
    return (!filters.kind || kindOf(run) === filters.kind) && (!filters.status || status(run) === filters.status)
      && (!filters.workflow || run.workflow_id === filters.workflow);
  }

  const ticket = latestOnly();
  async function load() {
    const current = ticket();
    const after = cursors[cursors.length - 1];
    try {
      const body = await get("/v1/runs", {
        limit: PAGE, after, kind: filters.kind, status: filters.status, workflow_id: filters.workflow,
      });
      if (disposed || !current()) return;
      nextCursor = body.list_metadata?.after ?? null;
      show(body.data);
    } catch (err) {
      if (!disposed) replace(tbody, emptyRow(9, `Could not load runs: ${err.message}`, "error"));
    }
  }

  function show(list) {
    rows.clear();
    dirty.clear();
    if (!list.length) {
      replace(tbody, emptyRow(9, filters.kind || filters.status || filters.workflow
        ? "No run matches these filters."
        : "No runs yet. Start one with New run, or with the SDK (client.workflows.evals.runs.create(workflow_id=…)): it appears here at once."));
    } else {
      replace(tbody, list.map((run) => makeRow(run)));
    }
    setText(count, list.length ? `${num(list.length)} run${list.length === 1 ? "" : "s"}${nextCursor || cursors.length > 1 ? " on this page" : ""}` : "");
    newer.disabled = cursors.length <= 1;
    older.disabled = !nextCursor;
    setText(pageLabel, `Page ${cursors.length}`);
  }

  function makeRow(run) {
    const bar = progressBar("sm");
    const cells = {
      status: h("td"), wf: h("td", { class: "c-wf ellipsis" }),
      fin: h("td", { class: "num mono c-fin" }), cap: h("span", { class: "bar-caption mono" }), dur: h("td", { class: "num mono c-dur" }),
      score: h("td", { class: "num mono" }), usage: h("td", { class: "num mono c-usage" }), when: h("td", { class: "muted c-when" }),
    };
    const link = h("a", { href: `#/runs/${run.id}`, class: "run-link", "aria-label": `Open ${kindOf(run)} run ${run.id}` },
      kindBadge(kindOf(run)), h("span", { class: "mono" }, h("span", { class: "id-prefix" }, shortId(run.id).slice(0, -6)), run.id.slice(-6)));
    const tr = h("tr", { "data-run-id": run.id },
      h("td", {}, link), cells.wf, cells.status, h("td", { class: "c-progress" }, bar.el, cells.cap),
      cells.fin, cells.dur, cells.score, cells.usage, cells.when);
    const row = { run, tr, cells, bar };
    rows.set(run.id, row);
    paint(row);
    return tr;
  }

  function paint(row) {
    const { run, cells } = row;
    row.bar.update(run);
    setText(cells.wf, workflowName(run));
    cells.wf.title = run.workflow_id ?? "";
    const st = status(run);
    if (cells.status.dataset.status !== st) {
      cells.status.dataset.status = st;
      replace(cells.status, badge(st));
    }
    setText(cells.fin, `${num(finished(run))} / ${num(total(run))}`);
    setText(cells.cap, `${num(finished(run))}/${num(total(run))}`);
    setText(cells.dur, duration(durationMs(run)));
    const score = scoreOf(run);
    setText(cells.score, score == null ? "—" : pct(score));
    cells.score.className = `num mono score-${scoreClass(score)}`;
    cells.score.title = kindOf(run) === "experiment" ? "consensus score" : "pass rate of judged checks";
    const u = usageCell(run.usage);
    setText(cells.usage, u.text);
    cells.usage.title = u.title;
    setText(cells.when, ago(run.timing?.created_at));
  }

  const render = frameScheduler(() => {
    for (const id of dirty) {
      const row = rows.get(id);
      if (row) paint(row);
    }
    dirty.clear();
  }, 100);

  const refresh = throttle(load, 1000);

  function onEvent(ev) {
    if (ev.type === "reset" || ev.type === "lagged") return refresh();
    if (ev.type === "snapshot" && Array.isArray(ev.runs)) {
      for (const run of ev.runs) apply(run.id, run);
      return;
    }
    const id = ev.run_id ?? ev.run?.id;
    if (id) apply(id, ev.run);
  }

  function apply(id, incoming) {
    const row = rows.get(id);
    if (row) {
      row.run = mergeRun(row.run, incoming, id);
      dirty.add(id);
      render();
    } else if (cursors.length === 1 && incoming && matches({ id, ...incoming }) && isNewer(incoming)) {
      refresh(); // a new run on the first page: fetch the page rather than guess its position
    }
  }

  function isNewer(incoming) {
    // Older runs outside the page (a snapshot lists recent ones) must not trigger refetches.
    const created = incoming?.timing?.created_at;
    const last = [...rows.values()].pop();
    return !created || rows.size < PAGE || !last || created >= (last.run.timing?.created_at ?? "");
  }

  function page(step) {
    if (step > 0 && nextCursor) cursors.push(nextCursor);
    else if (step < 0 && cursors.length > 1) cursors.pop();
    else return;
    load();
  }

  async function loadWorkflows() {
    try {
      const body = await get("/v1/workflows", { limit: 100 });
      const sel = wfSel.querySelector("select");
      for (const wf of body.data ?? []) sel.append(h("option", { value: wf.id, selected: filters.workflow === wf.id }, wf.name || wf.id));
    } catch {
      /* the filter stays with "All workflows" */
    }
  }

  // Durations of open runs tick; without a live feed the page polls.
  const ticker = setInterval(() => {
    for (const [id, row] of rows) if (isOpen(row.run)) dirty.add(id);
    render();
  }, 1000);
  const poller = setInterval(() => {
    if (connection.state === "offline" || connection.state === "reconnecting") load();
  }, 3000);

  const feed = new Feed("/v1/events", "gseq", onEvent);
  feed.start();
  load();
  loadWorkflows();

  return {
    name: "runs",
    update(next) {
      applyFilters(filtersOf(next.params));
    },
    dispose() {
      disposed = true;
      feed.stop();
      refresh.cancel();
      clearInterval(ticker);
      clearInterval(poller);
    },
  };
}
