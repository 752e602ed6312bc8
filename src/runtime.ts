import type { Server as HttpsServer } from "node:https";
import type { CheckEngine } from "./checks/engine.ts";
import type { Config } from "./config/types.ts";
import type { SourceGate } from "./leader/gate.ts";
import type { LogSetup } from "./log.ts";
import { Secret } from "./secret.ts";
import { SecretUrl } from "./secret-url.ts";
import type { MetricRegistry } from "./metrics/registry.ts";
import { DROP_REASONS, type DropReport } from "./serve/connection-cap.ts";
import { appListener, listenWith, type Listening } from "./serve/listen.ts";
import { healthListener } from "./serve/liveness.ts";
import type { GrpcHealthServer } from "./serve/grpc-health.ts";
import type { SecureServing } from "./serve/secure/index.ts";
import { SOURCE_NAMES } from "./sources/config.ts";
import { buildSources } from "./sources/index.ts";
import { SourceRegistry } from "./sources/registry.ts";
import { pendingGuard, StartupHealthModel, type PendingGuard } from "./startup.ts";
import { CheckStore } from "./state/checks.ts";
import { startTracing, type Tracing } from "./tracing/provider.ts";
import { VERSION } from "./version.ts";

export interface RuntimeOptions {
  logging: LogSetup;
  /** process_* and nodejs_* metrics; tests that build many runtimes turn them off. */
  processMetrics?: boolean;
  /** The health server from Runtime.serveHealth for the same config, already listening; start() makes it if not given. */
  health?: HealthFirst;
}

/** What the health server answers from: made, and listening, before anything heavy is loaded. */
export interface HealthFirst {
  store: CheckStore;
  model: StartupHealthModel;
  sources: SourceRegistry;
  startedAt: number;
  server: Listening | undefined;
  /** debug.protect: /debug/* waits for the guard secure serving makes. */
  debugGuard: PendingGuard | undefined;
}

/** Metrics over plain HTTP and /debug left open: nothing of serve/secure is needed. */
const PLAIN_SERVING: SecureServing = { attach: () => undefined, close: async () => undefined };

/** Everything the exporter runs, built from one Config: the checks, their state and the three servers. */
export class Runtime {
  readonly metrics: MetricRegistry;
  readonly store: CheckStore;
  readonly model: StartupHealthModel;
  readonly engine: CheckEngine;
  readonly sources: SourceRegistry;
  readonly startedAt: number;
  /** The metrics server on this thread, or the scrape thread that serves the metrics port. */
  #metricsServer: Pick<Listening, "address" | "close"> | undefined;
  #healthServer: Listening | undefined;
  #grpcServer: GrpcHealthServer | undefined;
  #tracing: Tracing | undefined;
  #secure: SecureServing | undefined;
  #debugGuard: PendingGuard | undefined;
  #gate: SourceGate | undefined;
  #stopping: Promise<void> | undefined;
  #config: Config;

  /** The configuration running now; a reload replaces it. */
  get config(): Config {
    return this.#config;
  }

  private constructor(
    config: Config,
    private readonly opts: RuntimeOptions,
    first: HealthFirst,
    metrics: MetricRegistry,
    engine: CheckEngine,
  ) {
    this.#config = config;
    ({ store: this.store, model: this.model, sources: this.sources, startedAt: this.startedAt } = first);
    this.#healthServer = first.server;
    this.#debugGuard = first.debugGuard;
    this.metrics = metrics;
    this.engine = engine;
    this.#exportHealthGauges();
  }

  /**
   * The health server listens first, on what needs no more than the configuration, so that a cold start answers
   * /healthz within a few hundred milliseconds; the metric registry, the check probers, each configured source,
   * tracing and the other servers are loaded after it (dynamic imports), and readiness fails with "startup"
   * until they are all in place.
   */
  static async start(config: Config, opts: RuntimeOptions): Promise<Runtime> {
    const first = opts.health ?? (await Runtime.serveHealth(config));
    if (first.server) opts.logging.component("server").info({ address: first.server.address }, "health server listening");
    let runtime: Runtime | undefined;
    try {
      const [{ MetricRegistry }, { CheckEngine }] = await Promise.all([import("./metrics/registry.ts"), import("./checks/engine.ts")]);
      const metrics = new MetricRegistry(config.metrics.labels, { processMetrics: opts.processMetrics ?? true });
      const engine = new CheckEngine(first.store, { logger: opts.logging.component("checks"), sources: first.sources }, metrics.handles);
      for (const spec of config.checks) engine.add(spec);
      runtime = new Runtime(config, opts, first, metrics, engine);
      for (const source of await buildSources(config.sources, runtime.#sourceContext(config))) first.sources.add(source);
      // Before any source or check runs, so their first spans are recorded too.
      runtime.#tracing = await startTracing(opts.logging.component("main"));
      await runtime.#listen();
    } catch (err) {
      await (runtime ? runtime.stop() : first.server?.close(0));
      throw err;
    }
    const { startSources } = await import("./leader/gate.ts");
    runtime.#gate = startSources(config.leaderElection, runtime.sources, { gauge: runtime.metrics.handles.leader, logger: opts.logging.component("leader") });
    runtime.store.startSweeping();
    // What start set (build info, leadership, zeroed counters) is on the first scrape, not a rendering later.
    await runtime.metrics.flush();
    runtime.model.started();
    // Checks that read sources would fail their first run if it came before the sources' first poll; the
    // servers already answer meanwhile, with readiness pending.
    const started = runtime;
    void started.#gate?.firstDecision.then(() => started.sources.firstResults(started.#longestSourceTimeoutMs())).then(() => {
      if (!started.model.shuttingDown) started.engine.start();
    });
    return runtime;
  }

  /**
   * The store with every check registered (pending), no sources yet, and the health server listening on them.
   * It needs no logger, so the CLI calls it before logging is loaded and hands the result to start().
   */
  static async serveHealth(config: Config): Promise<HealthFirst> {
    const store = new CheckStore();
    // Registered before anything answers, so the check endpoints know them while the rest loads.
    for (const spec of config.checks) store.register(spec);
    const sources = new SourceRegistry([]);
    const model = new StartupHealthModel(store, () => sources.lines());
    const startedAt = Date.now();
    const debugGuard = config.debug.protect ? pendingGuard() : undefined;
    let server: Listening | undefined;
    if (config.health.enabled) {
      // Listening on node:http alone: liveness is answered from here on, the other paths once the app is loaded.
      const health = healthListener(config.health);
      server = await listenWith("health", health.listener, config.server.address, config.health.port, "health.port (or SIDECAR_HEALTH_PORT)", undefined, { maxConnections: config.limits.maxConnections });
      try {
        const { healthApp } = await import("./serve/health-server.ts");
        health.serve(await appListener(healthApp(model, config, { version: VERSION, startedAt }, () => sources.debug(), debugGuard?.guard)));
      } catch (err) {
        await server.close(0);
        throw err;
      }
    }
    return { store, model, sources, startedAt, server, debugGuard };
  }

  #longestSourceTimeoutMs(): number {
    const timeouts = Object.values(this.config.sources).map((s: { timeoutMs: number }) => s.timeoutMs);
    return Math.max(0, ...timeouts) + 1_000;
  }

  /** host:port of each server that is running. */
  get addresses(): { metrics?: string; health?: string; grpc?: string } {
    return {
      ...(this.#metricsServer && { metrics: this.#metricsServer.address }),
      ...(this.#healthServer && { health: this.#healthServer.address }),
      ...(this.#grpcServer && { grpc: this.#grpcServer.address }),
    };
  }

  /** The metrics and gRPC health servers (the health server already listens), with TLS and guards if configured. */
  async #listen(): Promise<void> {
    const { config } = this;
    const host = config.server.address;
    const log = this.opts.logging.component("server");
    const { handles } = this.metrics;
    handles.buildInfo.set({ version: VERSION, nodejs: process.version }, 1);
    handles.configLastReloadSuccess.set(Date.now() / 1000);
    for (const result of ["success", "failure"]) handles.configReloads.inc({ result }, 0);
    // Without leader election every replica polls; with it, the elector owns this gauge.
    if (!config.leaderElection.enabled) handles.leader.set(1);
    const health = this.#healthServer;
    if (health) this.#countDrops("health", (report) => health.connections.onDrop(report));
    const secure = config.metrics.secure || config.debug.protect;
    this.#secure = secure ? await (await import("./serve/secure/index.ts")).secureServing(config, handles, log) : PLAIN_SERVING;
    this.#debugGuard?.settle(this.#secure.debugGuard);
    if (config.metrics.enabled) {
      const configKey = "metrics.port (or SIDECAR_METRICS_PORT)";
      const scheme = config.metrics.secure ? `https, auth ${config.metrics.auth.mode}` : "http";
      if (config.metrics.scrapeThread) {
        const { ScrapeThread } = await import("./serve/scrape-thread.ts");
        const options = { host, port: config.metrics.port, path: config.metrics.path, configKey, maxConnections: config.limits.maxConnections };
        const thread = await ScrapeThread.start(this.metrics, options, log);
        this.#countDrops("metrics", (report) => thread.onDrop(report));
        this.#metricsServer = thread;
      } else {
        const { metricsListener, registrySource } = await import("./serve/metrics-server.ts");
        const listener = await metricsListener(registrySource(this.metrics), config.metrics.path, this.#secure.metricsGuard);
        const listening = await listenWith("metrics", listener, host, config.metrics.port, configKey, this.#secure.tls, { maxConnections: config.limits.maxConnections });
        if (this.#secure.tls) this.#secure.attach(listening.server as HttpsServer);
        this.#countDrops("metrics", (report) => listening.connections.onDrop(report));
        this.#metricsServer = listening;
      }
      log.info({ address: this.#metricsServer.address, path: config.metrics.path, scheme, ...(config.metrics.scrapeThread && { thread: "scrape" }) }, "metrics server listening");
    }
    if (config.grpcHealth.enabled) {
      const { startGrpcHealth } = await import("./serve/grpc-health.ts");
      const grpcServer = await startGrpcHealth(this.model, host, config.grpcHealth.port, handles, log, { maxConnections: config.limits.maxConnections });
      this.#countDrops("grpc", (report) => grpcServer.onDrop(report));
      this.#grpcServer = grpcServer;
      log.info({ address: this.#grpcServer.address }, "gRPC health server listening");
    }
  }

  /** sidecar_connections_dropped_total of one server, each reason from zero so that the first drop shows as one. */
  #countDrops(server: "health" | "metrics" | "grpc", onDrop: (report: DropReport) => void): void {
    const dropped = this.metrics.handles.connectionsDropped;
    for (const reason of DROP_REASONS) dropped.inc({ server, reason }, 0);
    onDrop((reason, count) => dropped.inc({ server, reason }, count));
  }

  /**
   * health_check_up and sidecar_ready follow state changes, so a scrape reads them instead of computing them. A
   * change touches only the check it is about; readiness is re-judged without a walk over every check while a
   * critical one is known to fail (see HealthModel.ready).
   */
  #exportHealthGauges(): void {
    const { handles } = this.metrics;
    for (const view of this.store.views()) handles.healthCheckUp.set({ check: view.spec.name }, view.status === "pass" ? 1 : 0);
    handles.ready.set(this.model.ready() ? 1 : 0);
    // A check that is gone reports "pending" once more; its series went with it.
    this.store.on("change", (name, status) => {
      if (this.store.has(name)) handles.healthCheckUp.set({ check: name }, status === "pass" ? 1 : 0);
    });
    this.model.on("change", () => handles.ready.set(this.model.ready() ? 1 : 0));
  }

  /**
   * Applies a new configuration without dropping the servers: checks are added, removed or replaced by name,
   * sources restarted only when their own settings changed, log levels follow. Settings that shape the servers
   * (ports, addresses, TLS, metric labels, limits, leader election) take a restart; they are reported, not applied.
   */
  async applyConfig(next: Config): Promise<{ checks: string[]; sources: string[]; needsRestart: string[] }> {
    const prev = this.#config;
    const same = (a: unknown, b: unknown) => comparable(a) === comparable(b);
    const needsRestart = (["metrics", "health", "grpcHealth", "server", "limits", "leaderElection", "debug"] as const).filter((k) => !same(prev[k], next[k]));

    const changedChecks: string[] = [];
    const before = new Map(prev.checks.map((c) => [c.name, c]));
    const after = new Map(next.checks.map((c) => [c.name, c]));
    for (const [name, spec] of before) {
      if (!after.has(name) || !same(spec, after.get(name))) {
        await this.engine.remove(name);
        changedChecks.push(after.has(name) ? `~${name}` : `-${name}`);
      }
    }
    const started = this.engine.specs().length > 0 || prev.checks.length === 0;
    for (const [name, spec] of after) {
      if (before.has(name) && same(before.get(name), spec)) continue;
      this.engine.add(spec);
      if (started) this.engine.startOne(name);
      if (!before.has(name)) changedChecks.push(`+${name}`);
    }

    const changedSources: string[] = [];
    const keys = new Set([...Object.keys(prev.sources), ...Object.keys(next.sources)]) as Set<keyof Config["sources"]>;
    const { CLUSTER_WIDE_SOURCES } = await import("./leader/gate.ts");
    for (const key of keys) {
      if (same(prev.sources[key], next.sources[key])) continue;
      const [rebuilt] = await buildSources({ [key]: next.sources[key] }, this.#sourceContext(next));
      const name = SOURCE_NAMES[key];
      const leading = this.#gate?.elector === undefined || this.#gate.elector.leading || !CLUSTER_WIDE_SOURCES.includes(name);
      await this.sources.replace(name, rebuilt, leading);
      changedSources.push(name);
    }

    this.opts.logging.reconfigure(next.logging);
    this.#config = { ...next, ...Object.fromEntries(needsRestart.map((k) => [k, prev[k]])) };
    return { checks: changedChecks, sources: changedSources, needsRestart };
  }

  #sourceContext(config: Config) {
    return { logger: this.opts.logging.component("sources"), metrics: this.metrics, seriesLimit: config.limits.seriesPerSource };
  }

  /** Readiness fails from now on (503, gRPC NOT_SERVING) while everything else goes on as before; stop() follows. */
  withdraw(): void {
    this.model.beginShutdown();
  }

  /**
   * Readiness turns false at once, checks stop, then the servers drain for up to the grace period.
   * Safe to call more than once; later calls wait for the first.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.model.beginShutdown();
      this.store.stopSweeping();
      await Promise.all([this.engine.stop(), this.#gate?.stop() ?? this.sources.stop()]);
      const grace = this.config.server.shutdownGracePeriodMs;
      // Queued spans are exported while the servers drain, within the same grace period.
      await Promise.all([this.#metricsServer?.close(grace), this.#healthServer?.close(grace), this.#grpcServer?.close(grace), this.#tracing?.shutdown(grace)]);
      await this.#secure?.close();
      this.metrics.close();
    })();
    return this.#stopping;
  }
}

/** A form of a config value for comparing two configs: credentials compared by value, never printed. */
function comparable(value: unknown): string {
  // A replacer is handed what toJSON made of a value (its redacted form); the holder still has the value itself.
  return (
    JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
      const held = this[key];
      return held instanceof Secret || held instanceof SecretUrl ? `secret:${held.reveal()}` : v;
    }) ?? ""
  );
}
