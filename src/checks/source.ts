import type { SourceCheckSpec } from "../config/types.ts";
import type { ProberFactory } from "./types.ts";

/** Reads a source's latest state; never calls anything itself, so it is as cheap as a map lookup. */
export const sourceProber: ProberFactory<SourceCheckSpec> = (spec, ctx) => ({
  async probe() {
    const status = ctx.sources.sourceStatus(spec.source);
    if (!status) return { ok: false, message: `source not configured: add a "${spec.source}" source to the config`, reason: "not_found" };
    if (!status.up) return { ok: false, message: `source ${spec.source} is down${status.error ? `: ${status.error}` : ""}`, reason: "unhealthy" };
    if (status.healthy === false) return { ok: false, message: status.detail ?? `source ${spec.source} reports unhealthy`, reason: "unhealthy" };
    return { ok: true, message: status.detail ?? `source ${spec.source} is up` };
  },
  async close() {},
});
