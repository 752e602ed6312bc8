import * as z from "zod";
import { describeRef, readSecret, type SecretRef } from "../../config/secret-ref.ts";
import { UpstreamError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { Secret } from "../../secret.ts";
import type { SecretUrl } from "../../secret-url.ts";
import type { TailscaleSourceConfig } from "../config.ts";
import { errorForStatus, type HttpTransport } from "./http.ts";

/** What to put in the Authorization header of one API call. */
export interface Credential {
  /** The header value; never logged or shown. */
  authorization: Secret;
  /** True when reused from an earlier call, so a 401 may only mean it went stale. */
  cached: boolean;
}

export interface Authenticator {
  authorize(signal: AbortSignal): Promise<Credential>;
  /** Forgets a cached credential after the API refused it; false when there is nothing that a retry could fix. */
  invalidate(): boolean;
  /** What to check when the API answers 401 or 403. */
  readonly hint: string;
  /** For /debug/status: the kind of credential and token timing, never a credential. */
  debug(): Record<string, unknown>;
}

export interface AuthOptions {
  transport: HttpTransport;
  logger: Logger;
  now: () => number;
  env: NodeJS.ProcessEnv;
}

/** An API key, re-read on every call so a rotated Secret is picked up without a restart. */
class ApiKeyAuth implements Authenticator {
  readonly hint: string;

  constructor(
    private readonly ref: SecretRef,
    private readonly scheme: "bearer" | "basic",
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.hint = `check that the API key in ${describeRef(ref)} has not expired or been revoked, and that it belongs to this tailnet`;
  }

  async authorize(): Promise<Credential> {
    const key = (await readSecret(this.ref, "sources.tailscale.apiKey", this.env)).reveal();
    // Basic carries the key as the user name with an empty password.
    const value = this.scheme === "basic" ? `Basic ${Buffer.from(`${key}:`).toString("base64")}` : `Bearer ${key}`;
    return { authorization: new Secret(value), cached: false };
  }

  invalidate(): boolean {
    return false;
  }

  debug(): Record<string, unknown> {
    return { auth: `api key (${this.scheme})` };
  }
}

const tokenResponseSchema = z.object({
  access_token: z.string().min(1),
  expires_in: z.number().nonnegative().optional(),
  token_type: z.string().optional(),
});

/** Tailscale's access tokens live an hour; assumed when a token response leaves expires_in out. */
const DEFAULT_TOKEN_TTL_MS = 3_600_000;
/** A token is replaced once this share of its life has passed, so a call never races its expiry. */
const REFRESH_AT_LIFE = 0.8;
/** A token response is a few hundred bytes. */
const TOKEN_BODY_BYTES = 64 * 1024;

interface CachedToken {
  token: Secret;
  obtainedAt: number;
  expiresAt: number;
  refreshAt: number;
}

/**
 * OAuth client credentials: exchanges the client for short-lived access tokens, keeps one across polls and
 * fetches a new one when 80 % of its life has passed or the API refuses it.
 */
class OAuthAuth implements Authenticator {
  readonly hint: string;
  readonly #tokenUrl: SecretUrl;
  #token: CachedToken | undefined;
  #fetched = 0;

  constructor(
    private readonly oauth: NonNullable<TailscaleSourceConfig["oauth"]>,
    baseUrl: SecretUrl,
    private readonly opts: AuthOptions,
  ) {
    this.#tokenUrl = baseUrl.child("/api/v2/oauth/token");
    this.hint = `check that OAuth client ${oauth.clientId} still exists and has the devices:core:read scope (devices:read on older clients)`;
  }

  async authorize(signal: AbortSignal): Promise<Credential> {
    const cached = this.#token;
    if (cached && this.opts.now() < cached.refreshAt) return { authorization: new Secret(`Bearer ${cached.token.reveal()}`, { rotating: true }), cached: true };
    const fresh = await this.#fetch(signal);
    return { authorization: new Secret(`Bearer ${fresh.token.reveal()}`, { rotating: true }), cached: false };
  }

  invalidate(): boolean {
    const had = this.#token !== undefined;
    this.#token = undefined;
    return had;
  }

  async #fetch(signal: AbortSignal): Promise<CachedToken> {
    // Read on every exchange so a rotated client secret is picked up.
    const secret = await readSecret(this.oauth.clientSecret, "sources.tailscale.oauth.clientSecret", this.opts.env);
    const form = new URLSearchParams({ grant_type: "client_credentials", client_id: this.oauth.clientId, client_secret: secret.reveal() });
    if (this.oauth.scopes.length > 0) form.set("scope", this.oauth.scopes.join(" "));
    const what = `POST ${this.#tokenUrl}`;
    const obtainedAt = this.opts.now();
    const res = await this.opts.transport.send(this.#tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: form.toString(),
      signal,
      maxBodyBytes: TOKEN_BODY_BYTES,
      what,
    });
    if (res.status < 200 || res.status >= 300) {
      // The token endpoint says 400 invalid_client/invalid_scope or 401 for a bad client: all fixable by the user.
      const rejected = res.status === 400 || res.status === 401 || res.status === 403;
      const hint = rejected
        ? `the OAuth client was refused; check oauth.clientId (${this.oauth.clientId}), the client secret in ${describeRef(this.oauth.clientSecret)} and oauth.scopes`
        : res.status === 404
          ? "no OAuth token endpoint there; check sources.tailscale.baseUrl"
          : undefined;
      const err = errorForStatus(res, what, hint, this.opts.now());
      throw rejected ? new UpstreamError(err.message, "unauthorized") : err;
    }
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      throw new UpstreamError(`${what}: the token response is not JSON`, "decode");
    }
    const parsed = tokenResponseSchema.safeParse(body);
    if (!parsed.success) throw new UpstreamError(`${what}: the token response has no usable access_token/expires_in`, "decode");
    const lifeMs = parsed.data.expires_in !== undefined ? parsed.data.expires_in * 1000 : DEFAULT_TOKEN_TTL_MS;
    const token: CachedToken = {
      token: new Secret(parsed.data.access_token, { rotating: true }),
      obtainedAt,
      // Counted from before the request was sent, so the token is never believed to live longer than it does.
      expiresAt: obtainedAt + lifeMs,
      refreshAt: obtainedAt + lifeMs * REFRESH_AT_LIFE,
    };
    this.#token = token;
    this.#fetched++;
    this.opts.logger.debug({ source: "tailscale", expiresAt: new Date(token.expiresAt).toISOString() }, "tailscale access token obtained");
    return token;
  }

  debug(): Record<string, unknown> {
    const t = this.#token;
    return {
      auth: "oauth",
      oauthClientId: this.oauth.clientId,
      tokensObtained: this.#fetched,
      tokenExpiresAt: t ? new Date(t.expiresAt).toISOString() : null,
      tokenRefreshAt: t ? new Date(t.refreshAt).toISOString() : null,
    };
  }
}

/** An API key when configured, else the OAuth client; config validation makes sure exactly one is set. */
export function createAuthenticator(config: TailscaleSourceConfig, baseUrl: SecretUrl, opts: AuthOptions): Authenticator {
  if (config.apiKey) return new ApiKeyAuth(config.apiKey, config.authScheme, opts.env);
  if (config.oauth) return new OAuthAuth(config.oauth, baseUrl, opts);
  return {
    hint: "set sources.tailscale.apiKey or sources.tailscale.oauth",
    authorize: () => Promise.reject(new UpstreamError("sources.tailscale has no credential: set apiKey or oauth", "unauthorized")),
    invalidate: () => false,
    debug: () => ({ auth: "none" }),
  };
}
