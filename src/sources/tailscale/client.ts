import { setImmediate as nextTurn } from "node:timers/promises";
import { UpstreamError } from "../../errors.ts";
import type { SecretUrl } from "../../secret-url.ts";
import type { Authenticator } from "./auth.ts";
import { type ApiDevice, deviceSchema, devicesResponseSchema } from "./devices.ts";

/**
 * Devices checked per turn of the event loop: a tailnet of thousands is checked in pieces of a few milliseconds,
 * so scrapes and probes are answered in between.
 */
const DEVICES_PER_TURN = 250;
import { errorForStatus, type HttpResponse, type HttpTransport } from "./http.ts";

export interface DevicesClientOptions {
  baseUrl: SecretUrl;
  tailnet: string;
  maxBodyBytes: number;
  transport: HttpTransport;
  auth: Authenticator;
  now: () => number;
}

/** Lists a tailnet's devices: GET /api/v2/tailnet/{tailnet}/devices. */
export class DevicesClient {
  readonly url: SecretUrl;

  constructor(private readonly opts: DevicesClientOptions) {
    this.url = opts.baseUrl.child(`/api/v2/tailnet/${encodeURIComponent(opts.tailnet)}/devices`);
  }

  async list(signal: AbortSignal): Promise<ApiDevice[]> {
    let res = await this.#get(signal);
    // A reused token may have expired or been revoked since it was issued: one fresh token, one more try.
    if (res.response.status === 401 && res.cached && this.opts.auth.invalidate()) res = await this.#get(signal);
    return this.#decode(res.response, signal);
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

  async #decode(res: HttpResponse, signal: AbortSignal): Promise<ApiDevice[]> {
    const what = `GET ${this.url}`;
    if (res.status < 200 || res.status >= 300) throw errorForStatus(res, what, this.#hint(res.status), this.opts.now());
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      // JSON.parse quotes the body in its message; the body is not ours to repeat.
      throw new UpstreamError(`${what}: the response is not JSON`, "decode");
    }
    const notAList = (where: string) => new UpstreamError(`${what}: the response is not a device list (${where})`, "decode");
    const envelope = devicesResponseSchema.safeParse(body);
    if (!envelope.success) throw notAList(whereOf(envelope.error.issues[0]?.path ?? [], envelope.error.issues[0]?.message));
    const raw = envelope.data.devices;
    const devices: ApiDevice[] = new Array<ApiDevice>(raw.length);
    for (let i = 0; i < raw.length; i++) {
      if (i > 0 && i % DEVICES_PER_TURN === 0) {
        await nextTurn();
        signal.throwIfAborted();
      }
      const parsed = deviceSchema.safeParse(raw[i]);
      if (!parsed.success) throw notAList(whereOf(["devices", i, ...(parsed.error.issues[0]?.path ?? [])], parsed.error.issues[0]?.message));
      devices[i] = parsed.data;
    }
    return devices;
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

function whereOf(path: readonly PropertyKey[], message: string | undefined): string {
  return message === undefined ? "unexpected shape" : `${path.map(String).join(".") || "body"}: ${message}`;
}
