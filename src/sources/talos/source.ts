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

    // Version first: it settles which endpoint works before the other calls go out together.
    const version = await client.call("Version", {}, target.nodes, opts);
    const siblings = new AbortController();
    const together: CallOptions = { signal: AbortSignal.any([signal, siblings.signal]), deadline };
    const calls = [
      client.call("ServiceList", {}, target.nodes, together),
      client.call("EtcdMemberList", { query_local: false }, target.nodes, together),
      client.call("EtcdStatus", {}, target.nodes, together),
    ];
    // One failed call fails the poll; the others need not run on.
    for (const c of calls) c.catch(() => siblings.abort(new UpstreamError("a sibling call failed", "other")));
    const [services, members, status] = await Promise.all(calls);
    if (signal.aborted) throw signal.reason;

    const replies: TalosReplies = { Version: version, ServiceList: services, EtcdMemberList: members, EtcdStatus: status };
    const snapshot = decodeSnapshot(target.nodes, replies);
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
