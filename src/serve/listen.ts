import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions as HttpsOptions } from "node:https";
import { createAdaptorServer } from "@hono/node-server";
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

export async function listen(name: string, app: Hono, host: string, port: number, configKey: string, tls?: HttpsOptions, limits: ServerLimits = {}): Promise<Listening> {
  // A probe or scrape that stalls must not hold a socket forever; these bound slow and idle clients. Node checks
  // the request timeouts only every connectionsCheckingInterval (30 s by default), hence the shorter interval.
  const serverOptions = {
    headersTimeout: limits.headersTimeoutMs ?? 10_000,
    requestTimeout: limits.requestTimeoutMs ?? 30_000,
    connectionsCheckingInterval: limits.timeoutCheckIntervalMs ?? 1_000,
  };
  const server = (
    tls
      ? createAdaptorServer({ fetch: app.fetch, createServer: createHttpsServer, serverOptions: { ...tls, ...serverOptions } })
      : createAdaptorServer({ fetch: app.fetch, serverOptions })
  ) as Server;
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
