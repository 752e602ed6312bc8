/**
 * The health server's first request listener, needing nothing but node:http: it answers liveness probes itself and
 * hands every other request to the health app once that is loaded. Hono's responses are built on the fetch API's
 * Response and Headers, and the first use of those makes Node load its bundled undici, which takes longer than
 * everything else the health server needs; a plain `GET /healthz` is answered without them, so a cold start is
 * live as soon as the port is open.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Config } from "../config/types.ts";
import { announcesBody } from "./no-body.ts";

/** Headers of every plain-text health answer. */
export const TEXT_HEADERS = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } as const;

const OK = "ok";

/** The paths that answer liveness: the configured one and the two Kubernetes names. */
export function livenessPaths(health: Config["health"]): string[] {
  return [...new Set([health.livenessPath, "/healthz", "/livez"])];
}

/**
 * A probe the health app would answer with a bare 200 "ok": GET of a liveness path exactly, without a query (which
 * may ask for ?verbose) and without a body (which the app refuses). Anything else goes to the app.
 */
function isPlainLivenessProbe(req: IncomingMessage, paths: ReadonlySet<string>): boolean {
  if (req.method !== "GET" || req.url === undefined || !paths.has(req.url)) return false;
  return !announcesBody(req.headers["content-length"], req.headers["transfer-encoding"]);
}

function answerLive(res: ServerResponse): void {
  res.writeHead(200, { ...TEXT_HEADERS, "content-length": OK.length });
  res.end(OK);
}

export interface HealthListener {
  listener: RequestListener;
  /** The health app's listener: from now on it takes every request but the plain liveness probes, and those waiting. */
  serve(app: RequestListener): void;
}

/** Liveness probes answered at once; other requests wait for serve(). */
export function healthListener(health: Config["health"]): HealthListener {
  const paths = new Set(livenessPaths(health));
  let app: RequestListener | undefined;
  let waiting: [IncomingMessage, ServerResponse][] = [];
  return {
    listener(req, res) {
      if (isPlainLivenessProbe(req, paths)) answerLive(res);
      else if (app) void app(req, res);
      else waiting.push([req, res]);
    },
    serve(next) {
      app = next;
      const queued = waiting;
      waiting = [];
      for (const [req, res] of queued) void next(req, res);
    },
  };
}
