import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request } from "undici";
import { eventually, get, startRuntime, type TestRuntime } from "../helpers.ts";

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string } }[];
  startTime: number;
  endTime: number;
  samples: number[];
}

describe("profiling endpoints, off (the default)", () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await startRuntime({});
  });
  afterAll(async () => {
    await rt.runtime.stop();
  });

  it("answers 404 like any unknown path and does not list them", async () => {
    for (const path of ["/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof"]) {
      const res = await get(`${rt.healthUrl}${path}`);
      expect(res.status, path).toBe(404);
      const body = JSON.parse(res.body) as { error: string; endpoints: string[] };
      expect(body.error).toBe("not found");
      expect(body.endpoints.some((e) => e.includes("pprof"))).toBe(false);
    }
  });
});

describe("profiling endpoints, on", () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await startRuntime({ debug: { pprof: { enabled: true, maxProfileSeconds: 2 } } });
  });
  afterAll(async () => {
    await rt.runtime.stop();
  });

  it("lists them among the endpoints", async () => {
    const body = JSON.parse((await get(`${rt.healthUrl}/`)).body) as { endpoints: string[] };
    expect(body.endpoints).toEqual(expect.arrayContaining(["/debug/pprof/heap", "/debug/pprof/profile?seconds=N"]));
  });

  it("streams a V8 heap snapshot as an attachment", async () => {
    const res = await request(`${rt.healthUrl}/debug/pprof/heap`);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/octet-stream");
    expect(res.headers["content-disposition"]).toMatch(/^attachment; filename="heap-\d{4}-\d\d-\d\dT\d{6}Z\.heapsnapshot"$/);
    // A snapshot is tens of MB: only its first bytes are read, the rest is drained.
    let head = "";
    let total = 0;
    for await (const chunk of res.body) {
      if (head.length < 64) head += (chunk as Buffer).toString("utf8");
      total += (chunk as Buffer).length;
    }
    expect(head.startsWith('{"snapshot":')).toBe(true);
    expect(total).toBeGreaterThan(1_000_000);
  });

  it("answers HEAD with the headers only", async () => {
    const res = await get(`${rt.healthUrl}/debug/pprof/heap`, {}, "HEAD");
    expect(res.status).toBe(200);
    expect(res.body).toBe("");
    expect(res.headers["content-disposition"]).toMatch(/heapsnapshot/);
  });

  it("takes a CPU profile of the seconds asked for, in the .cpuprofile format", async () => {
    const res = await get(`${rt.healthUrl}/debug/pprof/profile?seconds=1`);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(res.headers["content-disposition"]).toMatch(/^attachment; filename="cpu-.*\.cpuprofile"$/);
    const profile = JSON.parse(res.body) as CpuProfile;
    expect(profile.nodes.length).toBeGreaterThan(0);
    expect(profile.nodes[0]?.callFrame.functionName).toBe("(root)");
    expect(Array.isArray(profile.samples)).toBe(true);
    // Microseconds: about one second apart.
    expect(profile.endTime - profile.startTime).toBeGreaterThanOrEqual(900_000);
    expect(profile.endTime - profile.startTime).toBeLessThan(5_000_000);
  });

  it("refuses a duration that is not a whole positive number", async () => {
    for (const seconds of ["abc", "0", "-1", "1.5", ""]) {
      const res = await get(`${rt.healthUrl}/debug/pprof/profile?seconds=${seconds}`);
      expect(res.status, seconds).toBe(400);
      expect((JSON.parse(res.body) as { error: string }).error).toMatch(/seconds must be a whole number/);
    }
  });

  it("takes one profile at a time, cut to maxProfileSeconds", async () => {
    const started = Date.now();
    const first = get(`${rt.healthUrl}/debug/pprof/profile?seconds=600`);
    // The first request has to reach the handler before the second asks.
    await new Promise((r) => setTimeout(r, 300));
    const second = await get(`${rt.healthUrl}/debug/pprof/profile?seconds=1`);
    expect(second.status).toBe(409);
    expect((JSON.parse(second.body) as { error: string }).error).toMatch(/CPU profile is being taken/);
    const heap = await get(`${rt.healthUrl}/debug/pprof/heap`);
    expect(heap.status).toBe(409);
    const done = await first;
    expect(done.status).toBe(200);
    expect(done.headers["x-profile-seconds"]).toBe("2");
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1_900);
    expect(elapsed).toBeLessThan(10_000);
    // Free again once it has finished.
    expect((await get(`${rt.healthUrl}/debug/pprof/profile?seconds=1`)).status).toBe(200);
  });

  it("stops a profile whose client went away", async () => {
    const url = `${rt.healthUrl}/debug/pprof/profile?seconds=2`;
    const controller = new AbortController();
    const pending = request(url, { signal: controller.signal }).catch(() => undefined);
    await eventually(async () => (await get(url, {}, "HEAD")).status === 409);
    controller.abort();
    await pending;
    // Well before the two seconds asked for; HEAD asks without starting one.
    const left = Date.now();
    await eventually(async () => (await get(url, {}, "HEAD")).status === 200, 1_500);
    expect(Date.now() - left).toBeLessThan(1_000);
  });
});
