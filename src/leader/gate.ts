import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import type { Config } from "../config/types.ts";
import { UpstreamError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { SOURCE_NAMES } from "../sources/config.ts";
import { type ConnectionOptions, loadConnection } from "../sources/kubernetes/kubeconfig.ts";
import type { SourceRegistry } from "../sources/registry.ts";
import { LeaderElector } from "./elector.ts";
import { LeaseClient } from "./lease-client.ts";

/** Sources that read cluster-wide state: one replica polls them. The operator's own /metrics is per pod. */
export const CLUSTER_WIDE_SOURCES: readonly string[] = [SOURCE_NAMES.talos, SOURCE_NAMES.kubernetes, SOURCE_NAMES.tailscale, SOURCE_NAMES.backups];

export const SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

type ElectionConfig = Config["leaderElection"];

export interface GateOptions extends ConnectionOptions {
  /** Where the pod's namespace is read when neither the config nor POD_NAMESPACE gives it. */
  namespaceFile?: string;
}

/** The running sources as the runtime sees them: when checks may start, and how they all stop. */
export interface SourceGate {
  /** Resolves once it is known which sources run here (at once without election). */
  readonly firstDecision: Promise<void>;
  readonly elector: LeaderElector | undefined;
  /** Stops every source; a leader first hands its Lease back. */
  stop(): Promise<void>;
}

/** leaderElection.identity, else the pod name. */
export function electionIdentity(config: ElectionConfig, env: NodeJS.ProcessEnv = process.env): string {
  return config.identity ?? (env.HOSTNAME?.trim() || hostname());
}

/** leaderElection.namespace, else POD_NAMESPACE, else the service account's namespace file. */
export async function electionNamespace(config: ElectionConfig, env: NodeJS.ProcessEnv = process.env, file = SERVICE_ACCOUNT_NAMESPACE_FILE): Promise<string> {
  if (config.namespace !== undefined) return config.namespace;
  const fromEnv = env.POD_NAMESPACE?.trim();
  if (fromEnv) return fromEnv;
  try {
    const fromFile = (await readFile(file, "utf8")).trim();
    if (fromFile !== "") return fromFile;
  } catch {
    // Reported below with what to do.
  }
  throw new UpstreamError(`leaderElection.namespace: not set, POD_NAMESPACE is empty and ${file} cannot be read; set leaderElection.namespace`, "other");
}

/**
 * Starts the sources. Without leader election all of them; with it the pod-local ones at once and the
 * cluster-wide ones only while this replica holds the Lease — stopped the moment it loses it.
 */
export function startSources(
  config: ElectionConfig,
  sources: SourceRegistry,
  deps: { gauge: { set(value: number): void }; logger: Logger },
  options: GateOptions = {},
): SourceGate {
  if (!config.enabled) {
    sources.start();
    return { firstDecision: Promise.resolve(), elector: undefined, stop: () => sources.stop() };
  }
  const clusterWide = sources.names.filter((n) => CLUSTER_WIDE_SOURCES.includes(n));
  const local = sources.names.filter((n) => !CLUSTER_WIDE_SOURCES.includes(n));
  const identity = electionIdentity(config, options.env);
  const standby = (): void => sources.standby(clusterWide, `not polled by this replica (${identity}): the holder of leader Lease ${config.leaseName} polls it`);
  standby();
  sources.start(local);
  const { logger } = deps;
  const elector = new LeaderElector(
    { identity, lease: config.leaseName, leaseDurationMs: config.leaseDurationMs, renewDeadlineMs: config.renewDeadlineMs, retryPeriodMs: config.retryPeriodMs },
    {
      connect: async () => {
        const namespace = await electionNamespace(config, options.env, options.namespaceFile);
        const conn = await loadConnection(config, options);
        logger.debug({ namespace, lease: config.leaseName, connection: conn.origin }, "leader election connected");
        return new LeaseClient(conn, { namespace, name: config.leaseName }, config.retryPeriodMs);
      },
      startedLeading: () => sources.start(clusterWide),
      stoppedLeading: () => {
        standby();
        return sources.stop(clusterWide);
      },
      gauge: deps.gauge,
      logger,
    },
  );
  elector.start();
  return {
    firstDecision: elector.firstDecision,
    elector,
    stop: async () => {
      await elector.stop();
      await sources.stop();
    },
  };
}
