// A stand-in for the Tailscale API v2 (devices list + OAuth client-credentials
// token endpoint) that tests can bend: mutable device inventory, credentials
// that expire, a rate limiter and network-level faults. Only the shapes the
// exporter consumes are modelled; field names follow the public API.
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { randomBytes } from "node:crypto";

export interface TailscaleClientConnectivity {
  endpoints: string[];
  mappingVariesByDestIP: boolean;
  latency: Record<string, { preferred?: boolean; latencyMs: number }>;
  clientSupports: {
    hairPinning: boolean | null;
    ipv6: boolean;
    pcp: boolean;
    pmp: boolean;
    udp: boolean;
    upnp: boolean;
  };
}

export interface TailscaleDevice {
  addresses: string[];
  id: string;
  nodeId: string;
  user: string;
  name: string;
  hostname: string;
  clientVersion: string;
  updateAvailable: boolean;
  os: string;
  created: string;
  connectedToControl: boolean;
  lastSeen: string;
  keyExpiryDisabled: boolean;
  expires: string;
  authorized: boolean;
  isExternal: boolean;
  machineKey: string;
  nodeKey: string;
  blocksIncomingConnections: boolean;
  tailnetLockKey: string;
  tailnetLockError?: string;
  tags?: string[];
  // The four below are only sent with ?fields=all.
  enabledRoutes?: string[];
  advertisedRoutes?: string[];
  clientConnectivity?: TailscaleClientConnectivity;
  postureIdentity?: { serialNumbers?: string[]; disabled?: boolean };
}

/** Fields the real API leaves out unless `?fields=all` is asked for. */
export const ALL_ONLY_DEVICE_FIELDS = [
  "enabledRoutes",
  "advertisedRoutes",
  "clientConnectivity",
  "postureIdentity",
] as const satisfies readonly (keyof TailscaleDevice)[];

export type TailscaleFault =
  | "none"
  | { kind: "none" }
  | { kind: "status"; code: number; body?: string }
  | { kind: "hang" }
  | { kind: "headersThenHang" }
  | { kind: "malformed" }
  | { kind: "drip"; bytesPerSecond: number }
  /** `chunked: true` omits Content-Length so only a streaming byte count can catch it. */
  | { kind: "huge"; bytes: number; chunked?: boolean }
  | { kind: "reset" }
  | { kind: "rateLimit"; retryAfter?: number }
  /** Answers normally, late: for "slow but healthy" cases. */
  | { kind: "delay"; ms: number };

/** Which endpoint a fault applies to. */
export type TailscaleFaultTarget = "devices" | "token" | "all";

export interface TailscaleRateLimit {
  /** Requests allowed per window; the next one in the same window gets 429. */
  requests: number;
  windowMs: number;
  /** false reproduces a 429 without Retry-After. Default true. */
  retryAfterHeader?: boolean;
}

export type TailscaleAuthKind = "basic" | "bearer-key" | "bearer-token" | "none" | "invalid";

export interface TailscaleRequestRecord {
  at: number;
  method: string;
  path: string;
  query: string;
  auth: TailscaleAuthKind;
  /** null while the response never started (hang, reset). */
  status: number | null;
  userAgent: string | undefined;
}

export interface TailscaleSimCounters {
  /** Every HTTP request received, whatever its fate. */
  requests: number;
  deviceRequests: number;
  /** 200 responses with a devices list. */
  devicesServed: number;
  tokenRequests: number;
  tokenIssues: number;
  unauthorized: number;
  forbidden: number;
  /** 429s, from the limiter or the rateLimit fault. */
  rateLimited: number;
  /** Requests answered by an injected fault. */
  faulted: number;
}

export interface IssuedToken {
  token: string;
  issuedAt: number;
  expiresAt: number;
  expiresIn: number;
  scope: string;
}

export interface TailscaleSimOptions {
  /** Tailnet the API key and OAuth client belong to. Default "example.com". */
  tailnet?: string;
  /** MagicDNS suffix used for device `name`. Default "tail1234.ts.net". */
  magicDnsSuffix?: string;
  apiKey?: string;
  oauth?: { clientId?: string; clientSecret?: string; scopes?: string[] };
  /** Lifetime of issued access tokens (`expires_in`). Default 3600. */
  tokenTtlSeconds?: number;
  /** Replaces the default fixture; each entry is completed like addDevice(). */
  devices?: Partial<TailscaleDevice>[];
  rateLimit?: TailscaleRateLimit;
  /** Clock for token expiry, rate windows and setOnline(). Default Date.now. */
  now?: () => number;
}

export interface TailscaleSim {
  /** Base URL, the stand-in for https://api.tailscale.com (no /api/v2). */
  readonly url: string;
  readonly port: number;
  readonly tailnet: string;
  readonly apiKey: string;
  /** A valid key that belongs to a different tailnet: 403 on ours. */
  readonly foreignApiKey: string;
  readonly foreignTailnet: string;
  readonly oauth: { clientId: string; clientSecret: string; tokenUrl: string };
  /** Live inventory; mutate it or replace it outright. */
  devices: TailscaleDevice[];
  readonly counters: TailscaleSimCounters;
  readonly log: TailscaleRequestRecord[];
  readonly tokens: readonly IssuedToken[];
  addDevice(partial?: Partial<TailscaleDevice>): TailscaleDevice;
  removeDevice(id: string): boolean;
  setOnline(id: string, online: boolean, lastSeen?: Date): TailscaleDevice;
  setFault(fault: TailscaleFault, target?: TailscaleFaultTarget): void;
  setRateLimit(limit: TailscaleRateLimit | null): void;
  setTokenTtl(seconds: number): void;
  /** Marks every issued token as expired without waiting. */
  expireTokens(): void;
  resetCounters(): void;
  close(): Promise<void>;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** What the API reports as `expires` when key expiry is disabled. */
export const ZERO_TIME = "0001-01-01T00:00:00Z";
const MAX_BODY = 64 * 1024;
const MAX_LOG = 2000;

/** RFC 3339 without fractional seconds, as the API formats timestamps. */
export function tsTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function hex(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

function makeKey(prefix: string): string {
  return `${prefix}-${hex(6)}CNTRL-${hex(16)}`;
}

function zeroCounters(): TailscaleSimCounters {
  return {
    requests: 0,
    deviceRequests: 0,
    devicesServed: 0,
    tokenRequests: 0,
    tokenIssues: 0,
    unauthorized: 0,
    forbidden: 0,
    rateLimited: 0,
    faulted: 0,
  };
}

interface DeviceFactory {
  make(partial: Partial<TailscaleDevice>): TailscaleDevice;
}

function deviceFactory(suffix: string, now: () => number): DeviceFactory {
  // Monotonic so ids and addresses stay unique even after removals.
  let seq = 0;
  return {
    make(partial) {
      seq += 1;
      const n = seq;
      const t = now();
      const hostname = partial.hostname ?? `device-${n}`;
      const id = partial.id ?? String(10_000_000_000_000 + n * 7_919);
      const keyExpiryDisabled = partial.keyExpiryDisabled ?? false;
      const connected = partial.connectedToControl ?? true;
      const base: TailscaleDevice = {
        addresses: [`100.64.${Math.floor(n / 250)}.${(n % 250) + 1}`, `fd7a:115c:a1e0::${n.toString(16)}`],
        id,
        nodeId: `n${hex(5)}CNTRL`,
        user: "alice@example.com",
        name: `${hostname.toLowerCase()}.${suffix}`,
        hostname,
        clientVersion: "1.76.6-t1234abcd-g5678ef01",
        updateAvailable: false,
        os: "linux",
        created: tsTime(t - 30 * DAY_MS),
        connectedToControl: connected,
        lastSeen: tsTime(connected ? t : t - 60 * 60 * 1000),
        keyExpiryDisabled,
        expires: keyExpiryDisabled ? ZERO_TIME : tsTime(t + 90 * DAY_MS),
        authorized: true,
        isExternal: false,
        machineKey: `mkey:${hex(32)}`,
        nodeKey: `nodekey:${hex(32)}`,
        blocksIncomingConnections: false,
        tailnetLockKey: `nlpub:${hex(32)}`,
        tailnetLockError: "",
        tags: [],
        enabledRoutes: [],
        advertisedRoutes: [],
        clientConnectivity: {
          endpoints: [`198.51.100.${(n % 250) + 1}:41641`],
          mappingVariesByDestIP: false,
          latency: { fra: { preferred: true, latencyMs: 12.5 }, ams: { latencyMs: 18.25 } },
          clientSupports: { hairPinning: false, ipv6: true, pcp: false, pmp: false, udp: true, upnp: false },
        },
        postureIdentity: { disabled: true },
      };
      return { ...base, ...partial, name: partial.name ?? base.name };
    },
  };
}

/**
 * Six devices covering the cases the exporter distinguishes: OS mix, tagged vs
 * user-owned, online/offline, a key expiring in 3 days, key expiry disabled,
 * an update available and one device that blocks incoming connections.
 */
export function fixtureDevices(now: number): Partial<TailscaleDevice>[] {
  return [
    {
      id: "10000000000001",
      hostname: "k8s-operator",
      os: "linux",
      user: "ops@example.com",
      tags: ["tag:k8s-operator"],
      keyExpiryDisabled: true,
      expires: ZERO_TIME,
      connectedToControl: true,
      lastSeen: tsTime(now),
    },
    {
      id: "10000000000002",
      hostname: "k8s-node-1",
      os: "linux",
      user: "ops@example.com",
      tags: ["tag:k8s", "tag:subnet-router"],
      expires: tsTime(now + 150 * DAY_MS),
      advertisedRoutes: ["10.0.0.0/16"],
      enabledRoutes: ["10.0.0.0/16"],
      connectedToControl: true,
      lastSeen: tsTime(now),
    },
    {
      id: "10000000000003",
      hostname: "alice-macbook",
      os: "macOS",
      user: "alice@example.com",
      expires: tsTime(now + 3 * DAY_MS),
      connectedToControl: true,
      lastSeen: tsTime(now),
    },
    {
      id: "10000000000004",
      hostname: "bob-desktop",
      os: "windows",
      user: "bob@example.com",
      clientVersion: "1.62.0-t0123abcd-gfedcba98",
      updateAvailable: true,
      blocksIncomingConnections: true,
      expires: tsTime(now + 60 * DAY_MS),
      connectedToControl: false,
      lastSeen: tsTime(now - 2 * DAY_MS),
    },
    {
      id: "10000000000005",
      hostname: "alice-iphone",
      os: "iOS",
      user: "alice@example.com",
      expires: tsTime(now + 120 * DAY_MS),
      connectedToControl: true,
      lastSeen: tsTime(now),
    },
    {
      id: "10000000000006",
      hostname: "ci-runner",
      os: "linux",
      user: "ci@example.com",
      tags: ["tag:ci"],
      expires: tsTime(now + 45 * DAY_MS),
      connectedToControl: false,
      lastSeen: tsTime(now - 3 * 60 * 60 * 1000),
    },
  ];
}

type ActiveFault = Exclude<TailscaleFault, "none" | { kind: "none" }>;

function isActive(f: TailscaleFault): f is ActiveFault {
  return f !== "none" && f.kind !== "none";
}

type Credential =
  | { kind: "basic" | "bearer-key"; key: string }
  | { kind: "bearer-token"; key: string }
  | { kind: "none" }
  | { kind: "invalid" };

function parseAuthorization(header: string | undefined): { scheme: string; value: string } | null {
  if (!header) return null;
  const m = /^(\S+)\s+(.*)$/.exec(header.trim());
  if (!m || m[1] === undefined || m[2] === undefined) return null;
  return { scheme: m[1].toLowerCase(), value: m[2].trim() };
}

function decodeBasic(value: string): { user: string; pass: string } | null {
  const raw = Buffer.from(value, "base64").toString("utf8");
  const i = raw.indexOf(":");
  if (i < 0) return null;
  return { user: raw.slice(0, i), pass: raw.slice(i + 1) };
}

class TailscaleSimImpl implements TailscaleSim {
  url = "";
  port = 0;
  readonly tailnet: string;
  readonly apiKey: string;
  readonly foreignApiKey: string;
  readonly foreignTailnet = "other-tailnet.example";
  readonly oauth: { clientId: string; clientSecret: string; tokenUrl: string };
  devices: TailscaleDevice[];
  counters: TailscaleSimCounters = zeroCounters();
  readonly log: TailscaleRequestRecord[] = [];
  readonly tokens: IssuedToken[] = [];

  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly factory: DeviceFactory;
  private readonly now: () => number;
  private readonly scopes: string[];
  private tokenTtl: number;
  private faults: { devices: TailscaleFault; token: TailscaleFault } = { devices: "none", token: "none" };
  private rateLimit: TailscaleRateLimit | null;
  private window = { start: 0, count: 0 };
  private closed = false;

  constructor(opts: TailscaleSimOptions) {
    this.now = opts.now ?? (() => Date.now());
    this.tailnet = opts.tailnet ?? "example.com";
    this.apiKey = opts.apiKey ?? makeKey("tskey-api-k");
    this.foreignApiKey = makeKey("tskey-api-k");
    this.oauth = {
      clientId: opts.oauth?.clientId ?? `k${hex(6)}CNTRL`,
      clientSecret: opts.oauth?.clientSecret ?? makeKey("tskey-client-k"),
      tokenUrl: "",
    };
    this.scopes = opts.oauth?.scopes ?? ["devices:core:read"];
    this.tokenTtl = opts.tokenTtlSeconds ?? 3600;
    this.rateLimit = opts.rateLimit ?? null;
    this.factory = deviceFactory(opts.magicDnsSuffix ?? "tail1234.ts.net", this.now);
    const seed = opts.devices ?? fixtureDevices(this.now());
    this.devices = seed.map((d) => this.factory.make(d));
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const addr = this.server.address();
    if (addr === null || typeof addr === "string") throw new Error("tailscale sim: no TCP address");
    this.port = addr.port;
    this.url = `http://127.0.0.1:${addr.port}`;
    this.oauth.tokenUrl = `${this.url}/api/v2/oauth/token`;
  }

  addDevice(partial: Partial<TailscaleDevice> = {}): TailscaleDevice {
    const d = this.factory.make(partial);
    this.devices.push(d);
    return d;
  }

  removeDevice(id: string): boolean {
    const i = this.devices.findIndex((d) => d.id === id || d.nodeId === id);
    if (i < 0) return false;
    this.devices.splice(i, 1);
    return true;
  }

  setOnline(id: string, online: boolean, lastSeen?: Date): TailscaleDevice {
    const d = this.devices.find((x) => x.id === id || x.nodeId === id);
    if (!d) throw new Error(`tailscale sim: no device ${id}`);
    d.connectedToControl = online;
    d.lastSeen = tsTime(lastSeen ? lastSeen.getTime() : this.now());
    return d;
  }

  setFault(fault: TailscaleFault, target: TailscaleFaultTarget = "devices"): void {
    if (target === "devices" || target === "all") this.faults.devices = fault;
    if (target === "token" || target === "all") this.faults.token = fault;
  }

  setRateLimit(limit: TailscaleRateLimit | null): void {
    this.rateLimit = limit;
    this.window = { start: 0, count: 0 };
  }

  setTokenTtl(seconds: number): void {
    this.tokenTtl = seconds;
  }

  expireTokens(): void {
    const t = this.now();
    for (const tok of this.tokens) tok.expiresAt = Math.min(tok.expiresAt, t - 1);
  }

  resetCounters(): void {
    this.counters = zeroCounters();
    this.log.length = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Hung and keep-alive connections would otherwise hold close() open.
    for (const s of this.sockets) s.destroy();
    this.server.closeAllConnections();
    await done;
  }

  // --- request handling -------------------------------------------------

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private record(req: IncomingMessage, url: URL, auth: TailscaleAuthKind): TailscaleRequestRecord {
    const rec: TailscaleRequestRecord = {
      at: this.now(),
      method: req.method ?? "",
      path: url.pathname,
      query: url.search,
      auth,
      status: null,
      userAgent: req.headers["user-agent"],
    };
    this.log.push(rec);
    if (this.log.length > MAX_LOG) this.log.shift();
    return rec;
  }

  private sendJson(
    res: ServerResponse,
    rec: TailscaleRequestRecord,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    const text = JSON.stringify(body);
    rec.status = status;
    if (status === 401) this.counters.unauthorized += 1;
    if (status === 403) this.counters.forbidden += 1;
    if (status === 429) this.counters.rateLimited += 1;
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "content-length": String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.counters.requests += 1;
    const url = new URL(req.url ?? "/", "http://sim.invalid");
    const path = url.pathname;
    const isToken = path === "/api/v2/oauth/token";
    const devicesMatch = /^\/api\/v2\/tailnet\/([^/]+)\/devices\/?$/.exec(path);
    const cred = this.credential(req);
    const rec = this.record(req, url, cred.kind);

    if (isToken) this.counters.tokenRequests += 1;
    if (devicesMatch) this.counters.deviceRequests += 1;

    const fault = isToken ? this.faults.token : devicesMatch ? this.faults.devices : "none";
    if (isActive(fault)) {
      this.counters.faulted += 1;
      if (fault.kind === "delay") {
        this.later(fault.ms, () => this.route(req, res, rec, url, cred, isToken, devicesMatch));
        return;
      }
      // The body of a POST is irrelevant once we misbehave; drain so the
      // client's write side does not stall on backpressure.
      req.resume();
      this.applyFault(fault, req, res, rec, isToken);
      return;
    }

    if (this.rateLimit && path.startsWith("/api/v2/")) {
      const t = this.now();
      const rl = this.rateLimit;
      if (t - this.window.start >= rl.windowMs) this.window = { start: t, count: 0 };
      this.window.count += 1;
      if (this.window.count > rl.requests) {
        req.resume();
        const headers: Record<string, string> = {};
        if (rl.retryAfterHeader !== false) {
          const secs = Math.max(1, Math.ceil((this.window.start + rl.windowMs - t) / 1000));
          headers["retry-after"] = String(secs);
        }
        this.sendJson(res, rec, 429, { message: "rate limit exceeded" }, headers);
        return;
      }
    }

    this.route(req, res, rec, url, cred, isToken, devicesMatch);
  }

  private route(
    req: IncomingMessage,
    res: ServerResponse,
    rec: TailscaleRequestRecord,
    url: URL,
    cred: Credential,
    isToken: boolean,
    devicesMatch: RegExpExecArray | null,
  ): void {
    if (this.closed) return;
    if (isToken) {
      if (req.method !== "POST") {
        req.resume();
        this.sendJson(res, rec, 405, { message: "method not allowed" }, { allow: "POST" });
        return;
      }
      this.readBody(req)
        .then((body) => this.issueToken(req, res, rec, body))
        .catch(() => {
          if (!res.headersSent) this.sendJson(res, rec, 400, { message: "could not read request body" });
        });
      return;
    }
    req.resume();
    if (devicesMatch) {
      if (req.method !== "GET") {
        this.sendJson(res, rec, 405, { message: "method not allowed" }, { allow: "GET" });
        return;
      }
      this.listDevices(res, rec, url, cred, decodeURIComponent(devicesMatch[1] ?? ""));
      return;
    }
    this.sendJson(res, rec, 404, { message: "not found" });
  }

  private readBody(req: IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          reject(new Error("body too large"));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      req.on("error", reject);
    });
  }

  /** Which credential a request carries, and whether it is currently valid. */
  private credential(req: IncomingMessage): Credential {
    const parsed = parseAuthorization(req.headers.authorization);
    if (!parsed) return { kind: "none" };
    if (parsed.scheme === "basic") {
      const b = decodeBasic(parsed.value);
      if (!b) return { kind: "invalid" };
      // On the token endpoint Basic carries client id/secret, not an API key;
      // the caller sorts that out, so report it as basic with the user part.
      return { kind: "basic", key: b.user };
    }
    if (parsed.scheme === "bearer") {
      if (this.isApiKey(parsed.value)) return { kind: "bearer-key", key: parsed.value };
      const tok = this.tokens.find((t) => t.token === parsed.value);
      if (tok) return { kind: "bearer-token", key: parsed.value };
      return { kind: "invalid" };
    }
    return { kind: "invalid" };
  }

  private isApiKey(k: string): boolean {
    return k === this.apiKey || k === this.foreignApiKey;
  }

  private listDevices(
    res: ServerResponse,
    rec: TailscaleRequestRecord,
    url: URL,
    cred: Credential,
    tailnetInPath: string,
  ): void {
    let keyTailnet: string;
    if (cred.kind === "basic" || cred.kind === "bearer-key") {
      if (!this.isApiKey(cred.key)) {
        rec.auth = "invalid";
        this.sendJson(res, rec, 401, { message: "API token invalid" });
        return;
      }
      keyTailnet = cred.key === this.foreignApiKey ? this.foreignTailnet : this.tailnet;
    } else if (cred.kind === "bearer-token") {
      const tok = this.tokens.find((t) => t.token === cred.key);
      if (!tok || tok.expiresAt <= this.now()) {
        this.sendJson(res, rec, 401, { message: "API token expired" });
        return;
      }
      keyTailnet = this.tailnet;
    } else {
      this.sendJson(res, rec, 401, {
        message: cred.kind === "none" ? "API token required" : "API token invalid",
      });
      return;
    }

    const tailnet = tailnetInPath === "-" ? keyTailnet : tailnetInPath;
    if (tailnet !== keyTailnet) {
      this.sendJson(res, rec, 403, { message: `credential is not valid for tailnet ${JSON.stringify(tailnet)}` });
      return;
    }
    if (tailnet !== this.tailnet) {
      // The foreign key's own tailnet: exists, but we model no devices in it.
      this.counters.devicesServed += 1;
      this.sendJson(res, rec, 200, { devices: [] });
      return;
    }

    const fields = url.searchParams.get("fields") ?? "default";
    if (fields !== "default" && fields !== "all") {
      this.sendJson(res, rec, 400, { message: `invalid fields value ${JSON.stringify(fields)}` });
      return;
    }
    this.counters.devicesServed += 1;
    this.sendJson(res, rec, 200, this.devicesBody(fields === "all"));
  }

  private devicesBody(all: boolean): { devices: Partial<TailscaleDevice>[] } {
    return {
      devices: this.devices.map((d) => {
        if (all) return d;
        const copy: Partial<TailscaleDevice> = { ...d };
        for (const f of ALL_ONLY_DEVICE_FIELDS) delete copy[f];
        return copy;
      }),
    };
  }

  private issueToken(req: IncomingMessage, res: ServerResponse, rec: TailscaleRequestRecord, raw: string): void {
    const form = new URLSearchParams(raw);
    let clientId = form.get("client_id");
    let clientSecret = form.get("client_secret");
    const parsed = parseAuthorization(req.headers.authorization);
    if ((clientId === null || clientSecret === null) && parsed?.scheme === "basic") {
      const b = decodeBasic(parsed.value);
      if (b) {
        clientId = decodeURIComponent(b.user);
        clientSecret = decodeURIComponent(b.pass);
      }
    }
    const grant = form.get("grant_type");
    if (grant !== "client_credentials") {
      this.sendJson(res, rec, 400, {
        error: "unsupported_grant_type",
        message: `unsupported grant_type ${JSON.stringify(grant)}`,
      });
      return;
    }
    if (clientId !== this.oauth.clientId || clientSecret !== this.oauth.clientSecret) {
      rec.auth = "invalid";
      this.sendJson(res, rec, 401, { error: "invalid_client", message: "invalid client credentials" });
      return;
    }
    const t = this.now();
    const tok: IssuedToken = {
      token: makeKey("tskey-api-oauth"),
      issuedAt: t,
      expiresAt: t + this.tokenTtl * 1000,
      expiresIn: this.tokenTtl,
      scope: this.scopes.join(" "),
    };
    this.tokens.push(tok);
    this.counters.tokenIssues += 1;
    this.sendJson(res, rec, 200, {
      access_token: tok.token,
      token_type: "Bearer",
      expires_in: tok.expiresIn,
      scope: tok.scope,
    });
  }

  private applyFault(
    fault: ActiveFault,
    req: IncomingMessage,
    res: ServerResponse,
    rec: TailscaleRequestRecord,
    isToken: boolean,
  ): void {
    switch (fault.kind) {
      case "delay":
        return;
      case "status": {
        rec.status = fault.code;
        if (fault.code === 429) this.counters.rateLimited += 1;
        const text = fault.body ?? JSON.stringify({ message: `injected status ${fault.code}` });
        res.writeHead(fault.code, {
          "content-type": "application/json; charset=utf-8",
          "content-length": String(Buffer.byteLength(text)),
        });
        res.end(text);
        return;
      }
      case "rateLimit": {
        const headers: Record<string, string> = {};
        if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter);
        this.sendJson(res, rec, 429, { message: "rate limit exceeded" }, headers);
        return;
      }
      case "hang":
        // Deliberately never answered; close() tears the socket down.
        return;
      case "headersThenHang":
        rec.status = 200;
        res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
        res.flushHeaders();
        return;
      case "malformed": {
        rec.status = 200;
        const good = JSON.stringify(isToken ? { access_token: "x", token_type: "Bearer" } : this.devicesBody(false));
        // Cut mid-document: well-framed HTTP, unparseable JSON.
        const text = good.slice(0, Math.max(1, Math.floor(good.length / 2))) + "\u0000<html>";
        res.writeHead(200, {
          "content-type": "application/json; charset=utf-8",
          "content-length": String(Buffer.byteLength(text)),
        });
        res.end(text);
        return;
      }
      case "drip": {
        rec.status = 200;
        const body = Buffer.from(JSON.stringify(this.devicesBody(false)));
        const bps = Math.max(1, fault.bytesPerSecond);
        const intervalMs = Math.max(50, Math.floor(1000 / bps));
        const chunk = Math.max(1, Math.round((bps * intervalMs) / 1000));
        res.writeHead(200, {
          "content-type": "application/json; charset=utf-8",
          "content-length": String(body.length),
        });
        res.flushHeaders();
        let off = 0;
        const tick = (): void => {
          if (res.destroyed || this.closed) return;
          const next = body.subarray(off, off + chunk);
          off += next.length;
          if (off >= body.length) {
            res.end(next);
            return;
          }
          res.write(next);
          this.later(intervalMs, tick);
        };
        this.later(intervalMs, tick);
        return;
      }
      case "huge": {
        rec.status = 200;
        const head = Buffer.from('{"devices":[],"padding":"');
        const tail = Buffer.from('"}');
        const padLen = Math.max(0, fault.bytes - head.length - tail.length);
        const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8" };
        if (!fault.chunked) headers["content-length"] = String(head.length + padLen + tail.length);
        res.writeHead(200, headers);
        const block = Buffer.alloc(64 * 1024, "x");
        let left = padLen;
        res.write(head);
        const pump = (): void => {
          while (left > 0) {
            if (res.destroyed || this.closed) return;
            const n = Math.min(left, block.length);
            left -= n;
            if (!res.write(n === block.length ? block : block.subarray(0, n))) {
              res.once("drain", pump);
              return;
            }
          }
          if (!res.destroyed) res.end(tail);
        };
        pump();
        return;
      }
      case "reset":
        // RST rather than FIN so the client sees ECONNRESET, not a clean close.
        req.socket.resetAndDestroy();
        return;
    }
  }
}

export async function startTailscaleSim(opts: TailscaleSimOptions = {}): Promise<TailscaleSim> {
  const sim = new TailscaleSimImpl(opts);
  await sim.listen();
  return sim;
}
