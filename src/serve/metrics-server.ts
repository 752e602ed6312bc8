import { Hono, type MiddlewareHandler } from "hono";
import { OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, type MetricRegistry } from "../metrics/registry.ts";
import { notFound } from "./not-found.ts";
import type { Guard } from "./secure/guard.ts";

function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes("application/openmetrics-text");
}

/**
 * /metrics renders values already held in memory: checks and sources update them on their own timers, so a
 * scrape never waits on anything outside the process.
 */
export function metricsApp(registry: MetricRegistry, path: string, guard?: Guard): Hono {
  const app = new Hono();
  // The Guard reads the Node request (client certificates); the app itself needs no bindings.
  if (guard) app.use(path, guard as unknown as MiddlewareHandler);
  const endpoints = () => [path];
  app.get("/", (c) =>
    c.json({ name: "sidecar-exporter", endpoints: [{ path, description: "Prometheus metrics (text or OpenMetrics by Accept header)" }] }),
  );
  app.get(path, async (c) => {
    const openMetrics = wantsOpenMetrics(c.req.header("accept"));
    const end = registry.handles.scrapeDuration.startTimer({ format: openMetrics ? "openmetrics" : "text" });
    const body = await registry.render(openMetrics);
    end();
    return c.body(body, 200, { "content-type": openMetrics ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE });
  });
  app.notFound(notFound(endpoints));
  return app;
}
