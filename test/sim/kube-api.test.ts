import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { Agent, request } from "undici";
import type { Dispatcher } from "undici";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { kubeconfigYaml, startKubeApiSim } from "./kube-api.ts";
import type { KubeApiSim, KubeObject, WatchEvent } from "./kube-api.ts";

const TOKEN = "sim-token";
const WIDGETS = "/apis/example.com/v1/widgets";
const nsWidgets = (ns: string): string => `/apis/example.com/v1/namespaces/${ns}/widgets`;

let sim: KubeApiSim;
let agent: Agent;

beforeAll(() => {
  agent = new Agent();
});

afterAll(async () => {
  await agent.destroy();
});

beforeEach(async () => {
  sim = await startKubeApiSim({ token: TOKEN });
  sim.addResource({ group: "example.com", version: "v1", plural: "widgets", kind: "Widget", namespaced: true });
});

afterEach(async () => {
  await sim.close();
});

function widget(name: string, namespace = "default", labels: Record<string, string> = {}, size = 1): KubeObject {
  return { apiVersion: "example.com/v1", kind: "Widget", metadata: { name, namespace, labels }, spec: { size } };
}

type RequestOptions = Omit<Dispatcher.RequestOptions, "origin" | "path" | "method"> & { method?: Dispatcher.HttpMethod };

function call(path: string, opts: RequestOptions & { token?: string | null; json?: unknown } = {}) {
  const { token = TOKEN, json, ...rest } = opts;
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers["content-type"] = "application/json";
  return request(`${sim.url}${path}`, {
    dispatcher: agent,
    ...rest,
    headers,
    ...(json !== undefined ? { body: JSON.stringify(json), method: rest.method ?? "POST" } : {}),
  });
}

async function getJson(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await call(path);
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

function metaOf(obj: Record<string, unknown>): Record<string, unknown> {
  return obj.metadata as Record<string, unknown>;
}

function names(list: Record<string, unknown>): string[] {
  return (list.items as KubeObject[]).map((o) => o.metadata.name);
}

/** Reads a watch body as newline-delimited events and hands them out one at a time. */
class WatchReader {
  readonly events: WatchEvent[] = [];
  readonly finished: Promise<void>;
  done = false;
  error: unknown;
  private cursor = 0;
  private wake: (() => void) | undefined;

  constructor(body: AsyncIterable<Buffer | string>) {
    this.finished = this.pump(body);
  }

  private async pump(body: AsyncIterable<Buffer | string>): Promise<void> {
    let buffered = "";
    try {
      for await (const chunk of body) {
        buffered += chunk.toString();
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.trim() !== "") this.events.push(JSON.parse(line) as WatchEvent);
          this.wake?.();
        }
      }
    } catch (err) {
      this.error = err;
    } finally {
      this.done = true;
      this.wake?.();
    }
  }

  async next(timeoutMs = 3000): Promise<WatchEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ev = this.events[this.cursor];
      if (ev) {
        this.cursor += 1;
        return ev;
      }
      if (this.done) throw new Error(`watch ended (${String(this.error ?? "cleanly")})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a watch event");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async ended(timeoutMs = 3000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("watch did not end")), timeoutMs);
    });
    try {
      await Promise.race([this.finished, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

async function openWatch(path: string): Promise<WatchReader> {
  const res = await call(path);
  expect(res.statusCode).toBe(200);
  expect(res.headers["content-type"]).toBe("application/json");
  return new WatchReader(res.body);
}

describe("authentication and routing", () => {
  it("answers 401 with a Status object when the token is missing or wrong", async () => {
    for (const token of [null, "wrong"]) {
      const res = await call(WIDGETS, { token });
      expect(res.statusCode).toBe(401);
      expect(await res.body.json()).toEqual({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: "Unauthorized",
        reason: "Unauthorized",
        code: 401,
      });
    }
  });

  it("follows a rotated token", async () => {
    sim.token = "rotated";
    expect((await call(WIDGETS)).statusCode).toBe(401);
    expect((await call(WIDGETS, { token: "rotated" })).statusCode).toBe(200);
  });

  it("answers 404 NotFound Status for unknown groups, plurals and objects", async () => {
    for (const path of ["/apis/nope.io/v1/things", "/apis/example.com/v1/gadgets", "/nothing"]) {
      const { status, body } = await getJson(path);
      expect(status).toBe(404);
      expect(body).toMatchObject({ kind: "Status", status: "Failure", reason: "NotFound", code: 404 });
    }
    const { status, body } = await getJson(`${nsWidgets("default")}/missing`);
    expect(status).toBe(404);
    expect(body).toMatchObject({ reason: "NotFound", message: 'widgets.example.com "missing" not found', details: { name: "missing" } });
  });

  it("serves health, version and discovery", async () => {
    for (const path of ["/healthz", "/readyz", "/livez"]) {
      const res = await call(path);
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe("ok");
    }
    sim.ready = false;
    expect((await call("/readyz")).statusCode).toBe(500);
    const version = await getJson("/version");
    expect(version.body).toMatchObject({ major: "1", gitVersion: expect.stringMatching(/^v1\./) });
    const discovery = await getJson("/apis/example.com/v1");
    expect(discovery.body).toMatchObject({ kind: "APIResourceList", groupVersion: "example.com/v1", resources: [{ name: "widgets", kind: "Widget", namespaced: true }] });
  });

  it("records requests without the credential", async () => {
    await call(`${WIDGETS}?limit=5`);
    const rec = sim.requests.at(-1);
    expect(rec).toMatchObject({ method: "GET", path: WIDGETS, query: { limit: "5" } });
    expect(rec?.headers.authorization).toBe("Bearer <redacted>");
    expect(JSON.stringify(sim.requests)).not.toContain(TOKEN);
  });
});

describe("objects and lists", () => {
  it("assigns uid, creationTimestamp, generation and cluster-wide increasing resourceVersions", () => {
    const a = sim.upsert(widget("a"));
    const b = sim.upsert(widget("b", "other"));
    const a2 = sim.upsert(widget("a", "default", {}, 2));
    const a3 = sim.upsert({ ...widget("a", "default", {}, 2), status: { ready: true } });
    expect(a.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(a2.metadata.uid).toBe(a.metadata.uid);
    expect(a.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const rvs = [a, b, a2, a3].map((o) => Number(o.metadata.resourceVersion));
    expect(rvs).toEqual([...rvs].sort((x, y) => x - y));
    expect(new Set(rvs).size).toBe(4);
    expect([a.metadata.generation, a2.metadata.generation, a3.metadata.generation]).toEqual([1, 2, 2]);
    expect(sim.resourceVersion).toBe(a3.metadata.resourceVersion);
    expect(sim.get("example.com/v1", "widgets", "default", "a")?.status).toEqual({ ready: true });
  });

  it("lists all namespaces or one, as a <Kind>List", async () => {
    sim.upsert(widget("a", "ns1"));
    sim.upsert(widget("b", "ns2"));
    const all = await getJson(WIDGETS);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ kind: "WidgetList", apiVersion: "example.com/v1", metadata: { resourceVersion: sim.resourceVersion } });
    expect(names(all.body)).toEqual(["a", "b"]);
    expect(names((await getJson(nsWidgets("ns2"))).body)).toEqual(["b"]);
    const one = await getJson(`${nsWidgets("ns1")}/a`);
    expect(one.body).toMatchObject({ kind: "Widget", metadata: { name: "a", namespace: "ns1" }, spec: { size: 1 } });
  });

  it("pages with limit and continue at a stable list resourceVersion", async () => {
    for (const n of ["a", "b", "c", "d", "e"]) sim.upsert(widget(n));
    const listRv = sim.resourceVersion;
    const seen: string[] = [];
    let cont: string | undefined;
    let pages = 0;
    do {
      const { body } = await getJson(`${WIDGETS}?limit=2${cont ? `&continue=${encodeURIComponent(cont)}` : ""}`);
      expect(metaOf(body).resourceVersion).toBe(listRv);
      seen.push(...names(body));
      cont = metaOf(body).continue as string | undefined;
      pages += 1;
      if (pages === 1) {
        expect(metaOf(body).remainingItemCount).toBe(3);
        sim.upsert(widget("zz")); // later writes must not move the paged snapshot's resourceVersion
      }
    } while (cont);
    expect(pages).toBe(3);
    expect(seen).toEqual(["a", "b", "c", "d", "e", "zz"]);
    const listCalls = sim.requests.filter((r) => r.path === WIDGETS);
    expect(listCalls.map((r) => r.query.limit)).toEqual(["2", "2", "2"]);
    expect(listCalls[0]?.query.continue).toBeUndefined();
    expect(listCalls[1]?.query.continue).toBeTruthy();
  });

  it("expires continue tokens after compaction and rejects garbage tokens", async () => {
    for (const n of ["a", "b", "c"]) sim.upsert(widget(n));
    const first = await getJson(`${WIDGETS}?limit=1`);
    const cont = metaOf(first.body).continue as string;
    sim.upsert(widget("d"));
    sim.compactHistory(); // compacts past the token's snapshot revision
    const expired = await getJson(`${WIDGETS}?limit=1&continue=${encodeURIComponent(cont)}`);
    expect(expired.status).toBe(410);
    expect(expired.body).toMatchObject({ reason: "Expired", code: 410 });
    expect((await getJson(`${WIDGETS}?continue=bogus`)).status).toBe(400);
  });

  it("filters with labelSelector and fieldSelector", async () => {
    sim.upsert(widget("a", "default", { app: "x", tier: "web" }));
    sim.upsert(widget("b", "default", { app: "y" }));
    sim.upsert(widget("c", "other", { app: "x" }));
    expect(names((await getJson(`${WIDGETS}?labelSelector=app%3Dx`)).body)).toEqual(["a", "c"]);
    expect(names((await getJson(`${WIDGETS}?labelSelector=app%3Dx,tier%3Dweb`)).body)).toEqual(["a"]);
    expect(names((await getJson(`${WIDGETS}?labelSelector=app!%3Dx`)).body)).toEqual(["b"]);
    expect(names((await getJson(`${nsWidgets("default")}?labelSelector=app%3Dx`)).body)).toEqual(["a"]);
    expect(names((await getJson(`${WIDGETS}?fieldSelector=metadata.name%3Db`)).body)).toEqual(["b"]);
    expect((await getJson(`${WIDGETS}?labelSelector=app%20in%20(x)`)).status).toBe(400);
  });
});

describe("watch", () => {
  it("streams ADDED, MODIFIED and DELETED live", async () => {
    const w = await openWatch(`${WIDGETS}?watch=1&resourceVersion=${sim.resourceVersion}`);
    const created = sim.upsert(widget("a"));
    sim.upsert(widget("a", "default", {}, 5));
    expect(sim.delete("example.com/v1", "widgets", "default", "a")).toBe(true);
    const added = await w.next();
    const modified = await w.next();
    const deleted = await w.next();
    expect([added.type, modified.type, deleted.type]).toEqual(["ADDED", "MODIFIED", "DELETED"]);
    expect(added.object).toMatchObject({ kind: "Widget", metadata: { name: "a", uid: created.metadata.uid } });
    expect(modified.object).toMatchObject({ spec: { size: 5 } });
    const rvs = [added, modified, deleted].map((e) => Number(metaOf(e.object).resourceVersion));
    expect(rvs[0]).toBeLessThan(rvs[1] ?? 0);
    expect(rvs[1]).toBeLessThan(rvs[2] ?? 0);
    expect(sim.openWatches).toBe(1);
  });

  it("starts with synthetic ADDED events when no resourceVersion is given", async () => {
    sim.upsert(widget("a"));
    sim.upsert(widget("b"));
    const w = await openWatch(`${WIDGETS}?watch=true`);
    expect([(await w.next()).type, (await w.next()).type]).toEqual(["ADDED", "ADDED"]);
  });

  it("replays history after a resourceVersion and honours namespace and selectors", async () => {
    const start = sim.resourceVersion;
    sim.upsert(widget("a", "default", { app: "x" }));
    sim.upsert(widget("b", "other", { app: "x" }));
    sim.upsert(widget("a", "default", { app: "gone" })); // leaves the selector
    const w = await openWatch(`${nsWidgets("default")}?watch=1&labelSelector=app%3Dx&resourceVersion=${start}`);
    const first = await w.next();
    const second = await w.next();
    expect(first).toMatchObject({ type: "ADDED", object: { metadata: { name: "a" } } });
    expect(second).toMatchObject({ type: "DELETED", object: { metadata: { name: "a", labels: { app: "gone" } } } });
    sim.upsert(widget("a", "default", { app: "x" })); // comes back into the selector
    expect(await w.next()).toMatchObject({ type: "ADDED", object: { metadata: { name: "a" } } });
  });

  it("sends a 410 Expired ERROR event and ends when the resourceVersion was compacted", async () => {
    const old = sim.resourceVersion;
    sim.upsert(widget("a"));
    sim.upsert(widget("b"));
    sim.compactHistory();
    const w = await openWatch(`${WIDGETS}?watch=1&resourceVersion=${old}`);
    const ev = await w.next();
    expect(ev.type).toBe("ERROR");
    expect(ev.object).toMatchObject({ kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410 });
    await w.ended();
    expect(w.error).toBeUndefined();
    // Watching from the compaction point is still fine.
    const fresh = await openWatch(`${WIDGETS}?watch=1&resourceVersion=${sim.resourceVersion}`);
    sim.upsert(widget("c"));
    expect((await fresh.next()).type).toBe("ADDED");
  });

  it("forgets history beyond historyLimit", async () => {
    const small = await startKubeApiSim({ historyLimit: 2 });
    try {
      small.addResource({ group: "example.com", version: "v1", plural: "widgets", kind: "Widget" });
      const old = small.resourceVersion;
      for (const n of ["a", "b", "c"]) small.upsert(widget(n));
      const res = await request(`${small.url}${WIDGETS}?watch=1&resourceVersion=${old}`, { dispatcher: agent });
      const w = new WatchReader(res.body);
      expect((await w.next()).object).toMatchObject({ code: 410 });
    } finally {
      await small.close();
    }
  });

  it("endWatches ends open streams cleanly", async () => {
    const w = await openWatch(`${WIDGETS}?watch=1`);
    expect(sim.openWatches).toBe(1);
    sim.endWatches();
    await w.ended();
    expect(w.error).toBeUndefined();
    expect(w.events).toEqual([]);
    expect(sim.openWatches).toBe(0);
  });

  it("timeoutSeconds ends the stream cleanly", async () => {
    const started = Date.now();
    const w = await openWatch(`${WIDGETS}?watch=1&timeoutSeconds=1`);
    await w.ended(4000);
    expect(w.error).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it("sends bookmarks only to watches that allow them", async () => {
    const withMarks = await openWatch(`${WIDGETS}?watch=1&allowWatchBookmarks=true&resourceVersion=${sim.resourceVersion}`);
    const without = await openWatch(`${WIDGETS}?watch=1&resourceVersion=${sim.resourceVersion}`);
    sim.upsert(widget("a"));
    sim.sendBookmark();
    sim.upsert(widget("b"));
    expect((await withMarks.next()).type).toBe("ADDED");
    const bookmark = await withMarks.next();
    expect(bookmark).toEqual({ type: "BOOKMARK", object: { kind: "Widget", apiVersion: "example.com/v1", metadata: { resourceVersion: expect.any(String) } } });
    expect((await without.next()).type).toBe("ADDED");
    expect((await without.next()).type).toBe("ADDED");
  });

  it("close() tears down open watches promptly", async () => {
    const other = await startKubeApiSim();
    other.addResource({ group: "example.com", version: "v1", plural: "widgets", kind: "Widget" });
    const res = await request(`${other.url}${WIDGETS}?watch=1`, { dispatcher: agent });
    const w = new WatchReader(res.body);
    await other.close();
    await w.ended(2000);
    expect(w.error).toBeDefined();
  });
});

describe("TokenReview and SubjectAccessReview", () => {
  it("authenticates known tokens and counts calls", async () => {
    sim.tokens.set("scraper-token", { username: "system:serviceaccount:monitoring:prometheus", groups: ["system:serviceaccounts"] });
    const ok = await call("/apis/authentication.k8s.io/v1/tokenreviews", {
      json: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: "scraper-token" } },
    });
    expect(ok.statusCode).toBe(201);
    expect(await ok.body.json()).toMatchObject({
      kind: "TokenReview",
      apiVersion: "authentication.k8s.io/v1",
      status: { authenticated: true, user: { username: "system:serviceaccount:monitoring:prometheus", groups: ["system:serviceaccounts"] } },
    });
    const bad = await call("/apis/authentication.k8s.io/v1/tokenreviews", { json: { kind: "TokenReview", spec: { token: "nope" } } });
    const badBody = (await bad.body.json()) as { status: Record<string, unknown> };
    expect(badBody.status.authenticated).toBeUndefined();
    expect(badBody.status.user).toEqual({});
    expect(sim.counts.tokenReviews).toBe(2);
  });

  it("decides non-resource access by user or group", async () => {
    sim.allow("system:serviceaccounts", "get", "/metrics");
    sim.allow("alice", "*", "/debug/*");
    const sar = async (spec: Record<string, unknown>): Promise<{ allowed: boolean; reason?: string }> => {
      const res = await call("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        json: { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec },
      });
      expect(res.statusCode).toBe(201);
      return ((await res.body.json()) as { status: { allowed: boolean; reason?: string } }).status;
    };
    expect(await sar({ user: "sa", groups: ["system:serviceaccounts"], nonResourceAttributes: { path: "/metrics", verb: "get" } })).toMatchObject({ allowed: true, reason: expect.any(String) });
    expect((await sar({ user: "sa", groups: ["system:serviceaccounts"], nonResourceAttributes: { path: "/metrics", verb: "post" } })).allowed).toBe(false);
    expect((await sar({ user: "alice", nonResourceAttributes: { path: "/debug/pprof", verb: "get" } })).allowed).toBe(true);
    expect((await sar({ user: "bob", nonResourceAttributes: { path: "/metrics", verb: "get" } })).allowed).toBe(false);
    expect(sim.counts.subjectAccessReviews).toBe(4);
    const invalid = await call("/apis/authorization.k8s.io/v1/subjectaccessreviews", { json: { spec: { user: "x" } } });
    expect(invalid.statusCode).toBe(422);
  });
});

describe("leases", () => {
  const LEASES = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";
  const lease = (holder: string, resourceVersion?: string): Record<string, unknown> => ({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: "exporter-leader", namespace: "ops", ...(resourceVersion ? { resourceVersion } : {}) },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: new Date().toISOString() },
  });

  it("supports get-or-create then optimistic updates like a lease lock", async () => {
    expect((await getJson(`${LEASES}/exporter-leader`)).status).toBe(404);

    const created = await call(LEASES, { json: lease("pod-a") });
    expect(created.statusCode).toBe(201);
    const createdBody = (await created.body.json()) as KubeObject;
    const rv = createdBody.metadata.resourceVersion;
    expect(rv).toBeTruthy();

    const again = await call(LEASES, { json: lease("pod-b") });
    expect(again.statusCode).toBe(409);
    expect(await again.body.json()).toMatchObject({ reason: "AlreadyExists", code: 409 });

    const renewed = await call(`${LEASES}/exporter-leader`, { method: "PUT", json: lease("pod-a", rv) });
    expect(renewed.statusCode).toBe(200);
    const renewedBody = (await renewed.body.json()) as KubeObject;
    expect(Number(renewedBody.metadata.resourceVersion)).toBeGreaterThan(Number(rv));
    expect(renewedBody.metadata.uid).toBe(createdBody.metadata.uid);

    const stale = await call(`${LEASES}/exporter-leader`, { method: "PUT", json: lease("pod-b", rv) });
    expect(stale.statusCode).toBe(409);
    expect(await stale.body.json()).toMatchObject({ kind: "Status", reason: "Conflict", code: 409 });

    const current = await getJson(`${LEASES}/exporter-leader`);
    expect(current.body).toMatchObject({ spec: { holderIdentity: "pod-a" } });

    const missing = await call(`${LEASES}/other`, { method: "PUT", json: { ...lease("x"), metadata: { name: "other" } } });
    expect(missing.statusCode).toBe(404);
  });
});

describe("faults", () => {
  beforeEach(() => {
    sim.upsert(widget("a"));
    sim.upsert(widget("b"));
  });

  it("status: any code with a Status body, limited by times", async () => {
    sim.setFault({ kind: "status", code: 503 }, { times: 1 });
    const failed = await getJson(WIDGETS);
    expect(failed.status).toBe(503);
    expect(failed.body).toMatchObject({ kind: "Status", reason: "ServiceUnavailable", code: 503 });
    expect((await getJson(WIDGETS)).status).toBe(200);
  });

  it("respects the path prefix and list/watch scope, and leaves other endpoints alone", async () => {
    sim.setFault({ kind: "status", code: 500 }, { pathPrefix: nsWidgets("other") });
    expect((await getJson(WIDGETS)).status).toBe(200);
    expect((await getJson(nsWidgets("other"))).status).toBe(500);
    sim.setFault({ kind: "status", code: 500 }, { only: "watch" });
    expect((await getJson(WIDGETS)).status).toBe(200);
    expect((await getJson(`${WIDGETS}?watch=1`)).status).toBe(500);
    expect((await getJson(`${nsWidgets("default")}/a`)).status).toBe(200);
    expect((await call("/healthz")).statusCode).toBe(200);
    sim.setFault("none");
    expect((await getJson(nsWidgets("other"))).status).toBe(200);
  });

  it("retryAfter: 429 with a Retry-After header", async () => {
    sim.setFault({ kind: "retryAfter", seconds: 7 });
    const res = await call(WIDGETS);
    expect(res.statusCode).toBe(429);
    expect(res.headers["retry-after"]).toBe("7");
    expect(await res.body.json()).toMatchObject({ reason: "TooManyRequests", details: { retryAfterSeconds: 7 } });
  });

  it("hang: the client's headers timeout fires", async () => {
    sim.setFault({ kind: "hang" });
    await expect(call(WIDGETS, { headersTimeout: 300 })).rejects.toMatchObject({ code: "UND_ERR_HEADERS_TIMEOUT" });
  });

  it("headersThenHang: 200 arrives, then the body timeout fires", async () => {
    sim.setFault({ kind: "headersThenHang" });
    const res = await call(WIDGETS, { bodyTimeout: 300 });
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toMatchObject({ code: "UND_ERR_BODY_TIMEOUT" });
  });

  it("malformed: a 200 whose body is not JSON", async () => {
    sim.setFault({ kind: "malformed" });
    const res = await call(WIDGETS);
    expect(res.statusCode).toBe(200);
    const text = await res.body.text();
    expect(text.length).toBeGreaterThan(0);
    expect(() => JSON.parse(text)).toThrow(SyntaxError);
  });

  it("malformed on a watch: the event line does not parse", async () => {
    sim.setFault({ kind: "malformed" }, { only: "watch" });
    const w = await openWatch(`${WIDGETS}?watch=1`);
    await w.ended();
    expect(w.error).toBeInstanceOf(SyntaxError);
  });

  it("drip: the body is correct but slow", async () => {
    sim.setFault({ kind: "drip", bytesPerSecond: 1000 });
    const started = Date.now();
    const res = await call(WIDGETS);
    const text = await res.body.text();
    const elapsed = Date.now() - started;
    expect(names(JSON.parse(text) as Record<string, unknown>)).toEqual(["a", "b"]);
    // At 1000 B/s a body of N bytes needs about N ms; allow for timer slack.
    expect(text.length).toBeGreaterThan(300);
    expect(elapsed).toBeGreaterThanOrEqual(text.length * 0.7);
  });

  it("drip on a watch still delivers the events", async () => {
    sim.setFault({ kind: "drip", bytesPerSecond: 5000 }, { only: "watch" });
    const w = await openWatch(`${WIDGETS}?watch=1`);
    expect((await w.next()).type).toBe("ADDED");
    sim.upsert(widget("c"));
    expect(await w.next()).toMatchObject({ type: "ADDED", object: { metadata: { name: "b" } } });
    expect(await w.next()).toMatchObject({ type: "ADDED", object: { metadata: { name: "c" } } });
  });

  it("huge: a valid JSON list of exactly the requested size", async () => {
    const bytes = 3 * 1024 * 1024;
    sim.setFault({ kind: "huge", bytes });
    const res = await call(WIDGETS);
    expect(res.headers["content-length"]).toBe(String(bytes));
    const text = await res.body.text();
    expect(Buffer.byteLength(text)).toBe(bytes);
    expect(JSON.parse(text)).toMatchObject({ kind: "WidgetList", items: [{ kind: "Widget" }] });
  });

  it("reset: the socket dies mid-body", async () => {
    sim.setFault({ kind: "reset" });
    const res = await call(WIDGETS);
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toMatchObject({ code: "UND_ERR_SOCKET" });
  });

  it("reset and huge on a watch", async () => {
    sim.setFault({ kind: "reset" }, { only: "watch", times: 1 });
    const broken = await openWatch(`${WIDGETS}?watch=1`);
    await broken.ended();
    expect(broken.error).toMatchObject({ code: "UND_ERR_SOCKET" });

    sim.setFault({ kind: "huge", bytes: 200_000 }, { only: "watch", times: 1 });
    const big = await openWatch(`${WIDGETS}?watch=1`);
    const ev = await big.next();
    expect(ev.type).toBe("ADDED");
    expect(JSON.stringify(ev).length).toBeGreaterThan(190_000);
  });

  it("garbage on a watch: a line that is not JSON, and the stream stays open", async () => {
    sim.setFault({ kind: "garbage" }, { only: "watch" });
    const res = await call(`${WIDGETS}?watch=1`);
    expect(res.statusCode).toBe(200);
    const body = res.body as AsyncIterable<Buffer>;
    const first = (await body[Symbol.asyncIterator]().next()).value as Buffer;
    expect(first.toString("latin1")).toMatch(/not an event<\/html>\n$/);
    expect(() => JSON.parse(first.toString("latin1"))).toThrow(SyntaxError);
    expect(res.body.destroyed).toBe(false);
    res.body.destroy();
  });

  it("endAtOnce on a watch: 200 and the stream ends with no event", async () => {
    sim.setFault({ kind: "endAtOnce" }, { only: "watch" });
    const w = await openWatch(`${WIDGETS}?watch=1`);
    await w.ended();
    expect(w.error).toBeUndefined();
    expect(w.events).toEqual([]);
  });

  it("flood: a paged list and a watch of made-up objects, none of them stored", async () => {
    sim.setFault({ kind: "flood", objects: 250 }, { only: "list" });
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await getJson(`${WIDGETS}?limit=100${token ? `&continue=${token}` : ""}`);
      seen.push(...names(page.body));
      token = metaOf(page.body).continue as string | undefined;
    } while (token);
    expect(seen).toHaveLength(250);
    expect(new Set(seen).size).toBe(250);

    sim.setFault({ kind: "flood", objects: 300 }, { only: "watch" });
    const w = await openWatch(`${WIDGETS}?watch=1`);
    for (let i = 0; i < 300; i++) expect(await w.next()).toMatchObject({ type: "ADDED", object: { metadata: { name: `flood-${i}`, uid: `flood-uid-${i}` } } });
    expect(w.done).toBe(false);
    sim.setFault("none");
    expect(names((await getJson(WIDGETS)).body)).toEqual(["a", "b"]);
  });
});

describe("TLS and kubeconfig", () => {
  it("serves HTTPS and renders a kubeconfig a client can use", async () => {
    x509.cryptoProvider.set("default", webcrypto);
    const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
    const keys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: "01",
      name: "CN=kube-api-sim",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      signingAlgorithm: alg,
      keys,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: "ip", value: "127.0.0.1" }])],
    });
    const certPem = cert.toString("pem");
    const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY");

    const tlsSim = await startKubeApiSim({ tls: { certPem, keyPem }, token: "tls-token" });
    let tlsAgent: Agent | undefined;
    try {
      expect(tlsSim.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const config = parseYaml(kubeconfigYaml(tlsSim, { namespace: "ops" })) as {
        clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
        users: { user: { token: string } }[];
        contexts: { context: { namespace: string } }[];
        "current-context": string;
      };
      const cluster = config.clusters[0]?.cluster;
      expect(cluster?.server).toBe(tlsSim.url);
      expect(Buffer.from(cluster?.["certificate-authority-data"] ?? "", "base64").toString()).toBe(certPem);
      expect(config.users[0]?.user.token).toBe("tls-token");
      expect(config.contexts[0]?.context.namespace).toBe("ops");

      // Trust only what the kubeconfig says to trust.
      tlsAgent = new Agent({ connect: { ca: Buffer.from(cluster?.["certificate-authority-data"] ?? "", "base64").toString() } });
      const res = await request(`${cluster?.server}/version`, {
        dispatcher: tlsAgent,
        headers: { authorization: `Bearer ${config.users[0]?.user.token}` },
      });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ major: "1" });
      const unauth = await request(`${tlsSim.url}/healthz`, { dispatcher: tlsAgent });
      expect(unauth.statusCode).toBe(401);
      await unauth.body.dump();
    } finally {
      await tlsAgent?.destroy();
      await tlsSim.close();
    }
  });

  it("renders a plain-HTTP kubeconfig without CA data", () => {
    const text = kubeconfigYaml(sim);
    expect(text).toContain(`server: ${sim.url}`);
    expect(text).not.toContain("certificate-authority-data");
    expect(text).toContain(`token: ${TOKEN}`);
  });
});
