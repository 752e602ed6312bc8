import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import type { Server as HttpsServer, ServerOptions as HttpsOptions } from "node:https";
import type { AddressInfo, Server as NetServer, Socket } from "node:net";
import type { Hono } from "hono";
import { ConnectionCap, peerOf } from "./connection-cap.ts";

export interface Listening {
  /** An https.Server when listening with TLS (setSecureContext swaps its certificate). */
  server: Server | HttpsServer;
  /** host:port actually bound, useful when the configured port is 0. */
  address: string;
  port: number;
  /** The server's open connections, and what it closed to stay within limits.maxConnections. */
  connections: ConnectionCap;
  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then cuts what is left. */
  close(graceMs: number): Promise<void>;
}

export interface ServerLimits {
  /** Connections open at once (limits.maxConnections); see ConnectionCap for which one gives way to a new one. */
  maxConnections?: number;
  /** Time a connection may stay open with nothing to answer, after an answer or before its first request. */
  idleTimeoutMs?: number;
  /** Time a client has to send the complete request head; a slowloris client is cut off after it. */
  headersTimeoutMs?: number;
  /** Time a client has to send the complete request. */
  requestTimeoutMs?: number;
  /** How often incomplete requests are checked against the two timeouts above. */
  timeoutCheckIntervalMs?: number;
}

/** How long a connection may stay open with nothing to answer, unless limits say otherwise. */
export const IDLE_TIMEOUT_MS = 5_000;

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
  // A TLS handshake is a request head of its own: the same time to finish it.
  const server: Server = tls
    ? (await import("node:https")).createServer({ ...tls, ...serverOptions, handshakeTimeout: serverOptions.headersTimeout }, listener)
    : createServer(serverOptions, listener);
  // Short: the kubelet opens a connection per probe and Prometheus reconnects cheaply, while an idle connection
  // holds a slot of the cap. The head timeout runs from a request's first byte, not from the last answer, so it
  // needs no relation to this one.
  const idleTimeoutMs = limits.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  server.keepAliveTimeout = idleTimeoutMs;
  const connections = new ConnectionCap({ max: limits.maxConnections ?? Infinity, idleTimeoutMs, stalledTimeoutMs: serverOptions.requestTimeout });
  // The TCP connection, before any TLS handshake: one that never completes its handshake holds a slot too.
  server.on("connection", (socket: Socket) => connections.admit(socket));
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const done = connections.hold(peerOf(req.socket), res);
    res.once("close", done);
  });
  const { address, port: boundPort } = await bind(server, name, host, port, configKey).catch((err: unknown) => {
    connections.stop();
    throw err;
  });
  return {
    server,
    address,
    port: boundPort,
    connections,
    close(graceMs) {
      connections.stop();
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

/** Binds `server` to host:port; the error names the setting to change when the port is taken or not allowed. */
export async function bind(server: NetServer, name: string, host: string, port: number, configKey: string): Promise<{ address: string; port: number }> {
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
  return { address: `${hostForUrl}:${bound.port}`, port: bound.port };
}
