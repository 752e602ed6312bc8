// A fake kube-apiserver for tests. It speaks the real REST and watch wire
// protocol (Status bodies, chunked newline-delimited watch events, continue
// tokens, resourceVersion semantics) so the exporter's Kubernetes client is
// exercised against the same shapes it meets in a cluster, with no extra
// dependencies beyond node:http(s).

import { randomUUID } from "node:crypto";
import { createServer as createHttpServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import { stringify as stringifyYaml } from "yaml";

// ---------------------------------------------------------------------------
// Public types

export interface ResourceDef {
  /** "" is the core group, served under /api/{version}. */
  group: string;
  version: string;
  plural: string;
  kind: string;
  /** Defaults to true. */
  namespaced?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: unknown;
  status?: unknown;
  [field: string]: unknown;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchEvent {
  type: WatchEventType;
  object: Record<string, unknown>;
}

/**
 * Misbehaviour for list and watch requests. On a watch, body-level faults act on
 * the event stream: malformed sends one truncated event line, huge sends one
 * event line of about `bytes` bytes, reset cuts an event line in half; each then
 * ends the stream (reset by destroying the socket). garbage and flood leave the
 * stream open, as a server that goes on talking would.
 */
export type Fault =
  | { kind: "none" }
  /** Any HTTP status with a matching Status body. */
  | { kind: "status"; code: number; message?: string }
  /** No response at all until the client gives up or the sim closes. */
  | { kind: "hang" }
  /** 200 headers, then silence. */
  | { kind: "headersThenHang" }
  /** 200 with a truncated, unparseable JSON body. */
  | { kind: "malformed" }
  /** The real response, throttled. */
  | { kind: "drip"; bytesPerSecond: number }
  /** 200 with a valid list padded to exactly `bytes` bytes. */
  | { kind: "huge"; bytes: number }
  /** Headers and half the body, then the socket is destroyed. */
  | { kind: "reset" }
  /** 429 TooManyRequests with Retry-After. */
  | { kind: "retryAfter"; seconds: number }
  /** 200, then a line of bytes that are not JSON; a watch stays open after it. */
  | { kind: "garbage" }
  /** 200 and an empty body at once: a watch that ends as soon as it opens, without an event. */
  | { kind: "endAtOnce" }
  /**
   * `objects` made-up objects of the resource, none of them stored: a list of them (paged by limit and
   * continue), or a watch that sends each as ADDED and stays open.
   */
  | { kind: "flood"; objects: number };

export interface FaultScope {
  /** Only requests whose path starts with this are affected. */
  pathPrefix?: string;
  /** Restrict to list or to watch requests; both when unset. */
  only?: "list" | "watch";
  /** Serve the fault this many times, then behave normally again. */
  times?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** Last value wins for repeated parameters. */
  query: Record<string, string>;
  /** Lower-cased names; the Authorization credential is replaced by "<redacted>". */
  headers: Record<string, string>;
  /** Date.now() when the request arrived. */
  at: number;
}

export interface SimUser {
  username: string;
  groups: string[];
  uid?: string;
}

export interface SimTls {
  certPem: string;
  keyPem: string;
  /** CA that signed certPem; when absent certPem is assumed self-signed. */
  caPem?: string;
}

export interface KubeApiSimOptions {
  tls?: SimTls;
  /** Bearer token every request must carry. No authentication when unset. */
  token?: string;
  /** Watch events kept for replay before older ones are forgotten (410 on watch). */
  historyLimit?: number;
  /** Reported by /version. */
  gitVersion?: string;
}

export interface KubeApiSim {
  readonly url: string;
  /** PEM a client should trust, or undefined for plain HTTP. */
  readonly caPem: string | undefined;
  /** Changeable at runtime to simulate token rotation. */
  token: string | undefined;
  /** When false, /readyz answers 500. */
  ready: boolean;
  /** Tokens TokenReview accepts. */
  readonly tokens: Map<string, SimUser>;
  readonly requests: RecordedRequest[];
  readonly counts: { tokenReviews: number; subjectAccessReviews: number };
  /**
   * Raw JSON text (of any shape, well-formed or not) the review endpoints answer with 201 instead of deciding;
   * while a field is unset, TokenReview decides from `tokens` and SubjectAccessReview from the `allow` rules.
   */
  readonly reviewAnswers: { tokenReview?: string; subjectAccessReview?: string };
  /** Current cluster-wide resourceVersion. */
  readonly resourceVersion: string;
  readonly openWatches: number;
  addResource(def: ResourceDef): void;
  /** Create or replace; assigns uid, resourceVersion, creationTimestamp, generation. */
  upsert(obj: KubeObject): KubeObject;
  delete(apiVersion: string, plural: string, namespace: string | undefined, name: string): boolean;
  get(apiVersion: string, plural: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Forget all watch history and invalidate continue tokens issued so far. */
  compactHistory(): void;
  /** End every open watch cleanly, as the apiserver does on its own timeout. */
  endWatches(): void;
  /** Send a BOOKMARK at the current resourceVersion to watches that asked for them. */
  sendBookmark(): void;
  /** Let a user or group use `verb` on a non-resource path ("*" verb; trailing "*" in path). */
  allow(subject: string, verb: string, path: string): void;
  clearAllowRules(): void;
  setFault(fault: Fault | "none", scope?: FaultScope): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Errors as the apiserver reports them

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  409: "Conflict",
  410: "Expired",
  413: "RequestEntityTooLarge",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

function statusObject(
  code: number,
  reason: string,
  message: string,
  details?: Record<string, unknown>,
): Record<string, unknown> {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: code < 400 ? "Success" : "Failure",
    message,
    // The real server omits an unknown reason rather than sending "".
    ...(reason ? { reason } : {}),
    ...(details ? { details } : {}),
    code,
  };
}

const badRequest = (message: string): ApiError => new ApiError(400, "BadRequest", message);
const pageNotFound = (): ApiError =>
  new ApiError(404, "NotFound", "the server could not find the requested resource");

function notFound(res: Resource, name: string): ApiError {
  return new ApiError(404, "NotFound", `${qualifiedName(res)} "${name}" not found`, {
    name,
    group: res.group,
    kind: res.plural,
  });
}

function methodNotAllowed(method: string): ApiError {
  return new ApiError(405, "MethodNotAllowed", `the server does not allow this method on the requested resource (${method})`);
}

// ---------------------------------------------------------------------------
// Store and history

interface Resource {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  apiVersion: string;
  key: string;
}

interface HistoryEvent {
  rv: number;
  resourceKey: string;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: KubeObject;
  /** State before this event, so filtered watches can turn MODIFIED into ADDED/DELETED. */
  prev: KubeObject | undefined;
}

// etcd revisions start at 1; "0" must never be a real resourceVersion because it
// means "any version" to the apiserver.
const INITIAL_RV = 1;

function apiVersionOf(group: string, version: string): string {
  return group === "" ? version : `${group}/${version}`;
}

function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf("/");
  return slash < 0
    ? { group: "", version: apiVersion }
    : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

function qualifiedName(res: Resource): string {
  return res.group === "" ? res.plural : `${res.plural}.${res.group}`;
}

function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

function keyOf(obj: KubeObject): string {
  return objectKey(obj.metadata.namespace, obj.metadata.name);
}

function nowTimestamp(): string {
  // Kubernetes metav1.Time has second precision.
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

class Store {
  private readonly resources = new Map<string, Resource>();
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private history: HistoryEvent[] = [];
  private rv = INITIAL_RV;
  /** Watches from a resourceVersion below this can no longer be replayed. */
  floorRv = INITIAL_RV;
  /** Continue tokens issued below this are expired, like after an etcd compaction. */
  compactedRv = INITIAL_RV;

  constructor(
    private readonly historyLimit: number,
    private readonly onEvent: (ev: HistoryEvent) => void,
  ) {}

  get currentRv(): number {
    return this.rv;
  }

  addResource(def: ResourceDef): Resource {
    const res: Resource = {
      group: def.group,
      version: def.version,
      plural: def.plural,
      kind: def.kind,
      namespaced: def.namespaced ?? true,
      apiVersion: apiVersionOf(def.group, def.version),
      key: `${def.group}/${def.version}/${def.plural}`,
    };
    this.resources.set(res.key, res);
    if (!this.objects.has(res.key)) this.objects.set(res.key, new Map());
    return res;
  }

  byPath(group: string, version: string, plural: string): Resource | undefined {
    return this.resources.get(`${group}/${version}/${plural}`);
  }

  byKind(apiVersion: string, kind: string): Resource | undefined {
    for (const res of this.resources.values()) {
      if (res.apiVersion === apiVersion && res.kind === kind) return res;
    }
    return undefined;
  }

  all(): Resource[] {
    return [...this.resources.values()];
  }

  private bucket(res: Resource): Map<string, KubeObject> {
    let map = this.objects.get(res.key);
    if (!map) {
      map = new Map();
      this.objects.set(res.key, map);
    }
    return map;
  }

  /** Sorted by namespace/name, the order etcd keys come back in. */
  list(res: Resource, namespace?: string): KubeObject[] {
    const items = [...this.bucket(res).values()].filter(
      (o) => namespace === undefined || o.metadata.namespace === namespace,
    );
    return items.sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
  }

  get(res: Resource, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.bucket(res).get(objectKey(res.namespaced ? namespace : undefined, name));
  }

  create(res: Resource, input: KubeObject): KubeObject {
    const obj = this.normalize(res, input, undefined);
    if (this.bucket(res).has(keyOf(obj))) {
      throw new ApiError(409, "AlreadyExists", `${qualifiedName(res)} "${obj.metadata.name}" already exists`, {
        name: obj.metadata.name,
        group: res.group,
        kind: res.plural,
      });
    }
    return this.write(res, "ADDED", obj, undefined);
  }

  /** Optimistic concurrency: a resourceVersion in the input must match the stored one. */
  update(res: Resource, input: KubeObject): KubeObject {
    const existing = this.get(res, input.metadata.namespace, input.metadata.name);
    if (!existing) throw notFound(res, input.metadata.name);
    const wanted = input.metadata.resourceVersion;
    if (wanted && wanted !== existing.metadata.resourceVersion) {
      throw new ApiError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${qualifiedName(res)} "${input.metadata.name}": ` +
          "the object has been modified; please apply your changes to the latest version and try again",
        { name: input.metadata.name, group: res.group, kind: res.plural },
      );
    }
    return this.write(res, "MODIFIED", this.normalize(res, input, existing), existing);
  }

  upsert(res: Resource, input: KubeObject): KubeObject {
    const existing = this.get(res, input.metadata.namespace || "default", input.metadata.name);
    const obj = this.normalize(res, input, existing);
    return this.write(res, existing ? "MODIFIED" : "ADDED", obj, existing);
  }

  remove(res: Resource, namespace: string | undefined, name: string): KubeObject | undefined {
    const existing = this.get(res, namespace, name);
    if (!existing) return undefined;
    // The DELETED event carries the last state at a fresh resourceVersion.
    return this.write(res, "DELETED", structuredClone(existing), existing);
  }

  /** undefined when `afterRv` is older than the retained history. */
  eventsAfter(res: Resource, afterRv: number): HistoryEvent[] | undefined {
    if (afterRv < this.floorRv) return undefined;
    return this.history.filter((ev) => ev.rv > afterRv && ev.resourceKey === res.key);
  }

  compact(): void {
    this.history = [];
    this.floorRv = this.rv;
    this.compactedRv = this.rv;
  }

  private normalize(res: Resource, input: KubeObject, existing: KubeObject | undefined): KubeObject {
    const meta: ObjectMeta = { ...structuredClone(input.metadata) };
    if (res.namespaced) meta.namespace = meta.namespace || "default";
    else delete meta.namespace;
    meta.uid = existing?.metadata.uid ?? randomUUID();
    // A test fixture may backdate a new object (the real server would stamp "now"), to model objects with history.
    meta.creationTimestamp = existing?.metadata.creationTimestamp ?? input.metadata.creationTimestamp ?? nowTimestamp();
    const specChanged = !existing || JSON.stringify(existing.spec) !== JSON.stringify(input.spec);
    const prevGen = existing?.metadata.generation ?? 0;
    meta.generation = specChanged ? prevGen + 1 : prevGen;
    delete meta.resourceVersion;
    return { ...structuredClone(input), apiVersion: res.apiVersion, kind: res.kind, metadata: meta };
  }

  private write(res: Resource, type: HistoryEvent["type"], obj: KubeObject, prev: KubeObject | undefined): KubeObject {
    this.rv += 1;
    obj.metadata.resourceVersion = String(this.rv);
    if (type === "DELETED") this.bucket(res).delete(keyOf(obj));
    else this.bucket(res).set(keyOf(obj), obj);
    const ev: HistoryEvent = { rv: this.rv, resourceKey: res.key, type, object: structuredClone(obj), prev };
    this.history.push(ev);
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift();
      if (dropped) this.floorRv = dropped.rv;
    }
    this.onEvent(ev);
    return structuredClone(obj);
  }
}

// ---------------------------------------------------------------------------
// Selectors

type ObjectFilter = (obj: KubeObject) => boolean;

function parseLabelSelector(selector: string): ObjectFilter[] {
  const filters: ObjectFilter[] = [];
  for (const raw of selector.split(",")) {
    const term = raw.trim();
    if (term === "") continue;
    if (/\s(in|notin)\s*\(/.test(term) || term.includes("(")) {
      throw badRequest(`unable to parse requirement: set-based selectors are not supported by the sim: "${term}"`);
    }
    const cmp = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (cmp) {
      const [, key = "", op, value = ""] = cmp;
      filters.push(op === "!=" ? (o) => o.metadata.labels?.[key] !== value : (o) => o.metadata.labels?.[key] === value);
      continue;
    }
    const exists = /^(!?)([A-Za-z0-9][-A-Za-z0-9_./]*)$/.exec(term);
    if (!exists) throw badRequest(`unable to parse requirement: invalid label selector "${term}"`);
    const [, negate, key = ""] = exists;
    filters.push(negate ? (o) => !(key in (o.metadata.labels ?? {})) : (o) => key in (o.metadata.labels ?? {}));
  }
  return filters;
}

function parseFieldSelector(selector: string): ObjectFilter[] {
  const filters: ObjectFilter[] = [];
  for (const raw of selector.split(",")) {
    const term = raw.trim();
    if (term === "") continue;
    const cmp = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (!cmp) throw badRequest(`invalid selector: '${term}'; can't understand '${term}'`);
    const [, field = "", op, value = ""] = cmp;
    const read =
      field === "metadata.name"
        ? (o: KubeObject) => o.metadata.name
        : field === "metadata.namespace"
          ? (o: KubeObject) => o.metadata.namespace ?? ""
          : undefined;
    if (!read) throw badRequest(`field label not supported: ${field}`);
    filters.push(op === "!=" ? (o) => read(o) !== value : (o) => read(o) === value);
  }
  return filters;
}

function selectorFilter(query: URLSearchParams): ObjectFilter {
  const filters = [
    ...parseLabelSelector(query.get("labelSelector") ?? ""),
    ...parseFieldSelector(query.get("fieldSelector") ?? ""),
  ];
  return (obj) => filters.every((f) => f(obj));
}

// ---------------------------------------------------------------------------
// Response writing

function sendJson(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  const buf = Buffer.from(JSON.stringify(body));
  res.writeHead(code, { ...headers, "content-type": "application/json", "content-length": buf.length });
  res.end(buf);
}

/** JSON text as given, valid or not. */
function sendRawJson(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, err: ApiError): void {
  sendJson(res, err.code, statusObject(err.code, err.reason, err.message, err.details), err.headers);
}

function sendText(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** Where a response body goes; lets the drip fault throttle any body, watch streams included. */
interface Sink {
  write(chunk: string | Buffer): void;
  end(): void;
}

function directSink(res: ServerResponse): Sink {
  return {
    write: (chunk) => {
      if (!res.destroyed) res.write(chunk);
    },
    end: () => {
      if (!res.destroyed) res.end();
    },
  };
}

function dripSink(res: ServerResponse, bytesPerSecond: number): Sink {
  const rate = Math.max(1, bytesPerSecond);
  const tickMs = Math.max(10, Math.floor(1000 / rate));
  const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
  let queue = Buffer.alloc(0);
  let ending = false;
  const timer = setInterval(() => {
    if (queue.length > 0) {
      res.write(queue.subarray(0, perTick));
      queue = queue.subarray(perTick);
    }
    if (queue.length === 0 && ending) {
      clearInterval(timer);
      res.end();
    }
  }, tickMs);
  res.on("close", () => clearInterval(timer));
  return {
    write: (chunk) => {
      queue = Buffer.concat([queue, Buffer.from(chunk)]);
    },
    end: () => {
      ending = true;
    },
  };
}

function waitDrain(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** Streams head + filler + tail with backpressure so multi-megabyte bodies don't sit in memory. */
async function writePadded(res: ServerResponse, head: string, fillerBytes: number, tail: string): Promise<void> {
  const block = "x".repeat(64 * 1024);
  res.write(head);
  let left = fillerBytes;
  while (left > 0 && !res.destroyed) {
    const n = Math.min(left, block.length);
    left -= n;
    if (!res.write(n === block.length ? block : block.slice(0, n))) await waitDrain(res);
  }
  if (!res.destroyed) res.end(tail);
}

function readJsonBody(req: IncomingMessage, limit = 3 * 1024 * 1024): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new ApiError(413, "RequestEntityTooLarge", "request entity too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (err) {
        reject(badRequest(`error decoding request body: ${(err as Error).message}`));
      }
    });
  });
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function asStringArray(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function asKubeObject(body: unknown): KubeObject {
  const obj = asRecord(body);
  const meta = asRecord(obj.metadata);
  if (Object.keys(obj).length === 0) throw badRequest("the request body must be a JSON object");
  return { ...obj, apiVersion: String(obj.apiVersion ?? ""), kind: String(obj.kind ?? ""), metadata: { ...meta, name: String(meta.name ?? "") } };
}

// ---------------------------------------------------------------------------
// Routing

type Route =
  | { kind: "health"; check: "healthz" | "livez" | "readyz" }
  | { kind: "version" }
  | { kind: "tokenReview" }
  | { kind: "subjectAccessReview" }
  | { kind: "groupList" }
  | { kind: "resourceList"; group: string; version: string }
  | { kind: "collection"; res: Resource; namespace: string | undefined }
  | { kind: "item"; res: Resource; namespace: string | undefined; name: string }
  | { kind: "notFound" };

function resolveRoute(store: Store, pathname: string): Route {
  const parts = pathname.split("/").filter((p) => p !== "").map(decodeURIComponent);
  const [root, ...rest] = parts;
  if (parts.length === 1 && (root === "healthz" || root === "livez" || root === "readyz")) {
    return { kind: "health", check: root };
  }
  if (parts.length === 1 && root === "version") return { kind: "version" };
  if (root === "apis" && rest.length === 0) return { kind: "groupList" };
  if (pathname === "/apis/authentication.k8s.io/v1/tokenreviews") return { kind: "tokenReview" };
  if (pathname === "/apis/authorization.k8s.io/v1/subjectaccessreviews") return { kind: "subjectAccessReview" };

  if (root !== "apis" && root !== "api") return { kind: "notFound" };
  // The core group lives at /api/{version}; named groups at /apis/{group}/{version}.
  const group = root === "api" ? "" : (rest[0] ?? "");
  const version = root === "api" ? rest[0] : rest[1];
  const tail = rest.slice(root === "api" ? 1 : 2);
  if (!version) return { kind: "notFound" };
  if (tail.length === 0) return { kind: "resourceList", group, version };
  return resolveResourcePath(store, group, version, tail);
}

function resolveResourcePath(store: Store, group: string, version: string, tail: string[]): Route {
  if (tail[0] === "namespaces" && tail.length >= 3) {
    const [, namespace, plural = "", name, ...extra] = tail;
    const res = store.byPath(group, version, plural);
    if (!res || !res.namespaced || extra.length > 0) return { kind: "notFound" };
    return name === undefined ? { kind: "collection", res, namespace } : { kind: "item", res, namespace, name };
  }
  const [plural = "", name, ...extra] = tail;
  const res = store.byPath(group, version, plural);
  if (!res || extra.length > 0) return { kind: "notFound" };
  if (name === undefined) return { kind: "collection", res, namespace: undefined };
  // A namespaced object can only be addressed through its namespace.
  return res.namespaced ? { kind: "notFound" } : { kind: "item", res, namespace: undefined, name };
}

// ---------------------------------------------------------------------------
// Watch streaming

interface Watcher {
  res: Resource;
  namespace: string | undefined;
  filter: ObjectFilter;
  sink: Sink;
  bookmarks: boolean;
  /** Stop delivering events and release timers; the response is left alone. */
  dispose(): void;
  /** dispose() and end the response cleanly. */
  finish(): void;
}

function eventLine(type: WatchEventType, object: unknown): string {
  return `${JSON.stringify({ type, object })}\n`;
}

/** How a change looks through a watch's namespace and selectors, as the watch cache reports it. */
function translateEvent(ev: HistoryEvent, w: Watcher): { type: WatchEventType; object: KubeObject } | undefined {
  const visible = (o: KubeObject | undefined): boolean =>
    o !== undefined && (w.namespace === undefined || o.metadata.namespace === w.namespace) && w.filter(o);
  const now = visible(ev.object);
  const before = visible(ev.prev);
  if (ev.type === "DELETED") return before ? { type: "DELETED", object: ev.object } : undefined;
  if (now && before) return { type: "MODIFIED", object: ev.object };
  if (now) return { type: "ADDED", object: ev.object };
  if (before) return { type: "DELETED", object: ev.object };
  return undefined;
}

function isTrue(value: string | null): boolean {
  return value !== null && ["1", "t", "T", "true", "TRUE", "True"].includes(value);
}

function parseResourceVersion(raw: string | null): number | undefined {
  if (raw === null || raw === "" || raw === "0") return undefined;
  if (!/^\d+$/.test(raw)) throw badRequest(`invalid resource version: ${raw}`);
  return Number(raw);
}

// ---------------------------------------------------------------------------
// List paging

interface ContinueToken {
  v: string;
  rv: number;
  start: string;
}

function encodeContinue(rv: number, lastKey: string): string {
  const token: ContinueToken = { v: "meta.k8s.io/v1", rv, start: `${lastKey}\u0000` };
  return Buffer.from(JSON.stringify(token)).toString("base64url");
}

function decodeContinue(raw: string): ContinueToken {
  try {
    const token = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as Partial<ContinueToken>;
    if (token.v === "meta.k8s.io/v1" && typeof token.rv === "number" && typeof token.start === "string") {
      return { v: token.v, rv: token.rv, start: token.start };
    }
  } catch {
    // falls through to the same error as a well-formed but foreign token
  }
  throw badRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
}

// ---------------------------------------------------------------------------
// Faults

type ActiveFault = Exclude<Fault, { kind: "none" }>;

function faultError(code: number, message?: string): ApiError {
  return new ApiError(code, REASONS[code] ?? "", message ?? `sim fault: HTTP ${code}`);
}

function placeholderObject(res: Resource, rv: number, annotations?: Record<string, string>): KubeObject {
  return {
    apiVersion: res.apiVersion,
    kind: res.kind,
    metadata: {
      name: "sim-fault",
      ...(res.namespaced ? { namespace: "default" } : {}),
      resourceVersion: String(rv),
      ...(annotations ? { annotations } : {}),
    },
  };
}

const FILL_MARK = "__SIM_FILL__";

/** A syntactically valid list (or watch event) of exactly `bytes` bytes when that is achievable. */
function serveHuge(res: ServerResponse, resource: Resource, rv: number, bytes: number, watch: boolean): void {
  const item = placeholderObject(resource, rv, { "sim.test/filler": FILL_MARK });
  const doc = watch
    ? eventLine("ADDED", item)
    : JSON.stringify({ kind: `${resource.kind}List`, apiVersion: resource.apiVersion, metadata: { resourceVersion: String(rv) }, items: [item] });
  const [head = "", tail = ""] = doc.split(FILL_MARK);
  const filler = Math.max(0, bytes - head.length - tail.length);
  const headers: Record<string, string | number> = { "content-type": "application/json" };
  if (!watch) headers["content-length"] = head.length + filler + tail.length;
  res.writeHead(200, headers);
  void writePadded(res, head, filler, tail);
}

/** The `i`th object of a flood: each with its own name and uid, so none replaces another. */
function floodObject(res: Resource, i: number, rv: number): KubeObject {
  return {
    apiVersion: res.apiVersion,
    kind: res.kind,
    metadata: {
      name: `flood-${i}`,
      ...(res.namespaced ? { namespace: "flood" } : {}),
      uid: `flood-uid-${i}`,
      resourceVersion: String(rv),
    },
    spec: {},
  };
}

/** One page of a flood list; its continue token is the offset of the next page. */
function floodPage(res: Resource, rv: number, total: number, query: URLSearchParams): Record<string, unknown> {
  const limit = Number.parseInt(query.get("limit") ?? "", 10);
  const from = Number(Buffer.from(query.get("continue") ?? "", "base64url").toString("utf8")) || 0;
  const to = limit > 0 ? Math.min(total, from + limit) : total;
  const items: KubeObject[] = [];
  for (let i = from; i < to; i++) items.push(floodObject(res, i, rv));
  const metadata: Record<string, unknown> = { resourceVersion: String(rv) };
  if (to < total) {
    metadata.continue = Buffer.from(String(to)).toString("base64url");
    metadata.remainingItemCount = total - to;
  }
  return { kind: `${res.kind}List`, apiVersion: res.apiVersion, metadata, items };
}

/**
 * Sends `total` ADDED events as fast as the client reads them, then leaves the stream open. They all carry the
 * current resourceVersion, so a client that watches again from it still gets the changes made after.
 */
async function floodWatch(res: ServerResponse, resource: Resource, rv: number, total: number): Promise<void> {
  res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
  for (let i = 0; i < total && !res.destroyed; i++) {
    if (!res.write(eventLine("ADDED", floodObject(resource, i, rv)))) await waitDrain(res);
  }
}

// ---------------------------------------------------------------------------
// The server

interface AllowRule {
  subject: string;
  verb: string;
  path: string;
}

function pathMatches(rulePath: string, path: string): boolean {
  return rulePath.endsWith("*") ? path.startsWith(rulePath.slice(0, -1)) : rulePath === path;
}

class SimServer implements KubeApiSim {
  url = "";
  readonly caPem: string | undefined;
  token: string | undefined;
  ready = true;
  readonly tokens = new Map<string, SimUser>();
  readonly requests: RecordedRequest[] = [];
  readonly counts = { tokenReviews: 0, subjectAccessReviews: 0 };
  readonly reviewAnswers: { tokenReview?: string; subjectAccessReview?: string } = {};

  private readonly store: Store;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private readonly rules: AllowRule[] = [];
  private fault: { fault: ActiveFault; scope: FaultScope; remaining: number } | undefined;
  private readonly server: Server;
  private readonly gitVersion: string;
  private closed = false;

  constructor(opts: KubeApiSimOptions) {
    this.token = opts.token;
    this.caPem = opts.tls ? (opts.tls.caPem ?? opts.tls.certPem) : undefined;
    this.gitVersion = opts.gitVersion ?? "v1.31.0";
    this.store = new Store(opts.historyLimit ?? 1000, (ev) => this.broadcast(ev));
    this.store.addResource({ group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease" });
    const listener = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err));
    };
    this.server = opts.tls
      ? createHttpsServer({ cert: opts.tls.certPem, key: opts.tls.keyPem }, listener)
      : createHttpServer(listener);
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => resolve());
    });
    const addr = this.server.address();
    if (addr === null || typeof addr === "string") throw new Error("kube-api sim: unexpected listen address");
    this.url = `${this.caPem === undefined ? "http" : "https"}://127.0.0.1:${addr.port}`;
  }

  // --- public control surface ------------------------------------------------

  get resourceVersion(): string {
    return String(this.store.currentRv);
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  addResource(def: ResourceDef): void {
    this.store.addResource(def);
  }

  upsert(obj: KubeObject): KubeObject {
    return this.store.upsert(this.resourceForKind(obj.apiVersion, obj.kind), obj);
  }

  delete(apiVersion: string, plural: string, namespace: string | undefined, name: string): boolean {
    return this.store.remove(this.resourceForPlural(apiVersion, plural), namespace, name) !== undefined;
  }

  get(apiVersion: string, plural: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const obj = this.store.get(this.resourceForPlural(apiVersion, plural), namespace, name);
    return obj && structuredClone(obj);
  }

  compactHistory(): void {
    this.store.compact();
  }

  endWatches(): void {
    for (const w of [...this.watchers]) w.finish();
  }

  sendBookmark(): void {
    for (const w of this.watchers) {
      if (w.bookmarks) w.sink.write(this.bookmarkLine(w.res));
    }
  }

  allow(subject: string, verb: string, path: string): void {
    this.rules.push({ subject, verb, path });
  }

  clearAllowRules(): void {
    this.rules.length = 0;
  }

  setFault(fault: Fault | "none", scope: FaultScope = {}): void {
    this.fault =
      fault === "none" || fault.kind === "none"
        ? undefined
        : { fault, scope, remaining: scope.times ?? Number.POSITIVE_INFINITY };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fault = undefined;
    for (const w of [...this.watchers]) w.dispose();
    // Watches and hung requests never finish on their own; without this the
    // server (and vitest) would wait for them.
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private resourceForKind(apiVersion: string, kind: string): Resource {
    const res = this.store.byKind(apiVersion, kind);
    if (!res) throw new Error(`kube-api sim: no resource registered for ${apiVersion} ${kind}; call addResource first`);
    return res;
  }

  private resourceForPlural(apiVersion: string, plural: string): Resource {
    const { group, version } = splitApiVersion(apiVersion);
    const res = this.store.byPath(group, version, plural);
    if (!res) throw new Error(`kube-api sim: no resource registered for ${apiVersion} ${plural}; call addResource first`);
    return res;
  }

  // --- request pipeline --------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://sim.invalid");
    const method = req.method ?? "GET";
    this.record(req, method, url);
    res.setHeader("audit-id", randomUUID());
    res.setHeader("cache-control", "no-cache, private");
    if (!this.authenticated(req)) throw new ApiError(401, "Unauthorized", "Unauthorized");

    const route = resolveRoute(this.store, url.pathname);
    switch (route.kind) {
      case "health":
        return this.serveHealth(res, method, route.check);
      case "version":
        return this.serveVersion(res, method);
      case "tokenReview":
        return this.serveTokenReview(req, res, method);
      case "subjectAccessReview":
        return this.serveSubjectAccessReview(req, res, method);
      case "groupList":
        return sendJson(res, 200, this.groupList());
      case "resourceList":
        return this.serveResourceList(res, route.group, route.version);
      case "collection":
        return this.serveCollection(req, res, method, url, route.res, route.namespace);
      case "item":
        return this.serveItem(req, res, method, route.res, route.namespace, route.name);
      case "notFound":
        throw pageNotFound();
    }
  }

  private fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(res, err instanceof ApiError ? err : new ApiError(500, "InternalError", `Internal error occurred: ${String(err)}`));
  }

  private record(req: IncomingMessage, method: string, url: URL): void {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined) continue;
      headers[name] = Array.isArray(value) ? value.join(", ") : value;
    }
    if (headers.authorization !== undefined) {
      // Keep the scheme so tests can see a bearer token was sent, never the secret.
      const scheme = headers.authorization.split(" ")[0] ?? "";
      headers.authorization = `${scheme} <redacted>`;
    }
    this.requests.push({
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      at: Date.now(),
    });
  }

  private authenticated(req: IncomingMessage): boolean {
    if (this.token === undefined) return true;
    const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "");
    return match?.[1] === this.token;
  }

  // --- simple endpoints ------------------------------------------------------

  private serveHealth(res: ServerResponse, method: string, check: string): void {
    if (method !== "GET" && method !== "HEAD") throw methodNotAllowed(method);
    if (check === "readyz" && !this.ready) return sendText(res, 500, "[-]sim-ready failed: reason withheld\nreadyz check failed\n");
    sendText(res, 200, "ok");
  }

  private serveVersion(res: ServerResponse, method: string): void {
    if (method !== "GET") throw methodNotAllowed(method);
    const [major = "1", minor = "0"] = this.gitVersion.replace(/^v/, "").split(".");
    sendJson(res, 200, {
      major,
      minor,
      gitVersion: this.gitVersion,
      gitCommit: "0000000000000000000000000000000000000000",
      gitTreeState: "clean",
      buildDate: "2024-01-01T00:00:00Z",
      goVersion: "go1.22.0",
      compiler: "gc",
      platform: "linux/amd64",
    });
  }

  private groupList(): Record<string, unknown> {
    const groups = new Map<string, string[]>();
    for (const r of this.store.all()) {
      if (r.group === "") continue;
      const versions = groups.get(r.group) ?? [];
      if (!versions.includes(r.version)) versions.push(r.version);
      groups.set(r.group, versions);
    }
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: [...groups].map(([name, versions]) => {
        const gvs = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
        return { name, versions: gvs, preferredVersion: gvs[0] };
      }),
    };
  }

  private serveResourceList(res: ServerResponse, group: string, version: string): void {
    const resources = this.store.all().filter((r) => r.group === group && r.version === version);
    if (resources.length === 0) throw pageNotFound();
    sendJson(res, 200, {
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: apiVersionOf(group, version),
      resources: resources.map((r) => ({
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ["create", "delete", "get", "list", "update", "watch"],
      })),
    });
  }

  // --- authn / authz reviews -------------------------------------------------

  private async serveTokenReview(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    if (method !== "POST") throw methodNotAllowed(method);
    this.counts.tokenReviews += 1;
    const spec = asRecord(asRecord(await readJsonBody(req)).spec);
    const token = typeof spec.token === "string" ? spec.token : "";
    if (token === "") throw badRequest("token is required for TokenReview in authentication");
    if (this.reviewAnswers.tokenReview !== undefined) return sendRawJson(res, 201, this.reviewAnswers.tokenReview);
    const user = this.tokens.get(token);
    // Mirrors the Go struct's omitempty: an unauthenticated review has no
    // `authenticated` field and an empty user.
    const status = user
      ? {
          authenticated: true,
          user: { username: user.username, ...(user.uid ? { uid: user.uid } : {}), groups: user.groups },
          ...(Array.isArray(spec.audiences) ? { audiences: spec.audiences } : {}),
        }
      : { user: {} };
    sendJson(res, 201, {
      kind: "TokenReview",
      apiVersion: "authentication.k8s.io/v1",
      metadata: { creationTimestamp: null },
      spec,
      status,
    });
  }

  private async serveSubjectAccessReview(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    if (method !== "POST") throw methodNotAllowed(method);
    this.counts.subjectAccessReviews += 1;
    const spec = asRecord(asRecord(await readJsonBody(req)).spec);
    const user = typeof spec.user === "string" ? spec.user : "";
    const groups = asStringArray(spec.groups);
    const nonResource = spec.nonResourceAttributes === undefined ? undefined : asRecord(spec.nonResourceAttributes);
    if ((nonResource === undefined) === (spec.resourceAttributes === undefined)) {
      throw new ApiError(422, "Invalid", "SubjectAccessReview.authorization.k8s.io is invalid: exactly one of nonResourceAttributes or resourceAttributes must be specified");
    }
    if (user === "" && groups.length === 0) {
      throw new ApiError(422, "Invalid", "SubjectAccessReview.authorization.k8s.io is invalid: at least one of user or group must be specified");
    }
    if (this.reviewAnswers.subjectAccessReview !== undefined) return sendRawJson(res, 201, this.reviewAnswers.subjectAccessReview);
    const status = nonResource
      ? this.decide(user, groups, String(nonResource.verb ?? ""), String(nonResource.path ?? ""))
      : { allowed: false, reason: "kube-api sim: resourceAttributes are not modelled" };
    sendJson(res, 201, {
      kind: "SubjectAccessReview",
      apiVersion: "authorization.k8s.io/v1",
      metadata: { creationTimestamp: null },
      spec,
      status,
    });
  }

  private decide(user: string, groups: string[], verb: string, path: string): { allowed: boolean; reason: string } {
    const rule = this.rules.find(
      (r) =>
        (r.subject === user || groups.includes(r.subject)) &&
        (r.verb === "*" || r.verb === verb) &&
        pathMatches(r.path, path),
    );
    return rule
      ? { allowed: true, reason: `kube-api sim: allowed by rule ${rule.subject} ${rule.verb} ${rule.path}` }
      : { allowed: false, reason: `kube-api sim: no rule allows "${user}" to ${verb} ${path}` };
  }

  // --- resources ---------------------------------------------------------------

  private async serveCollection(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    url: URL,
    resource: Resource,
    namespace: string | undefined,
  ): Promise<void> {
    if (method === "POST") return this.serveCreate(req, res, resource, namespace);
    if (method !== "GET") throw methodNotAllowed(method);
    const watch = isTrue(url.searchParams.get("watch"));
    const fault = this.takeFault(url.pathname, watch);
    if (fault && fault.kind !== "drip") return this.serveFault(fault, res, resource, namespace, url.searchParams, watch);
    const sink = (): Sink => (fault?.kind === "drip" ? dripSink(res, fault.bytesPerSecond) : directSink(res));
    if (watch) return this.startWatch(res, sink, resource, namespace, url.searchParams);
    const body = Buffer.from(JSON.stringify(this.listObject(resource, namespace, url.searchParams)));
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    const out = sink();
    out.write(body);
    out.end();
  }

  private async serveCreate(req: IncomingMessage, res: ServerResponse, resource: Resource, namespace: string | undefined): Promise<void> {
    const obj = asKubeObject(await readJsonBody(req));
    if (namespace !== undefined && obj.metadata.namespace && obj.metadata.namespace !== namespace) {
      throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    if (namespace !== undefined) obj.metadata.namespace = namespace;
    if (obj.metadata.name === "" && obj.metadata.generateName) {
      obj.metadata.name = obj.metadata.generateName + randomUUID().slice(0, 5);
    }
    if (obj.metadata.name === "") {
      throw new ApiError(422, "Invalid", `${resource.kind} is invalid: metadata.name: Required value: name or generateName is required`);
    }
    sendJson(res, 201, this.store.create(resource, obj));
  }

  private async serveItem(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    resource: Resource,
    namespace: string | undefined,
    name: string,
  ): Promise<void> {
    if (method === "GET") {
      const obj = this.store.get(resource, namespace, name);
      if (!obj) throw notFound(resource, name);
      return sendJson(res, 200, obj);
    }
    if (method === "DELETE") {
      const removed = this.store.remove(resource, namespace, name);
      if (!removed) throw notFound(resource, name);
      return sendJson(res, 200, removed);
    }
    if (method !== "PUT") throw methodNotAllowed(method);
    const obj = asKubeObject(await readJsonBody(req));
    if (obj.metadata.name !== name) {
      throw badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
    }
    if (namespace !== undefined && obj.metadata.namespace && obj.metadata.namespace !== namespace) {
      throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    if (namespace !== undefined) obj.metadata.namespace = namespace;
    sendJson(res, 200, this.store.update(resource, obj));
  }

  private listObject(resource: Resource, namespace: string | undefined, query: URLSearchParams): Record<string, unknown> {
    const filter = selectorFilter(query);
    const limit = Number.parseInt(query.get("limit") ?? "", 10);
    const continueRaw = query.get("continue");
    let listRv = this.store.currentRv;
    let items = this.store.list(resource, namespace).filter(filter);
    if (continueRaw) {
      const token = decodeContinue(continueRaw);
      if (token.rv < this.store.compactedRv) {
        throw new ApiError(
          410,
          "Expired",
          "The provided continue parameter is too old to display a consistent list result. " +
            "You can start a new list without the continue parameter.",
        );
      }
      // A real continue reads a snapshot at token.rv; the sim reads current state
      // but keeps reporting the snapshot's resourceVersion, which is what clients see.
      listRv = token.rv;
      items = items.filter((o) => keyOf(o) > token.start);
    }
    const metadata: Record<string, unknown> = { resourceVersion: String(listRv) };
    if (limit > 0 && items.length > limit) {
      const page = items.slice(0, limit);
      const last = page[page.length - 1];
      if (last) metadata.continue = encodeContinue(listRv, keyOf(last));
      // The real server only knows the remaining count when no selector filters.
      if (!query.get("labelSelector") && !query.get("fieldSelector")) metadata.remainingItemCount = items.length - limit;
      items = page;
    }
    return { kind: `${resource.kind}List`, apiVersion: resource.apiVersion, metadata, items };
  }

  // --- watch -------------------------------------------------------------------

  private startWatch(
    res: ServerResponse,
    makeSink: () => Sink,
    resource: Resource,
    namespace: string | undefined,
    query: URLSearchParams,
  ): void {
    // Validate everything before the 200 goes out; afterwards errors can only be events.
    const filter = selectorFilter(query);
    const startRv = parseResourceVersion(query.get("resourceVersion"));
    const timeoutSeconds = Number.parseInt(query.get("timeoutSeconds") ?? "", 10);
    const sendInitialEvents = isTrue(query.get("sendInitialEvents"));

    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    const sink = makeSink();
    let timer: NodeJS.Timeout | undefined;
    const watcher: Watcher = {
      res: resource,
      namespace,
      filter,
      sink,
      bookmarks: isTrue(query.get("allowWatchBookmarks")),
      dispose: () => {
        if (timer) clearTimeout(timer);
        this.watchers.delete(watcher);
      },
      finish: () => {
        const open = this.watchers.has(watcher);
        watcher.dispose();
        if (open) sink.end();
      },
    };

    if (startRv === undefined || sendInitialEvents) {
      for (const obj of this.store.list(resource, namespace).filter(filter)) sink.write(eventLine("ADDED", obj));
      if (sendInitialEvents && watcher.bookmarks) {
        sink.write(this.bookmarkLine(resource, { "k8s.io/initial-events-end": "true" }));
      }
    } else {
      const replay = this.store.eventsAfter(resource, startRv);
      if (!replay) {
        const message = `too old resource version: ${startRv} (${this.store.floorRv})`;
        sink.write(eventLine("ERROR", statusObject(410, "Expired", message)));
        sink.end();
        return;
      }
      for (const ev of replay) {
        const out = translateEvent(ev, watcher);
        if (out) sink.write(eventLine(out.type, out.object));
      }
    }

    this.watchers.add(watcher);
    res.on("close", () => watcher.dispose());
    if (timeoutSeconds > 0) timer = setTimeout(() => watcher.finish(), timeoutSeconds * 1000);
  }

  private broadcast(ev: HistoryEvent): void {
    for (const w of this.watchers) {
      if (w.res.key !== ev.resourceKey) continue;
      const out = translateEvent(ev, w);
      if (out) w.sink.write(eventLine(out.type, out.object));
    }
  }

  private bookmarkLine(resource: Resource, annotations?: Record<string, string>): string {
    return eventLine("BOOKMARK", {
      kind: resource.kind,
      apiVersion: resource.apiVersion,
      metadata: { resourceVersion: String(this.store.currentRv), ...(annotations ? { annotations } : {}) },
    });
  }

  // --- faults ----------------------------------------------------------------

  private takeFault(path: string, watch: boolean): ActiveFault | undefined {
    const active = this.fault;
    if (!active) return undefined;
    const { pathPrefix, only } = active.scope;
    if (pathPrefix !== undefined && !path.startsWith(pathPrefix)) return undefined;
    if ((only === "list" && watch) || (only === "watch" && !watch)) return undefined;
    active.remaining -= 1;
    if (active.remaining <= 0) this.fault = undefined;
    return active.fault;
  }

  private serveFault(
    fault: Exclude<ActiveFault, { kind: "drip" }>,
    res: ServerResponse,
    resource: Resource,
    namespace: string | undefined,
    query: URLSearchParams,
    watch: boolean,
  ): void {
    const rv = this.store.currentRv;
    // A believable body for faults that corrupt or cut one short.
    const realBody = (): Buffer =>
      Buffer.from(
        watch ? eventLine("ADDED", placeholderObject(resource, rv)) : JSON.stringify(this.listObject(resource, namespace, query)),
      );
    switch (fault.kind) {
      case "status":
        return sendError(res, faultError(fault.code, fault.message));
      case "retryAfter":
        return sendError(
          res,
          new ApiError(429, "TooManyRequests", "Too many requests, please try again later.", { retryAfterSeconds: fault.seconds }, { "retry-after": String(fault.seconds) }),
        );
      case "hang":
        return; // never answer; close() or the client's timeout ends it
      case "headersThenHang":
        res.writeHead(200, { "content-type": "application/json", ...(watch ? { "transfer-encoding": "chunked" } : {}) });
        res.flushHeaders();
        return;
      case "malformed": {
        const body = realBody();
        const cut = body.subarray(0, Math.max(1, Math.floor(body.length / 2)));
        const out = watch ? Buffer.concat([cut, Buffer.from("\n")]) : cut;
        res.writeHead(200, { "content-type": "application/json", ...(watch ? {} : { "content-length": out.length }) });
        res.end(out);
        return;
      }
      case "huge":
        return serveHuge(res, resource, rv, fault.bytes, watch);
      case "garbage": {
        const line = Buffer.from("\u0000\u00ff<html>not an event</html>\n", "latin1");
        res.writeHead(200, { "content-type": "application/json", ...(watch ? { "transfer-encoding": "chunked" } : { "content-length": line.length }) });
        if (watch) res.write(line);
        else res.end(line);
        return;
      }
      case "endAtOnce":
        res.writeHead(200, { "content-type": "application/json", "content-length": 0 });
        res.end();
        return;
      case "flood":
        return watch ? void floodWatch(res, resource, rv, fault.objects) : sendJson(res, 200, floodPage(resource, rv, fault.objects, query));
      case "reset": {
        const body = realBody();
        res.writeHead(200, { "content-type": "application/json", ...(watch ? {} : { "content-length": body.length }) });
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        // Give the partial body time to reach the client so it sees a broken body, not a refused request.
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Entry points

export async function startKubeApiSim(opts: KubeApiSimOptions = {}): Promise<KubeApiSim> {
  const sim = new SimServer(opts);
  await sim.listen();
  return sim;
}

export interface KubeconfigOptions {
  /** Defaults to the sim's token. */
  token?: string;
  /** Defaults to the sim's CA (the server cert itself when self-signed). */
  caPem?: string;
  namespace?: string;
  /** Name used for the cluster, user and context entries. */
  name?: string;
  insecureSkipTlsVerify?: boolean;
}

export function kubeconfigYaml(sim: KubeApiSim, opts: KubeconfigOptions = {}): string {
  const name = opts.name ?? "kube-api-sim";
  const caPem = opts.caPem ?? sim.caPem;
  const cluster: Record<string, unknown> = { server: sim.url };
  if (opts.insecureSkipTlsVerify) cluster["insecure-skip-tls-verify"] = true;
  else if (caPem !== undefined && sim.url.startsWith("https:")) {
    cluster["certificate-authority-data"] = Buffer.from(caPem).toString("base64");
  }
  const token = opts.token ?? sim.token;
  return stringifyYaml({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name, cluster }],
    users: [{ name, user: token !== undefined ? { token } : {} }],
    contexts: [{ name, context: { cluster: name, user: name, ...(opts.namespace ? { namespace: opts.namespace } : {}) } }],
    "current-context": name,
    preferences: {},
  });
}
