import type { TailscaleSourceConfig } from "../config.ts";
import type { DeviceView } from "./devices.ts";

/** How many names one detail line lists before it says "and N more". */
const LIST_LIMIT = 5;

export interface Connectivity {
  /** Undefined when nothing is expected: the source then has no verdict beyond "the poll worked". */
  healthy: boolean | undefined;
  detail: string;
  /** Expected devices that are offline, by `device` label. */
  offline: string[];
  /** Expected tags and hostnames no device matched, e.g. "tag:ci", "hostname web-1". */
  missing: string[];
  expectedDevices: number;
}

function list(items: string[]): string {
  const shown = items.slice(0, LIST_LIMIT).join(", ");
  return items.length > LIST_LIMIT ? `${shown} and ${items.length - LIST_LIMIT} more` : shown;
}

/** A hostname entry matches the device's hostname, its MagicDNS name, or that name's first label. */
function matchesHostname(d: DeviceView, wanted: string): boolean {
  const w = wanted.toLowerCase().replace(/\.$/, "");
  const name = d.name.toLowerCase().replace(/\.$/, "");
  return d.hostname.toLowerCase() === w || name === w || name.split(".")[0] === w;
}

/**
 * The verdict `tailscale-connectivity` reads: every device carrying an expected tag or hostname is online, and
 * every expected tag and hostname matches at least one device (a device that left the tailnet is not "fine").
 */
export function assessConnectivity(devices: DeviceView[], expect: TailscaleSourceConfig["expect"]): Connectivity {
  const online = devices.filter((d) => d.online).length;
  const summary = `${devices.length} device${devices.length === 1 ? "" : "s"}, ${online} online`;
  if (expect.tags.length === 0 && expect.hostnames.length === 0) {
    return { healthy: undefined, detail: summary, offline: [], missing: [], expectedDevices: 0 };
  }
  const expected = new Set<DeviceView>();
  const missing: string[] = [];
  for (const tag of expect.tags) {
    const hits = devices.filter((d) => d.tags.includes(tag));
    if (hits.length === 0) missing.push(tag);
    for (const d of hits) expected.add(d);
  }
  for (const host of expect.hostnames) {
    const hits = devices.filter((d) => matchesHostname(d, host));
    if (hits.length === 0) missing.push(`hostname ${host}`);
    for (const d of hits) expected.add(d);
  }
  const offline = [...expected].filter((d) => !d.online).map((d) => d.label);
  const problems: string[] = [];
  if (offline.length > 0) problems.push(`expected but offline: ${list(offline)}`);
  if (missing.length > 0) problems.push(`no device for: ${list(missing)}`);
  return {
    healthy: problems.length === 0,
    detail: problems.length === 0 ? `${summary}, all ${expected.size} expected online` : `${summary}; ${problems.join("; ")}`,
    offline,
    missing,
    expectedDevices: expected.size,
  };
}
