// The cancel control of an open run: one click asks, a second one cancels (no modal dialog).

import { post } from "./api.js";
import { h, replace } from "./dom.js";
import { isOpen, runPath } from "./model.js";

/** onCancelled(body) gets the cancel answer; onError(err) a failure. */
export function cancelControl(runId, onCancelled, onError) {
  const el = h("div", { class: "cancel-area" });
  let mode = "idle"; // idle | confirm | busy
  let open = false;

  function paint() {
    if (!open && mode !== "busy") return replace(el);
    if (mode === "idle") replace(el, h("button", { type: "button", class: "btn danger", onclick: ask }, "Cancel run"));
  }

  function ask() {
    mode = "confirm";
    replace(el,
      h("span", { class: "confirm-text" }, "Stop this run?"),
      h("button", { type: "button", class: "btn danger", onclick: cancel }, "Yes, cancel run"),
      h("button", { type: "button", class: "btn ghost", onclick: () => { mode = "idle"; paint(); } }, "Keep running"));
    el.querySelector(".danger").focus();
  }

  async function cancel() {
    mode = "busy";
    replace(el, h("span", { class: "muted", role: "status" }, "Cancelling…"));
    try {
      onCancelled(await post(`${runPath(runId)}/cancel`));
    } catch (err) {
      onError(err);
    }
    mode = "idle";
    paint();
  }

  return {
    el,
    update(run) {
      const now = Boolean(run && isOpen(run));
      if (now === open) return;
      open = now;
      if (!open && mode === "confirm") mode = "idle";
      paint();
    },
  };
}
