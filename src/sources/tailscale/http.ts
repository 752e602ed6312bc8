import type { IncomingHttpHeaders } from "node:http";
import { type Agent, request } from "undici";
import { readTlsMaterial } from "../../checks/tls-files.ts";
import { readCapped } from "../../http/body.ts";
import { upstreamAgent } from "../../http/agent.ts";
import { parseRetryAfter } from "../../http/retry-after.ts";
import { classifyError, reasonForStatus, UpstreamError } from "../../errors.ts";
import { errorMessage } from "../../log.ts";
import type { SecretUrl } from "../../secret-url.ts";
import { httpUpstream, traced } from "../../tracing/spans.ts";
import { RetryAfterError } from "../health.ts";
import type { TailscaleSourceConfig } from "../config.ts";

/** Error bodies are only read for their message; anything past this is dropped. */
const ERROR_BODY_BYTES = 4 * 1024;

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body as text: complete for 2xx, truncated to a few KiB otherwise. */
  text: string;
}

export interface SendOptions {
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
  /** A 2xx body longer than this fails the call with reason decode, and is not read further. */
  maxBodyBytes: number;
  /** Names the call in error messages, e.g. "GET https://api.tailscale.com/api/v2/tailnet/-/devices". */
  what: string;
}

type Body = AsyncIterable<Buffer> & { destroy(err?: Error): unknown; dump(): Promise<void> };

function tooLarge(what: string, cap: number): UpstreamError {
  return new UpstreamError(
    `${what}: response body is larger than ${cap} bytes; raise sources.tailscale.maxBodyBytes if the tailnet is that big`,
    "decode",
  );
}


/** The URL's path with the tailnet name as a placeholder, so a span names the route and not one tailnet. */
export function routeTemplate(url: SecretUrl): string {
  return url.pathname.replace(/\/tailnet\/[^/]+/, "/tailnet/{tailnet}");
}

/** The `message` an API error body carries, shortened and on one line; never the whole body. */
export function upstreamMessage(text: string): string | undefined {
  let message: unknown;
  try {
    message = (JSON.parse(text) as { message?: unknown }).message;
  } catch {
    return undefined;
  }
  if (typeof message !== "string" || message.trim() === "") return undefined;
  const oneLine = message.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return oneLine.length > 200 ? `${oneLine.slice(0, 200)}…` : oneLine;
}

/**
 * The error for a non-2xx answer, with the API's own message and a hint for the statuses a user can fix.
 * 429 becomes a RetryAfterError so the poller waits as long as the API asked.
 */
export function errorForStatus(res: HttpResponse, what: string, hint: string | undefined, now: number): UpstreamError {
  const reason = reasonForStatus(res.status) ?? "other";
  const said = upstreamMessage(res.text);
  const base = `${what} answered ${res.status}${said ? ` (${said})` : ""}`;
  if (reason === "rate_limited") {
    const retryAfterMs = parseRetryAfter(res.headers["retry-after"], now);
    const wait = retryAfterMs === undefined ? "no Retry-After given, backing off" : `retrying in ${Math.ceil(retryAfterMs / 1000)}s`;
    return new RetryAfterError(`${base}: rate limited by the Tailscale API, ${wait}`, retryAfterMs);
  }
  return new UpstreamError(hint ? `${base}: ${hint}` : base, reason);
}

/**
 * HTTP to the Tailscale API over one keep-alive pool: every call is bound to the poll's AbortSignal and reads
 * at most a capped body.
 */
export class HttpTransport {
  #agent: Agent | undefined;

  constructor(
    private readonly tls: TailscaleSourceConfig["tls"],
    private readonly timeoutMs: number,
  ) {}

  async #dispatcher(): Promise<Agent> {
    if (this.#agent) return this.#agent;
    const material = await readTlsMaterial(this.tls);
    // One origin, polls never overlap: a token call and a devices call at most, plus one cut-off straggler.
    this.#agent = upstreamAgent({ ...material, ...this.tls }, { timeoutMs: this.timeoutMs, connections: 2 });
    return this.#agent;
  }

  send(url: SecretUrl, opts: SendOptions): Promise<HttpResponse> {
    return traced(httpUpstream("tailscale", opts.method, url, routeTemplate(url)), () => this.#send(url, opts), (res) => res.status);
  }

  async #send(url: SecretUrl, opts: SendOptions): Promise<HttpResponse> {
    const dispatcher = await this.#dispatcher();
    try {
      const res = await request(url.reveal(), {
        method: opts.method,
        headers: { "user-agent": "sidecar-exporter", accept: "application/json", ...opts.headers },
        ...(opts.body !== undefined && { body: opts.body }),
        dispatcher,
        signal: opts.signal,
      });
      const body = res.body as unknown as Body;
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      if (ok) {
        const declared = Number(res.headers["content-length"]);
        if (Number.isFinite(declared) && declared > opts.maxBodyBytes) {
          body.destroy();
          throw tooLarge(opts.what, opts.maxBodyBytes);
        }
      }
      const text = ok
        ? await readCapped(body, opts.maxBodyBytes, opts.what, { hint: "raise sources.tailscale.maxBodyBytes if the tailnet is that big" })
        : await readCapped(body, ERROR_BODY_BYTES, opts.what, { truncate: true });
      return { status: res.statusCode, headers: res.headers, text };
    } catch (err) {
      // The poll's deadline speaks for itself; the poller reports it as a timeout.
      if (opts.signal.aborted) throw opts.signal.reason ?? err;
      if (err instanceof UpstreamError) throw err;
      throw new UpstreamError(`${opts.what} failed: ${errorMessage(err)}`, classifyError(err), { cause: err });
    }
  }

  async close(): Promise<void> {
    const agent = this.#agent;
    this.#agent = undefined;
    await agent?.destroy();
  }
}
