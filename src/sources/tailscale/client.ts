import { UpstreamError } from "../../errors.ts";
import type { Authenticator } from "./auth.ts";
import { type ApiDevice, devicesResponseSchema } from "./devices.ts";
import { errorForStatus, type HttpResponse, type HttpTransport } from "./http.ts";

export interface DevicesClientOptions {
  baseUrl: string;
  tailnet: string;
  maxBodyBytes: number;
  transport: HttpTransport;
  auth: Authenticator;
  now: () => number;
}

/** Lists a tailnet's devices: GET /api/v2/tailnet/{tailnet}/devices. */
export class DevicesClient {
  readonly url: string;

  constructor(private readonly opts: DevicesClientOptions) {
    this.url = `${opts.baseUrl}/api/v2/tailnet/${encodeURIComponent(opts.tailnet)}/devices`;
  }

  async list(signal: AbortSignal): Promise<ApiDevice[]> {
    let res = await this.#get(signal);
    // A reused token may have expired or been revoked since it was issued: one fresh token, one more try.
    if (res.response.status === 401 && res.cached && this.opts.auth.invalidate()) res = await this.#get(signal);
    return this.#decode(res.response);
  }

  async #get(signal: AbortSignal): Promise<{ response: HttpResponse; cached: boolean }> {
    const credential = await this.opts.auth.authorize(signal);
    const response = await this.opts.transport.send(this.url, {
      method: "GET",
      headers: { authorization: credential.authorization.reveal() },
      signal,
      maxBodyBytes: this.opts.maxBodyBytes,
      what: `GET ${this.url}`,
    });
    return { response, cached: credential.cached };
  }

  #decode(res: HttpResponse): ApiDevice[] {
    const what = `GET ${this.url}`;
    if (res.status < 200 || res.status >= 300) throw errorForStatus(res, what, this.#hint(res.status), this.opts.now());
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      // JSON.parse quotes the body in its message; the body is not ours to repeat.
      throw new UpstreamError(`${what}: the response is not JSON`, "decode");
    }
    const parsed = devicesResponseSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue ? `${issue.path.join(".") || "body"}: ${issue.message}` : "unexpected shape";
      throw new UpstreamError(`${what}: the response is not a device list (${where})`, "decode");
    }
    return parsed.data.devices;
  }

  #hint(status: number): string | undefined {
    const { tailnet } = this.opts;
    if (status === 401) return this.opts.auth.hint;
    if (status === 403) {
      return `the credential is not allowed to list devices of tailnet "${tailnet}"; ${
        tailnet === "-" ? "" : 'check sources.tailscale.tailnet (or use "-" for the credential\'s own tailnet) and '
      }${this.opts.auth.hint}`;
    }
    if (status === 404) return `no such tailnet "${tailnet}"; check sources.tailscale.tailnet (use "-" for the credential's own tailnet) and baseUrl`;
    return undefined;
  }
}
