import { setMaxListeners } from "node:events";
import { setImmediate as nextTurn } from "node:timers/promises";
import { UpstreamError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import type { MetricHandles } from "../../metrics/registry.ts";
import { OwnedSeries } from "../../metrics/series.ts";
import { SeriesBudget } from "../../metrics/series-budget.ts";
import { METRICS } from "../../metrics/catalogue.ts";
import { SOURCE_NAMES, type Schedule, type TalosSourceConfig } from "../config.ts";
import { PolledSource } from "../poller.ts";
import type { PollDriver, PollOutcome, Source, SourceContext } from "../types.ts";
import { TalosClient, type CallOptions } from "./client.ts";
import { decodeSnapshot, type TalosReplies } from "./decode.ts";
import { summarize } from "./outcome.ts";
import { buildSeries, familySamples, TALOS_FAMILIES, type TalosFamily, type TalosSeriesSet } from "./series.ts";
import { resolveTarget, type TalosTarget } from "./target.ts";

/** No Talos reply the exporter reads comes near this; a larger one is refused, not decoded. */
const MAX_REPLY_BYTES = 10 * 1024 * 1024;

/**
 * Nodes named in one call. apid answers for every node of a call in one message, which gRPC decodes in one go on
 * the event loop: for three hundred nodes that is tens of milliseconds in which nothing else (a scrape, a probe)
 * runs. Calls of a few dozen nodes each, in parallel over the same connection, are decoded one after another.
 */
const NODES_PER_CALL = 50;

function batches(nodes: readonly string[]): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < nodes.length; i += NODES_PER_CALL) out.push(nodes.slice(i, i + NODES_PER_CALL));
  return out;
}

/**
 * One reply of the shape apid gives, from the replies of the batches: their per-node messages in one list. A
 * reply without a message list is passed on as it is, to be refused as a reply of unexpected shape.
 */
function merged(replies: readonly unknown[]): unknown {
  if (replies.length === 1) return replies[0];
  const lists = replies.map((r) => (r as { messages?: unknown } | null)?.messages);
  const odd = lists.findIndex((l) => !Array.isArray(l));
  if (odd >= 0) return replies[odd];
  return { messages: (lists as unknown[][]).flat() };
}

export type TalosSourceSettings = TalosSourceConfig & Schedule;

/**
 * One poll: Version to every node, then ServiceList, EtcdMemberList and EtcdStatus to every node, all through
 * one apid endpoint. Workers answer the etcd calls with "control plane only", which only tells their role.
 */
export class TalosDriver implements PollDriver {
  readonly #series: Record<TalosFamily, OwnedSeries>;
  #client: TalosClient | undefined;
  #fingerprint: string | undefined;
  #last: TalosSeriesSet | undefined;
  #endpoint: string | undefined;
  readonly #silent = new Set<string>();
  /** Bumped by close(), so a poll still in flight then does not bring back the series close() removed. */
  #generation = 0;

  constructor(
    private readonly config: TalosSourceSettings,
    private readonly metrics: MetricHandles,
    private readonly logger: Logger,
    seriesLimit?: number,
  ) {
    const budget = new SeriesBudget({ source: SOURCE_NAMES.talos, limit: seriesLimit, dropped: metrics.seriesDropped, logger });
    this.#series = Object.fromEntries(
      TALOS_FAMILIES.map((f) => [f, new OwnedSeries(metrics[f], METRICS[f].labels, budget)]),
    ) as Record<TalosFamily, OwnedSeries>;
  }

  async poll(signal: AbortSignal): Promise<PollOutcome> {
    const deadline = Date.now() + this.config.timeoutMs;
    const generation = this.#generation;
    const target = await resolveTarget(this.config);
    const client = this.#clientFor(target);
    const opts: CallOptions = { signal, deadline };

    // Version to the first batch of nodes first: it settles which endpoint works before the other calls go out
    // together.
    const [first = [], ...rest] = batches(target.nodes);
    const firstVersion = await client.call("Version", {}, first, opts);
    const siblings = new AbortController();
    const together: CallOptions = { signal: AbortSignal.any([signal, siblings.signal]), deadline };
    // Every call listens on the shared signal: a large cluster's calls are more than Node's default of ten listeners
    // before it warns of a leak that is none.
    setMaxListeners(4 * (rest.length + 1), together.signal);
    const all = (rpc: Parameters<TalosClient["call"]>[0], request: object, groups: readonly string[][]) => groups.map((nodes) => client.call(rpc, request, nodes, together));
    const calls = [
      all("Version", {}, rest),
      all("ServiceList", {}, [first, ...rest]),
      all("EtcdMemberList", { query_local: false }, [first, ...rest]),
      all("EtcdStatus", {}, [first, ...rest]),
    ];
    // One failed call fails the poll; the others need not run on.
    for (const c of calls.flat()) c.catch(() => siblings.abort(new UpstreamError("a sibling call failed", "other")));
    const [versions, services, members, status] = await Promise.all(calls.map((c) => Promise.all(c)));
    if (signal.aborted) throw signal.reason;

    const replies: TalosReplies = {
      Version: merged([firstVersion, ...(versions ?? [])]),
      ServiceList: merged(services ?? []),
      EtcdMemberList: merged(members ?? []),
      EtcdStatus: merged(status ?? []),
    };
    const snapshot = decodeSnapshot(target.nodes, replies);
    // Checking the replies and making the series are two pieces of work; a turn of the event loop in between.
    await nextTurn();
    const answered = snapshot.nodes.filter((n) => n.answered);
    if (answered.length === 0) {
      const why = snapshot.nodes.map((n) => `${n.node}: ${n.errors.Version ?? "no answer"}`).join("; ");
      throw new UpstreamError(`no Talos node answered through ${client.endpoint}: ${why}`, "connection");
    }

    if (generation !== this.#generation) throw new UpstreamError("the source was stopped during the poll", "other");
    const state = buildSeries(snapshot, this.#cluster(target), this.#last);
    const samples = familySamples(state);
    for (const family of TALOS_FAMILIES) this.#series[family].replace(samples[family]);
    this.#last = state;
    this.#logTransitions(snapshot.nodes, client.endpoint);
    return summarize(snapshot, state, { endpoint: client.endpoint, ...(target.context !== undefined && { context: target.context }), cluster: this.#cluster(target) });
  }

  async close(): Promise<void> {
    this.#generation++;
    this.#client?.close();
    this.#client = undefined;
    this.#fingerprint = undefined;
    for (const s of Object.values(this.#series)) s.clear();
    this.#last = undefined;
  }

  #cluster(target: TalosTarget): string {
    return this.config.cluster ?? target.context ?? this.config.context ?? "talos";
  }

  /** Keeps the channel while endpoints and credentials stay the same; a rotated certificate gets a new one. */
  #clientFor(target: TalosTarget): TalosClient {
    if (this.#client && this.#fingerprint === target.fingerprint) return this.#client;
    this.#client?.close();
    this.#client = undefined;
    const client = new TalosClient({
      endpoints: target.endpoints,
      ca: target.ca,
      cert: target.cert,
      key: target.key,
      maxReplyBytes: MAX_REPLY_BYTES,
      maxReconnectBackoffMs: Math.max(1_000, Math.min(this.config.intervalMs, 30_000)),
      observe: (rpc, result, seconds) => {
        this.metrics.talosApiCalls.inc({ operation: rpc, result });
        this.metrics.talosApiCallDuration.observe({ operation: rpc }, seconds);
      },
    });
    this.#client = client;
    this.#fingerprint = target.fingerprint;
    return client;
  }

  #logTransitions(nodes: { node: string; answered: boolean; errors: { Version?: string } }[], endpoint: string): void {
    if (endpoint !== this.#endpoint) {
      this.logger.info({ source: SOURCE_NAMES.talos, endpoint }, "talos endpoint in use");
      this.#endpoint = endpoint;
    }
    for (const n of nodes) {
      if (!n.answered && !this.#silent.has(n.node)) {
        this.#silent.add(n.node);
        this.logger.warn({ source: SOURCE_NAMES.talos, node: n.node, err: n.errors.Version }, "talos node not answering; its series keep their last values");
      } else if (n.answered && this.#silent.delete(n.node)) {
        this.logger.info({ source: SOURCE_NAMES.talos, node: n.node }, "talos node answering again");
      }
    }
    for (const node of this.#silent) if (!nodes.some((n) => n.node === node)) this.#silent.delete(node);
  }
}

/** The Talos machine API source: node versions, service health and etcd state, polled through apid. */
export function createTalosSource(config: TalosSourceSettings, ctx: SourceContext): Source {
  const driver = new TalosDriver(config, ctx.metrics.handles, ctx.logger, ctx.seriesLimit);
  return new PolledSource(SOURCE_NAMES.talos, config, driver, ctx.metrics.handles, ctx.logger);
}
