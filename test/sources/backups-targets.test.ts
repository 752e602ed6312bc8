// One backup target failing among several: the exporter runs in this process and is read over its sockets, as
// Prometheus and the kubelet would.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, get, seriesValue, startRuntime } from "../helpers.ts";
import { readFixtureSnapshot } from "../sim/etcd-snapshot.ts";
import { startS3Sim } from "../sim/s3.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "backups-targets-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface TargetDebug {
  name: string;
  reachable: boolean;
  error: string | null;
  reason: string | null;
  stale: boolean | null;
}

describe("backups source with one failing target among several", () => {
  it("shows the failing target in its own series and errors, and its backup check fails once its data is stale", async () => {
    const s3 = await startS3Sim();
    cleanups.push(() => s3.close());
    await s3.putSnapshot("etcd/snapshot.db", { lastModified: new Date(Date.now() - 3_600_000) });
    const secrets = await tempDir();
    await writeFile(join(secrets, "id"), s3.accessKeyId);
    await writeFile(join(secrets, "secret"), s3.secretAccessKey);
    const volume = await tempDir();
    await writeFile(join(volume, "etcd.db"), readFixtureSnapshot());

    const rt = await startRuntime({
      sources: {
        backups: {
          interval: "2s",
          timeout: "2s",
          targets: [
            {
              name: "primary",
              type: "s3",
              endpoint: s3.url,
              region: s3.region,
              bucket: s3.bucket,
              prefix: "etcd/",
              pathStyle: true,
              namespace: "talos-system",
              accessKeyId: { file: join(secrets, "id") },
              secretAccessKey: { file: join(secrets, "secret") },
            },
            { name: "local", type: "filesystem", path: volume, namespace: "talos-system" },
          ],
        },
      },
      healthChecks: {
        dependencies: [
          { name: "primary-backup", type: "backup", target: "primary", interval: "500ms", timeout: "400ms" },
          { name: "local-backup", type: "backup", target: "local", interval: "500ms", timeout: "400ms" },
        ],
      },
    });
    cleanups.push(() => rt.runtime.stop());
    const metrics = async () => (await get(`${rt.metricsUrl}/metrics`)).body;
    const check = async (name: string) => JSON.parse((await get(`${rt.healthUrl}/health/${name}`)).body) as { status: string; error: string | null };
    const targets = async () => {
      const status = JSON.parse((await get(`${rt.healthUrl}/debug/status`)).body) as { sources: { name: string; targets?: TargetDebug[] }[] };
      return status.sources.find((s) => s.name === "backups")?.targets ?? [];
    };

    // Both targets read: both up, both checks pass.
    const both = await eventually(async () => {
      const text = await metrics();
      return seriesValue(text, 'etcd_backup_target_up{target="local"}') === 1 && seriesValue(text, 'etcd_backup_target_up{target="primary"}') === 1
        ? text
        : undefined;
    }, 15_000);
    expect(seriesValue(both, 'etcd_backup_target_errors_total{target="local",reason="not_found"}')).toBe(0);
    await eventually(async () => (await check("local-backup")).status === "pass", 10_000);

    // The volume goes away: the local target fails on every poll from now on; primary keeps working.
    await rm(volume, { recursive: true });
    // Families are rendered as they change, not all at once, so the scrape is awaited until it shows all of it.
    const since = (text: string, target: string) => seriesValue(text, `etcd_backup_target_last_success_timestamp_seconds{target="${target}"}`) ?? NaN;
    const broken = await eventually(async () => {
      const text = await metrics();
      const shown =
        (seriesValue(text, 'etcd_backup_target_errors_total{target="local",reason="not_found"}') ?? 0) >= 1 &&
        seriesValue(text, 'etcd_backup_target_up{target="local"}') === 0 &&
        (seriesValue(text, 'sidecar_source_errors_total{source="backups",reason="not_found"}') ?? 0) >= 1 &&
        since(text, "primary") > since(text, "local");
      return shown ? text : undefined;
    }, 15_000);
    // The other target and the source as a whole go on; the broken target keeps its last good series.
    expect.soft(seriesValue(broken, 'etcd_backup_target_up{target="primary"}')).toBe(1);
    expect.soft(seriesValue(broken, 'sidecar_source_up{source="backups"}')).toBe(1);
    expect.soft(seriesValue(broken, 'etcd_backup_objects_total{target="local"}')).toBe(1);
    const local = (await targets()).find((t) => t.name === "local");
    expect.soft(local).toMatchObject({
      reachable: false,
      reason: "not_found",
      error: expect.stringMatching(/^filesystem target "local" .*: cannot list the directory: ENOENT/),
    });

    // Two intervals and a timeout later the local data is stale, and its check says since when and why.
    const failed = await eventually(async () => {
      const result = await check("local-backup");
      return result.status === "fail" ? result : undefined;
    }, 20_000);
    expect(failed.error).toMatch(/^backup target local has not been read since \d{4}-\d\d-\d\dT[\d:.]+Z \(\d+s ago\): filesystem target "local" .*ENOENT/);
    expect((await targets()).find((t) => t.name === "local")?.stale).toBe(true);
    expect((await check("primary-backup")).status).toBe("pass");
  }, 60_000);
});
