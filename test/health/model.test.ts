import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { CheckSpec } from "../../src/config/types.ts";
import { HealthModel } from "../../src/health/model.ts";
import { CheckStore } from "../../src/state/checks.ts";
import { configFrom } from "../helpers.ts";

const NAMES = ["a", "b", "c", "d"];

function spec(name: string, critical: boolean): CheckSpec {
  const config = configFrom({ healthChecks: { dependencies: [{ name, type: "tcp", address: "unused:1", interval: "1s", timeout: "500ms", critical }] } });
  return config.checks[0] as CheckSpec;
}

type Step =
  | { kind: "register"; name: string; critical: boolean }
  | { kind: "unregister"; name: string }
  | { kind: "record"; name: string; ok: boolean }
  | { kind: "wait"; ms: number }
  | { kind: "sweep" }
  | { kind: "shutdown" };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant("register" as const), name: fc.constantFrom(...NAMES), critical: fc.boolean() }),
  fc.record({ kind: fc.constant("unregister" as const), name: fc.constantFrom(...NAMES) }),
  fc.record({ kind: fc.constant("record" as const), name: fc.constantFrom(...NAMES), ok: fc.boolean() }),
  fc.record({ kind: fc.constant("wait" as const), ms: fc.constantFrom(100, 1_000, 3_000) }),
  fc.record({ kind: fc.constant("sweep" as const) }),
  fc.record({ kind: fc.constant("shutdown" as const) }),
);

describe("health model", () => {
  it("answers ready() exactly as readiness().ok, through registrations, results, staleness and shutdown", () => {
    fc.assert(
      // `look`: ready() is also asked between changes (as gRPC Check does), not only by the gauge on each change.
      fc.property(fc.array(step, { maxLength: 40 }), fc.boolean(), (steps, look) => {
        let now = 1_000_000;
        const store = new CheckStore(() => now);
        const model = new HealthModel(store);
        // A gauge following the model shows the same through every change as one that builds the whole report.
        let gauge = model.ready();
        let fullGauge = model.readiness().ok;
        model.on("change", () => {
          gauge = model.ready();
          fullGauge = model.readiness().ok;
        });
        for (const s of steps) {
          if (s.kind === "register") store.register(spec(s.name, s.critical));
          else if (s.kind === "unregister") store.unregister(s.name);
          else if (s.kind === "record") store.record(s.name, { ok: s.ok, checkedAt: now, durationMs: 1 });
          else if (s.kind === "wait") now += s.ms;
          else if (s.kind === "shutdown") model.beginShutdown();
          else {
            // What the store's sweeper does each second.
            store.startSweeping(1);
            store.stopSweeping();
          }
          if (look) expect(model.ready()).toBe(model.readiness().ok);
          expect(gauge).toBe(fullGauge);
        }
      }),
    );
  });

  it("is not ready while a critical check is pending, failing or stale, and ready once all pass", () => {
    let now = 1_000_000;
    const store = new CheckStore(() => now);
    const model = new HealthModel(store);
    store.register(spec("db", true));
    store.register(spec("cache", false));
    expect(model.ready()).toBe(false);
    store.record("db", { ok: false, checkedAt: now, durationMs: 1 });
    expect(model.ready()).toBe(false);
    store.record("db", { ok: true, checkedAt: now, durationMs: 1 });
    expect(model.ready()).toBe(true);
    store.record("cache", { ok: false, checkedAt: now, durationMs: 1 });
    expect(model.ready()).toBe(true);
    now += 2 * 1_000 + 500 + 1;
    expect(model.ready()).toBe(false);
    store.record("db", { ok: true, checkedAt: now, durationMs: 1 });
    expect(model.ready()).toBe(true);
    model.beginShutdown();
    expect(model.ready()).toBe(false);
  });
});
