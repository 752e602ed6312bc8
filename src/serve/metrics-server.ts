import { Hono, type MiddlewareHandler } from "hono";
import type { MetricRegistry } from "../metrics/registry.ts";
import { noBodyOnGet } from "./no-body.ts";
import { notFound } from "./not-found.ts";
import type { Guard } from "./secure/guard.ts";

/** gzip unless the client gave it q=0. */
function wantsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  return acceptEncoding.split(",").some((part) => {
    const [coding, ...params] = part.trim().split(";");
    if (coding?.trim().toLowerCase() !== "gzip") return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes("application/openmetrics-text");
}

/**
 * /metrics renders values already held in memory: checks and sources update them on their own timers, so a
 * scrape never waits on anything outside the process.
 */
export function metricsApp(registry: MetricRegistry, path: string, guard?: Guard): Hono {
  const app = new Hono();
  app.use(noBodyOnGet);
  // The Guard reads the Node request (client certificates); the app itself needs no bindings.
  if (guard) app.use(path, guard as unknown as MiddlewareHandler);
  const endpoints = () => [path];
  app.get("/", (c) =>
    c.json({ name: "sidecar-exporter", endpoints: [{ path, description: "Prometheus metrics (text or OpenMetrics by Accept header)" }] }),
  );
  app.get(path, async (c) => {
    const openMetrics = wantsOpenMetrics(c.req.header("accept"));
    const end = registry.handles.scrapeDuration.startTimer({ format: openMetrics ? "openmetrics" : "text" });
    const exposition = await registry.exposition(openMetrics, wantsGzip(c.req.header("accept-encoding")));
    end();
    // A Node Buffer is a Uint8Array over an ArrayBuffer (never shared), which is what a Response body takes.
    return c.body(new Uint8Array(exposition.body.buffer as ArrayBuffer, exposition.body.byteOffset, exposition.body.byteLength), 200, {
      "content-type": exposition.contentType,
      ...(exposition.gzipped && { "content-encoding": "gzip" }),
      vary: "Accept-Encoding",
    });
  });
  app.notFound(notFound(endpoints));
  return app;
}
