// The server's words, spelled once for the whole page: run statuses (orchestrator/core/lifecycle.py)
// and the run-id prefixes that tell a run's kind (orchestrator/api/services.py, cli/client.py).

/** Lifecycle statuses of runs and children, in lifecycle order. */
export const STATUSES = ["pending", "queued", "running", "completed", "error", "cancelled"];

/** The statuses after which nothing changes. */
export const TERMINAL = new Set(["completed", "error", "cancelled"]);

/** Run kinds: the run-id prefix, the REST collection under /v1/workflows/, the name and the badge shown. */
export const KINDS = [
  { kind: "eval", prefix: "wfevalrun_", collection: "evals", label: "Eval", badge: "eval" },
  { kind: "test", prefix: "wftestrun_", collection: "tests", label: "Test", badge: "test" },
  { kind: "experiment", prefix: "exprun_", collection: "experiments", label: "Experiment", badge: "exp" },
];

/** The kind of a run (or run id), from its id prefix; an unknown prefix counts as an eval run. */
export function kindOf(runOrId) {
  const id = typeof runOrId === "string" ? runOrId : runOrId?.id ?? "";
  return (KINDS.find((k) => id.startsWith(k.prefix)) ?? KINDS[0]).kind;
}

/** The KINDS entry of a kind name ("eval", "test", "experiment"). */
export function kindInfo(kind) {
  return KINDS.find((k) => k.kind === kind) ?? KINDS[0];
}

/** The REST collection a run id lives under ("evals", "tests" or "experiments"). */
export function collection(runId) {
  return kindInfo(kindOf(runId)).collection;
}

export const isTerminal = (status) => TERMINAL.has(status);
