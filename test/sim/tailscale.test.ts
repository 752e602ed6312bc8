import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import { ALL_ONLY_DEVICE_FIELDS, startTailscaleSim, ZERO_TIME } from "./tailscale.ts";
import type { TailscaleDevice, TailscaleSim, TailscaleSimOptions } from "./tailscale.ts";

const sims: TailscaleSim[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

async function sim(opts?: TailscaleSimOptions): Promise<TailscaleSim> {
  const s = await startTailscaleSim(opts);
  sims.push(s);
  return s;
}

function basic(user: string, pass = ""): string {
  return `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
}

function devicesUrl(s: TailscaleSim, tailnet = "-", query = ""): string {
  return `${s.url}/api/v2/tailnet/${encodeURIComponent(tailnet)}/devices${query}`;
}

async function getJson(url: string, authorization?: string): Promise<{ status: number; body: unknown; headers: Record<string, unknown> }> {
  const res = await request(url, authorization ? { headers: { authorization } } : {});
  const text = await res.body.text();
  return { status: res.statusCode, body: JSON.parse(text) as unknown, headers: res.headers };
}

async function getToken(s: TailscaleSim, form?: Record<string, string>, authorization?: string) {
  const res = await request(s.oauth.tokenUrl, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...(authorization ? { authorization } : {}),
    },
    body: new URLSearchParams(
      form ?? { client_id: s.oauth.clientId, client_secret: s.oauth.clientSecret, grant_type: "client_credentials" },
    ).toString(),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

describe("tailscale sim: devices and auth", () => {
  it("lists the default fixture with an API key over Basic auth", async () => {
    const s = await sim();
    const { status, body } = await getJson(devicesUrl(s), basic(s.apiKey));
    expect(status).toBe(200);
    const devices = (body as { devices: TailscaleDevice[] }).devices;
    expect(devices).toHaveLength(6);
    expect(new Set(devices.map((d) => d.os))).toEqual(new Set(["linux", "macOS", "windows", "iOS"]));
    expect(devices.some((d) => (d.tags ?? []).length > 0)).toBe(true);
    expect(devices.some((d) => (d.tags ?? []).length === 0)).toBe(true);
    expect(devices.some((d) => d.updateAvailable)).toBe(true);
    const disabled = devices.find((d) => d.keyExpiryDisabled);
    expect(disabled?.expires).toBe(ZERO_TIME);
    const soon = devices.filter((d) => {
      const ms = Date.parse(d.expires) - Date.now();
      return !d.keyExpiryDisabled && ms > 2.9 * 86400e3 && ms < 3.1 * 86400e3;
    });
    expect(soon).toHaveLength(1);
    for (const d of devices) {
      expect(d.id).toMatch(/^\d+$/);
      expect(d.nodeId).toMatch(/^n/);
      expect(d.lastSeen).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(typeof d.connectedToControl).toBe("boolean");
      for (const f of ALL_ONLY_DEVICE_FIELDS) expect(d).not.toHaveProperty(f);
    }
    expect(s.counters.devicesServed).toBe(1);
    expect(s.log.at(-1)?.auth).toBe("basic");
  });

  it("adds route/connectivity fields only with ?fields=all", async () => {
    const s = await sim();
    const all = await getJson(devicesUrl(s, "-", "?fields=all"), `Bearer ${s.apiKey}`);
    const devs = (all.body as { devices: TailscaleDevice[] }).devices;
    expect(devs[0]).toHaveProperty("clientConnectivity");
    expect(devs[0]).toHaveProperty("enabledRoutes");
    const def = await getJson(devicesUrl(s, "-", "?fields=default"), `Bearer ${s.apiKey}`);
    expect((def.body as { devices: TailscaleDevice[] }).devices[0]).not.toHaveProperty("clientConnectivity");
    const bad = await getJson(devicesUrl(s, "-", "?fields=bogus"), `Bearer ${s.apiKey}`);
    expect(bad.status).toBe(400);
  });

  it("accepts the API key as a Bearer token and the tailnet by name", async () => {
    const s = await sim({ tailnet: "corp.example" });
    const r = await getJson(devicesUrl(s, "corp.example"), `Bearer ${s.apiKey}`);
    expect(r.status).toBe(200);
    expect(s.log.at(-1)?.auth).toBe("bearer-key");
  });

  it("answers 401 with a JSON message for missing or wrong credentials", async () => {
    const s = await sim();
    for (const auth of [undefined, basic("tskey-api-wrong"), "Bearer nope", "Digest abc"]) {
      const r = await getJson(devicesUrl(s), auth);
      expect(r.status).toBe(401);
      expect(typeof (r.body as { message?: unknown }).message).toBe("string");
    }
    expect(s.counters.unauthorized).toBe(4);
  });

  it("answers 403 for a valid key used against another tailnet", async () => {
    const s = await sim();
    const foreign = await getJson(devicesUrl(s, s.tailnet), basic(s.foreignApiKey));
    expect(foreign.status).toBe(403);
    expect(typeof (foreign.body as { message?: unknown }).message).toBe("string");
    const wrongPath = await getJson(devicesUrl(s, "someone-else.example"), basic(s.apiKey));
    expect(wrongPath.status).toBe(403);
    // "-" resolves to the key's own tailnet, so the foreign key is fine there.
    const own = await getJson(devicesUrl(s, "-"), basic(s.foreignApiKey));
    expect(own.status).toBe(200);
    expect(s.counters.forbidden).toBe(2);
  });

  it("answers 404 for unknown paths and 405 for wrong methods", async () => {
    const s = await sim();
    expect((await getJson(`${s.url}/api/v2/nope`, basic(s.apiKey))).status).toBe(404);
    const post = await request(devicesUrl(s), { method: "POST", headers: { authorization: basic(s.apiKey) } });
    await post.body.dump();
    expect(post.statusCode).toBe(405);
  });
});

describe("tailscale sim: device model", () => {
  it("reflects addDevice, removeDevice and setOnline", async () => {
    const s = await sim({ devices: [] });
    const a = s.addDevice({ hostname: "edge-1", os: "linux", tags: ["tag:edge"] });
    const b = s.addDevice({ hostname: "edge-2", connectedToControl: false });
    expect(a.id).not.toBe(b.id);
    expect(a.name).toBe("edge-1.tail1234.ts.net");
    expect(a.addresses[0]).toMatch(/^100\./);

    const offlineSince = new Date(Date.now() - 3_600_000);
    s.setOnline(a.id, false, offlineSince);
    s.setOnline(b.nodeId, true);
    const r = await getJson(devicesUrl(s), basic(s.apiKey));
    const devs = (r.body as { devices: TailscaleDevice[] }).devices;
    expect(devs.map((d) => [d.hostname, d.connectedToControl])).toEqual([
      ["edge-1", false],
      ["edge-2", true],
    ]);
    expect(Date.parse(devs[0]?.lastSeen ?? "")).toBe(Math.floor(offlineSince.getTime() / 1000) * 1000);

    expect(s.removeDevice(a.id)).toBe(true);
    expect(s.removeDevice(a.id)).toBe(false);
    const r2 = await getJson(devicesUrl(s), basic(s.apiKey));
    expect((r2.body as { devices: TailscaleDevice[] }).devices.map((d) => d.hostname)).toEqual(["edge-2"]);
  });
});

describe("tailscale sim: OAuth client credentials", () => {
  it("issues a token that lists devices, and counts issues", async () => {
    const s = await sim();
    const t = await getToken(s);
    expect(t.status).toBe(200);
    expect(t.body).toMatchObject({ token_type: "Bearer", expires_in: 3600 });
    expect(typeof t.body.access_token).toBe("string");
    expect(typeof t.body.scope).toBe("string");
    expect(s.counters.tokenIssues).toBe(1);

    const r = await getJson(devicesUrl(s), `Bearer ${String(t.body.access_token)}`);
    expect(r.status).toBe(200);
    expect(s.log.at(-1)?.auth).toBe("bearer-token");
    // Reuse does not mint another token.
    await getJson(devicesUrl(s), `Bearer ${String(t.body.access_token)}`);
    expect(s.counters.tokenIssues).toBe(1);
  });

  it("accepts client id/secret over HTTP Basic and rejects bad ones", async () => {
    const s = await sim();
    const viaBasic = await getToken(s, { grant_type: "client_credentials" }, basic(s.oauth.clientId, s.oauth.clientSecret));
    expect(viaBasic.status).toBe(200);
    const bad = await getToken(s, { client_id: s.oauth.clientId, client_secret: "wrong", grant_type: "client_credentials" });
    expect(bad.status).toBe(401);
    const grant = await getToken(s, { client_id: s.oauth.clientId, client_secret: s.oauth.clientSecret, grant_type: "password" });
    expect(grant.status).toBe(400);
    expect(s.counters.tokenIssues).toBe(1);
  });

  it("expires tokens after expires_in on the sim clock", async () => {
    let clock = Date.parse("2025-06-01T00:00:00Z");
    const s = await sim({ now: () => clock, tokenTtlSeconds: 120 });
    const t = await getToken(s);
    expect(t.body.expires_in).toBe(120);
    const auth = `Bearer ${String(t.body.access_token)}`;
    clock += 119_000;
    expect((await getJson(devicesUrl(s), auth)).status).toBe(200);
    clock += 1_000;
    const expired = await getJson(devicesUrl(s), auth);
    expect(expired.status).toBe(401);
    expect(typeof (expired.body as { message?: unknown }).message).toBe("string");

    const fresh = await getToken(s);
    expect((await getJson(devicesUrl(s), `Bearer ${String(fresh.body.access_token)}`)).status).toBe(200);
    s.expireTokens();
    expect((await getJson(devicesUrl(s), `Bearer ${String(fresh.body.access_token)}`)).status).toBe(401);
    expect(s.counters.tokenIssues).toBe(2);
    expect(s.tokens).toHaveLength(2);
  });
});

describe("tailscale sim: rate limiting", () => {
  it("sends 429 with Retry-After past the per-window budget", async () => {
    let clock = 1_000_000;
    const s = await sim({ now: () => clock, rateLimit: { requests: 3, windowMs: 60_000 } });
    for (let i = 0; i < 3; i++) expect((await getJson(devicesUrl(s), basic(s.apiKey))).status).toBe(200);
    clock += 15_000;
    const limited = await getJson(devicesUrl(s), basic(s.apiKey));
    expect(limited.status).toBe(429);
    expect(limited.headers["retry-after"]).toBe("45");
    expect(s.counters.rateLimited).toBe(1);
    expect(s.counters.requests).toBe(4);
    clock += 45_000;
    expect((await getJson(devicesUrl(s), basic(s.apiKey))).status).toBe(200);
  });

  it("can omit Retry-After", async () => {
    const s = await sim({ rateLimit: { requests: 1, windowMs: 60_000, retryAfterHeader: false } });
    expect((await getJson(devicesUrl(s), basic(s.apiKey))).status).toBe(200);
    const limited = await getJson(devicesUrl(s), basic(s.apiKey));
    expect(limited.status).toBe(429);
    expect(limited.headers["retry-after"]).toBeUndefined();
    s.setRateLimit(null);
    expect((await getJson(devicesUrl(s), basic(s.apiKey))).status).toBe(200);
  });

  it("rateLimit fault answers 429 with or without Retry-After", async () => {
    const s = await sim();
    s.setFault({ kind: "rateLimit", retryAfter: 7 });
    const a = await getJson(devicesUrl(s), basic(s.apiKey));
    expect([a.status, a.headers["retry-after"]]).toEqual([429, "7"]);
    s.setFault({ kind: "rateLimit" });
    const b = await getJson(devicesUrl(s), basic(s.apiKey));
    expect([b.status, b.headers["retry-after"]]).toEqual([429, undefined]);
  });
});

describe("tailscale sim: faults", () => {
  it("status", async () => {
    const s = await sim();
    s.setFault({ kind: "status", code: 503 });
    const r = await getJson(devicesUrl(s), basic(s.apiKey));
    expect(r.status).toBe(503);
    s.setFault("none");
    expect((await getJson(devicesUrl(s), basic(s.apiKey))).status).toBe(200);
    expect(s.counters.faulted).toBe(1);
  });

  it("hang: only a client-side timeout ends it", async () => {
    const s = await sim();
    s.setFault({ kind: "hang" });
    const err = await request(devicesUrl(s), { headers: { authorization: basic(s.apiKey) }, headersTimeout: 300 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as { code?: string } | null)?.code).toBe("UND_ERR_HEADERS_TIMEOUT");
  });

  it("headersThenHang: status arrives, the body never does", async () => {
    const s = await sim();
    s.setFault({ kind: "headersThenHang" });
    const res = await request(devicesUrl(s), { headers: { authorization: basic(s.apiKey) }, bodyTimeout: 300 });
    expect(res.statusCode).toBe(200);
    const err = await res.body.text().then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as { code?: string } | null)?.code).toBe("UND_ERR_BODY_TIMEOUT");
  });

  it("malformed: 200 whose body is not JSON", async () => {
    const s = await sim();
    s.setFault({ kind: "malformed" });
    const res = await request(devicesUrl(s), { headers: { authorization: basic(s.apiKey) } });
    expect(res.statusCode).toBe(200);
    const text = await res.body.text();
    expect(() => JSON.parse(text) as unknown).toThrow(SyntaxError);
  });

  it("drip: bytes keep coming, so only an overall deadline stops it", async () => {
    const s = await sim();
    s.setFault({ kind: "drip", bytesPerSecond: 20 });
    const started = Date.now();
    let err: unknown = null;
    try {
      const res = await request(devicesUrl(s), {
        headers: { authorization: basic(s.apiKey) },
        bodyTimeout: 200,
        signal: AbortSignal.timeout(600),
      });
      await res.body.text();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toMatch(/Abort|Timeout/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
  });

  it("drip: a fast drip still delivers a parseable body", async () => {
    const s = await sim();
    s.setFault({ kind: "drip", bytesPerSecond: 40_000 });
    const res = await request(devicesUrl(s), { headers: { authorization: basic(s.apiKey) } });
    const body = (await res.body.json()) as { devices: unknown[] };
    expect(body.devices).toHaveLength(6);
  });

  it("huge: announced size, and a chunked variant a byte counter must catch", async () => {
    const s = await sim();
    s.setFault({ kind: "huge", bytes: 8 * 1024 * 1024 });
    const res = await request(devicesUrl(s), { headers: { authorization: basic(s.apiKey) } });
    expect(res.headers["content-length"]).toBe(String(8 * 1024 * 1024));
    res.body.destroy();

    s.setFault({ kind: "huge", bytes: 8 * 1024 * 1024, chunked: true });
    const res2 = await request(devicesUrl(s), { headers: { authorization: basic(s.apiKey) } });
    expect(res2.headers["content-length"]).toBeUndefined();
    let seen = 0;
    for await (const chunk of res2.body) {
      seen += (chunk as Buffer).length;
      if (seen > 1024 * 1024) break; // leaving the loop destroys the stream
    }
    expect(seen).toBeGreaterThan(1024 * 1024);
  });

  it("reset: the connection is torn down", async () => {
    const s = await sim();
    s.setFault({ kind: "reset" });
    const err = await request(devicesUrl(s), { headers: { authorization: basic(s.apiKey) } }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(["ECONNRESET", "UND_ERR_SOCKET"]).toContain((err as { code?: string }).code);
  });

  it("delay: a late but normal answer", async () => {
    const s = await sim();
    s.setFault({ kind: "delay", ms: 250 });
    const started = Date.now();
    expect((await getJson(devicesUrl(s), basic(s.apiKey))).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(240);
  });

  it("faults can target the token endpoint alone", async () => {
    const s = await sim();
    s.setFault({ kind: "status", code: 500 }, "token");
    expect((await getToken(s)).status).toBe(500);
    expect((await getJson(devicesUrl(s), basic(s.apiKey))).status).toBe(200);
    s.setFault({ kind: "malformed" }, "token");
    const res = await request(s.oauth.tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=client_credentials",
    });
    await expect(res.body.json()).rejects.toThrow();
    expect(s.counters.tokenIssues).toBe(0);
  });

  it("close() returns promptly with a request still hanging", async () => {
    const s = await startTailscaleSim();
    s.setFault({ kind: "hang" });
    const pending = request(devicesUrl(s), { headers: { authorization: basic(s.apiKey) } }).then(
      () => "answered",
      () => "failed",
    );
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await s.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await pending).toBe("failed");
  });
});
