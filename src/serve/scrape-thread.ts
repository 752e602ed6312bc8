import type { Worker } from "node:worker_threads";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { MetricRegistry } from "../metrics/registry.ts";
import { newWorker } from "../worker-modules.ts";
import type { DropReport } from "./connection-cap.ts";
import { MirrorSender } from "./exposition-mirror.ts";
import type { ScrapeThreadOptions, ToMain, ToScrapeThread } from "./scrape-thread-protocol.ts";

/** After the thread stops unasked, it is started again after this long, doubling up to the cap while it keeps failing. */
const RESTART_DELAY_MS = 1_000;
const RESTART_DELAY_MAX_MS = 30_000;
/** How long a closing thread may take beyond the grace its server was given. */
const CLOSE_MARGIN_MS = 2_000;

/**
 * The main thread's side of metrics.scrapeThread: starts the scrape thread (scrape-worker.ts), which owns the
 * metrics port, and sends it each new rendering of the exposition — only the parts that changed — as the registry
 * publishes them. Scrape durations and dropped connections come back in batches for the main thread's metrics. A
 * thread that stops unasked is logged and started again on the same port.
 */
export class ScrapeThread {
  #worker: Worker | undefined;
  #sender = new MirrorSender();
  #sending = false;
  #sendAgain = false;
  #closing = false;
  #restartDelayMs = RESTART_DELAY_MS;
  #restartTimer: NodeJS.Timeout | undefined;
  #options: ScrapeThreadOptions;
  #reportDrop: DropReport | undefined;
  address = "";

  private constructor(
    private readonly registry: MetricRegistry,
    options: ScrapeThreadOptions,
    private readonly log: Logger,
  ) {
    this.#options = options;
  }

  /** The port the thread listens on: the one configured, or the one the system gave for port 0. */
  get port(): number {
    return this.#options.port;
  }

  /** Starts the thread; resolves once it listens, rejects with its reason when it cannot. */
  static async start(registry: MetricRegistry, options: ScrapeThreadOptions, log: Logger): Promise<ScrapeThread> {
    const thread = new ScrapeThread(registry, options, log);
    // Listening first: a rendering published while the thread starts is sent after the first one, not missed.
    registry.onPublish(() => thread.#send());
    await thread.#spawn();
    return thread;
  }

  #spawn(): Promise<void> {
    const worker = newWorker("scrape-worker", { workerData: this.#options, name: "scrape" });
    this.#worker = worker;
    this.#sender = new MirrorSender();
    return new Promise<void>((resolve, reject) => {
      let listening = false;
      worker.on("message", (message: ToMain) => {
        if (message.type === "scrapes") {
          for (const [format, seconds] of message.durations) this.registry.handles.scrapeDuration.observe({ format }, seconds);
        } else if (message.type === "dropped") {
          for (const [reason, count] of message.counts) this.#reportDrop?.(reason, count);
        } else if (message.type === "listening") {
          listening = true;
          this.address = message.address;
          // A thread started again binds the port the first one was given, not a new one (port 0 in tests).
          this.#options = { ...this.#options, port: message.port };
          this.#restartDelayMs = RESTART_DELAY_MS;
          resolve();
        } else if (!listening) {
          reject(new Error(message.message));
        } else {
          this.log.error({ reason: message.message }, "scrape thread failed; starting it again");
          void worker.terminate();
        }
      });
      worker.on("error", (err) => {
        if (!listening) reject(new Error(`metrics server cannot start its scrape thread: ${errorMessage(err)}`));
        else this.log.error({ err: errorMessage(err) }, "scrape thread failed");
      });
      worker.on("exit", (code) => {
        if (this.#worker === worker) this.#worker = undefined;
        if (!listening) reject(new Error(`metrics server's scrape thread stopped before listening (exit code ${code})`));
        else if (!this.#closing) this.#restartLater(`exit code ${code}`);
      });
      this.#send();
    });
  }

  #restartLater(why: string): void {
    const delay = this.#restartDelayMs;
    this.#restartDelayMs = Math.min(RESTART_DELAY_MAX_MS, delay * 2);
    this.log.error({ reason: why, retryInMs: delay }, "scrape thread stopped; /metrics is not served until it is started again");
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#closing) return;
      this.#spawn().then(
        () => this.log.info({ address: this.address }, "scrape thread started again"),
        (err: unknown) => this.#restartLater(errorMessage(err)),
      );
    }, delay);
    this.#restartTimer.unref();
  }

  /** Sends the latest rendering; renderings published while one is being sent are gathered into the next. */
  #send(): void {
    if (this.#sending) {
      this.#sendAgain = true;
      return;
    }
    const worker = this.#worker;
    if (!worker || this.#closing) return;
    this.#sending = true;
    this.registry
      .forms()
      .then((forms) => {
        if (this.#worker !== worker) return;
        const update = this.#sender.update(forms);
        const message: ToScrapeThread = { type: "update", update };
        worker.postMessage(message, [update.packed]);
      })
      .catch((err: unknown) => this.log.error({ err: errorMessage(err) }, "cannot send the exposition to the scrape thread"))
      .finally(() => {
        this.#sending = false;
        if (this.#sendAgain) {
          this.#sendAgain = false;
          this.#send();
        }
      });
  }

  /** Passes on each connection the thread's server closed to stay within maxConnections. */
  onDrop(report: DropReport): void {
    this.#reportDrop = report;
  }

  /** Ends the thread at once, as a crash would; it is started again as after one. */
  async terminate(): Promise<void> {
    await this.#worker?.terminate();
  }

  /** Stops the thread: its server stops accepting and lets scrapes in flight finish for up to `graceMs`. */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#restartTimer);
    const worker = this.#worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    const message: ToScrapeThread = { type: "close", graceMs };
    worker.postMessage(message);
    const deadline = setTimeout(() => void worker.terminate(), graceMs + CLOSE_MARGIN_MS);
    await exited;
    clearTimeout(deadline);
  }
}
