import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogging } from "../../src/log.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { SecretUrl } from "../../src/secret-url.ts";
import { KubeAuthorizer } from "../../src/serve/secure/kube-authorizer.ts";
import type { KubeConnection } from "../../src/sources/kubernetes/kubeconfig.ts";
import { LogCapture } from "../helpers.ts";
import { type KubeApiSim, startKubeApiSim } from "../sim/kube-api.ts";

const USER = "system:serviceaccount:monitoring:prometheus";

let kube: KubeApiSim;
let authorizer: KubeAuthorizer;
const logs = new LogCapture();

beforeAll(async () => {
  kube = await startKubeApiSim();
  const connection: KubeConnection = {
    server: new SecretUrl(kube.url),
    tls: { insecureSkipVerify: false },
    credentials: { authorization: async () => undefined, invalidate: () => undefined },
    origin: "test",
  };
  const logging = createLogging({ level: "warn", format: "json", components: {}, fields: {}, sampling: { enabled: false, levels: {} } }, logs);
  // No cache: every call asks the sim, so each run judges only its own answers.
  authorizer = new KubeAuthorizer(
    async () => connection,
    { ttlMs: 0, maxEntries: 1, timeoutMs: 5_000 },
    new MetricRegistry({}, { processMetrics: false }).handles,
    logging.component("auth"),
  );
});

afterAll(async () => {
  await authorizer.close();
  await kube.close();
});

/** Usually a value of the field's type, sometimes any JSON at all. */
function mostly<T>(valid: fc.Arbitrary<T>): fc.Arbitrary<T | fc.JsonValue> {
  return fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: fc.jsonValue() });
}

/** Values for a field that decides: the two booleans often, their look-alikes and anything else too. */
const decisive = fc.oneof({ weight: 6, arbitrary: fc.boolean() }, fc.constantFrom("true", "false", 1, 0, null, [], {}, [true]), fc.jsonValue());

/** An object with these fields: usually with the `decisive` ones present, sometimes with any of them left out. */
function fields(model: Record<string, fc.Arbitrary<unknown>>, decisive: string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof({ weight: 3, arbitrary: fc.record(model, { requiredKeys: decisive }) }, { weight: 1, arbitrary: fc.record(model, { requiredKeys: [] }) });
}

const user = mostly(
  fields(
    {
      username: fc.oneof({ weight: 6, arbitrary: fc.constant(USER) }, fc.constant(""), fc.jsonValue()),
      uid: mostly(fc.string()),
      groups: mostly(fc.array(fc.string(), { maxLength: 3 })),
      extra: mostly(fc.dictionary(fc.string(), fc.array(fc.string(), { maxLength: 2 }), { maxKeys: 2 })),
    },
    ["username"],
  ),
);

/** A review answer: mostly the right frame with arbitrary fields inside, sometimes anything at all. */
function answer(kind: string, status: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<string> {
  const framed = fc.record({ kind: fc.constantFrom(kind, kind, kind, "Status"), status: mostly(status) }, { requiredKeys: ["status"] });
  return fc.oneof(
    { weight: 8, arbitrary: framed.map((doc) => JSON.stringify(doc)) },
    { weight: 1, arbitrary: fc.jsonValue().map((doc) => JSON.stringify(doc)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  );
}

const tokenReview = answer("TokenReview", fields({ authenticated: decisive, user, error: mostly(fc.string()) }, ["authenticated", "user"]));
const accessReview = answer("SubjectAccessReview", fields({ allowed: decisive, denied: mostly(fc.boolean()), reason: mostly(fc.string()) }, ["allowed"]));

function parsed(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function statusOf(doc: unknown): Record<string, unknown> | undefined {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
  const status = (doc as Record<string, unknown>).status;
  return typeof status === "object" && status !== null && !Array.isArray(status) ? (status as Record<string, unknown>) : undefined;
}

describe("secure metrics over arbitrary review answers", () => {
  it("answers 200 only when TokenReview says authenticated: true with a user name and SubjectAccessReview allowed: true", async () => {
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(tokenReview, accessReview, async (tr, sar) => {
        kube.reviewAnswers.tokenReview = tr;
        kube.reviewAnswers.subjectAccessReview = sar;
        const decision = await authorizer.authorize("Bearer some-token", "/metrics");
        seen.add(decision.status);
        const authn = statusOf(parsed(tr));
        const authz = statusOf(parsed(sar));
        const username = (authn?.user as Record<string, unknown> | undefined)?.username;
        if (decision.status === 200) {
          expect(authn?.authenticated).toBe(true);
          expect(typeof username === "string" && username !== "").toBe(true);
          expect(authz?.allowed).toBe(true);
          expect(authz?.denied === undefined || authz.denied === false).toBe(true);
        }
        // A refusal is a JSON false (or the field left out, as the API server does for an unauthenticated token).
        if (decision.status === 401) expect(authn?.authenticated === false || (authn !== undefined && !("authenticated" in authn))).toBe(true);
        if (decision.status === 403) expect(authz?.allowed).toBe(false);
        // An answer with no status object, or a decisive field of another type, cannot be read: 503.
        if (authn === undefined || !(authn.authenticated === undefined || typeof authn.authenticated === "boolean")) expect(decision.status).toBe(503);
        if (authn?.authenticated === true && authz !== undefined && typeof authz.allowed !== "boolean") expect(decision.status).toBe(503);
        expect([200, 401, 403, 503]).toContain(decision.status);
      }),
      { numRuns: 300 },
    );
    // The answers reached every outcome, so no branch went untried.
    expect([...seen].sort()).toEqual([200, 401, 403, 503]);
    expect(logs.text).not.toContain("some-token");
  }, 60_000);
});
