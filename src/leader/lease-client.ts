import { type Agent, request } from "undici";
import { classifyError, reasonForStatus, UpstreamError } from "../errors.ts";
import { upstreamAgent } from "../http/agent.ts";
import { type Body, readCapped } from "../http/body.ts";
import { errorMessage } from "../log.ts";
import type { SecretUrl } from "../secret-url.ts";
import type { KubeConnection } from "../sources/kubernetes/kubeconfig.ts";
import { asObject, asString } from "../sources/kubernetes/objects.ts";
import { decodeLease, encodeLease, type LeaseRecord, type StoredLease } from "./lease.ts";

/** A Lease is a few hundred bytes; metadata (annotations, managedFields) can grow it, never to this. */
const LEASE_BODY_BYTES = 1024 * 1024;
/** Error bodies are read only for their Status message. */
const ERROR_BODY_BYTES = 16 * 1024;

/** Someone else wrote first: AlreadyExists on create, a stale resourceVersion on update. */
export const CONFLICT = "conflict";

export interface LeaseRef {
  namespace: string;
  name: string;
}

/** The Lease calls leader election makes; what the elector needs, so tests can stand in for the API server. */
export interface LeaseApi {
  /** undefined when the Lease does not exist. */
  get(timeoutMs: number, signal: AbortSignal): Promise<StoredLease | undefined>;
  create(record: LeaseRecord, timeoutMs: number, signal: AbortSignal): Promise<StoredLease | typeof CONFLICT>;
  update(current: StoredLease, record: LeaseRecord, timeoutMs: number, signal: AbortSignal): Promise<StoredLease | typeof CONFLICT>;
  close(): Promise<void>;
}

function statusMessage(text: string): string | undefined {
  try {
    const message = asString(asObject(JSON.parse(text))?.message);
    return message?.replace(/[\u0000-\u001f\u007f]+/g, " ").slice(0, 240);
  } catch {
    return undefined;
  }
}

/** get, create and update of one Lease over one keep-alive pool; every call has a deadline and a body cap. */
export class LeaseClient implements LeaseApi {
  readonly #agent: Agent;
  readonly #collection: SecretUrl;
  readonly #item: SecretUrl;

  constructor(
    private readonly conn: KubeConnection,
    private readonly ref: LeaseRef,
    timeoutMs: number,
  ) {
    this.#agent = upstreamAgent(conn.tls, { timeoutMs, connections: 2 });
    this.#collection = conn.server.child(`/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ref.namespace)}/leases`);
    this.#item = this.#collection.child(`/${encodeURIComponent(ref.name)}`);
  }

  async get(timeoutMs: number, signal: AbortSignal): Promise<StoredLease | undefined> {
    const answer = await this.#call("GET", this.#item, undefined, timeoutMs, signal);
    return answer === "not_found" ? undefined : answer === CONFLICT ? this.#unexpected("GET", 409) : answer;
  }

  async create(record: LeaseRecord, timeoutMs: number, signal: AbortSignal): Promise<StoredLease | typeof CONFLICT> {
    const answer = await this.#call("POST", this.#collection, encodeLease(this.ref.name, this.ref.namespace, record), timeoutMs, signal);
    return answer === "not_found" ? this.#unexpected("POST", 404) : answer;
  }

  async update(current: StoredLease, record: LeaseRecord, timeoutMs: number, signal: AbortSignal): Promise<StoredLease | typeof CONFLICT> {
    const body = encodeLease(this.ref.name, this.ref.namespace, record, current.metadata);
    const answer = await this.#call("PUT", this.#item, body, timeoutMs, signal);
    // Deleted under us: the next round creates it again.
    return answer === "not_found" ? CONFLICT : answer;
  }

  close(): Promise<void> {
    return this.#agent.destroy();
  }

  #unexpected(method: string, status: number): never {
    throw new UpstreamError(`${method} lease ${this.ref.namespace}/${this.ref.name}: unexpected ${status}`, "other");
  }

  async #call(method: "GET" | "POST" | "PUT", url: SecretUrl, body: string | undefined, timeoutMs: number, parent: AbortSignal): Promise<StoredLease | "not_found" | typeof CONFLICT> {
    const what = `${method} lease ${this.ref.namespace}/${this.ref.name}`;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(parent.reason);
    parent.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new UpstreamError(`${what} timed out after ${timeoutMs}ms`, "timeout")), timeoutMs);
    try {
      const authorization = await this.conn.credentials.authorization();
      const res = await request(url.reveal(), {
        method,
        headers: {
          accept: "application/json",
          "user-agent": "sidecar-exporter",
          ...(body !== undefined && { "content-type": "application/json" }),
          ...(authorization !== undefined && { authorization }),
        },
        ...(body !== undefined && { body }),
        dispatcher: this.#agent,
        signal: controller.signal,
      });
      const stream = res.body as unknown as Body;
      if (res.statusCode >= 200 && res.statusCode < 300) return decodeLease(await readCapped(stream, LEASE_BODY_BYTES, what), what);
      const text = await readCapped(stream, ERROR_BODY_BYTES, what, { truncate: true });
      if (res.statusCode === 409) return CONFLICT;
      if (res.statusCode === 404) return "not_found";
      if (res.statusCode === 401) this.conn.credentials.invalidate();
      const said = statusMessage(text);
      const hint =
        res.statusCode === 403
          ? `; grant the service account get, create and update on leases.coordination.k8s.io in namespace ${this.ref.namespace}`
          : "";
      throw new UpstreamError(`${what}: API server answered ${res.statusCode}${said ? ` (${said})` : ""}${hint}`, reasonForStatus(res.statusCode) ?? "other");
    } catch (err) {
      if (controller.signal.aborted) throw controller.signal.reason ?? err;
      if (err instanceof UpstreamError) throw err;
      throw new UpstreamError(`${what} failed: ${errorMessage(err)}`, classifyError(err), { cause: err });
    } finally {
      clearTimeout(timer);
      parent.removeEventListener("abort", onAbort);
    }
  }
}
