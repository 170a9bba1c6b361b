// Children finished per second over a sliding window, and the time left at that pace.

export class Throughput {
  constructor(windowMs = 10000, maxSamples = 64) {
    this.windowMs = windowMs;
    this.maxSamples = maxSamples;
    this.samples = [];
  }

  add(done, now = performance.now()) {
    const last = this.samples[this.samples.length - 1];
    if (last && done === last.done && now - last.t < 1000) return;
    if (last && now - last.t < 100) last.done = done; // bounded: at most ~10 samples a second
    else this.samples.push({ t: now, done });
    const cutoff = now - this.windowMs;
    while (this.samples.length > 2 && (this.samples[0].t < cutoff || this.samples.length > this.maxSamples)) this.samples.shift();
  }

  /** Per second, or null before two samples a useful distance apart. */
  rate() {
    if (this.samples.length < 2) return null;
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    const dt = (b.t - a.t) / 1000;
    return dt >= 0.5 ? (b.done - a.done) / dt : null;
  }

  reset() {
    this.samples = [];
  }
}

/** Rate over the whole run so far (from its start time): the fallback before the window fills. */
export function averageRate(done, startedAt, now = Date.now()) {
  if (!startedAt || !done) return null;
  const s = (now - Date.parse(startedAt)) / 1000;
  return s > 0.2 ? done / s : null;
}
