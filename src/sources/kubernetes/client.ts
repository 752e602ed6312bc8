import { type Agent, request } from "undici";
import { classifyError, reasonForStatus, UpstreamError } from "../../errors.ts";
import { errorMessage } from "../../log.ts";
import { httpUpstream, traced } from "../../tracing/spans.ts";
import { readCapped } from "../../http/body.ts";
import { upstreamAgent } from "../../http/agent.ts";
import { parseRetryAfter } from "../../http/retry-after.ts";
import { RetryAfterError } from "../health.ts";
import type { KubeConnection } from "./kubeconfig.ts";
import { asArray, asObject, asString, type Json } from "./objects.ts";

/** A collection the client can list and watch. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchEvent {
  type: WatchEventType;
  object: Json;
}

export interface ListResult {
  items: Json[];
  resourceVersion: string;
}

export interface ClientOptions {
  /** Deadline of each list request, and of a watch's response headers. */
  requestTimeoutMs: number;
  /** Cap on one list page's body. */
  maxBodyBytes: number;
  /** Cap on one watch event line; a longer line fails the watch. */
  maxEventBytes: number;
}

/** The resourceVersion is too old (410 Gone / Expired): the only way forward is a fresh list. */
export class ExpiredError extends UpstreamError {
  constructor(message: string) {
    super(message, "other");
    this.name = "ExpiredError";
  }
}

/** Error bodies are only read for their Status message. */
const ERROR_BODY_BYTES = 16 * 1024;
const VALID_EVENT_TYPES = new Set<string>(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]);

type Body = AsyncIterable<Buffer> & { destroy(err?: Error): unknown };

export function collectionPath(res: ResourceRef, namespace: string | undefined): string {
  const root = res.group === "" ? `/api/${res.version}` : `/apis/${res.group}/${res.version}`;
  return res.namespaced && namespace !== undefined ? `${root}/namespaces/${encodeURIComponent(namespace)}/${res.plural}` : `${root}/${res.plural}`;
}

function describe(res: ResourceRef, namespace: string | undefined): string {
  const name = res.group === "" ? res.plural : `${res.plural}.${res.group}/${res.version}`;
  return namespace !== undefined && res.namespaced ? `${name} in namespace ${namespace}` : name;
}

/** The Status message of an error body, on one line and shortened; undefined when there is none. */
function statusMessage(text: string): string | undefined {
  try {
    const message = asString(asObject(JSON.parse(text))?.message);
    if (message === undefined) return undefined;
    const line = message.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
    return line.length > 240 ? `${line.slice(0, 240)}…` : line;
  } catch {
    return undefined;
  }
}


/** What a user should do about a status, where there is something to do. */
function hint(status: number, res: ResourceRef): string | undefined {
  switch (status) {
    case 401:
      return "the API server rejected the credentials; check the service-account token or the kubeconfig user";
    case 403:
      return `grant the exporter's service account get, list and watch on ${res.plural}.${res.group}`;
    case 404:
      return `the ${res.plural}.${res.group} CustomResourceDefinition (version ${res.version}) is not installed; install the operator's CRDs, or turn the group off (sources.kubernetes.talos or .tailscale: enabled: false)`;
    default:
      return undefined;
  }
}

/** Turns an API error response into the error the informer acts on. */
function errorForStatus(status: number, headers: Record<string, string | string[] | undefined>, text: string, what: string, res: ResourceRef): UpstreamError {
  const said = statusMessage(text);
  const base = `${what}: API server answered ${status}${said ? ` (${said})` : ""}`;
  if (status === 410) return new ExpiredError(base);
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(headers["retry-after"]);
    return new RetryAfterError(`${base}: rate limited, ${retryAfterMs === undefined ? "backing off" : `retrying in ${Math.ceil(retryAfterMs / 1000)}s`}`, retryAfterMs);
  }
  const h = hint(status, res);
  return new UpstreamError(h ? `${base}: ${h}` : base, reasonForStatus(status) ?? "other");
}


/**
 * A deadline for one request, linked to the caller's signal: the request is aborted when either fires, and the
 * caller can tell which one did.
 */
class Deadline {
  readonly #controller = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #expired: string | undefined;
  readonly #onParentAbort = (): void => this.#controller.abort(this.parent.reason);

  constructor(private readonly parent: AbortSignal) {
    if (parent.aborted) this.#controller.abort(parent.reason);
    else parent.addEventListener("abort", this.#onParentAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** (Re)starts the clock; when it runs out the request is aborted and `expired` says what timed out. */
  arm(ms: number, what: string): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#expired = what;
      this.#controller.abort(new UpstreamError(what, "timeout"));
    }, ms);
  }

  get expired(): string | undefined {
    return this.#expired;
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.parent.removeEventListener("abort", this.#onParentAbort);
  }
}

/**
 * The few calls the exporter makes to the Kubernetes API: paged lists and watches of custom resources, over one
 * keep-alive pool with the connection's TLS settings and credentials. Every failure is an UpstreamError with a
 * reason; a caller's abort is rethrown as the signal's reason so the caller can tell it apart.
 */
export class KubeClient {
  readonly #agent: Agent;

  constructor(
    private readonly conn: KubeConnection,
    private readonly opts: ClientOptions,
  ) {
    const { tls } = conn;
    // Deadlines are per request (see Deadline): a watch legitimately stays silent for minutes.
    this.#agent = upstreamAgent(tls, { timeoutMs: opts.requestTimeoutMs, streaming: true });
  }

  async #get(path: string, query: Record<string, string>, signal: AbortSignal) {
    const qs = new URLSearchParams(query).toString();
    const authorization = await this.conn.credentials.authorization();
    return request(this.conn.server.child(qs ? `${path}?${qs}` : path).reveal(), {
      method: "GET",
      headers: { accept: "application/json", "user-agent": "sidecar-exporter", ...(authorization !== undefined && { authorization }) },
      dispatcher: this.#agent,
      signal,
    });
  }

  /** Throws the error for a non-200 answer after reading (a little of) its body. */
  async #check(res: Awaited<ReturnType<typeof request>>, what: string, ref: ResourceRef): Promise<void> {
    if (res.statusCode === 200) return;
    const text = await readCapped(res.body as unknown as Body, ERROR_BODY_BYTES, what, { truncate: true });
    if (res.statusCode === 401) this.conn.credentials.invalidate();
    throw errorForStatus(res.statusCode, res.headers, text, what, ref);
  }

  #fail(err: unknown, deadline: Deadline, signal: AbortSignal, what: string): never {
    if (deadline.expired !== undefined) throw new UpstreamError(deadline.expired, "timeout");
    if (signal.aborted) throw signal.reason ?? err;
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError(`${what} failed: ${errorMessage(err)}`, classifyError(err), { cause: err });
  }

  /** One page of a list. */
  async listPage(ref: ResourceRef, namespace: string | undefined, limit: number, continueToken: string | undefined, signal: AbortSignal): Promise<ListResult & { continue: string | undefined }> {
    const what = `list ${describe(ref, namespace)}`;
    const deadline = new Deadline(signal);
    deadline.arm(this.opts.requestTimeoutMs, `${what} timed out after ${this.opts.requestTimeoutMs}ms`);
    try {
      const path = collectionPath(ref, namespace);
      // The namespace becomes a placeholder so the operation names the route; it stays visible as an attribute.
      const route = namespace !== undefined && ref.namespaced ? path.replace(`/namespaces/${encodeURIComponent(namespace)}/`, "/namespaces/{namespace}/") : path;
      const upstream = httpUpstream("kubernetes", "GET", this.conn.server.child(path), route, namespace !== undefined ? { "k8s.namespace.name": namespace } : {});
      const res = await traced(upstream, () => this.#get(path, { limit: String(limit), ...(continueToken && { continue: continueToken }) }, deadline.signal), (r) => r.statusCode);
      await this.#check(res, what, ref);
      const declared = Number(res.headers["content-length"]);
      if (Number.isFinite(declared) && declared > this.opts.maxBodyBytes) {
        (res.body as unknown as Body).destroy();
        throw new UpstreamError(`${what}: response is larger than ${this.opts.maxBodyBytes} bytes`, "decode");
      }
      const text = await readCapped(res.body as unknown as Body, this.opts.maxBodyBytes, what);
      let doc: Json | undefined;
      try {
        doc = asObject(JSON.parse(text));
      } catch (err) {
        throw new UpstreamError(`${what}: response is not JSON (${(err as Error).message})`, "decode");
      }
      const meta = asObject(doc?.metadata);
      const resourceVersion = asString(meta?.resourceVersion);
      if (!doc || !Array.isArray(doc.items) || resourceVersion === undefined) {
        throw new UpstreamError(`${what}: response is not a list (no items or metadata.resourceVersion)`, "decode");
      }
      const items = asArray(doc.items).map(asObject).filter((o): o is Json => o !== undefined);
      return { items, resourceVersion, continue: asString(meta?.continue) };
    } catch (err) {
      this.#fail(err, deadline, signal, what);
    } finally {
      deadline.dispose();
    }
  }

  /**
   * Every page of a list, each handed to `onPage` as it arrives, so only one page of whole objects is in memory at
   * a time however large the collection, and the caller decides what it keeps. `fromTop` is true for the first
   * page of an attempt: a continue token that expired mid-way (410) restarts the list once from the top, as the
   * API server advises, and what the caller kept of the pages before is void. Resolves to the list's
   * resourceVersion.
   */
  async list(ref: ResourceRef, namespace: string | undefined, pageSize: number, signal: AbortSignal, onPage: (items: Json[], fromTop: boolean) => void): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      let token: string | undefined;
      let resourceVersion = "";
      try {
        do {
          const page = await this.listPage(ref, namespace, pageSize, token, signal);
          onPage(page.items, token === undefined);
          // The first page's version is the snapshot every later page belongs to.
          if (token === undefined) resourceVersion = page.resourceVersion;
          token = page.continue;
        } while (token !== undefined);
        return resourceVersion;
      } catch (err) {
        if (!(err instanceof ExpiredError) || token === undefined || attempt >= 1) throw err;
      }
    }
  }

  /**
   * Watches from `resourceVersion`, handing each event but ERROR to `onEvent` as its line arrives. Resolves when
   * the server ends the stream cleanly (its timeoutSeconds, or a restart); rejects on errors, with ExpiredError
   * for 410 (as a response or an ERROR event), and with whatever `onEvent` throws. `onOpen` runs once the server
   * accepted the watch.
   */
  async watch(
    ref: ResourceRef,
    namespace: string | undefined,
    params: { resourceVersion: string; timeoutSeconds: number },
    signal: AbortSignal,
    handlers: { onOpen(): void; onEvent(ev: WatchEvent): void },
  ): Promise<void> {
    const what = `watch ${describe(ref, namespace)}`;
    const deadline = new Deadline(signal);
    deadline.arm(this.opts.requestTimeoutMs, `${what}: no response within ${this.opts.requestTimeoutMs}ms`);
    let body: Body | undefined;
    try {
      const res = await this.#get(
        collectionPath(ref, namespace),
        { watch: "1", resourceVersion: params.resourceVersion, allowWatchBookmarks: "true", timeoutSeconds: String(params.timeoutSeconds) },
        deadline.signal,
      );
      await this.#check(res, what, ref);
      // The server ends the stream at timeoutSeconds; a stream that outlives that by the request timeout is stuck.
      const limitMs = params.timeoutSeconds * 1000 + this.opts.requestTimeoutMs;
      deadline.arm(limitMs, `${what}: stream still open ${Math.round(limitMs / 1000)}s after the server should have ended it`);
      handlers.onOpen();
      body = res.body as unknown as Body;
      await this.#readEvents(body, what, (ev) => {
        if (ev.type === "ERROR") throw errorForEvent(ev.object, what, ref);
        handlers.onEvent(ev);
      });
    } catch (err) {
      body?.destroy();
      this.#fail(err, deadline, signal, what);
    } finally {
      deadline.dispose();
    }
  }

  /** Splits the stream into lines without holding more than one line (capped) in memory. */
  async #readEvents(body: Body, what: string, onEvent: (ev: WatchEvent) => void): Promise<void> {
    const cap = this.opts.maxEventBytes;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const emit = (line: Buffer): void => {
      const text = line.toString("utf8").trim();
      if (text !== "") onEvent(parseEvent(text, what));
    };
    for await (const chunk of body) {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
        const piece = chunk.subarray(start, nl);
        if (pendingBytes + piece.length > cap) throw tooLong(what, cap);
        emit(pending.length === 0 ? piece : Buffer.concat([...pending, piece]));
        pending = [];
        pendingBytes = 0;
        start = nl + 1;
      }
      if (start < chunk.length) {
        const rest = chunk.subarray(start);
        pendingBytes += rest.length;
        if (pendingBytes > cap) throw tooLong(what, cap);
        pending.push(rest);
      }
    }
    // A final line without a newline is still an event.
    if (pendingBytes > 0) emit(Buffer.concat(pending));
  }

  async close(): Promise<void> {
    await this.#agent.destroy();
  }
}

/** An ERROR event carries a Status; 410 means the watch's resourceVersion was compacted away. */
function errorForEvent(status: Json, what: string, ref: ResourceRef): UpstreamError {
  const code = typeof status.code === "number" ? status.code : 500;
  return errorForStatus(code, {}, JSON.stringify(status), `${what} (error event)`, ref);
}

function tooLong(what: string, cap: number): UpstreamError {
  return new UpstreamError(`${what}: an event is larger than ${cap} bytes`, "decode");
}

function parseEvent(text: string, what: string): WatchEvent {
  let doc: Json | undefined;
  try {
    doc = asObject(JSON.parse(text));
  } catch (err) {
    throw new UpstreamError(`${what}: event is not JSON (${(err as Error).message})`, "decode");
  }
  const type = asString(doc?.type);
  const object = asObject(doc?.object);
  if (type === undefined || !VALID_EVENT_TYPES.has(type) || !object) {
    throw new UpstreamError(`${what}: event has no known type or no object`, "decode");
  }
  return { type: type as WatchEventType, object };
}
