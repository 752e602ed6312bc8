import * as z from "zod";

/**
 * The fields of a Tailscale API v2 device this source reads. Unknown fields are ignored (the API adds fields
 * over time); the ones read here are optional where the API has been seen to leave them out, e.g. for shared-in
 * or service devices.
 */
export const deviceSchema = z.object({
  id: z.string().min(1),
  nodeId: z.string().nullish(),
  name: z.string().nullish(),
  hostname: z.string().nullish(),
  os: z.string().nullish(),
  tags: z.array(z.string()).nullish(),
  authorized: z.boolean().nullish(),
  lastSeen: z.string().nullish(),
  expires: z.string().nullish(),
  keyExpiryDisabled: z.boolean().nullish(),
  updateAvailable: z.boolean().nullish(),
  connectedToControl: z.boolean().nullish(),
});

/** The envelope; its devices are checked one by one (see DevicesClient), a slice of them per turn of the event loop. */
export const devicesResponseSchema = z.object({ devices: z.array(z.unknown()) });

export type ApiDevice = z.output<typeof deviceSchema>;

/** One device as the metrics and the connectivity verdict see it. */
export interface DeviceView {
  id: string;
  /** The `device` label: the MagicDNS name, or the id when the name is missing or not unique. */
  label: string;
  name: string;
  hostname: string;
  os: string;
  tags: string[];
  online: boolean;
  authorized: boolean | undefined;
  updateAvailable: boolean | undefined;
  /** Epoch milliseconds the node key expires; undefined when it never does. */
  keyExpiresAt: number | undefined;
  lastSeenAt: number | undefined;
}

/** The API's timestamps, or undefined for empty, unreadable and zero ("0001-01-01T00:00:00Z") values. */
function timestamp(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value);
  // The zero time (year 1) is how the API says "never"; nothing real predates the epoch.
  return Number.isNaN(ms) || ms <= 0 ? undefined : ms;
}

/**
 * Online means connected to the control plane. Older API versions lack that field; then a device counts as
 * online when it was seen within the window.
 */
function isOnline(d: ApiDevice, lastSeenAt: number | undefined, now: number, onlineWindowMs: number): boolean {
  if (typeof d.connectedToControl === "boolean") return d.connectedToControl;
  return lastSeenAt !== undefined && now - lastSeenAt <= onlineWindowMs;
}

export function toViews(devices: ApiDevice[], now: number, onlineWindowMs: number): DeviceView[] {
  const nameCount = new Map<string, number>();
  for (const d of devices) if (d.name) nameCount.set(d.name, (nameCount.get(d.name) ?? 0) + 1);
  return devices.map((d) => {
    const name = d.name ?? "";
    const lastSeenAt = timestamp(d.lastSeen);
    return {
      id: d.id,
      // Names are unique within a tailnet; should two ever collide, the ids keep one series per device.
      label: name !== "" && nameCount.get(name) === 1 ? name : d.id,
      name,
      hostname: d.hostname ?? "",
      os: d.os || "unknown",
      tags: d.tags ?? [],
      online: isOnline(d, lastSeenAt, now, onlineWindowMs),
      authorized: d.authorized ?? undefined,
      updateAvailable: d.updateAvailable ?? undefined,
      keyExpiresAt: d.keyExpiryDisabled ? undefined : timestamp(d.expires),
      lastSeenAt,
    };
  });
}
