// What the page derives from a run's JSON (the body of GET …/runs/{id}).

import { collection, isTerminal, kindOf } from "./vocab.js";

// Progress-bar segments in display order; `key` is the CSS colour class.
export const SEGMENTS = [
  { key: "passed", label: "passed" },
  { key: "done", label: "done" },
  { key: "failed", label: "failed" },
  { key: "blocked", label: "blocked" },
  { key: "error", label: "error" },
  { key: "cancelled", label: "cancelled" },
  { key: "running", label: "running" },
  { key: "queued", label: "queued" },
];

export function runPath(runId) {
  return `/v1/workflows/${collection(runId)}/runs/${encodeURIComponent(runId)}`;
}

export function status(run) {
  return run.lifecycle?.status ?? "pending";
}

export function isOpen(run) {
  return !isTerminal(status(run));
}

export function total(run) {
  return run.total_evals ?? run.total_tests ?? run.total_document_count ?? 0;
}

export function counts(run) {
  const lc = run.counts?.lifecycle_counts ?? {};
  const oc = run.counts?.outcome ?? {};
  const verdicts = (oc.passed ?? 0) + (oc.failed ?? 0) + (oc.blocked ?? 0);
  return {
    passed: oc.passed ?? 0,
    failed: oc.failed ?? 0,
    blocked: oc.blocked ?? 0,
    // Experiment documents (and any child without a verdict) finish as plain "done".
    done: Math.max(0, (lc.completed ?? 0) - verdicts),
    error: lc.error ?? 0,
    cancelled: lc.cancelled ?? 0,
    running: lc.running ?? 0,
    queued: (lc.pending ?? 0) + (lc.queued ?? 0),
  };
}

export function finished(run) {
  const c = counts(run);
  return c.passed + c.failed + c.blocked + c.done + c.error + c.cancelled;
}

export function workflowName(run) {
  return run.workflow?.name_at_run_time || run.workflow_id || "—";
}

/** Experiment score, or for check runs the share of completed checks that passed. */
export function scoreOf(run) {
  if (kindOf(run) === "experiment") return run.score ?? null;
  const c = counts(run);
  const judged = c.passed + c.failed + c.blocked;
  return judged ? c.passed / judged : null;
}

export function durationMs(run, now = Date.now()) {
  const t = run.timing ?? {};
  if (t.duration_ms != null) return t.duration_ms;
  if (!t.started_at) return null;
  const end = t.completed_at ? Date.parse(t.completed_at) : now;
  return Math.max(0, end - Date.parse(t.started_at));
}

/** Merge a run into what the page knows: every feed event carries the run as GET …/runs/{id} renders
 *  it, and an experiment's cancel answer carries only its id and lifecycle. */
export function mergeRun(prev, incoming, runId) {
  if (!incoming) return prev;
  return { ...(prev ?? {}), ...incoming, id: incoming.id ?? runId };
}
