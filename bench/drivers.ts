/**
 * Load the benchmark generates itself: blackbox_exporter's probes at the rate the exporter's checks run, and a
 * second, slow scraper that reads the exporter's own event-loop delay while wrk drives the server.
 */
import { Pool } from "undici";
import { httpGet } from "./servers.ts";

export interface ProbeRun {
  sent: number;
  succeeded: number;
  failed: number;
}

/**
 * Asks blackbox_exporter to probe every target once per `intervalS`, spread evenly over the interval as the
 * exporter's checks are, for `durationS`, over a keep-alive pool. Returns when every probe sent has answered.
 */
export async function driveBlackbox(opts: { blackbox: string; module: string; targets: string[]; intervalS: number; durationS: number }): Promise<ProbeRun> {
  const pool = new Pool(opts.blackbox, { connections: 32, pipelining: 1, keepAliveTimeout: 60_000 });
  const run: ProbeRun = { sent: 0, succeeded: 0, failed: 0 };
  const inFlight = new Set<Promise<void>>();
  const n = opts.targets.length;
  const spacingMs = (opts.intervalS * 1000) / n;
  const started = performance.now();
  const endMs = opts.durationS * 1000;
  const probe = (target: string) => {
    run.sent++;
    const path = `/probe?module=${encodeURIComponent(opts.module)}&target=${encodeURIComponent(target)}`;
    const p = pool
      .request({ method: "GET", path })
      .then(async (res) => {
        const text = await res.body.text();
        if (res.statusCode === 200 && /^probe_success 1$/m.test(text)) run.succeeded++;
        else run.failed++;
      })
      .catch(() => {
        run.failed++;
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  let next = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - started;
      while (next * spacingMs <= Math.min(elapsed, endMs - 1)) {
        probe(opts.targets[next % n] ?? "");
        next++;
      }
      if (elapsed >= endMs) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  await Promise.all(inFlight);
  await pool.close();
  return run;
}

/** nodejs_eventloop_lag_p99_seconds as an exposition reports it; NaN when absent. */
export function eventLoopP99(exposition: string): number {
  const m = /^nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})? (\S+)/m.exec(exposition);
  return m?.[1] === undefined ? Number.NaN : Number(m[1]);
}

/**
 * A scraper that GETs /metrics every `everyMs` on its own connection. Against the exporter it collects the
 * event-loop delay p99 the exporter reports (prom-client's monitor, reset at every collection, so each reading
 * covers the time since the previous scrape of anyone); against a peer it is the same extra load, unread.
 */
export class SlowScraper {
  readonly p99s: number[] = [];
  readonly #timer: NodeJS.Timeout;
  #busy = false;

  constructor(
    private readonly url: string,
    private readonly readLag: boolean,
    everyMs = 2_000,
  ) {
    this.#timer = setInterval(() => void this.#scrape(), everyMs);
  }

  async #scrape(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const answer = await httpGet(this.url, {}, 10_000);
      if (this.readLag) {
        const p99 = eventLoopP99(answer.body.toString("utf8"));
        if (Number.isFinite(p99)) this.p99s.push(p99 * 1000);
      }
    } catch {
      // A scrape that failed reads nothing; wrk reports the server's errors.
    } finally {
      this.#busy = false;
    }
  }

  /** Stops; the event-loop p99 readings, in milliseconds. */
  stop(): number[] {
    clearInterval(this.#timer);
    return this.p99s;
  }
}
