// What the page derives from a run's JSON (the body of GET …/runs/{id}).

export const TERMINAL = new Set(["completed", "error", "cancelled"]);

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

export function kindOf(runOrId) {
  const id = typeof runOrId === "string" ? runOrId : runOrId.id;
  if (id.startsWith("exprun_")) return "experiment";
  if (id.startsWith("wftestrun_")) return "test";
  return "eval";
}

/** The REST collection a run id lives under. */
export function collection(runId) {
  return { experiment: "experiments", test: "tests", eval: "evals" }[kindOf(runId)];
}

export function runPath(runId) {
  return `/v1/workflows/${collection(runId)}/runs/${encodeURIComponent(runId)}`;
}

export function status(run) {
  return run.lifecycle?.status ?? "pending";
}

export function isOpen(run) {
  return !TERMINAL.has(status(run));
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

/** Merge a feed event's run into what the page knows (the feed sends the GET body; older
 *  servers sent only the stored state, so both shapes are accepted). */
export function mergeRun(prev, incoming, runId) {
  if (!incoming) return prev;
  if (incoming.lifecycle || incoming.counts) return { ...(prev ?? {}), ...incoming, id: incoming.id ?? runId };
  if (!prev) return null;
  const s = incoming;
  const next = { ...prev, lifecycle: { ...(prev.lifecycle ?? {}), status: s.status ?? status(prev) } };
  if ("c_pending" in s) {
    next.counts = {
      lifecycle_counts: {
        pending: s.c_pending, queued: s.c_queued, running: s.c_running,
        completed: s.c_completed, error: s.c_error, cancelled: s.c_cancelled,
      },
      outcome: { passed: s.o_passed ?? 0, failed: s.o_failed ?? 0, blocked: s.o_blocked ?? 0 },
    };
  }
  if ("score" in s) next.score = s.score;
  if (s.started_at || s.completed_at) {
    next.timing = { ...(prev.timing ?? {}), started_at: s.started_at, completed_at: s.completed_at };
  }
  return next;
}
