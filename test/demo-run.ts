import { startDemoEnvironment, type DemoEnvironment } from "../scripts/demo.ts";
import { runCli, type CliRun } from "./cli-process.ts";
import { eventually, get } from "./helpers.ts";

/** Families that only have series after an event the demo does not stage, and why. */
export const EVENT_ONLY: ReadonlyMap<string, string> = new Map([
  ["health_check_skipped_total", "only counts runs that overran their interval"],
  ["talos_etcd_alarm", "only present while etcd reports an alarm"],
  ["grpc_server_errors_total", "only counts gRPC health requests that failed"],
  ["sidecar_authn_requests_total", "only with metrics.secure, which the demo does not use"],
  ["sidecar_authz_requests_total", "only with metrics.secure, which the demo does not use"],
  ["sidecar_series_dropped_total", "only counts series beyond limits.seriesPerSource"],
]);

export interface DemoRun {
  demo: DemoEnvironment;
  run: CliRun;
  metricsAddress: string;
  healthUrl: string;
  grpcAddress: string;
  stop(): Promise<void>;
}

/** The demo's simulators plus the real CLI on free ports, once every source has reported up. */
export async function startDemoRun(interval = "2s"): Promise<DemoRun> {
  const demo = await startDemoEnvironment({ metrics: 0, health: 0, grpc: 0 }, interval);
  const run = runCli(["--config", demo.configFile], { ...demo.env, SIDECAR_LOG_FORMAT: "json" });
  const started = await eventually(() => run.stdout().split("\n").find((l) => l.includes("sidecar-exporter started")), 15_000);
  const addresses = JSON.parse(started) as { metrics: string; health: string; grpc: string };
  const healthUrl = `http://${addresses.health}`;
  await eventually(
    async () => {
      const debug = JSON.parse((await get(`${healthUrl}/debug/status`)).body) as { sources: { up: boolean }[] };
      return debug.sources.length === 5 && debug.sources.every((s) => s.up);
    },
    30_000,
    200,
  );
  return {
    demo,
    run,
    metricsAddress: addresses.metrics,
    healthUrl,
    grpcAddress: addresses.grpc,
    async stop() {
      run.child.kill("SIGTERM");
      await run.exited;
      await demo.close();
    },
  };
}
