import pino, { type DestinationStream, type Logger, type LevelWithSilent } from "pino";
import type pretty from "pino-pretty";
import type { LoggingConfig } from "./config/types.ts";
import { packageRequire } from "./package-root.ts";
import { REDACTED, scrub } from "./secret.ts";

export type { Logger };
// For the modules that log: the logger type and the message helper from one import.
export { errorMessage } from "./errors.ts";

/** Object keys whose values are credentials wherever they appear in a log call's fields. */
const REDACT_KEYS = ["token", "password", "secret", "apiKey", "authorization", "Authorization", "clientSecret", "accessToken", "privateKey", "secretAccessKey"];
const REDACT_PATHS = [
  ...REDACT_KEYS,
  ...REDACT_KEYS.map((k) => `*.${k}`),
  ...REDACT_KEYS.map((k) => `*.*.${k}`),
  'headers["authorization"]',
  'req.headers["authorization"]',
  'req.headers["cookie"]',
];

const LEVEL_VALUES: Record<string, number> = pino.levels.values;

/**
 * Keeps one of every N calls at the levels the config names, so a chatty debug path cannot flood the output.
 * Counting is per level, not per message, which is what a sampling rate of "1 in N" promises.
 */
function samplingHook(levels: LoggingConfig["sampling"]["levels"]): pino.LoggerOptions["hooks"] {
  const every = new Map<number, number>();
  for (const [name, n] of Object.entries(levels)) if (n && n > 1 && LEVEL_VALUES[name] !== undefined) every.set(LEVEL_VALUES[name], n);
  if (every.size === 0) return {};
  const seen = new Map<number, number>();
  return {
    logMethod(args, method, level) {
      const n = every.get(level);
      if (n !== undefined) {
        const count = (seen.get(level) ?? 0) + 1;
        seen.set(level, count);
        if ((count - 1) % n !== 0) return;
      }
      method.apply(this, args);
    },
  };
}

export interface LogSetup {
  root: Logger;
  /** A child logger for one part of the program, at the level the config sets for it. */
  component(name: string): Logger;
  /** Applies the levels of a new logging config to the root and every component logger. */
  reconfigure(next: LoggingConfig): void;
}

/** pino-pretty, loaded only for the console format: JSON logging (the default) starts without its modules. */
function prettyStream(): typeof pretty {
  return packageRequire("pino-pretty") as typeof pretty;
}

export function createLogging(initial: LoggingConfig, destination?: DestinationStream): LogSetup {
  let cfg = initial;
  const dest =
    destination ??
    (cfg.format === "console"
      ? prettyStream()({ colorize: process.stdout.isTTY, sync: true, translateTime: "SYS:HH:MM:ss.l" })
      : pino.destination({ dest: 1, sync: true }));
  // The root logger must pass anything a component asks for; pino filters per logger, by each one's level.
  const root = pino(
    {
      level: cfg.level,
      base: { ...cfg.fields },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        ...(cfg.sampling.enabled ? samplingHook(cfg.sampling.levels) : {}),
        // Last line of defence: any secret value the process knows is replaced, whatever field carried it.
        streamWrite: scrub,
      },
    },
    dest,
  );
  const children = new Map<string, Logger>();
  return {
    root,
    reconfigure(next: LoggingConfig) {
      root.level = next.level;
      for (const [name, child] of children) child.level = next.components[name]?.level ?? next.level;
      cfg = next;
    },
    component(name) {
      let child = children.get(name);
      if (!child) {
        const level: LevelWithSilent = cfg.components[name]?.level ?? cfg.level;
        child = root.child({ component: name }, { level });
        children.set(name, child);
      }
      return child;
    },
  };
}
