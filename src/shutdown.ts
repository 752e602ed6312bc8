import { setTimeout as sleep } from "node:timers/promises";
import { errorMessage } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Runtime } from "./runtime.ts";
import type { ProcessSignals, StopSignal } from "./signals.ts";

export interface ShutdownOptions {
  /** The stop came while the exporter was starting: it was never ready, so no one needs time to stop sending to it. */
  skipDelay: boolean;
  /** Called as shutdown begins: what must not start anything new (the reloader). */
  onBegin(): void;
  exit(code: number): void;
}

/**
 * The way out on SIGTERM or SIGINT. Readiness fails at once (503, gRPC NOT_SERVING); on SIGTERM the servers then
 * go on accepting for server.shutdownDelay, because Services and load balancers learn of it only from a probe and
 * would otherwise send new connections to closed ports meanwhile. Then checks stop, the servers drain for
 * server.shutdownGracePeriod and the process exits 0. SIGINT (Ctrl-C at a terminal) skips the delay. A second
 * signal during the delay ends it; one during the drain exits at once with 1.
 */
export function stopOnSignals(signals: ProcessSignals, runtime: Runtime, log: Logger, opts: ShutdownOptions): void {
  let stopping = false;
  let delay: AbortController | undefined;

  const shutDown = async (signal: StopSignal): Promise<void> => {
    const { shutdownDelayMs, shutdownGracePeriodMs } = runtime.config.server;
    const delayMs = signal === "SIGTERM" && !opts.skipDelay ? shutdownDelayMs : 0;
    opts.onBegin();
    signals.onHangup(undefined);
    runtime.withdraw();
    if (delayMs > 0) {
      log.info(
        { signal, delayMs, graceMs: shutdownGracePeriodMs },
        "shutting down: readiness is now failing; the servers keep accepting for the shutdown delay, then drain",
      );
      delay = new AbortController();
      await sleep(delayMs, undefined, { signal: delay.signal }).catch(() => undefined);
      delay = undefined;
      log.info({ graceMs: shutdownGracePeriodMs }, "shutdown delay over: draining servers");
    } else {
      log.info({ signal, graceMs: shutdownGracePeriodMs }, "shutting down: readiness is now failing, draining servers");
    }
    await runtime.stop();
  };

  signals.onStop((signal) => {
    if (!stopping) {
      stopping = true;
      shutDown(signal).then(
        () => {
          log.info("shutdown complete");
          opts.exit(0);
        },
        (err: unknown) => {
          log.error({ err: errorMessage(err) }, "shutdown failed");
          opts.exit(1);
        },
      );
    } else if (delay) {
      log.info({ signal }, "second signal: ending the shutdown delay now");
      delay.abort();
    } else {
      log.warn({ signal }, "second signal: exiting now");
      opts.exit(1);
    }
  });
}
