import { readFile } from "node:fs/promises";
import { type Agent, request } from "undici";
import type { HttpCheckSpec } from "../config/types.ts";
import { UpstreamError, reasonForStatus } from "../errors.ts";
import { Secret } from "../secret.ts";
import { readCapped } from "../http/body.ts";
import { upstreamAgent } from "../http/agent.ts";
import { httpUpstream, traced } from "../tracing/spans.ts";
import { readTlsMaterial } from "./tls-files.ts";
import type { ProberFactory } from "./types.ts";

function statusAccepted(spec: HttpCheckSpec, status: number): boolean {
  return spec.expectedStatus.some(([lo, hi]) => status >= lo && status <= hi);
}

/** HTTP(S) request; passes when the status is in the expected set and the body matches, if a pattern is given. */
export const httpProber: ProberFactory<HttpCheckSpec> = (spec) => {
  let agent: Agent | undefined;
  const bodyPattern = spec.bodyMatch === undefined ? undefined : new RegExp(spec.bodyMatch);

  async function dispatcher(): Promise<Agent> {
    if (agent) return agent;
    const material = await readTlsMaterial(spec.tls);
    // One check talks to one origin; a couple of sockets cover a run that is cut off while the next starts.
    agent = upstreamAgent({ ...material, ...spec.tls }, { timeoutMs: spec.timeoutMs, connections: 2 });
    return agent;
  }

  async function headers(): Promise<Record<string, string>> {
    const out: Record<string, string> = { "user-agent": "sidecar-exporter" };
    for (const [k, v] of Object.entries(spec.headers)) out[k.toLowerCase()] = v instanceof Secret ? v.reveal() : v;
    if (spec.bearerTokenFile !== undefined) {
      // Read on every run: projected service-account tokens are rotated on disk.
      let token: string;
      try {
        token = (await readFile(spec.bearerTokenFile, "utf8")).trim();
      } catch (err) {
        throw new UpstreamError(`cannot read bearerTokenFile ${spec.bearerTokenFile}: ${(err as NodeJS.ErrnoException).code ?? "unreadable"}`, "unauthorized");
      }
      new Secret(token); // registers the value so it is scrubbed from anything printed later
      out.authorization = `Bearer ${token}`;
    }
    return out;
  }

  return {
    async probe(signal) {
      const res = await traced(httpUpstream("check", spec.method, spec.url), async () => request(spec.url, {
        method: spec.method as "GET",
        headers: await headers(),
        dispatcher: await dispatcher(),
        signal,
      }), (r) => r.statusCode);
      const ok = statusAccepted(spec, res.statusCode);
      if (!ok) {
        await res.body.dump();
        // A status the check does not accept is the target saying it is unhealthy, unless it names a sharper cause.
        const sharper = reasonForStatus(res.statusCode);
        return { ok: false, message: `unexpected status ${res.statusCode}`, reason: sharper === undefined || sharper === "other" ? "unhealthy" : sharper };
      }
      if (bodyPattern) {
        const text = await readCapped(res.body, spec.maxBodyBytes, spec.url);
        if (!bodyPattern.test(text)) return { ok: false, message: `body does not match /${spec.bodyMatch}/`, reason: "unhealthy" };
      } else {
        await res.body.dump();
      }
      return { ok: true, message: `status ${res.statusCode}` };
    },
    async close() {
      await agent?.destroy();
      agent = undefined;
    },
  };
};
