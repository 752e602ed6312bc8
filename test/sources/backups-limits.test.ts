// What a hostile S3 endpoint can cost the process: memory and event-loop time, measured in this process (the
// exporter runs here, so a stall of its event loop is a stall of /healthz).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, get, httpServer, seriesValue, startRuntime, type TestRuntime } from "../helpers.ts";
import { readFixtureSnapshot } from "../sim/etcd-snapshot.ts";

const MiB = 1024 * 1024;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A ListObjectsV2 page of these keys, which go in as written (entities and all), and of `extra` after them. */
function page(keys: string[], extra = ""): Buffer {
  return Buffer.from(
    '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      `<Name>etcd-backups</Name><Prefix></Prefix><KeyCount>${keys.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>` +
      keys
        .map(
          (key, i) =>
            `<Contents><Key>${key}</Key><LastModified>${new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString()}</LastModified>` +
            "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType>" +
            `<Size>${20_512 + i}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
        )
        .join("") +
      `${extra}</ListBucketResult>`,
  );
}

/** A plain HTTP server that answers every ListObjectsV2 request with `page`, and every GetObject with a snapshot. */
async function listingServer(page: Buffer): Promise<string> {
  const snapshot = readFixtureSnapshot();
  const server = await httpServer((req, res) => {
    if (!req.url?.includes("list-type=2")) {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(snapshot);
      return;
    }
    res.writeHead(200, { "content-type": "application/xml", "content-length": page.length });
    res.end(page);
  });
  cleanups.push(() => server.close());
  return server.url;
}

async function exporterFor(endpoint: string): Promise<TestRuntime> {
  const secrets = await mkdtemp(join(tmpdir(), "backups-limits-"));
  cleanups.push(() => rm(secrets, { recursive: true, force: true }));
  await writeFile(join(secrets, "id"), "AKIDLIMITS");
  await writeFile(join(secrets, "secret"), "limits-secret");
  const rt = await startRuntime({
    sources: {
      backups: {
        interval: "30s",
        timeout: "10s",
        targets: [
          {
            name: "primary",
            type: "s3",
            endpoint,
            bucket: "etcd-backups",
            pathStyle: true,
            namespace: "talos-system",
            accessKeyId: { file: join(secrets, "id") },
            secretAccessKey: { file: join(secrets, "secret") },
          },
        ],
      },
    },
  });
  cleanups.push(() => rt.runtime.stop());
  return rt;
}

interface BackupsDebug {
  up: boolean;
  lastAttemptAt: string | null;
  reason: string | null;
  consecutiveFailures: number;
  targets: Record<string, unknown>[];
}

async function backupsDebug(rt: TestRuntime): Promise<BackupsDebug> {
  const status = JSON.parse((await get(`${rt.healthUrl}/debug/status`)).body) as { sources: (BackupsDebug & { name: string })[] };
  const backups = status.sources.find((s) => s.name === "backups");
  if (!backups) throw new Error("no backups source in /debug/status");
  return backups;
}

/**
 * Asks /healthz over and over until `done` holds, and reports the slowest answer (of /healthz, or of whatever
 * `done` asks the health server) and the most resident memory seen above what the process held before.
 */
async function watchUntil(rt: TestRuntime, done: () => Promise<boolean>, timeoutMs = 30_000) {
  const baseline = process.memoryUsage().rss;
  let worstMs = 0;
  let peakRss = baseline;
  let probes = 0;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const started = performance.now();
    const res = await get(`${rt.healthUrl}/healthz`);
    expect(res.status).toBe(200);
    const finished = await done();
    worstMs = Math.max(worstMs, performance.now() - started);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    probes++;
    if (finished) break;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs}ms`);
  }
  return { worstMs, growthMiB: (peakRss - baseline) / MiB, probes };
}

describe("backups source against a hostile listing", () => {
  it.each([
    // 10 MB of one entity in one key: under the 10 MiB cap every other upstream body has, no DTD anywhere.
    ["10 MB of &amp; in one key", page(["&amp;".repeat(2_000_000)]), /malformed XML: <Key> holds more than \d+ characters/],
    // Every element well-formed and small, so all of it is read until the size cap ends it.
    ["10 MB of empty elements", page([], "<Owner/>".repeat(1_250_000)), /response is larger than \d+ bytes; a page of 1000 keys is far smaller/],
  ])(
    "refuses a page of %s as decode, with little memory and no stall of /healthz",
    async (_what, body, error) => {
      const rt = await exporterFor(await listingServer(body));
      const seen = await watchUntil(rt, async () => (await backupsDebug(rt)).lastAttemptAt !== null);

      const debug = await backupsDebug(rt);
      expect.soft(debug.up).toBe(false);
      expect.soft(debug.reason).toBe("decode");
      expect.soft(debug.targets[0]?.error).toMatch(/^s3 target "primary" \(bucket etcd-backups at http:\/\/127\.0\.0\.1:\d+\): ListObjectsV2/);
      expect.soft(debug.targets[0]?.error).toMatch(error);
      // Generous for a loaded machine; the stall this guards against lasted seconds.
      expect.soft(seen.worstMs, `slowest of ${seen.probes} answers of the health server, ms`).toBeLessThan(1_000);
      expect.soft(seen.growthMiB, "resident memory growth, MiB").toBeLessThan(100);
      const metrics = await eventually(async () => {
        const text = (await get(`${rt.metricsUrl}/metrics`)).body;
        return (seriesValue(text, 'sidecar_source_errors_total{source="backups",reason="decode"}') ?? 0) >= 1 ? text : undefined;
      }, 10_000);
      expect(seriesValue(metrics, 'sidecar_source_up{source="backups"}')).toBe(0);
    },
    60_000,
  );

  it("still reads a full page of 1000 keys of S3's longest", async () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `etcd/${String(i).padStart(4, "0")}-${"k".repeat(1014)}`);
    const body = page(keys);
    expect(body.length).toBeGreaterThan(1024 * 1024);
    const rt = await exporterFor(await listingServer(body));
    await eventually(async () => (await backupsDebug(rt)).lastAttemptAt !== null, 10_000);
    const debug = await backupsDebug(rt);
    expect(debug.up).toBe(true);
    expect(debug.targets[0]).toMatchObject({ objects: 1000, newestKey: keys[999], verified: true });
  });
});
