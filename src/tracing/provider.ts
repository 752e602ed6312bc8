import type { Logger } from "../log.ts";
import type { RegisteredProvider } from "./sdk.ts";
import { tracingSettings } from "./settings.ts";

export interface Tracing {
  /** Where spans go, without credentials. */
  readonly endpoint: string;
  /**
   * Exports the spans still queued, then stops and unregisters the provider. Resolves within `timeoutMs`
   * whether or not the collector answered. Safe to call more than once.
   */
  shutdown(timeoutMs: number): Promise<void>;
}

interface Active {
  provider: Promise<RegisteredProvider>;
  endpoint: string;
  users: number;
  logger: Logger;
}

/** The global provider is process-wide, so a second runtime in the same process shares the first one's. */
let active: Active | undefined;

/**
 * Starts exporting spans when the standard OTEL_* variables ask for it, and returns undefined otherwise: then no
 * provider is registered, every span is the API's no-op and the SDK is never loaded (it costs a noticeable part
 * of a cold start). Logs one line saying which it is.
 */
export async function startTracing(logger: Logger): Promise<Tracing | undefined> {
  const settings = tracingSettings(process.env);
  if (!settings.enabled) {
    if (settings.problem) logger.warn({ why: settings.why }, "tracing is off: the OTEL_* settings cannot be used");
    else logger.debug({ why: settings.why }, "tracing is off");
    return undefined;
  }
  if (!active) {
    const provider = import("./sdk.ts").then((sdk) => {
      const registered = sdk.registerProvider(settings.protocol, logger);
      logger.info(
        { endpoint: settings.endpointShown, protocol: settings.protocol, sampler: process.env.OTEL_TRACES_SAMPLER?.trim() || "parentbased_always_on" },
        "tracing is on: spans are sent over OTLP/HTTP",
      );
      return registered;
    });
    active = { provider, endpoint: settings.endpointShown, users: 0, logger };
  }
  const mine = active;
  mine.users++;
  try {
    await mine.provider;
  } catch (err) {
    mine.users--;
    if (active === mine) active = undefined;
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    endpoint: mine.endpoint,
    shutdown(timeoutMs) {
      stopping ??= release(mine, timeoutMs);
      return stopping;
    },
  };
}

async function release(mine: Active, timeoutMs: number): Promise<void> {
  mine.users--;
  if (mine.users > 0 || active !== mine) return;
  active = undefined;
  const [provider, sdk] = await Promise.all([mine.provider, import("./sdk.ts")]);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), Math.max(0, timeoutMs))));
  const done = provider.shutdown().then(
    () => "done" as const,
    () => "failed" as const,
  );
  const outcome = await Promise.race([done, deadline]);
  clearTimeout(timer);
  if (outcome !== "done") mine.logger.warn({ timeoutMs }, "tracing: queued spans could not be exported before shutdown");
  sdk.unregisterProvider();
}
