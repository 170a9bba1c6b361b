// The segmented progress bar (passed / failed / blocked / error / cancelled / running / queued).

import { h, setText } from "./dom.js";
import { num } from "./fmt.js";
import { SEGMENTS, counts, finished, total } from "./model.js";
import { kindOf } from "./vocab.js";

export function progressBar(size = "sm") {
  const segs = {};
  const el = h("div", {
    class: `bar bar-${size}`,
    role: "progressbar",
    "aria-valuemin": "0",
  });
  for (const s of SEGMENTS) {
    segs[s.key] = h("span", { class: `seg seg-${s.key}` });
    el.append(segs[s.key]);
  }
  let last = "";
  function update(run) {
    const c = counts(run);
    const t = Math.max(total(run), 1);
    const key = SEGMENTS.map((s) => c[s.key]).join(",") + `/${t}`;
    if (key === last) return;
    last = key;
    for (const s of SEGMENTS) {
      segs[s.key].style.width = `${(100 * c[s.key]) / t}%`;
    }
    const done = finished(run);
    el.setAttribute("aria-valuemax", String(total(run)));
    el.setAttribute("aria-valuenow", String(done));
    const parts = SEGMENTS.filter((s) => c[s.key]).map((s) => `${num(c[s.key])} ${s.label}`);
    const text = `${num(done)} of ${num(total(run))} finished${parts.length ? `: ${parts.join(", ")}` : ""}`;
    el.setAttribute("aria-valuetext", text);
    el.title = text;
  }
  return { el, update };
}

/** A legend of counts under a big bar: one labelled number per segment. */
export function legend() {
  const items = {};
  const el = h("dl", { class: "legend" });
  for (const s of SEGMENTS) {
    const value = h("dd", { "data-count": s.key }, "0");
    items[s.key] = { wrap: h("div", { class: `legend-item li-${s.key}` }, h("dt", {}, h("i", { class: `dot seg-${s.key}` }), s.label), value), value };
    el.append(items[s.key].wrap);
  }
  function update(run) {
    const c = counts(run);
    const experiment = kindOf(run) === "experiment";
    for (const s of SEGMENTS) {
      setText(items[s.key].value, num(c[s.key]));
      // Checks have verdicts and experiments do not: show only the buckets that can occur.
      const relevant = experiment ? !["passed", "failed", "blocked"].includes(s.key) : s.key !== "done" || c.done > 0;
      items[s.key].wrap.hidden = !relevant;
      items[s.key].wrap.classList.toggle("zero", c[s.key] === 0);
    }
  }
  return { el, update };
}
