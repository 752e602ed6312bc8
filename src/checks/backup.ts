import type { BackupCheckSpec } from "../config/types.ts";
import { formatDuration } from "../config/duration.ts";
import type { ProberFactory } from "./types.ts";

/** A duration in whole seconds, as `1h2m3s`. */
function roundedDuration(ms: number): string {
  return formatDuration(Math.round(ms / 1000) * 1000);
}

/** Judges the newest backup of one target from the backups source's latest poll; calls nothing itself. */
export const backupProber: ProberFactory<BackupCheckSpec> = (spec, ctx) => ({
  async probe() {
    // A follower does not poll the targets; the leader's own backup checks judge them.
    const standby = ctx.sources.standbyReason?.("backups");
    if (standby !== undefined) return { ok: true, message: standby };
    const state = ctx.sources.backupTarget?.(spec.target);
    if (!state) return { ok: false, reason: "not_found", message: `backup target ${spec.target} is not known: configure sources.backups` };
    if (!state.reachable && state.newestAt === undefined)
      return { ok: false, reason: "unhealthy", message: `backup target ${spec.target} unreachable: ${state.error ?? "no poll succeeded yet"}` };
    const now = Date.now();
    // Judging old data would pass on a target nobody has been able to read for hours.
    if (state.lastSuccessAt !== undefined && now - state.lastSuccessAt > state.staleAfterMs) {
      return {
        ok: false,
        reason: "unhealthy",
        message: `backup target ${spec.target} has not been read since ${new Date(state.lastSuccessAt).toISOString()} (${roundedDuration(now - state.lastSuccessAt)} ago): ${state.error ?? "no poll has finished since"}`,
      };
    }
    if (state.newestAt === undefined) return { ok: false, reason: "not_found", message: `no backups at ${spec.target}` };
    const ageMs = now - state.newestAt;
    if (spec.maxAgeMs !== undefined && ageMs > spec.maxAgeMs) {
      return {
        ok: false,
        reason: "unhealthy",
        message: `newest backup ${state.newestKey ?? ""} is ${roundedDuration(ageMs)} old, more than ${formatDuration(spec.maxAgeMs)}`,
      };
    }
    if (spec.minBytes !== undefined && (state.sizeBytes ?? 0) < spec.minBytes) {
      return { ok: false, reason: "unhealthy", message: `newest backup is ${state.sizeBytes ?? 0} bytes, less than ${spec.minBytes}` };
    }
    if (spec.requireVerified && state.verified !== true) {
      return { ok: false, reason: "unhealthy", message: `newest backup not verified: ${state.verifyReason ?? "not checked yet"}` };
    }
    const lastReadFailed = state.reachable ? "" : `; its latest listing failed: ${state.error ?? "unknown error"}`;
    return {
      ok: true,
      message: `newest backup ${state.newestKey ?? ""} is ${roundedDuration(ageMs)} old, ${state.sizeBytes ?? 0} bytes${state.verified ? ", verified" : ""}${lastReadFailed}`,
    };
  },
  async close() {},
});
