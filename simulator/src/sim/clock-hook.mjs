// Preloaded (node --import) into a gateway process by `stele sim` only, for its clock faults (docs/simulator.md):
// shifts that process's wall clock (Date.now, new Date()) by the offset in the JSON file STELE_SIM_CLOCK_FILE
// ({"offsetMs": N, "synced": bool}), re-read at most every 50 ms. The monotonic clock (performance.now) stays
// real, as on a board whose RTC or NTP moves the wall clock. Nothing in Stele loads this file.
import { readFileSync } from 'node:fs';

const file = process.env.STELE_SIM_CLOCK_FILE;
if (file) {
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  let offset = 0;
  let readAt = -Infinity;
  const current = () => {
    const t = performance.now();
    if (t - readAt >= 50) {
      readAt = t;
      try {
        const v = JSON.parse(readFileSync(file, 'utf8')).offsetMs;
        if (typeof v === 'number' && Number.isFinite(v)) offset = v;
      } catch {
        // being replaced: keep the last offset
      }
    }
    return realNow() + offset;
  };
  // a Proxy, not a subclass: Date() called without new still returns the (shifted) time as a string
  const SimDate = new Proxy(RealDate, {
    construct(target, args, newTarget) {
      return Reflect.construct(target, args.length === 0 ? [current()] : args, newTarget);
    },
    apply() {
      return new RealDate(current()).toString();
    },
    get(target, key, receiver) {
      if (key === 'now') return current;
      return Reflect.get(target, key, receiver);
    },
  });
  globalThis.Date = SimDate;
}
