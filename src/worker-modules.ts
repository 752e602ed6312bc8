import { Worker, type WorkerOptions } from "node:worker_threads";

/**
 * The modules that run as worker threads, by the name of their file in the bundle. Each is an entry of its own
 * beside cli.js there (scripts/build.ts takes its entry points from this list); run from src/ they are TypeScript.
 */
export const WORKER_MODULES = {
  "scrape-worker": "./serve/scrape-worker.ts",
  "pattern-worker": "./patterns/worker.ts",
} as const;

export type WorkerModule = keyof typeof WORKER_MODULES;

/**
 * A new Worker running one of WORKER_MODULES. In the bundle this module is in cli.js or in a chunk under chunks/;
 * run from src/ (the tests, the demo) the worker first registers tsx's loader, which a worker does not take from
 * --import in its execArgv.
 */
export function newWorker(name: WorkerModule, options: WorkerOptions): Worker {
  const here = import.meta.url;
  if (!here.endsWith(".ts")) return new Worker(new URL(here.includes("/chunks/") ? `../${name}.js` : `./${name}.js`, here), options);
  const module = new URL(WORKER_MODULES[name], here).href;
  const boot = `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(module)}); });`;
  return new Worker(boot, { ...options, eval: true });
}
