import type { Agent } from "undici";
import type { HttpCheckSpec } from "../config/types.ts";
import { reasonForStatus } from "../errors.ts";
import { matches } from "../patterns/match.ts";
import { compilePattern } from "../patterns/pattern.ts";
import { Secret } from "../secret.ts";
import { httpUpstream, traced, tracingOn } from "../tracing/spans.ts";
import { bearerFromFile } from "../http/bearer-token.ts";
import { exchange, type Answer, type ExchangeTarget } from "./http-exchange.ts";
import { leasePool, type PoolLease } from "./http-pool.ts";
import { readTlsMaterial } from "./tls-files.ts";
import type { ProberFactory } from "./types.ts";

function statusAccepted(spec: HttpCheckSpec, status: number): boolean {
  return spec.expectedStatus.some(([lo, hi]) => status >= lo && status <= hi);
}

/** "status 200" and the like, made once per status rather than once per run. */
const statusMessages = new Map<number, string>();

function statusMessage(status: number): string {
  let message = statusMessages.get(status);
  if (message === undefined) {
    message = `status ${status}`;
    statusMessages.set(status, message);
  }
  return message;
}

/** HTTP(S) request; passes when the status is in the expected set and the body matches, if a pattern is given. */
export const httpProber: ProberFactory<HttpCheckSpec> = (spec) => {
  let lease: Promise<PoolLease> | undefined;
  let agent: Agent | undefined;
  const bodyPattern = spec.bodyMatch === undefined ? undefined : compilePattern(spec.bodyMatch);
  const fixedHeaders = configuredHeaders();
  const target: ExchangeTarget = {
    // What undici's request(url) derives from the URL on every call, derived once.
    origin: spec.url.origin,
    path: spec.url.path,
    method: spec.method,
    what: String(spec.url),
    keepBody: (status) => (bodyPattern && statusAccepted(spec, status) ? spec.maxBodyBytes : undefined),
  };

  async function openPool(): Promise<PoolLease> {
    const material = await readTlsMaterial(spec.tls);
    return leasePool(target.origin, { ...material, ...spec.tls }, spec.timeoutMs);
  }

  /** The shared pool, leased on the first run; a failed lease (TLS files not there yet) is tried again next run. */
  async function dispatcher(): Promise<Agent> {
    lease ??= openPool().catch((err: unknown) => {
      lease = undefined;
      throw err;
    });
    agent = (await lease).agent;
    return agent;
  }

  function configuredHeaders(): Record<string, string> {
    const out: Record<string, string> = { "user-agent": "sidecar-exporter" };
    // User info in the URL is Basic authentication, unless the check names its Authorization header itself.
    const basic = spec.url.basicAuthorization();
    if (basic) out.authorization = basic.reveal();
    for (const [k, v] of Object.entries(spec.headers)) out[k.toLowerCase()] = v instanceof Secret ? v.reveal() : v;
    return out;
  }

  async function send(signal: AbortSignal): Promise<Answer> {
    const headers = spec.bearerTokenFile === undefined ? fixedHeaders : { ...fixedHeaders, authorization: await bearerFromFile(spec.bearerTokenFile) };
    return exchange(agent ?? (await dispatcher()), target, headers, signal);
  }

  return {
    async probe(signal) {
      const answer = tracingOn() ? await traced(httpUpstream("check", spec.method, spec.url), () => send(signal), (a) => a.status) : await send(signal);
      const { status } = answer;
      if (!statusAccepted(spec, status)) {
        // A status the check does not accept is the target saying it is unhealthy, unless it names a sharper cause.
        const sharper = reasonForStatus(status);
        return { ok: false, message: `unexpected status ${status}`, reason: sharper === undefined || sharper === "other" ? "unhealthy" : sharper };
      }
      if (bodyPattern && !(await matches(bodyPattern, answer.body ?? "", signal))) return { ok: false, message: `body does not match /${spec.bodyMatch}/`, reason: "unhealthy" };
      return { ok: true, message: statusMessage(status) };
    },
    async close() {
      const mine = lease;
      lease = undefined;
      agent = undefined;
      const held = await mine?.catch(() => undefined);
      await held?.release();
    },
  };
};
