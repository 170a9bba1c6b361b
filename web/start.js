// #/new: start a run from the page (evals or tests: a workflow's, one block's or one eval; an experiment),
// and "Run again" on a finished run. Every run starts through the same REST routes the SDK uses, with
// trigger `manual`; the page then lands on the new run's live detail.

import { ApiError, get, patch, post } from "./api.js";
import { h, replace, setText } from "./dom.js";
import { num } from "./fmt.js";
import { isOpen } from "./model.js";
import { kindOf } from "./vocab.js";

const RUNNABLE = new Set(["extract", "classifier", "split"]);
const MANUAL = { type: "manual" };

async function listAll(path, params) {
  const out = [];
  let after = null;
  do {
    const page = await get(path, { ...params, limit: 100, after });
    out.push(...(page.data ?? []));
    after = page.list_metadata?.after ?? null;
  } while (after && out.length < 5000);
  return out;
}

/** Create a run of `kind` ("eval", "test", "experiment"); → the new run's JSON. */
export async function startRun(kind, { workflowId, scope, n, experimentId, cache = true }) {
  const off = cache === false ? { cache: false } : {};
  if (kind === "experiment") {
    return post("/v1/workflows/experiments/runs", { experiment_id: experimentId, workflow_id: workflowId, trigger: MANUAL, ...off });
  }
  const body = { workflow_id: workflowId, trigger: MANUAL, ...off };
  if (scope) body.scope = scope;
  if (n) body.n_consensus = n;
  return post(`/v1/workflows/${kind}s/runs`, body);
}

/** The same run again: the same workflow and scope (and override), or the same experiment. */
export function rerunArgs(run) {
  const kind = kindOf(run);
  const cache = run.cache !== false;
  if (kind === "experiment") return { workflowId: run.workflow_id, experimentId: run.experiment_id, cache };
  const checkId = run.eval_id ?? run.test_id;
  const idKey = kind === "test" ? "test_id" : "eval_id";
  let scope = null;
  if (checkId) scope = { type: "single", [idKey]: checkId };
  else if (run.target?.block_id) scope = { type: "block", block_id: run.target.block_id };
  return { workflowId: run.workflow_id, scope, n: run.n_consensus ?? null, cache };
}

/** The "Run again" button of a finished run. */
export function rerunControl(onError) {
  let run = null;
  let busy = false;
  const btn = h("button", { type: "button", class: "btn primary", hidden: true, onclick: go }, "Run again");
  async function go() {
    if (!run || busy) return;
    busy = true;
    btn.disabled = true;
    setText(btn, "Starting…");
    try {
      const created = await startRun(kindOf(run), rerunArgs(run));
      location.hash = `#/runs/${created.id}`;
    } catch (err) {
      onError(err);
    } finally {
      busy = false;
      btn.disabled = false;
      setText(btn, "Run again");
    }
  }
  return {
    el: btn,
    update(next) {
      run = next;
      btn.hidden = !next || isOpen(next);
      btn.title = next && kindOf(next) === "experiment" ? "Run this experiment again" : "Run the same evals again";
    },
  };
}

function select(name, label, hint) {
  const id = `start-${name}`;
  const sel = h("select", { name, id, "aria-describedby": hint ? `${id}-hint` : null });
  const wrap = h("div", { class: "field" }, h("label", { for: id }, label), sel,
    hint ? h("span", { class: "field-hint", id: `${id}-hint` }, hint) : null);
  return { wrap, sel };
}

function options(sel, items, chosen) {
  replace(sel, items.map(([value, text]) => h("option", { value, selected: value === chosen }, text)));
  if (chosen != null && items.some(([v]) => v === chosen)) sel.value = chosen;
}

export function startView(root, route) {
  let disposed = false;
  const params = route.params;
  const state = { workflows: [], blocks: [], checks: [], experiments: [] };

  const kinds = [["eval", "Evals"], ["test", "Tests"], ["experiment", "Experiment"]];
  const kindGroup = h("fieldset", { class: "kind-choice" },
    h("legend", {}, "What to run"),
    kinds.map(([value, text]) => h("label", { class: "choice" },
      h("input", { type: "radio", name: "kind", value, checked: (params.get("kind") ?? "eval") === value, onchange: paint }), text)));
  const wf = select("workflow", "Workflow");
  const scope = select("scope", "Which checks");
  const block = select("block", "Block");
  const check = select("check", "Eval");
  const passes = select("passes", "Passes per eval (n_consensus)", "3, 5 or 7 for this run only; else each block's own setting.");
  const exp = select("experiment", "Experiment");
  const expPasses = select("exp-passes", "Passes (n_consensus)", "Saved on the experiment: runs at another n make its earlier metrics stale.");
  const reuse = h("input", { type: "checkbox", name: "cache", checked: true, onchange: paint });
  const cacheChoice = h("label", { class: "choice cache-choice" }, reuse,
    "Reuse cached passes (a pass whose request did not change is not called again; untick to call every pass)");
  const summary = h("p", { class: "start-summary", role: "status", "aria-live": "polite" });
  const message = h("p", { class: "run-message error", hidden: true, role: "alert" });
  const submit = h("button", { type: "submit", class: "btn primary" }, "Start run");
  const form = h("form", { class: "card start-form", "aria-labelledby": "start-title", onsubmit: onSubmit },
    kindGroup, wf.wrap,
    h("div", { class: "start-checks" }, scope.wrap, block.wrap, check.wrap, passes.wrap),
    h("div", { class: "start-exp" }, exp.wrap, expPasses.wrap),
    cacheChoice, summary, message, h("div", { class: "start-actions" }, submit, h("a", { href: "#/runs", class: "btn ghost" }, "Cancel")));

  replace(root, h("section", { class: "view start-view", "aria-labelledby": "start-title" },
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/runs" }, "Runs"), h("span", { "aria-hidden": "true" }, " / "), h("span", {}, "New run")),
    h("div", { class: "view-head" }, h("h1", { id: "start-title" }, "Start a run")),
    form));
  document.title = "New run · orchestrator";

  const kind = () => form.querySelector("input[name=kind]:checked")?.value ?? "eval";
  const noun = () => (kind() === "test" ? "test" : "eval");

  options(scope.sel, [["workflow", "Every eval of the workflow"], ["block", "The evals of one block"], ["single", "One eval"]], params.get("scope") ?? "workflow");
  options(passes.sel, [["", "Each block's setting"], ["3", "3"], ["5", "5"], ["7", "7"]], "");
  options(expPasses.sel, [["3", "3"], ["5", "5"], ["7", "7"]], "3");
  for (const s of [wf, scope, block, check, passes, exp, expPasses]) s.sel.addEventListener("change", paint);
  wf.sel.addEventListener("change", () => loadWorkflow(wf.sel.value));
  exp.sel.addEventListener("change", () => {
    const e = chosenExperiment();
    if (e) expPasses.sel.value = String(e.n_consensus);
    paint();
  });

  function chosenExperiment() {
    return state.experiments.find((e) => e.id === exp.sel.value) ?? null;
  }

  function runnableBlocks() {
    return state.blocks.filter((b) => RUNNABLE.has(b.type));
  }

  function paint() {
    const k = kind();
    const isExp = k === "experiment";
    form.querySelector(".start-checks").hidden = isExp;
    form.querySelector(".start-exp").hidden = !isExp;
    setText(check.wrap.querySelector("label"), noun() === "test" ? "Test" : "Eval");
    block.wrap.hidden = isExp || scope.sel.value !== "block";
    check.wrap.hidden = isExp || scope.sel.value !== "single";
    let count = 0;
    let ready = Boolean(wf.sel.value);
    if (isExp) {
      const e = chosenExperiment();
      ready = ready && Boolean(e);
      const n = Number(expPasses.sel.value);
      setText(summary, e
        ? `Runs ${num(e.document_count)} document${e.document_count === 1 ? "" : "s"} of “${e.name}” × ${n} passes${e.n_consensus !== n ? ` (its n_consensus goes from ${e.n_consensus} to ${n})` : ""}.`
        : "This workflow has no experiment yet (create one with the SDK or `orchestrator import`).");
    } else {
      if (scope.sel.value === "single") count = check.sel.value ? 1 : 0;
      else if (scope.sel.value === "block") count = state.checks.filter((c) => c.target?.block_id === block.sel.value).length;
      else count = state.checks.length;
      ready = ready && count > 0;
      const n = passes.sel.value ? `, ${passes.sel.value} passes each` : "";
      setText(summary, count
        ? `Runs ${num(count)} ${noun()}${count === 1 ? "" : "s"}${n}, against the current draft.`
        : `Nothing to run: no saved ${noun()} in this choice.`);
    }
    submit.disabled = !ready;
  }

  async function loadWorkflow(id) {
    if (!id) return paint();
    try {
      const [blocks, checks, experiments] = await Promise.all([
        listAll("/v1/workflows/blocks", { workflow_id: id }),
        listAll("/v1/workflows/evals", { workflow_id: id }),
        listAll("/v1/workflows/experiments", { workflow_id: id }),
      ]);
      if (disposed || wf.sel.value !== id) return;
      Object.assign(state, { blocks, checks, experiments });
      const label = (b) => b.label || b.id;
      options(block.sel, runnableBlocks().map((b) => [b.id, `${label(b)} (${state.checks.filter((c) => c.target?.block_id === b.id).length})`]), params.get("block") ?? runnableBlocks()[0]?.id);
      options(check.sel, checks.map((c) => [c.id, c.name || c.id]), params.get("check") ?? checks[0]?.id);
      options(exp.sel, experiments.map((e) => [e.id, `${e.name} · ${num(e.document_count)} docs`]), params.get("experiment") ?? experiments[0]?.id);
      const e = chosenExperiment();
      if (e) expPasses.sel.value = String(e.n_consensus);
    } catch (err) {
      showError(err);
    }
    paint();
  }

  async function loadWorkflows() {
    try {
      state.workflows = await listAll("/v1/workflows", {});
      if (disposed) return;
      options(wf.sel, state.workflows.map((w) => [w.id, w.name || w.id]), params.get("workflow") ?? state.workflows[0]?.id);
      if (!state.workflows.length) setText(summary, "No workflow on this server yet.");
      await loadWorkflow(wf.sel.value);
    } catch (err) {
      showError(err);
    }
  }

  function showError(err) {
    message.hidden = false;
    setText(message, err instanceof ApiError ? `${err.message} (${err.status} ${err.code})` : String(err.message ?? err));
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    message.hidden = true;
    submit.disabled = true;
    setText(submit, "Starting…");
    try {
      const k = kind();
      let created;
      if (k === "experiment") {
        const e = chosenExperiment();
        const n = Number(expPasses.sel.value);
        if (e && e.n_consensus !== n) await patch(`/v1/workflows/experiments/${e.id}`, { n_consensus: n });
        created = await startRun(k, { workflowId: wf.sel.value, experimentId: e?.id, cache: reuse.checked });
      } else {
        const idKey = k === "test" ? "test_id" : "eval_id";
        const s = scope.sel.value === "single" ? { type: "single", [idKey]: check.sel.value }
          : scope.sel.value === "block" ? { type: "block", block_id: block.sel.value } : null;
        const n = passes.sel.value ? Number(passes.sel.value) : null;
        created = await startRun(k, { workflowId: wf.sel.value, scope: s, n, cache: reuse.checked });
      }
      location.hash = `#/runs/${created.id}`;
    } catch (err) {
      showError(err);
      setText(submit, "Start run");
      paint();
    }
  }

  paint();
  loadWorkflows();
  return {
    name: "new",
    update() {},
    dispose() {
      disposed = true;
    },
  };
}
