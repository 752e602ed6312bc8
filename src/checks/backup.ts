import type { BackupCheckSpec } from "../config/types.ts";
import { formatDuration } from "../config/duration.ts";
import type { ProberFactory } from "./types.ts";

/** Judges the newest backup of one target from the backups source's latest poll; calls nothing itself. */
export const backupProber: ProberFactory<BackupCheckSpec> = (spec, ctx) => ({
  async probe() {
    // A follower does not poll the targets; the leader's own backup checks judge them.
    const standby = ctx.sources.standbyReason?.("backups");
    if (standby !== undefined) return { ok: true, message: standby };
    const state = ctx.sources.backupTarget?.(spec.target);
    if (!state) return { ok: false, reason: "not_found", message: `backup target ${spec.target} is not known: configure sources.backups` };
    if (!state.reachable && state.newestAt === undefined) return { ok: false, reason: "unhealthy", message: `backup target ${spec.target} unreachable: ${state.error ?? "no poll succeeded yet"}` };
    if (state.newestAt === undefined) return { ok: false, reason: "not_found", message: `no backups at ${spec.target}` };
    const ageMs = Date.now() - state.newestAt;
    if (spec.maxAgeMs !== undefined && ageMs > spec.maxAgeMs) {
      return { ok: false, reason: "unhealthy", message: `newest backup ${state.newestKey ?? ""} is ${formatDuration(Math.round(ageMs / 1000) * 1000)} old, more than ${formatDuration(spec.maxAgeMs)}` };
    }
    if (spec.minBytes !== undefined && (state.sizeBytes ?? 0) < spec.minBytes) {
      return { ok: false, reason: "unhealthy", message: `newest backup is ${state.sizeBytes ?? 0} bytes, less than ${spec.minBytes}` };
    }
    if (spec.requireVerified && state.verified !== true) {
      return { ok: false, reason: "unhealthy", message: `newest backup not verified: ${state.verifyReason ?? "not checked yet"}` };
    }
    return { ok: true, message: `newest backup ${state.newestKey ?? ""} is ${formatDuration(Math.round(ageMs / 1000) * 1000)} old, ${state.sizeBytes ?? 0} bytes${state.verified ? ", verified" : ""}` };
  },
  async close() {},
});
