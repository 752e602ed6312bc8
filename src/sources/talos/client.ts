import * as grpc from "@grpc/grpc-js";
import { type FailureReason, UpstreamError } from "../../errors.ts";
import { loadProto } from "../../grpc/protos.ts";
import { reasonForGrpcError } from "../../grpc/reason.ts";
import type { Secret } from "../../secret.ts";
import { grpcStatus, grpcUpstream, traced } from "../../tracing/spans.ts";
import { probeTls } from "./tls-probe.ts";

export const TALOS_RPCS = ["Version", "ServiceList", "EtcdMemberList", "EtcdStatus"] as const;
export type TalosRpc = (typeof TALOS_RPCS)[number];

export type CallResult = "success" | "error";

export interface TalosClientOptions {
  /** host:port, tried in this order. */
  endpoints: string[];
  ca: Buffer;
  cert: Buffer;
  key: Secret;
  /** Replies larger than this are refused before they are decoded. */
  maxReplyBytes: number;
  /** Upper bound of the pause between reconnection attempts of a failed channel. */
  maxReconnectBackoffMs: number;
  /** Told about every RPC attempt, for the call counter and histogram. */
  observe?: (rpc: TalosRpc, result: CallResult, seconds: number) => void;
}

export interface CallOptions {
  signal: AbortSignal;
  /** Epoch milliseconds by which the call must have finished, on whichever endpoint. */
  deadline: number;
}

type Method = { path: string; requestSerialize: (value: unknown) => Buffer; responseDeserialize: (bytes: Buffer) => unknown };

let methodCache: Record<TalosRpc, Method> | undefined;

function methods(): Record<TalosRpc, Method> {
  if (methodCache) return methodCache;
  const pkg = loadProto("machine/machine.proto") as unknown as { machine: { MachineService: grpc.ServiceClientConstructor } };
  const service = pkg.machine.MachineService.service;
  const out: Partial<Record<TalosRpc, Method>> = {};
  for (const rpc of TALOS_RPCS) {
    const def = service[rpc];
    if (!def) throw new Error(`protos/machine/machine.proto lacks MachineService/${rpc}`);
    out[rpc] = def as unknown as Method;
  }
  methodCache = out as Record<TalosRpc, Method>;
  return methodCache;
}

export { reasonForGrpcError };

/** Details grpc-js gives when a connection closed during set-up without saying why. */
const VAGUE_CONNECT_FAILURE = /Failed to connect|Connection dropped|Connection closed|Socket closed/i;

/** How long a failed connection may spend finding out whether TLS was the cause. */
const TLS_PROBE_MS = 2_000;

/** Reasons that say "this endpoint could not be reached", after which the next endpoint is worth a try. */
function endpointUnusable(reason: FailureReason): boolean {
  return reason === "connection" || reason === "tls";
}

type Readiness = "ready" | "failed" | "slow";

/** Waits for the channel to connect, until `until`; "failed" as soon as grpc-js gives up on a connection attempt. */
function waitReady(channel: ReturnType<grpc.Client["getChannel"]>, until: number): Promise<Readiness> {
  return new Promise((resolve) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) return resolve("ready");
      if (state === grpc.connectivityState.TRANSIENT_FAILURE || state === grpc.connectivityState.SHUTDOWN) return resolve("failed");
      if (Date.now() >= until) return resolve("slow");
      channel.watchConnectivityState(state, until, (err) => (err ? resolve("slow") : check()));
    };
    check();
  });
}

/**
 * A Talos machine API client over mutual TLS. Calls go through one endpoint (apid), which proxies them to the
 * nodes named in the `nodes` metadata and answers with one message per node, as talosctl's client does it.
 * When an endpoint cannot be reached the call moves on to the next; the one that worked is tried first next time.
 */
export class TalosClient {
  readonly #opts: TalosClientOptions;
  readonly #credentials: grpc.ChannelCredentials;
  readonly #clients = new Map<string, grpc.Client>();
  #preferred = 0;
  #closed = false;

  constructor(opts: TalosClientOptions) {
    if (opts.endpoints.length === 0) throw new UpstreamError("no Talos endpoints to connect to", "other");
    this.#opts = opts;
    try {
      this.#credentials = grpc.credentials.createSsl(opts.ca, Buffer.from(opts.key.reveal()), opts.cert);
    } catch (err) {
      // OpenSSL's message names the problem (bad PEM, key does not match certificate), never the key itself.
      throw new UpstreamError(`Talos client credentials are unusable: ${(err as Error).message}`, "tls");
    }
  }

  /** The endpoint calls go to first: the last one that worked. */
  get endpoint(): string {
    return this.#opts.endpoints[this.#preferred] ?? "";
  }

  /** One unary RPC to `nodes` through the first endpoint that can be reached. Resolves with the decoded reply. */
  async call(rpc: TalosRpc, request: object, nodes: readonly string[], opts: CallOptions): Promise<unknown> {
    if (this.#closed) throw new UpstreamError("the Talos client is closed", "other");
    const { endpoints } = this.#opts;
    const order = [this.#preferred, ...endpoints.map((_, i) => i).filter((i) => i !== this.#preferred)];
    const failures: { endpoint: string; error: UpstreamError }[] = [];
    for (const [attempt, index] of order.entries()) {
      if (opts.signal.aborted) throw opts.signal.reason;
      const endpoint = endpoints[index] as string;
      const client = this.#client(endpoint);
      const remaining = order.length - attempt - 1;
      if (remaining > 0) {
        // Leave time for the endpoints still to try: a black-holed address would otherwise eat the whole deadline.
        const budget = (opts.deadline - Date.now()) / (remaining + 1);
        const readiness = await waitReady(client.getChannel(), Date.now() + budget);
        if (readiness === "slow") {
          failures.push({ endpoint, error: new UpstreamError(`${rpc} via ${endpoint}: no connection within ${Math.round(budget)}ms`, "connection") });
          continue;
        }
        // "failed" still makes the call: grpc-js fails it at once, with the connection error in its details.
      }
      try {
        const reply = await this.#unary(client, endpoint, rpc, request, nodes, opts);
        this.#preferred = index;
        return reply;
      } catch (err) {
        if (!(err instanceof UpstreamError) || !endpointUnusable(err.reason) || opts.signal.aborted) throw err;
        failures.push({ endpoint, error: await this.#explain(err, endpoint, rpc, opts) });
      }
    }
    const [first] = failures;
    if (failures.length === 1 && first) throw first.error;
    const reasons = new Set(failures.map((f) => f.error.reason));
    const reason = reasons.size === 1 ? (first?.error.reason ?? "connection") : "connection";
    throw new UpstreamError(`${rpc}: no endpoint could be used: ${failures.map((f) => f.error.message).join("; ")}`, reason);
  }

  /** Turns a vague connection failure into a `tls` one when a plain TLS handshake shows the real cause. */
  async #explain(err: UpstreamError, endpoint: string, rpc: TalosRpc, opts: CallOptions): Promise<UpstreamError> {
    if (err.reason !== "connection" || !VAGUE_CONNECT_FAILURE.test(err.message)) return err;
    const { ca, cert, key } = this.#opts;
    const tlsError = await probeTls(endpoint, { ca, cert, key, signal: opts.signal, until: Math.min(opts.deadline, Date.now() + TLS_PROBE_MS) });
    if (tlsError === undefined) return err;
    return new UpstreamError(
      `${rpc} via ${endpoint}: TLS refused (${tlsError}); check that the client certificate is signed by the CA the nodes trust and has not expired`,
      "tls",
    );
  }

  #client(endpoint: string): grpc.Client {
    let client = this.#clients.get(endpoint);
    if (!client) {
      client = new grpc.Client(endpoint, this.#credentials, {
        "grpc.max_receive_message_length": this.#opts.maxReplyBytes,
        // A channel that failed retries soon enough that a recovered endpoint is used again by the next poll.
        "grpc.initial_reconnect_backoff_ms": 250,
        "grpc.max_reconnect_backoff_ms": this.#opts.maxReconnectBackoffMs,
      });
      this.#clients.set(endpoint, client);
    }
    return client;
  }

  #unary(client: grpc.Client, endpoint: string, rpc: TalosRpc, request: object, nodes: readonly string[], opts: CallOptions): Promise<unknown> {
    const method = methods()[rpc];
    const metadata = new grpc.Metadata();
    // One value per node, as talosctl's client.WithNodes sends them; apid fans the call out to each.
    for (const node of nodes) metadata.add("nodes", node);
    const started = performance.now();
    // One span per attempt: a call that fails over shows each endpoint it tried.
    const upstream = grpcUpstream("talos", nodes.join(","), method.path.replace(/^\//, ""), { "talos.endpoint": endpoint });
    return traced(upstream, (span) => new Promise((resolve, reject) => {
      const onAbort = (): void => call.cancel();
      const call = client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        metadata,
        { deadline: opts.deadline },
        (err: grpc.ServiceError | null, value?: unknown) => {
          opts.signal.removeEventListener("abort", onAbort);
          this.#opts.observe?.(rpc, err ? "error" : "success", (performance.now() - started) / 1000);
          grpcStatus(span, err ? err.code : grpc.status.OK);
          if (!err) return resolve(value);
          if (opts.signal.aborted) return reject(opts.signal.reason);
          const code = err.code as grpc.status;
          const name = grpc.status[code] ?? String(code);
          const details = code === grpc.status.RESOURCE_EXHAUSTED && /larger than max/i.test(err.details)
            ? `reply larger than ${this.#opts.maxReplyBytes} bytes`
            : err.details.replace(/\s*Resolution note:\s*$/, "");
          reject(new UpstreamError(`${rpc} via ${endpoint}: ${name}: ${details}`, reasonForGrpcError(code, err.details)));
        },
      );
      if (opts.signal.aborted) call.cancel();
      else opts.signal.addEventListener("abort", onAbort, { once: true });
    }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
