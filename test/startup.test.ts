import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import type { CheckSpec } from "../src/config/types.ts";
import { pendingGuard, StartupHealthModel } from "../src/startup.ts";
import { CheckStore } from "../src/state/checks.ts";

const spec = { name: "api", type: "tcp", critical: true, intervalMs: 10_000, timeoutMs: 1_000 } as CheckSpec;

describe("readiness while starting", () => {
  it("fails with a startup item until started, then gives the checks' verdict and tells watchers", () => {
    const store = new CheckStore();
    store.register(spec);
    const model = new StartupHealthModel(store);
    store.record("api", { ok: true, checkedAt: Date.now(), durationMs: 1 });
    expect(model.readiness()).toMatchObject({ ok: false, items: [{ name: "startup", ok: false }, { name: "shutdown", ok: true }, { name: "api", ok: true }] });
    let changes = 0;
    model.on("change", () => changes++);
    model.started();
    model.started();
    expect(changes).toBe(1);
    expect(model.readiness()).toMatchObject({ ok: true, items: [{ name: "shutdown" }, { name: "api" }] });
  });

  it("answers ready() the same way: not ready while starting, ready once started with its checks passing", () => {
    const store = new CheckStore();
    store.register(spec);
    const model = new StartupHealthModel(store);
    store.record("api", { ok: true, checkedAt: Date.now(), durationMs: 1 });
    expect(model.ready()).toBe(false);
    expect(model.ready()).toBe(false);
    model.started();
    expect(model.ready()).toBe(true);
  });

  it("can be excluded by name, like any other item", () => {
    const model = new StartupHealthModel(new CheckStore());
    expect(model.readiness(new Set(["startup"])).ok).toBe(true);
  });
});

describe("a guard known later", () => {
  it("holds requests until the guard is known, then lets it decide", async () => {
    const pending = pendingGuard();
    const app = new Hono();
    app.use("/debug/*", pending.guard);
    app.get("/debug/status", (c) => c.text("status"));
    const answer = Promise.resolve(app.request("/debug/status"));
    let settled = false;
    void answer.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    pending.settle(async (c) => c.text("refused", 403));
    expect((await answer).status).toBe(403);
  });

  it("lets requests through when there turns out to be no guard", async () => {
    const pending = pendingGuard();
    const app = new Hono();
    app.use("/debug/*", pending.guard);
    app.get("/debug/status", (c) => c.text("status"));
    pending.settle(undefined);
    const res = await app.request("/debug/status");
    expect([res.status, await res.text()]).toEqual([200, "status"]);
  });
});
