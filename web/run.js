// #/runs/{id}: live counts, throughput and ETA, results, cancel; experiments add their metrics.

import { get } from "./api.js";
import { legend, progressBar } from "./bar.js";
import { cancelControl } from "./cancel.js";
import { childPanel } from "./child.js";
import { copyButton, frameScheduler, h, replace, setText, throttle } from "./dom.js";
import { experimentPanel } from "./experiment.js";
import { Feed, connection } from "./feed.js";
import { clock, duration, num, pct, rate } from "./fmt.js";
import { durationMs, finished, isOpen, mergeRun, runPath, scoreOf, status, total, workflowName } from "./model.js";
import { resultsTable } from "./results.js";
import { rerunControl } from "./start.js";
import { Throughput, averageRate } from "./throughput.js";
import { usagePanel } from "./usage.js";
import { kindOf } from "./vocab.js";
import { badge, kindBadge, stat } from "./widgets.js";

export function runView(root, route) {
  const runId = route.runId;
  const kind = kindOf(runId);
  let run = null;
  let disposed = false;
  const tp = new Throughput();

  const title = h("h1", { id: "run-title" }, "Run");
  const statusSlot = h("span", { class: "status-slot", "aria-live": "polite" });
  const cancel = cancelControl(runId, async (body) => {
    run = mergeRun(run, body, runId);
    schedule();
    await loadRun();
  }, (err) => showMessage(`Cancel failed: ${err.message}`, "error"));
  const rerun = rerunControl((err) => showMessage(`Could not start it again: ${err.message}`, "error"));
  const meta = h("dl", { class: "meta" });
  const bar = progressBar("lg");
  const leg = legend();
  const v = {
    finished: h("div", { class: "stat-value mono", "data-stat": "finished" }, "—"),
    pctDone: h("div", { class: "stat-hint" }),
    rate: h("div", { class: "stat-value mono", "data-stat": "throughput" }, "—"),
    eta: h("div", { class: "stat-value mono", "data-stat": "eta" }, "—"),
    duration: h("div", { class: "stat-value mono", "data-stat": "duration" }, "—"),
    score: h("div", { class: "stat-value mono", "data-stat": "score" }, "—"),
    scoreHint: h("div", { class: "stat-hint" }, kind === "experiment" ? "consensus agreement" : "passed / judged"),
  };
  const usage = usagePanel();
  const message = h("p", { class: "run-message", hidden: true });
  const experiment = kind === "experiment" ? experimentPanel(runId, () => relabel()) : null;
  const results = resultsTable(runId, kind, (childId) => (location.hash = `#/runs/${runId}/results/${childId}`),
    (r) => experiment?.filename(r.document_id) ?? null);
  const relabel = throttle(() => results.refresh(), 3000);
  const child = childPanel(runId, kind, () => (location.hash = `#/runs/${runId}`));

  const view = h("section", { class: "view run-view", "aria-labelledby": "run-title" },
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/runs" }, "Runs"), h("span", { "aria-hidden": "true" }, " / "), h("span", { class: "mono" }, runId)),
    h("div", { class: "view-head run-head" },
      h("div", { class: "title-block" }, h("div", { class: "title-line" }, kindBadge(kind), title, statusSlot),
        h("div", { class: "subtle mono" }, runId, " ", copyButton(runId, "Copy run id"))),
      h("div", { class: "head-actions" }, cancel.el, rerun.el)),
    message,
    h("section", { class: "card progress-card", "aria-label": "Progress" },
      bar.el, leg.el,
      h("div", { class: "stats" },
        stat("Finished", v.finished, v.pctDone),
        stat("Throughput", v.rate, "children per second"),
        stat("ETA", v.eta, "at the current pace"),
        stat("Duration", v.duration),
        stat(kind === "experiment" ? "Score" : "Pass rate", v.score, v.scoreHint)),
      usage.el),
    meta,
    experiment?.el,
    h("div", { class: "split" }, results.el, child.el));
  replace(root, view);

  function showMessage(text, cls) {
    message.hidden = !text;
    message.className = `run-message ${cls ?? ""}`;
    setText(message, text ?? "");
  }

  const paint = () => {
    if (!run) return;
    document.title = `${workflowName(run)} · ${kind} run · orchestrator`;
    setText(title, workflowName(run));
    const st = status(run);
    if (statusSlot.dataset.status !== st) {
      statusSlot.dataset.status = st;
      replace(statusSlot, badge(st, "lg"));
    }
    bar.update(run);
    leg.update(run);
    const done = finished(run);
    const all = total(run);
    setText(v.finished, `${num(done)} / ${num(all)}`);
    setText(v.pctDone, all ? `${pct(done / all, 0)} done` : "");
    const open = isOpen(run);
    if (open) tp.add(done);
    const ms = durationMs(run);
    const live = open ? tp.rate() ?? averageRate(done, run.timing?.started_at) : ms ? (done * 1000) / ms : null;
    setText(v.rate, rate(live));
    setText(v.eta, !open ? (st === "completed" ? "done" : "—") : live ? duration(((all - done) / live) * 1000) : "estimating…");
    setText(v.duration, duration(durationMs(run)));
    const score = scoreOf(run);
    setText(v.score, score == null ? "—" : pct(score));
    if (kind === "experiment") setText(v.scoreHint, open ? "set when the run completes" : "consensus agreement");
    if (st === "error") showMessage(`Run failed: ${run.lifecycle?.message ?? "(no message)"}`, "error");
    else if (st === "cancelled") showMessage(`Cancelled${run.lifecycle?.reason ? `: ${run.lifecycle.reason}` : ""}.`, "muted");
    usage.update(run);
    cancel.update(run);
    rerun.update(run);
    paintMeta();
  };
  const schedule = frameScheduler(paint, 100);

  let metaKey = "";
  function paintMeta() {
    const t = run.timing ?? {};
    const items = [
      ["Workflow", run.workflow_id], ["Created", clock(t.created_at)], ["Started", clock(t.started_at)],
      ["Completed", clock(t.completed_at)], ["Trigger", run.trigger?.type ?? "api"],
    ];
    // Eval runs without an override take n from each block's config: say nothing rather than guess.
    if (run.n_consensus != null) items.push(["Consensus passes", run.n_consensus]);
    if (run.experiment_id) items.push(["Experiment", run.experiment_id]);
    const key = JSON.stringify(items);
    if (key === metaKey) return;
    metaKey = key;
    replace(meta, items.map(([k, val]) => h("div", {}, h("dt", {}, k), h("dd", { class: "mono" }, String(val ?? "—")))));
  }

  async function loadRun() {
    try {
      const fresh = await get(runPath(runId));
      if (disposed) return;
      const wasOpen = run ? isOpen(run) : true;
      const first = !run;
      run = fresh;
      if (first) sizeMetricsRefresh();
      schedule();
      if (wasOpen && !isOpen(run)) finishedNow();
      else if (first) experiment?.refresh(false);
    } catch (err) {
      if (err.status === 404) showMessage(`No run ${runId} on this server.`, "error");
      else showMessage(`Could not load the run: ${err.message}`, "error");
    }
  }

  let finalized = false;
  function finishedNow() {
    if (finalized) return;
    finalized = true;
    results.refresh();
    refreshMetrics.cancel();
    experiment?.refresh(true);
  }

  // The summary covers every document: on big runs, ask for it less often while the run works.
  let refreshMetrics = throttle(() => experiment?.refresh(), 3000);
  const sizeMetricsRefresh = () => {
    const every = Math.min(15000, Math.max(3000, total(run))); // ≈1 ms per document
    refreshMetrics.cancel();
    refreshMetrics = throttle(() => experiment?.refresh(), every);
  };

  function onEvent(ev) {
    if (ev.type === "reset" || ev.type === "lagged") {
      loadRun();
      results.refresh();
      return;
    }
    if (ev.run) {
      const wasOpen = run ? isOpen(run) : true;
      run = mergeRun(run, ev.run, runId);
      if (wasOpen && run && !isOpen(run)) finishedNow();
    }
    if (ev.type === "child.finished" && ev.child) {
      results.onChild(ev.child);
      if (experiment) refreshMetrics();
    }
    if (ev.type === "run.finished") finishedNow();
    schedule();
  }

  const ticker = setInterval(() => run && isOpen(run) && schedule(), 1000);
  const poller = setInterval(() => {
    if (run && isOpen(run) && (connection.state === "offline" || connection.state === "reconnecting")) {
      loadRun();
      results.refresh();
    }
  }, 2000);

  const feed = new Feed(`${runPath(runId)}/events`, "seq", onEvent, { endOn: "run.finished" });
  loadRun().then(() => !disposed && feed.start());
  results.refresh();
  const showChild = (id) => {
    child.show(id);
    results.select(id ?? null);
  };
  showChild(route.childId);

  return {
    name: "run",
    runId,
    update(next) {
      showChild(next.childId);
    },
    dispose() {
      disposed = true;
      feed.stop();
      clearInterval(ticker);
      clearInterval(poller);
      refreshMetrics.cancel();
      relabel.cancel();
      results.dispose();
      experiment?.dispose();
    },
  };
}
