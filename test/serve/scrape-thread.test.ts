import { gunzipSync } from "node:zlib";
import { Worker } from "node:worker_threads";
import fc from "fast-check";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { FORMS, isGzipForm, type Form } from "../../src/metrics/exposition.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { createLogging } from "../../src/log.ts";
import { MirrorReceiver, MirrorSender } from "../../src/serve/exposition-mirror.ts";
import { ScrapeThread } from "../../src/serve/scrape-thread.ts";
import { Runtime } from "../../src/runtime.ts";
import { configFrom, eventually, get, httpServer, LogCapture, startRuntime, withEphemeralPorts, type TestRuntime } from "../helpers.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function threaded(doc: Record<string, unknown> = {}): Promise<TestRuntime> {
  const rt = await startRuntime({ ...doc, metrics: { scrapeThread: true, ...(doc.metrics as object | undefined) } });
  cleanups.push(() => rt.runtime.stop());
  return rt;
}

async function gzipScrape(url: string): Promise<{ encoding: unknown; text: string }> {
  const res = await request(url, { headers: { "accept-encoding": "gzip" } });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { encoding: res.headers["content-encoding"], text: gunzipSync(body).toString("utf8") };
}

/**
 * A scrape made from another thread, so that it can run while this one is blocked: resolves with the status and
 * the wall-clock time the answer was complete.
 */
function scrapeFromAnotherThread(url: string): { go(): void; answer: Promise<{ status: number; doneAt: number }> } {
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    const http = require("node:http");
    parentPort.once("message", () => {
      http.get(workerData, (res) => {
        res.resume();
        res.on("end", () => parentPort.postMessage({ status: res.statusCode, doneAt: Date.now() }));
      });
    });`;
  const worker = new Worker(code, { eval: true, workerData: url });
  const answer = new Promise<{ status: number; doneAt: number }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  }).finally(() => void worker.terminate());
  return { go: () => worker.postMessage("go"), answer };
}

function blockFor(ms: number): number {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // This thread does nothing else meanwhile: no timer, no socket, no message is served.
  }
  return end;
}

describe("exposition mirror", () => {
  const buffer = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));

  it("any sequence of publications, buffers kept or replaced, arrives whole and sends only buffers not sent before", () => {
    fc.assert(
      fc.property(fc.array(buffer, { minLength: 1, maxLength: 12 }), fc.array(fc.array(fc.array(fc.nat(), { maxLength: 8 }), { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 6 }), (pool, publications) => {
        const sender = new MirrorSender();
        const receiver = new MirrorReceiver();
        let sentBefore = new Set<Buffer>();
        for (const picks of publications) {
          const forms = Object.fromEntries(FORMS.map((form, i) => [form, (picks[i] ?? []).map((n) => pool[n % pool.length] as Buffer)])) as Record<Form, Buffer[]>;
          const update = sender.update(forms);
          const inForms = new Set(Object.values(forms).flat());
          // Exactly the buffers of this publication that the previous one did not hold are sent, once each.
          expect(update.added.length).toBe([...inForms].filter((b) => !sentBefore.has(b)).length);
          expect(update.packed.byteLength).toBe(update.added.reduce((sum, [, , length]) => sum + length, 0));
          receiver.apply(structuredClone(update, { transfer: [update.packed] }));
          expect(receiver.ready).toBe(true);
          for (const form of FORMS) {
            const body = receiver.body(form);
            const whole = Buffer.concat(forms[form]);
            expect(Buffer.concat(body.parts as Buffer[])).toEqual(whole);
            expect(body.length).toBe(whole.length);
            if (isGzipForm(form)) expect(body.parts).toHaveLength(1);
          }
          sentBefore = inForms;
        }
      }),
      { numRuns: 300 },
    );
  });

  it("refuses an update that names a buffer it was never sent", () => {
    const receiver = new MirrorReceiver();
    const forms = { text: [7], textGzip: [], openMetrics: [], openMetricsGzip: [] };
    expect(() => receiver.apply({ forms, added: [], packed: new ArrayBuffer(0) })).toThrow("exposition update names buffer 7, which was never sent");
    expect(() => receiver.body("text")).toThrow("no exposition received yet");
  });
});

describe("metrics.scrapeThread", () => {
  it("serves what the main thread renders, in every form, and follows its changes", async () => {
    const rt = await threaded();
    const { handles } = rt.runtime.metrics;
    handles.sourceUp.set({ source: "talos" }, 1);
    await eventually(async () => (await get(`${rt.metricsUrl}/metrics`)).body.includes('sidecar_source_up{source="talos"} 1'));
    // Each scrape is reported to the main thread's scrape-duration histogram within a second, which changes what
    // is rendered: the forms are compared with the main thread's rendering until one comparison meets no report.
    const registry = rt.runtime.metrics;
    await eventually(async () => (await get(`${rt.metricsUrl}/metrics`)).body === (await registry.render(false)), 5_000, 100);
    await eventually(async () => (await gzipScrape(`${rt.metricsUrl}/metrics`)).text === (await registry.render(false)), 5_000, 100);
    expect((await gzipScrape(`${rt.metricsUrl}/metrics`)).encoding).toBe("gzip");
    const openMetrics = () => get(`${rt.metricsUrl}/metrics`, { accept: "application/openmetrics-text; version=1.0.0" });
    await eventually(async () => (await openMetrics()).body === (await registry.render(true)), 5_000, 100);
    const om = await openMetrics();
    expect(om.headers["content-type"]).toMatch(/^application\/openmetrics-text/);
    expect(om.body.endsWith("# EOF\n")).toBe(true);

    handles.sourceUp.set({ source: "talos" }, 0);
    await eventually(async () => (await get(`${rt.metricsUrl}/metrics`)).body.includes('sidecar_source_up{source="talos"} 0'));
    expect((await gzipScrape(`${rt.metricsUrl}/metrics`)).text).toContain('sidecar_source_up{source="talos"} 0');
  });

  it("answers a scrape while the main thread is blocked, which the main thread's own server cannot", async () => {
    const rt = await threaded();
    await get(`${rt.metricsUrl}/metrics`);
    const threadedScrape = scrapeFromAnotherThread(`${rt.metricsUrl}/metrics`);
    threadedScrape.go();
    const blockedUntil = blockFor(1_500);
    const answered = await threadedScrape.answer;
    expect(answered.status).toBe(200);
    expect(answered.doneAt).toBeLessThan(blockedUntil);

    // The same on the main thread's server: the answer waits for the block to end.
    const plain = await startRuntime({});
    cleanups.push(() => plain.runtime.stop());
    await get(`${plain.metricsUrl}/metrics`);
    const mainScrape = scrapeFromAnotherThread(`${plain.metricsUrl}/metrics`);
    mainScrape.go();
    const mainBlockedUntil = blockFor(800);
    expect((await mainScrape.answer).doneAt).toBeGreaterThanOrEqual(mainBlockedUntil);
  });

  it("reports its scrapes in sidecar_scrape_duration_seconds and keeps the rest of the metrics server", async () => {
    const rt = await threaded();
    for (let i = 0; i < 3; i++) await get(`${rt.metricsUrl}/metrics`);
    await eventually(async () => /^sidecar_scrape_duration_seconds_count\{format="text"\} [3-9]/m.test(await rt.runtime.metrics.render(false)), 5_000, 100);
    const index = await get(`${rt.metricsUrl}/`);
    expect(JSON.parse(index.body)).toMatchObject({ name: "sidecar-exporter", endpoints: [{ path: "/metrics" }] });
    const missing = await get(`${rt.metricsUrl}/nope`);
    expect(missing.status).toBe(404);
    const withBody = await request(`${rt.metricsUrl}/metrics`, { method: "GET", headers: { "content-length": "3" }, body: "abc" });
    expect(withBody.statusCode).toBe(400);
    expect(await withBody.body.json()).toEqual({ error: "GET requests take no body" });
  });

  it("fails the start with the setting to change when the port is taken, and frees its port on stop", async () => {
    const taken = await httpServer((_req, res) => res.end());
    cleanups.push(() => taken.close());
    const base = withEphemeralPorts({});
    const config = configFrom({ ...base, metrics: { scrapeThread: true, port: taken.port } });
    const logging = createLogging(config.logging, new LogCapture());
    await expect(Runtime.start(config, { logging, processMetrics: false })).rejects.toThrow(`metrics server cannot listen: port ${taken.port} is already in use on 127.0.0.1; set metrics.port (or SIDECAR_METRICS_PORT) to a free port`);

    const rt = await startRuntime({ metrics: { scrapeThread: true } });
    const url = `${rt.metricsUrl}/metrics`;
    expect((await get(url)).status).toBe(200);
    await rt.runtime.stop();
    await expect(get(url)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("is started again on the same port after it dies, with the whole exposition", async () => {
    const logs = new LogCapture();
    const log = createLogging(configFrom({}).logging, logs).root;
    const registry = new MetricRegistry({}, { processMetrics: false });
    registry.handles.sourceUp.set({ source: "tailscale" }, 1);
    const thread = await ScrapeThread.start(registry, { host: "127.0.0.1", port: 0, path: "/metrics", configKey: "metrics.port" }, log);
    cleanups.push(() => thread.close(1_000));
    const url = `http://${thread.address}/metrics`;
    expect((await get(url)).body).toContain('sidecar_source_up{source="tailscale"} 1');
    const port = thread.port;
    expect(thread.address).toBe(`127.0.0.1:${port}`);

    await thread.terminate();
    expect(logs.text).toContain("scrape thread stopped; /metrics is not served until it is started again");
    const answer = await eventually(async () => (await get(url).catch(() => undefined))?.body, 5_000, 100);
    expect(answer).toContain('sidecar_source_up{source="tailscale"} 1');
    expect(thread.port).toBe(port);
    await eventually(() => logs.text.includes("scrape thread started again"));
  });

  it("cannot be combined with metrics.secure", async () => {
    const { validateConfig } = await import("../../src/config/load.ts");
    const result = validateConfig({ metrics: { secure: true, scrapeThread: true, auth: { mode: "none" }, tls: { certFile: "/c", keyFile: "/k" } } });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors).toContainEqual({ path: "metrics.scrapeThread", message: expect.stringContaining("cannot be combined with metrics.secure") });
  });
});
