// Entry point: sign-in check, hash routing (#/runs, #/new, #/runs/{id}[/results/{child}]), connection badge.

import { auth, session } from "./api.js";
import { h, replace, setText } from "./dom.js";
import { connection, debug } from "./feed.js";
import { runView } from "./run.js";
import { runsView } from "./runs.js";
import { startView } from "./start.js";

const main = document.getElementById("main");
let current = null;
let signedIn = false;

export function parseRoute(hash) {
  const raw = hash.replace(/^#/, "") || "/runs";
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(qs ?? "");
  if (parts[0] === "signin-failed") return { view: "signin", failed: true, params };
  if (parts[0] === "runs" && parts[1]) return { view: "run", runId: parts[1], childId: parts[2] === "results" ? parts[3] ?? null : null, params };
  if (parts[0] === "new") return { view: "new", params };
  return { view: "runs", params };
}

function route() {
  const r = parseRoute(location.hash);
  if (r.view === "signin") {
    if (signedIn) return void (location.hash = "#/runs");
    return showSignIn(true);
  }
  if (!signedIn) return showSignIn(false);
  if (current && current.name === r.view && (r.view !== "run" || current.runId === r.runId)) {
    current.update(r);
    return;
  }
  current?.dispose();
  document.title = "orchestrator";
  current = r.view === "run" ? runView(main, r) : r.view === "new" ? startView(main, r) : runsView(main, r);
  main.focus({ preventScroll: true });
}

function showSignIn(failed) {
  current?.dispose();
  current = null;
  connection.set("signedout");
  document.title = "Sign in · orchestrator";
  replace(main, h("section", { class: "view signin", "aria-labelledby": "signin-title" },
    h("div", { class: "card signin-card" },
      h("h1", { id: "signin-title" }, failed ? "That sign-in link is not valid" : "Sign in to this server"),
      h("p", {}, failed
        ? "A sign-in link works once, within 15 minutes: this one was already used, has expired, was mistyped, or was made with a secret the server no longer has. Run orchestrator signin on the server for a fresh link."
        : "This page shows live progress of the runs on this server, and starts new ones. It needs a sign-in link: the server prints one when it starts, and orchestrator signin makes another. A link works once, within 15 minutes; keep it private until it is used."),
      h("ol", {},
        h("li", {}, "Find the terminal where ", h("code", {}, "orchestrator serve"), " (or ", h("code", {}, "python -m orchestrator serve"), ") is running."),
        h("li", {}, "Open the link on the line ", h("code", {}, "Open in a browser: http://HOST:PORT/?token=…"), ".")),
      h("p", { class: "muted" }, "The link signs this browser in with a cookie signed by the server's secret (it stays valid across restarts, for 7 days by default) and removes the token from the address bar. Programs use the API key instead (Authorization: Bearer …)."))));
}

function paintConnection() {
  const el = document.getElementById("conn");
  el.dataset.state = connection.state;
  const text = {
    idle: "Idle", connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…",
    offline: "Offline — polling", signedout: "Signed out", done: "Up to date",
  }[connection.state] ?? connection.state;
  setText(el.querySelector(".conn-text"), connection.detail && connection.state !== "live" ? `${text} (${connection.detail})` : text);
  el.title = { live: "Receiving live events from the server", done: "The run has finished: nothing more will change" }[connection.state] ?? connection.detail;
}

async function start() {
  connection.addEventListener("change", paintConnection);
  paintConnection();
  auth.addEventListener("signedout", () => {
    if (!signedIn) return;
    signedIn = false;
    showSignIn(false);
  });
  try {
    signedIn = await session();
  } catch (err) {
    replace(main, h("p", { class: "notice error" }, `The server did not answer: ${err.message}. Reload the page once it is running.`));
    return;
  }
  window.addEventListener("hashchange", route);
  route();
}

window.orchestratorDebug = debug;
start();
