// Server-sent events with resume: on any drop the page reconnects with ?after=<last cursor> itself
// (instead of EventSource's built-in retry) so it controls the backoff and never leaves a gap.

import { session } from "./api.js";

const TYPES = ["snapshot", "progress", "child.finished", "run.finished", "reset", "lagged", "shutdown", "batch", "message"];
// run.finished repeats the snapshot's seq when a terminal run is opened, so it is never deduplicated.
const ORDERED = new Set(["progress", "child.finished"]);

/** The state of the page's one live feed, for the header indicator and the polling fallback. */
export const connection = Object.assign(new EventTarget(), {
  state: "idle",
  detail: "",
  set(state, detail = "") {
    if (this.state === state && this.detail === detail) return;
    this.state = state;
    this.detail = detail;
    this.dispatchEvent(new Event("change"));
  },
});

/** What the tests (and a curious developer in the console) can inspect: the active feed. */
export const debug = {
  feed: null,
  state() {
    const f = this.feed;
    return f && { url: f.url, cursor: f.cursor, opens: f.opens, byType: { ...f.byType } };
  },
  /** Simulate a dropped connection: the feed reconnects from its cursor. */
  drop() {
    this.feed?.dropped("connection dropped");
  },
};

export class Feed {
  /** url: the SSE route; key: the event field that orders it ("gseq" across runs, "seq" per run). */
  constructor(url, key, onEvent, { endOn = null } = {}) {
    this.url = url;
    this.endOn = endOn; // a per-run feed ends with run.finished: nothing can follow it
    this.key = key;
    this.onEvent = onEvent;
    this.cursor = null;
    this.failures = 0;
    this.es = null;
    this.timer = null;
    this.stopped = false;
    this.opens = 0;
    this.byType = {};
  }

  start() {
    debug.feed = this;
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.close();
    connection.set("idle");
  }

  open() {
    this.close();
    // Every event, in batches: one message per commit slice (a JSON array), handled event by event.
    const base = `${this.url}${this.url.includes("?") ? "&" : "?"}batch=1`;
    const url = this.cursor == null ? base : `${base}&after=${this.cursor}`;
    connection.set(this.failures ? "reconnecting" : "connecting");
    const es = new EventSource(url, { withCredentials: true });
    this.opens += 1;
    this.es = es;
    es.onopen = () => {
      this.failures = 0;
      connection.set("live");
    };
    es.onerror = () => this.dropped();
    for (const type of TYPES) es.addEventListener(type, (e) => this.handle(e));
  }

  close() {
    if (this.es) {
      this.es.onerror = null;
      this.es.close();
      this.es = null;
    }
  }

  handle(e) {
    let data;
    try {
      data = JSON.parse(e.data);
    } catch {
      return;
    }
    if (Array.isArray(data)) {
      for (const one of data) if (!this.stopped) this.event(one, one?.type);
      return;
    }
    this.event(data, e.type);
  }

  event(data, fallbackType) {
    const type = data.type ?? fallbackType;
    const pos = data[this.key];
    if (ORDERED.has(type) && Number.isInteger(pos) && this.cursor != null && pos <= this.cursor) return;
    if (Number.isInteger(pos) && type !== "lagged" && type !== "shutdown") this.cursor = pos;
    if (type === "reset") this.cursor = Number.isInteger(pos) ? pos : null;
    this.byType[type] = (this.byType[type] ?? 0) + 1;
    if (connection.state !== "live") connection.set("live");
    this.onEvent({ ...data, type });
    if (type === this.endOn) {
      this.stopped = true;
      this.close();
      connection.set("done");
    } else if (type === "shutdown") {
      this.dropped("the server is restarting");
    }
  }

  async dropped(reason) {
    this.close();
    if (this.stopped) return;
    this.failures += 1;
    const wait = Math.min(15000, 500 * 2 ** Math.min(this.failures - 1, 5));
    connection.set(this.failures > 2 ? "offline" : "reconnecting", reason ?? `retrying in ${Math.ceil(wait / 1000)} s`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => !this.stopped && this.open(), wait);
    if (this.failures === 1) {
      // A closed stream may mean the session is gone (server restarted): api.js then shows sign-in.
      try {
        await session();
      } catch {
        /* the server is down; keep retrying */
      }
    }
  }
}
