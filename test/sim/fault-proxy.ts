// A TCP proxy that puts faults between a client and an upstream whose own simulator cannot produce them: a
// connection that never completes, a certificate the client must refuse, a response cut or slowed after its
// head, canned HTTP answers, an upstream that goes away and comes back on the same port.
//
// It optionally terminates TLS towards the client (so the certificate can be swapped for a bad one) and speaks
// plain TCP or TLS (mutual, for the Talos sim) to the upstream. Faults that act on "the body" find where a
// response's head ends: the blank line of an HTTP/1.1 response, or the first DATA frame of an HTTP/2 (gRPC)
// connection. Every connection that exists when the fault changes is cut, so the next one meets the new fault.
// It runs in the test's process: `stats` tells how much of a response reached the client.

import { createServer, connect as connectTcp, type AddressInfo, type Server, type Socket } from "node:net";
import { connect as connectTls, createSecureContext, TLSSocket } from "node:tls";

export interface ProxyCert {
  certPem: string;
  keyPem: string;
}

export interface FaultProxyOptions {
  upstream: { host: string; port: number };
  /** Where a response's head ends, for the faults that act on the body. */
  protocol: "http1" | "h2";
  /** Terminate TLS towards the client with this certificate (and ALPN list); plain TCP without it. */
  tls?: { cert: ProxyCert; alpn: string[] };
  /** Speak TLS to the upstream: its CA, and a client certificate when it wants one. */
  upstreamTls?: { ca: string; cert?: string; key?: string; alpn?: string[] };
}

export type ProxyFault =
  | { kind: "none" }
  /** Accept the TCP connection and never answer anything, the TLS handshake included. */
  | { kind: "blackhole" }
  /** Complete TLS, read the request, never answer: no response headers, ever. */
  | { kind: "noResponse" }
  /** Not listening: connections are refused until the fault changes, then the same port is served again. */
  | { kind: "down" }
  /** Terminate TLS with this certificate instead of the good one. */
  | { kind: "tlsCert"; cert: ProxyCert }
  /** Forward the response head, then the rest at this many bytes a second. */
  | { kind: "drip"; bytesPerSecond: number }
  /** Forward the response head and a few bytes of the body, then reset the connection (RST). */
  | { kind: "resetMidBody" }
  /** HTTP/1.1 only: answer every request with this response; the upstream is not asked. */
  | { kind: "respond"; status: number; headers?: Record<string, string>; body?: string }
  /** HTTP/1.1 only: a 200 whose chunked body starts with `prefix` and is padded to `bytes`, made only as fast as it is read. */
  | { kind: "hugeBody"; prefix: string; bytes: number; contentType: string };

export interface ProxyStats {
  connections: number;
  /** Date.now() of each accepted connection (the latest 1000). */
  acceptedAt: number[];
  /** Response bytes handed to clients (plain text, after TLS termination). */
  bytesToClients: number;
  /** The most response bytes handed to one connection. */
  mostToOneClient: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** host:port */
  readonly address: string;
  readonly fault: ProxyFault;
  readonly stats: ProxyStats;
  setFault(fault: ProxyFault): Promise<void>;
  resetStats(): void;
  close(): Promise<void>;
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const H2_FRAME_HEADER = 9;
const H2_DATA = 0;
const CRLFCRLF = Buffer.from("\r\n\r\n");
/** Bytes of the body let through before a reset, so the client has started reading it. */
const RESET_AFTER_BODY_BYTES = 4;
/** Time for the partial body to reach the client before the reset, so it meets a broken body and not a refusal. */
const RESET_DELAY_MS = 20;

/**
 * Finds where the head of the upstream's first response ends. Feed it the upstream's bytes in order; it returns
 * the offset in the current chunk where the body starts, or -1 while still inside the head.
 */
function headEndFinder(protocol: "http1" | "h2"): (chunk: Buffer) => number {
  if (protocol === "http1") {
    let tail = Buffer.alloc(0);
    return (chunk) => {
      const joined = Buffer.concat([tail, chunk]);
      const at = joined.indexOf(CRLFCRLF);
      if (at === -1) {
        tail = joined.subarray(Math.max(0, joined.length - 3));
        return -1;
      }
      return at + CRLFCRLF.length - tail.length;
    };
  }
  // HTTP/2: frames before the first non-empty DATA frame (SETTINGS, HEADERS, WINDOW_UPDATE...) are "the head".
  let nextFrame = 0; // stream offset of the next frame header
  let seen = 0; // stream offset of the current chunk
  let partial = Buffer.alloc(0); // the start of a frame header cut by the previous chunk's end
  return (chunk) => {
    const chunkStart = seen;
    seen += chunk.length;
    for (;;) {
      if (nextFrame >= seen) return -1;
      const rel = nextFrame - chunkStart;
      const header = rel >= 0 ? chunk.subarray(rel, rel + H2_FRAME_HEADER) : Buffer.concat([partial, chunk.subarray(0, H2_FRAME_HEADER - partial.length)]);
      if (header.length < H2_FRAME_HEADER) {
        partial = Buffer.from(header);
        return -1;
      }
      partial = Buffer.alloc(0);
      const length = header.readUIntBE(0, 3);
      // A DATA frame whose header began in an earlier chunk has partly gone through already; the body starts here.
      if (header[3] === H2_DATA && length > 0) return Math.max(0, rel);
      nextFrame += H2_FRAME_HEADER + length;
    }
  };
}

/** One client connection and whatever the proxy opened for it. */
class Connection {
  readonly timers = new Set<NodeJS.Timeout>();
  bytesToClient = 0;
  upstream: Socket | undefined;
  client: Socket;

  constructor(readonly raw: Socket) {
    this.client = raw;
  }

  later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  destroy(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.upstream?.destroy();
    this.client.destroy();
    this.raw.destroy();
  }

  reset(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.upstream?.destroy();
    this.raw.resetAndDestroy();
    this.client.destroy();
  }
}

class FaultProxyImpl implements FaultProxy {
  host = "127.0.0.1";
  port = 0;
  fault: ProxyFault = { kind: "none" };
  readonly stats: ProxyStats = { connections: 0, acceptedAt: [], bytesToClients: 0, mostToOneClient: 0 };
  readonly #conns = new Set<Connection>();
  #server: Server | undefined;
  #good: ReturnType<typeof createSecureContext> | undefined;

  constructor(private readonly opts: FaultProxyOptions) {
    if (opts.tls) this.#good = createSecureContext({ cert: opts.tls.cert.certPem, key: opts.tls.cert.keyPem });
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  async listen(): Promise<void> {
    const server = createServer((raw) => this.#accept(raw));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, this.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  async #stopListening(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async setFault(fault: ProxyFault): Promise<void> {
    this.fault = fault;
    for (const c of [...this.#conns]) c.destroy();
    this.#conns.clear();
    if (fault.kind === "down") await this.#stopListening();
    else if (!this.#server) await this.listen();
  }

  resetStats(): void {
    this.stats.connections = 0;
    this.stats.acceptedAt = [];
    this.stats.bytesToClients = 0;
    this.stats.mostToOneClient = 0;
  }

  async close(): Promise<void> {
    for (const c of [...this.#conns]) c.destroy();
    this.#conns.clear();
    await this.#stopListening();
  }

  #accept(raw: Socket): void {
    const conn = new Connection(raw);
    this.#conns.add(conn);
    this.stats.connections++;
    this.stats.acceptedAt.push(Date.now());
    if (this.stats.acceptedAt.length > 1000) this.stats.acceptedAt.shift();
    raw.on("error", () => undefined);
    raw.on("close", () => {
      conn.destroy();
      this.#conns.delete(conn);
    });
    const fault = this.fault;
    if (fault.kind === "blackhole") {
      // Read and drop, so a client that gives up is noticed; never write a byte.
      raw.resume();
      return;
    }
    if (this.opts.tls) {
      const secureContext = fault.kind === "tlsCert" ? createSecureContext({ cert: fault.cert.certPem, key: fault.cert.keyPem }) : this.#good;
      const client = new TLSSocket(raw, { isServer: true, secureContext, ALPNProtocols: this.opts.tls.alpn });
      client.on("error", () => conn.destroy());
      client.on("close", () => conn.destroy());
      conn.client = client;
      // The client refuses the certificate during the handshake; there is nothing to forward.
      if (fault.kind === "tlsCert") return;
    }
    switch (fault.kind) {
      case "noResponse":
        conn.client.resume();
        return;
      case "respond":
      case "hugeBody":
        this.#answer(conn, fault);
        return;
      default:
        this.#forward(conn, fault);
    }
  }

  /** Canned HTTP/1.1 answers: the request head is read, the upstream never asked. */
  #answer(conn: Connection, fault: Extract<ProxyFault, { kind: "respond" | "hugeBody" }>): void {
    const { client } = conn;
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = Buffer.concat([seen, chunk]);
      if (seen.indexOf(CRLFCRLF) === -1) return;
      client.off("data", onData);
      client.resume();
      if (fault.kind === "respond") {
        const body = Buffer.from(fault.body ?? "");
        const headers = { "content-type": "text/plain", ...fault.headers, "content-length": String(body.length), connection: "close" };
        this.#write(conn, Buffer.concat([head(fault.status, headers), body]));
        client.end();
        return;
      }
      this.#pumpHuge(conn, fault);
    };
    client.on("data", onData);
  }

  #pumpHuge(conn: Connection, fault: Extract<ProxyFault, { kind: "hugeBody" }>): void {
    const { client } = conn;
    this.#write(conn, head(200, { "content-type": fault.contentType, "transfer-encoding": "chunked", connection: "close" }));
    const block = Buffer.alloc(64 * 1024, "x");
    let left = Math.max(0, fault.bytes - fault.prefix.length);
    const chunk = (data: Buffer): Buffer => Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from("\r\n")]);
    this.#write(conn, chunk(Buffer.from(fault.prefix)));
    const pump = (): void => {
      while (left > 0) {
        if (client.destroyed) return;
        const n = Math.min(left, block.length);
        left -= n;
        if (!this.#write(conn, chunk(n === block.length ? block : block.subarray(0, n)))) {
          client.once("drain", pump);
          return;
        }
      }
      if (!client.destroyed) client.end("0\r\n\r\n");
    };
    pump();
  }

  #write(conn: Connection, data: Buffer): boolean {
    this.stats.bytesToClients += data.length;
    conn.bytesToClient += data.length;
    this.stats.mostToOneClient = Math.max(this.stats.mostToOneClient, conn.bytesToClient);
    return conn.client.write(data);
  }

  #forward(conn: Connection, fault: ProxyFault): void {
    const { client } = conn;
    const { host, port } = this.opts.upstream;
    const up = this.opts.upstreamTls
      ? connectTls({ host, port, ca: this.opts.upstreamTls.ca, cert: this.opts.upstreamTls.cert, key: this.opts.upstreamTls.key, ALPNProtocols: this.opts.upstreamTls.alpn })
      : connectTcp({ host, port });
    conn.upstream = up;
    up.on("error", () => conn.destroy());
    up.on("close", () => conn.destroy());
    up.on("end", () => client.end());
    client.on("end", () => up.end());
    client.on("data", (chunk: Buffer) => {
      if (!up.write(chunk)) client.pause();
    });
    up.on("drain", () => client.resume());
    client.on("drain", () => up.resume());

    const send = (data: Buffer): void => {
      if (data.length === 0 || client.destroyed) return;
      if (!this.#write(conn, data)) up.pause();
    };
    if (fault.kind === "none") {
      up.on("data", send);
      return;
    }
    // Everything up to the end of the response head goes through; the fault acts on what follows.
    const headEnd = headEndFinder(this.opts.protocol);
    let inBody = false;
    let held = Buffer.alloc(0);
    up.on("data", (chunk: Buffer) => {
      if (inBody) {
        held = Buffer.concat([held, chunk]);
        return;
      }
      const at = headEnd(chunk);
      if (at === -1) return send(chunk);
      inBody = true;
      send(chunk.subarray(0, at));
      held = Buffer.from(chunk.subarray(at));
      this.#bodyFault(conn, fault, () => {
        const out = held;
        held = Buffer.alloc(0);
        return out;
      }, send);
    });
  }

  #bodyFault(conn: Connection, fault: ProxyFault, take: () => Buffer, send: (b: Buffer) => void): void {
    switch (fault.kind) {
      case "drip": {
        const tickMs = Math.max(10, Math.floor(1000 / Math.max(1, fault.bytesPerSecond)));
        let queue = Buffer.alloc(0);
        const tick = (): void => {
          queue = Buffer.concat([queue, take()]);
          if (queue.length > 0) {
            send(queue.subarray(0, 1));
            queue = queue.subarray(1);
          }
          conn.later(tickMs, tick);
        };
        conn.later(tickMs, tick);
        return;
      }
      case "resetMidBody": {
        send(take().subarray(0, RESET_AFTER_BODY_BYTES + (this.opts.protocol === "h2" ? H2_FRAME_HEADER : 0)));
        conn.later(RESET_DELAY_MS, () => conn.reset());
        return;
      }
      default:
        send(take());
    }
  }
}

function head(status: number, headers: Record<string, string>): Buffer {
  const lines = [`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Status"}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n`);
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const proxy = new FaultProxyImpl(opts);
  await proxy.listen();
  return proxy;
}
