import type { ServerResponse } from "node:http";
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono, type MiddlewareHandler } from "hono";
import type { Exposition, MetricRegistry } from "../metrics/registry.ts";
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
 * Writes the buffers of a rendered exposition straight to the socket (corked, so they leave as one write): a
 * Response object would copy megabytes per scrape for nothing.
 */
function writeExposition(res: ServerResponse, exposition: Exposition, head: boolean): void {
  res.writeHead(200, {
    "content-type": exposition.contentType,
    "content-length": exposition.length,
    ...(exposition.gzipped && { "content-encoding": "gzip" }),
    vary: "Accept-Encoding",
  });
  if (head) {
    res.end();
    return;
  }
  res.cork();
  for (const part of exposition.parts) res.write(part);
  res.end();
}

/**
 * /metrics writes what the registry rendered when values changed: checks and sources update them on their own
 * timers, so a scrape never waits on anything outside the process and renders nothing.
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
    // listen() serves this app with @hono/node-server over node:http(s), whose bindings carry the Node response.
    writeExposition((c.env as HttpBindings).outgoing, exposition, c.req.method === "HEAD");
    return RESPONSE_ALREADY_SENT;
  });
  app.notFound(notFound(endpoints));
  return app;
}
