import { createServer, type RequestListener, type Server } from "node:http";
import type { Server as HttpsServer, ServerOptions as HttpsOptions } from "node:https";
import type { AddressInfo } from "node:net";
import type { Hono } from "hono";

export interface Listening {
  /** An https.Server when listening with TLS (setSecureContext swaps its certificate). */
  server: Server | HttpsServer;
  /** host:port actually bound, useful when the configured port is 0. */
  address: string;
  port: number;
  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then cuts what is left. */
  close(graceMs: number): Promise<void>;
}

export interface ServerLimits {
  /** Connections open at once (limits.maxConnections); one more is closed as soon as it is accepted. */
  maxConnections?: number;
  /** Time a client has to send the complete request head; a slowloris client is cut off after it. */
  headersTimeoutMs?: number;
  /** Time a client has to send the complete request. */
  requestTimeoutMs?: number;
  /** How often incomplete requests are checked against the two timeouts above. */
  timeoutCheckIntervalMs?: number;
}

/** @hono/node-server's request listener for an app, loaded on first use (see listenWith). */
export async function appListener(app: Hono): Promise<RequestListener> {
  const { getRequestListener } = await import("@hono/node-server");
  // The listener settles its own promise (errors become 500s); Node does not look at what it returns.
  // eslint-disable-next-line @typescript-eslint/no-misused-promises
  return getRequestListener(app.fetch);
}

/** Serves a Hono app, over HTTPS when `tls` is given. */
export async function listen(name: string, app: Hono, host: string, port: number, configKey: string, tls?: HttpsOptions, limits: ServerLimits = {}): Promise<Listening> {
  return listenWith(name, await appListener(app), host, port, configKey, tls, limits);
}

/**
 * Serves a plain Node request listener. Nothing here loads more than node:http (node:https only with TLS), so
 * the health server can listen before any framework is loaded (see serve/liveness.ts).
 */
export async function listenWith(name: string, listener: RequestListener, host: string, port: number, configKey: string, tls?: HttpsOptions, limits: ServerLimits = {}): Promise<Listening> {
  // A probe or scrape that stalls must not hold a socket forever; these bound slow and idle clients. Node checks
  // the request timeouts only every connectionsCheckingInterval (30 s by default), hence the shorter interval.
  const serverOptions = {
    headersTimeout: limits.headersTimeoutMs ?? 10_000,
    requestTimeout: limits.requestTimeoutMs ?? 30_000,
    connectionsCheckingInterval: limits.timeoutCheckIntervalMs ?? 1_000,
  };
  const server: Server = tls ? (await import("node:https")).createServer({ ...tls, ...serverOptions }, listener) : createServer(serverOptions, listener);
  server.keepAliveTimeout = 65_000;
  if (limits.maxConnections !== undefined) server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const hint =
        err.code === "EADDRINUSE"
          ? `port ${port} is already in use on ${host}; set ${configKey} to a free port`
          : err.code === "EACCES"
            ? `not allowed to bind ${host}:${port}; use a port above 1023 or set ${configKey}`
            : err.message;
      reject(new Error(`${name} server cannot listen: ${hint}`));
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const hostForUrl = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
  return {
    server,
    address: `${hostForUrl}:${bound.port}`,
    port: bound.port,
    close(graceMs) {
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}
