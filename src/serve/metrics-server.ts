import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono, type MiddlewareHandler } from "hono";
import { errorMessage } from "../errors.ts";
import type { Exposition, MetricRegistry } from "../metrics/registry.ts";
import type { ExpositionFormat } from "../metrics/spelling.ts";
import { appListener } from "./listen.ts";
import { NOT_ACCEPTABLE, negotiateScrape } from "./negotiate.ts";
import { announcesBody, noBodyOnGet } from "./no-body.ts";
import { notFound } from "./not-found.ts";
import type { Guard } from "./secure/guard.ts";

/**
 * Writes the buffers of a rendered exposition straight to the socket (corked, so they leave as one write): a
 * Response object would copy megabytes per scrape for nothing.
 */
function writeExposition(res: ServerResponse, exposition: Exposition, head: boolean): void {
  res.writeHead(200, {
    "content-type": exposition.contentType,
    "content-length": exposition.length,
    ...(exposition.gzipped && { "content-encoding": "gzip" }),
    // The body depends on both: a cache must not serve one client's form to another.
    vary: "Accept, Accept-Encoding",
  });
  if (head) {
    res.end();
    return;
  }
  res.cork();
  for (const part of exposition.parts) res.write(part);
  res.end();
}

export type ScrapeFormat = ExpositionFormat;

/** What the metrics server serves from: the registry itself, or the copy of its exposition a scrape thread keeps. */
export interface ScrapeSource {
  /** The latest rendering in one form. */
  exposition(openMetrics: boolean, gzipped: boolean): Promise<Exposition>;
  /** Starts timing one scrape; the function returned ends it (sidecar_scrape_duration_seconds). */
  timeScrape(format: ScrapeFormat): () => void;
}

/** The registry as a scrape source, on the thread it renders on. */
export function registrySource(registry: MetricRegistry): ScrapeSource {
  return {
    exposition: (openMetrics, gzipped) => registry.exposition(openMetrics, gzipped),
    timeScrape: (format) => registry.handles.scrapeDuration.startTimer({ format }),
  };
}

/** One scrape: the latest rendering in the form the request asks for, timed, written to the Node response. */
async function answerScrape(source: ScrapeSource, accept: string | undefined, acceptEncoding: string | undefined, res: ServerResponse, head: boolean): Promise<void> {
  const form = negotiateScrape(accept, acceptEncoding);
  if (!form) {
    const body = JSON.stringify({ error: NOT_ACCEPTABLE });
    res.writeHead(406, { "content-type": "application/json", "content-length": Buffer.byteLength(body), vary: "Accept" });
    res.end(head ? undefined : body);
    return;
  }
  const end = source.timeScrape(form.format);
  const exposition = await source.exposition(form.format === "openmetrics", form.gzipped);
  end();
  writeExposition(res, exposition, head);
}

/**
 * /metrics writes what the registry rendered when values changed: checks and sources update them on their own
 * timers, so a scrape never waits on anything outside the process and renders nothing.
 */
export function metricsApp(source: ScrapeSource, path: string, guard?: Guard): Hono {
  const app = new Hono();
  app.use(noBodyOnGet);
  // The Guard reads the Node request (client certificates); the app itself needs no bindings.
  if (guard) app.use(path, guard as unknown as MiddlewareHandler);
  const endpoints = () => [path];
  app.get("/", (c) =>
    c.json({ name: "sidecar-exporter", endpoints: [{ path, description: "Prometheus metrics (text or OpenMetrics by Accept header)" }] }),
  );
  app.get(path, async (c) => {
    // appListener() serves this app with @hono/node-server over node:http(s), whose bindings carry the Node response.
    await answerScrape(source, c.req.header("accept"), c.req.header("accept-encoding"), (c.env as HttpBindings).outgoing, c.req.method === "HEAD");
    return RESPONSE_ALREADY_SENT;
  });
  app.notFound(notFound(endpoints));
  return app;
}

/** GET or HEAD of the metrics path itself (a query is allowed and ignored, as by the app), announcing no body. */
function isPlainScrape(req: IncomingMessage, path: string): boolean {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const url = req.url ?? "";
  if (url !== path && !url.startsWith(`${path}?`)) return false;
  return !announcesBody(req.headers["content-length"], req.headers["transfer-encoding"]);
}

/**
 * The metrics server's request listener. Without a guard, a plain scrape is answered straight from node:http:
 * the answer is a write of cached buffers, and building the fetch API's Request for it would cost more than the
 * write itself (a gzip scrape, half a megabyte, takes a tenth of a millisecond). Everything else — guarded
 * scrapes, other paths, requests with a body — goes through the app, which answers them as before.
 */
export async function metricsListener(source: ScrapeSource, path: string, guard?: Guard): Promise<RequestListener> {
  const app = await appListener(metricsApp(source, path, guard));
  if (guard) return app;
  return (req, res) => {
    if (!isPlainScrape(req, path)) {
      void app(req, res);
      return;
    }
    answerScrape(source, req.headers.accept, req.headers["accept-encoding"], res, req.method === "HEAD").catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: `cannot serve the metrics: ${errorMessage(err)}` }));
    });
  };
}
