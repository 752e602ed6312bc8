import type { MetricHandles } from "../../metrics/registry.ts";
import type { SeriesBudget } from "../../metrics/series-budget.ts";
import { OwnedSeries, type Sample } from "../../metrics/series.ts";
import type { DeviceView } from "./devices.ts";

const flag = (b: boolean): number => (b ? 1 : 0);

/** The complete set of samples one device list yields, family by family. */
export function deviceSamples(devices: DeviceView[]): {
  devicesTotal: Sample[];
  online: Sample[];
  keyExpiry: Sample[];
  updateAvailable: Sample[];
  authorized: Sample[];
} {
  const byOs = new Map<string, number>();
  for (const d of devices) byOs.set(d.os, (byOs.get(d.os) ?? 0) + 1);
  const out = {
    devicesTotal: [...byOs].map(([os, n]) => ({ labels: { os }, value: n })),
    online: [] as Sample[],
    keyExpiry: [] as Sample[],
    updateAvailable: [] as Sample[],
    authorized: [] as Sample[],
  };
  for (const d of devices) {
    const device = d.label;
    out.online.push({ labels: { device, hostname: d.hostname }, value: flag(d.online) });
    if (d.keyExpiresAt !== undefined) out.keyExpiry.push({ labels: { device }, value: Math.floor(d.keyExpiresAt / 1000) });
    // Fields the API did not report give no series rather than a made-up 0.
    if (d.updateAvailable !== undefined) out.updateAvailable.push({ labels: { device }, value: flag(d.updateAvailable) });
    if (d.authorized !== undefined) out.authorized.push({ labels: { device }, value: flag(d.authorized) });
  }
  return out;
}

/** The tailscale_* gauge families this source owns. */
export class TailscaleSeries {
  readonly #devicesTotal: OwnedSeries;
  readonly #online: OwnedSeries;
  readonly #keyExpiry: OwnedSeries;
  readonly #updateAvailable: OwnedSeries;
  readonly #authorized: OwnedSeries;

  constructor(handles: MetricHandles, budget?: SeriesBudget) {
    this.#devicesTotal = new OwnedSeries(handles.tailscaleDevices, ["os"], budget);
    this.#online = new OwnedSeries(handles.tailscaleDeviceOnline, ["device", "hostname"], budget);
    this.#keyExpiry = new OwnedSeries(handles.tailscaleKeyExpiry, ["device"], budget);
    this.#updateAvailable = new OwnedSeries(handles.tailscaleUpdateAvailable, ["device"], budget);
    this.#authorized = new OwnedSeries(handles.tailscaleAuthorized, ["device"], budget);
  }

  /** Installs the series of a successful poll; devices no longer listed lose theirs. */
  replace(devices: DeviceView[]): void {
    const s = deviceSamples(devices);
    this.#devicesTotal.replace(s.devicesTotal);
    this.#online.replace(s.online);
    this.#keyExpiry.replace(s.keyExpiry);
    this.#updateAvailable.replace(s.updateAvailable);
    this.#authorized.replace(s.authorized);
  }

  clear(): void {
    this.replace([]);
  }
}
