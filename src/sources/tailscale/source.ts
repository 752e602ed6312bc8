import { SeriesBudget } from "../../metrics/series-budget.ts";
import { SOURCE_NAMES, type Schedule, type TailscaleSourceConfig } from "../config.ts";
import { PolledSource } from "../poller.ts";
import type { PollDriver, PollOutcome, SourceContext } from "../types.ts";
import { type Authenticator, createAuthenticator } from "./auth.ts";
import { DevicesClient } from "./client.ts";
import { assessConnectivity } from "./connectivity.ts";
import { toViews } from "./devices.ts";
import { HttpTransport } from "./http.ts";
import { TailscaleSeries } from "./series.ts";

export interface TailscaleSourceOptions {
  /** Clock for "seen within onlineWindow", token lifetimes and Retry-After dates. Default Date.now. */
  now?: () => number;
  /** Where `{ env: ... }` credentials are looked up. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** One poll: list the devices, replace the tailscale_* series, and judge the expected devices. */
class TailscaleDriver implements PollDriver {
  constructor(
    private readonly config: TailscaleSourceConfig & Schedule,
    private readonly client: DevicesClient,
    private readonly auth: Authenticator,
    private readonly transport: HttpTransport,
    private readonly series: TailscaleSeries,
    private readonly now: () => number,
  ) {}

  async poll(signal: AbortSignal): Promise<PollOutcome> {
    const devices = toViews(await this.client.list(signal), this.now(), this.config.onlineWindow);
    this.series.replace(devices);
    const verdict = assessConnectivity(devices, this.config.expect);
    const byOs: Record<string, number> = {};
    for (const d of devices) byOs[d.os] = (byOs[d.os] ?? 0) + 1;
    return {
      ...(verdict.healthy !== undefined && { healthy: verdict.healthy }),
      detail: verdict.detail,
      debug: {
        url: this.client.url,
        ...this.auth.debug(),
        devices: devices.length,
        devicesOnline: devices.filter((d) => d.online).length,
        devicesByOs: byOs,
        expectedDevices: verdict.expectedDevices,
        offlineExpected: verdict.offline,
        missingExpected: verdict.missing,
      },
    };
  }

  async close(): Promise<void> {
    this.auth.invalidate();
    this.series.clear();
    await this.transport.close();
  }
}

/** The Tailscale API source: polls the tailnet's device list with an API key or an OAuth client. */
export function createTailscaleSource(
  config: TailscaleSourceConfig & Schedule,
  ctx: SourceContext,
  options: TailscaleSourceOptions = {},
): PolledSource {
  const now = options.now ?? Date.now;
  const transport = new HttpTransport(config.tls, config.timeoutMs);
  const auth = createAuthenticator(config, config.baseUrl, { transport, logger: ctx.logger, now, env: options.env ?? process.env });
  const client = new DevicesClient({ baseUrl: config.baseUrl, tailnet: config.tailnet, maxBodyBytes: config.maxBodyBytes, transport, auth, now });
  const budget = new SeriesBudget({ source: SOURCE_NAMES.tailscale, limit: ctx.seriesLimit, dropped: ctx.metrics.handles.seriesDropped, logger: ctx.logger });
  const driver = new TailscaleDriver(config, client, auth, transport, new TailscaleSeries(ctx.metrics.handles, budget), now);
  return new PolledSource(SOURCE_NAMES.tailscale, config, driver, ctx.metrics.handles, ctx.logger);
}
