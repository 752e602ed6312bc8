import { setMaxListeners } from "node:events";
import { classifyError } from "../../errors.ts";
import { errorMessage, type Logger } from "../../log.ts";
import { METRICS } from "../../metrics/catalogue.ts";
import { OwnedSeries } from "../../metrics/series.ts";
import { SeriesBudget } from "../../metrics/series-budget.ts";
import { type KubernetesSourceConfig, type Schedule, SOURCE_NAMES } from "../config.ts";
import { SourceHealth } from "../health.ts";
import type { PollOutcome, Source, SourceContext, SourceStatus } from "../types.ts";
import { KubeClient } from "./client.ts";
import { type ResourceView, sameView, type WatchedKind, watchedKinds } from "./kinds.ts";
import { type ConnectionOptions, loadConnection } from "./kubeconfig.ts";
import { Informer, type InformerOutcome, type InformerTiming, retryDelayMs, sleep } from "./informer.ts";
import { ObjectBudget } from "./object-budget.ts";
import { GAUGES, type GaugeKey, ResourceSeries } from "./series.ts";

export interface SourceTiming extends InformerTiming {
  /** How often a healthy source re-reports success while its watches run quietly; default: the interval. */
  heartbeatMs: number;
  /** Cap on one list page. */
  maxBodyBytes: number;
  /** Cap on one watch event. */
  maxEventBytes: number;
}

export interface KubernetesSourceOptions extends ConnectionOptions {
  timing?: Partial<SourceTiming>;
}

interface Scope {
  informer: Informer<ResourceView>;
  kind: WatchedKind;
}

/** One controller ends every request of the source at stop(); each request in flight listens to it. */
function sourceController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * The operators' custom resources, kept current by list+watch rather than polled: one informer per kind and
 * namespace scope. Freshness is reported through SourceHealth: success after lists and on a heartbeat while the
 * watches run, failure when nothing could be listed. Series follow the stores object by object (ResourceSeries);
 * the aggregates among them are written once per burst of changes.
 */
class KubernetesSource implements Source {
  readonly name = SOURCE_NAMES.kubernetes;
  readonly #health: SourceHealth;

  get firstResult(): Promise<void> {
    return this.#health.firstResult;
  }
  readonly #kinds: WatchedKind[];
  readonly #timing: SourceTiming;
  readonly #log: Logger;
  readonly #series: ResourceSeries;
  readonly #objects: ObjectBudget;
  /** TalosEtcdBackups already counted, by uid; forgotten only when the object is gone for good. */
  readonly #counted = new Set<string>();
  #client: KubeClient | undefined;
  #origin: string | undefined;
  #scopes: Scope[] = [];
  #connecting: Promise<void> | undefined;
  #controller = sourceController();
  #starting: Promise<void> | undefined;
  #running = false;
  /** Set by stop(): a request that completes while stopping must not bring series back. */
  #closed = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #flushing: NodeJS.Immediate | undefined;

  constructor(
    private readonly config: KubernetesSourceConfig & Schedule,
    private readonly ctx: SourceContext,
    private readonly options: KubernetesSourceOptions,
  ) {
    this.#health = new SourceHealth(this.name, ctx.metrics.handles, ctx.logger);
    this.#log = ctx.logger.child({ source: this.name });
    this.#kinds = watchedKinds(config);
    this.#timing = {
      watchTimeoutSeconds: Math.max(1, Math.ceil(config.watchTimeout / 1000)),
      // client-go's informers list 500 at a time: few requests, and a page of whole objects stays small.
      pageSize: 500,
      backoffBaseMs: 1_000,
      backoffMaxMs: 30_000,
      notFoundRetryMs: 60_000,
      heartbeatMs: config.intervalMs,
      maxBodyBytes: 10 * 1024 * 1024,
      maxEventBytes: 4 * 1024 * 1024,
      ...options.timing,
    };
    const h = ctx.metrics.handles;
    const budget = new SeriesBudget({ source: this.name, limit: ctx.seriesLimit, dropped: h.seriesDropped, logger: ctx.logger });
    this.#series = new ResourceSeries(Object.fromEntries(GAUGES.map((k) => [k, new OwnedSeries(h[k], METRICS[k].labels, budget)])) as Record<GaugeKey, OwnedSeries>);
    this.#objects = new ObjectBudget({ source: this.name, limit: config.maxObjects, dropped: h.objectsDropped, logger: ctx.logger });
    for (const kind of this.#kinds) this.#objects.track(kind.kind);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#closed = false;
    if (this.#controller.signal.aborted) this.#controller = sourceController();
    this.#starting = this.#startWhenConnected(this.#controller.signal);
    this.#heartbeat = setInterval(() => this.#evaluate({ ok: true, phase: "watch", durationMs: 0 }), this.#timing.heartbeatMs);
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#closed = true;
    this.#controller.abort();
    clearInterval(this.#heartbeat);
    clearImmediate(this.#flushing);
    this.#flushing = undefined;
    await this.#starting;
    await this.#connecting?.catch(() => undefined);
    await Promise.all(this.#scopes.map((s) => s.informer.stop()));
    await this.#client?.close().catch((err: unknown) => this.#log.debug({ err: errorMessage(err) }, "closing the API connection failed"));
    this.#client = undefined;
    this.#connecting = undefined;
    this.#scopes = [];
    this.#objects.clear();
    this.#series.clear();
  }

  async refresh(): Promise<void> {
    if (this.#controller.signal.aborted && !this.#running) this.#controller = sourceController();
    this.#closed = false;
    const signal = this.#controller.signal;
    const started = performance.now();
    try {
      await this.#connect();
    } catch (err) {
      this.#health.failure(err, performance.now() - started);
      return;
    }
    if (this.#running) {
      // The informers are at work: wait (up to the timeout) until every kind has had its first answer.
      const deadline = Date.now() + this.config.timeoutMs;
      while (this.#scopes.some((s) => s.informer.state === "pending") && Date.now() < deadline && !signal.aborted) await sleep(50, signal);
    } else {
      await Promise.all(this.#scopes.map((s) => s.informer.listOnce(signal)));
    }
    this.#flush();
  }

  status(): SourceStatus {
    return this.#health.status();
  }

  debug(): Record<string, unknown> {
    return {
      ...this.#health.debug(),
      connection: this.#origin ?? null,
      namespaces: this.config.namespaces.length > 0 ? this.config.namespaces : "all",
      watchTimeoutSeconds: this.#timing.watchTimeoutSeconds,
      objects: { held: this.#objects.used, limit: this.#objects.limit, leftOut: this.#leftOut() },
      kinds: this.#scopes.map((s) => s.informer.debug()),
    };
  }

  async #startWhenConnected(signal: AbortSignal): Promise<void> {
    for (let failures = 1; !signal.aborted; failures++) {
      const started = performance.now();
      try {
        await this.#connect();
        break;
      } catch (err) {
        if (signal.aborted) return;
        this.#health.failure(err, performance.now() - started);
        await sleep(retryDelayMs(err, failures, this.#timing), signal);
      }
    }
    if (signal.aborted) return;
    for (const s of this.#scopes) s.informer.start();
  }

  /** Reads the connection settings and builds the client and informers, once. */
  #connect(): Promise<void> {
    this.#connecting ??= (async () => {
      const conn = await loadConnection(this.config, this.options);
      this.#client = new KubeClient(conn, {
        requestTimeoutMs: this.config.timeoutMs,
        maxBodyBytes: this.#timing.maxBodyBytes,
        maxEventBytes: this.#timing.maxEventBytes,
      });
      this.#origin = `${conn.origin} (${conn.server})`;
      this.#scopes = this.#buildScopes(this.#client);
      this.#log.info({ connection: this.#origin, informers: this.#scopes.length }, "watching custom resources");
    })().catch((err: unknown) => {
      this.#connecting = undefined;
      throw err;
    });
    return this.#connecting;
  }

  #buildScopes(client: KubeClient): Scope[] {
    const namespaces = [...new Set(this.config.namespaces)];
    const scopes: Scope[] = [];
    for (const kind of this.#kinds) {
      // Cluster-scoped kinds live in no namespace; they are watched once whatever the namespace list says.
      const targets: (string | undefined)[] = kind.namespaced && namespaces.length > 0 ? namespaces : [undefined];
      for (const namespace of targets) {
        const informer = new Informer<ResourceView>({
          client,
          ref: kind,
          kind: kind.kind,
          namespace,
          budget: this.#objects,
          project: (obj, meta) => kind.view(obj, meta),
          same: sameView,
          onStored: (view, previous) => this.#stored(view, previous),
          onRemoved: (view) => this.#removed(view),
          onListed: () => this.#listed(kind, namespace),
          onOutcome: (outcome) => this.#evaluate(outcome),
          logger: this.#log,
          timing: this.#timing,
        });
        scopes.push({ informer, kind });
      }
    }
    return scopes;
  }

  #stored(view: ResourceView, previous: ResourceView | undefined): void {
    if (this.#closed) return;
    this.#series.stored(view, previous);
    this.#countBackup(view);
    this.#scheduleFlush();
  }

  #removed(view: ResourceView): void {
    // Counted when it was stored finished, if it was; uids are never reused, so its uid need not be remembered.
    if (view.kind === "TalosEtcdBackup") this.#counted.delete(view.uid);
    if (this.#closed) return;
    this.#series.removed(view);
    this.#scheduleFlush();
  }

  #listed(kind: WatchedKind, namespace: string | undefined): void {
    if (this.#closed) return;
    this.#series.listed(kind.kind, kind.family, namespace);
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    // A burst of changes (a list, a chunk of watch lines) writes the aggregates once.
    this.#flushing ??= setImmediate(() => {
      this.#flushing = undefined;
      this.#flush();
    });
  }

  #flush(): void {
    clearImmediate(this.#flushing);
    this.#flushing = undefined;
    if (this.#closed) return;
    this.#series.flush();
  }

  /** A TalosEtcdBackup in a terminal state counts in talos_operator_etcd_backup_*, once per uid. */
  #countBackup(v: ResourceView): void {
    const outcome = v.backup?.outcome;
    if (v.kind !== "TalosEtcdBackup" || !v.backup || outcome === undefined || this.#counted.has(v.uid)) return;
    this.#counted.add(v.uid);
    const h = this.ctx.metrics.handles;
    h.etcdBackupTotal.inc({ namespace: v.namespace, name: v.backup.seriesName, status: outcome });
    if (v.backup.durationSeconds !== undefined) h.etcdBackupDuration.observe({ namespace: v.namespace, name: v.backup.seriesName }, v.backup.durationSeconds);
  }

  /**
   * Turns informer outcomes into the source's freshness. Until every kind has answered once nothing is
   * reported; with some kinds working, a failing kind makes the source unhealthy, not down; with none working
   * the source is down with the failure's reason. Every failed attempt is counted once in sidecar_source_errors_total.
   */
  #evaluate(trigger: InformerOutcome): void {
    if (!this.#client || this.#closed) return;
    let synced = 0;
    let pending = 0;
    for (const s of this.#scopes) {
      if (s.informer.state === "synced") synced++;
      else if (s.informer.state === "pending") pending++;
    }
    if (!trigger.ok) {
      if (synced === 0) {
        this.#health.failure(trigger.error, trigger.durationMs);
        return;
      }
      this.ctx.metrics.handles.sourceErrors.inc({ source: this.name, reason: classifyError(trigger.error) });
    }
    if (pending > 0 || synced === 0) return;
    // What a success reports is in the series by then.
    this.#flush();
    this.#health.success(trigger.durationMs, this.#outcome());
  }

  #outcome(): PollOutcome {
    const objects = this.#scopes.reduce((n, s) => n + s.informer.store.size, 0);
    const kinds = new Set(this.#scopes.filter((s) => s.informer.listed).map((s) => s.kind.kind)).size;
    const failing = this.#scopes.filter((s) => s.informer.state === "failed");
    const notReady = this.#series.clustersNotReady;
    const leftOut = this.#leftOut();
    const parts = [`${plural(objects, "object")} in ${plural(kinds, "kind")}`];
    if (leftOut > 0) parts.push(`${plural(leftOut, "object")} left out at sources.kubernetes.maxObjects (${this.#objects.limit})`);
    if (notReady > 0) parts.push(`${plural(notReady, "cluster")} not ready`);
    if (failing.length > 0) {
      const which = failing.map((s) => `${s.kind.kind}${s.informer.namespace !== undefined ? ` in ${s.informer.namespace}` : ""}: ${s.informer.reason ?? "other"}`);
      parts.push(`${plural(failing.length, "kind")} failing (${which.join(", ")})`);
    }
    return { healthy: failing.length === 0 && notReady === 0, detail: parts.join(", ") };
  }

  /** Objects that exist but are not kept, for want of room under sources.kubernetes.maxObjects. */
  #leftOut(): number {
    return this.#scopes.reduce((n, s) => n + s.informer.leftOut, 0);
  }
}

/** The Kubernetes custom-resource source: watch-driven, reported under SOURCE_NAMES.kubernetes. */
export function createKubernetesSource(config: KubernetesSourceConfig & Schedule, ctx: SourceContext, options: KubernetesSourceOptions = {}): Source {
  return new KubernetesSource(config, ctx, options);
}
