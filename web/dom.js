// Tiny DOM helpers: every text goes through textContent, never innerHTML.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

export function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

/** Run fn at most once per animation frame (and at most once per minMs), however often asked:
 *  a run finishing thousands of children a second repaints a few times a second, not per event. */
export function frameScheduler(fn, minMs = 0) {
  let pending = false;
  let last = 0;
  const run = () => {
    pending = false;
    last = performance.now();
    fn();
  };
  return () => {
    if (pending) return;
    pending = true;
    const wait = last + minMs - performance.now();
    if (wait > 0) setTimeout(() => requestAnimationFrame(run), wait);
    else requestAnimationFrame(run);
  };
}

/** For requests that may overlap: `const current = ticket(); await …; if (!current()) return;`
 *  applies only the answer to the request started last (a slow older answer never wins). */
export function latestOnly() {
  let n = 0;
  return () => {
    const mine = ++n;
    return () => mine === n;
  };
}

/** Call fn at most once per `ms`, trailing call guaranteed. */
export function throttle(fn, ms) {
  let timer = null;
  let last = 0;
  const wrapped = () => {
    const wait = last + ms - Date.now();
    if (wait <= 0) {
      last = Date.now();
      fn();
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn();
      }, wait);
    }
  };
  wrapped.cancel = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  return wrapped;
}

export function copyButton(value, label) {
  const btn = h("button", { class: "icon-btn copy", type: "button", "aria-label": label, title: label }, icon());
  btn.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(value);
      btn.dataset.done = "copied";
    } catch {
      btn.dataset.done = "failed";
    }
    setTimeout(() => delete btn.dataset.done, 1200);
  });
  return btn;
}

function icon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "13");
  svg.setAttribute("height", "13");
  svg.setAttribute("aria-hidden", "true");
  for (const [x, y] of [[5, 5], [2, 2]]) {
    const r = document.createElementNS(ns, "rect");
    for (const [k, v] of Object.entries({ x, y, width: 9, height: 9, rx: 1.5, fill: "none", stroke: "currentColor", "stroke-width": 1.4 })) r.setAttribute(k, String(v));
    svg.append(r);
  }
  return svg;
}
