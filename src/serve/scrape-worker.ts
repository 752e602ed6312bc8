/**
 * The scrape thread (metrics.scrapeThread): a worker that owns the metrics port and answers scrapes from its own
 * copy of the exposition, which the main thread keeps current (see scrape-thread.ts). The main thread renders;
 * this thread only writes bytes, so a scrape is answered at once even while the main thread is busy decoding a
 * source's answer or collecting garbage.
 */
import { parentPort, workerData } from "node:worker_threads";
import { errorMessage } from "../errors.ts";
import { formOf } from "../metrics/exposition.ts";
import { asExposition, type Exposition } from "../metrics/registry.ts";
import type { DropReason } from "./connection-cap.ts";
import { MirrorReceiver } from "./exposition-mirror.ts";
import type { ScrapeThreadOptions, ToMain, ToScrapeThread } from "./scrape-thread-protocol.ts";
import { listenWith } from "./listen.ts";
import { metricsListener, type ScrapeFormat, type ScrapeSource } from "./metrics-server.ts";

/** Scrape durations and dropped connections are sent to the main thread's metrics in batches, at most this often. */
const REPORT_EVERY_MS = 1_000;

const port = parentPort;
if (!port) throw new Error("scrape-worker.ts runs as a worker thread, started by scrape-thread.ts");
const options = workerData as ScrapeThreadOptions;
const send = (message: ToMain) => port.postMessage(message);

const mirror = new MirrorReceiver();
/** Scrapes that arrive before the first exposition wait for it, as they would for the first rendering. */
let waiting: (() => void)[] = [];
let durations: [ScrapeFormat, number][] = [];
const dropped = new Map<DropReason, number>();

const source: ScrapeSource = {
  async exposition(openMetrics, gzipped): Promise<Exposition> {
    if (!mirror.ready) await new Promise<void>((resolve) => waiting.push(resolve));
    return asExposition(mirror.body(formOf(openMetrics, gzipped)), openMetrics, gzipped);
  },
  timeScrape(format) {
    const began = performance.now();
    return () => {
      durations.push([format, (performance.now() - began) / 1000]);
    };
  },
};

/** Sends what was measured since the last report: scrape durations and connections dropped. */
function report(): void {
  if (durations.length > 0) send({ type: "scrapes", durations });
  durations = [];
  if (dropped.size > 0) send({ type: "dropped", counts: [...dropped] });
  dropped.clear();
}

setInterval(report, REPORT_EVERY_MS).unref();

try {
  const listening = await listenWith("metrics", await metricsListener(source, options.path), options.host, options.port, options.configKey, undefined, { maxConnections: options.maxConnections });
  listening.connections.onDrop((reason, count) => dropped.set(reason, (dropped.get(reason) ?? 0) + count));
  port.on("message", (message: ToScrapeThread) => {
    if (message.type === "update") {
      try {
        mirror.apply(message.update);
      } catch (err) {
        // The two sides disagree on what was sent: the main thread starts a new thread, which gets everything.
        send({ type: "failed", message: `cannot apply an exposition update: ${errorMessage(err)}` });
        return;
      }
      for (const resolve of waiting) resolve();
      waiting = [];
      return;
    }
    void listening.close(message.graceMs).then(() => {
      report();
      port.close();
    });
  });
  send({ type: "listening", address: listening.address, port: listening.port });
} catch (err) {
  send({ type: "failed", message: errorMessage(err) });
  port.close();
}
