import { readFile } from "node:fs/promises";
import { type Agent, type Dispatcher, request } from "undici";
import { readSecret } from "../../config/secret-ref.ts";
import { classifyError, type FailureReason, reasonForStatus, UpstreamError } from "../../errors.ts";
import { errorMessage } from "../../log.ts";
import { traced } from "../../tracing/spans.ts";
import { RetryAfterError } from "../health.ts";
import type { BackupTargetConfig } from "../config.ts";
import { readCapped, readHead, readInPieces } from "../../http/body.ts";
import { upstreamAgent } from "../../http/agent.ts";
import { parseRetryAfter } from "../../http/retry-after.ts";
import { type S3Credentials, signS3Request } from "./sigv4.ts";
import { ListPageReader, type ListPage, PAGE_KEYS, parseErrorDocument } from "./s3-xml.ts";
import { type BackupLister, type BackupObject, MAX_OBJECTS } from "./types.ts";

export type S3TargetConfig = Extract<BackupTargetConfig, { type: "s3" }>;

const MAX_PAGES = Math.ceil(MAX_OBJECTS / PAGE_KEYS);
/**
 * Room for a page of 1000 keys of S3's longest (1024 bytes) with every field S3 adds; a larger answer is not a
 * listing. Pages are read as they arrive and only their keys, times and sizes kept, so this bounds the time a
 * page costs rather than its memory.
 */
const MAX_LIST_PAGE_BYTES = 2 * 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 64 * 1024;

const UNAUTHORIZED_CODES = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "AccessDenied",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "AllAccessDisabled",
]);

const HINTS: Record<string, string> = {
  InvalidAccessKeyId: "the endpoint does not know this access key id: check accessKeyId",
  SignatureDoesNotMatch: "check secretAccessKey and region",
  AccessDenied: "the credentials need s3:ListBucket and s3:GetObject on this bucket",
  ExpiredToken: "the session token has expired: refresh sessionToken",
  InvalidToken: "check sessionToken",
  NoSuchBucket: "check bucket, endpoint and pathStyle",
  PermanentRedirect: "the bucket is in another region: check region and endpoint",
  AuthorizationHeaderMalformed: "check region",
  SlowDown: "the endpoint asks for fewer requests; polling backs off",
};

function reasonFor(status: number, code: string | undefined): FailureReason {
  if (code === "SlowDown" || status === 429) return "rate_limited";
  if ((code !== undefined && UNAUTHORIZED_CODES.has(code)) || status === 401 || status === 403) return "unauthorized";
  if (code === "NoSuchBucket" || code === "NoSuchKey" || status === 404) return "not_found";
  return reasonForStatus(status) ?? "other";
}

/** Server-supplied text, shown in one line and kept short. */
function oneLine(text: string, max = 200): string {
  const t = text.replace(/\s+/g, " ").trim().replace(/\.$/, "");
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/** Percent-encodes one path segment the way SigV4 canonicalises it (RFC 3986 unreserved characters kept). */
function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export interface S3Addressing {
  /** scheme://host[:port] requests go to. */
  origin: string;
  /** host[:port] as sent and signed. */
  host: string;
  /** Encoded path of the bucket ("" for a virtual-hosted bucket at the endpoint's root). */
  bucketPath: string;
  /** The endpoint without any credentials, for messages. */
  endpointShown: string;
  /** Set when the endpoint cannot be used. */
  error?: string;
}

/**
 * Where requests for the bucket go: path-style puts the bucket in the path (`host/bucket/key`, what MinIO and
 * most S3 look-alikes want), virtual-hosted puts it in the host name (`bucket.host/key`, AWS's default).
 */
export function s3Addressing(cfg: Pick<S3TargetConfig, "endpoint" | "region" | "bucket" | "pathStyle">): S3Addressing {
  const base = new URL(cfg.endpoint?.reveal() ?? `https://s3.${cfg.region}.amazonaws.com`);
  // Credentials never belong in the endpoint; drop any so they cannot reach a message.
  base.username = "";
  base.password = "";
  const basePath = base.pathname.replace(/\/+$/, "");
  const host = cfg.pathStyle ? base.host : `${cfg.bucket}.${base.host}`;
  return {
    origin: `${base.protocol}//${host}`,
    host,
    bucketPath: cfg.pathStyle ? `${basePath}/${encodeSegment(cfg.bucket)}` : basePath,
    endpointShown: `${base.protocol}//${base.host}${basePath}`,
    ...(base.protocol !== "http:" && base.protocol !== "https:" && { error: `endpoint must be an http:// or https:// URL, not ${base.protocol}` }),
  };
}

/** Lists and reads etcd backups in an S3 (or S3-compatible) bucket with SigV4-signed requests. */
export class S3Lister implements BackupLister {
  #agent: Agent | undefined;
  readonly #origin: string;
  readonly #host: string;
  readonly #bucketPath: string;
  readonly #endpointShown: string;
  readonly #configError: string | undefined;
  readonly #where: string;

  constructor(
    private readonly cfg: S3TargetConfig,
    private readonly timeoutMs: number,
  ) {
    const a = s3Addressing(cfg);
    this.#origin = a.origin;
    this.#host = a.host;
    this.#bucketPath = a.bucketPath;
    this.#endpointShown = a.endpointShown;
    this.#configError = a.error;
    this.#where = `s3 target ${JSON.stringify(cfg.name)} (bucket ${cfg.bucket} at ${this.#endpointShown})`;
  }

  describe(): Record<string, string> {
    return {
      endpoint: this.#endpointShown,
      bucket: this.cfg.bucket,
      prefix: this.cfg.prefix,
      region: this.cfg.region,
      addressing: this.cfg.pathStyle ? "path-style" : "virtual-hosted",
    };
  }

  async list(signal: AbortSignal, found: (batch: BackupObject[]) => void | Promise<void>): Promise<void> {
    const creds = await this.#credentials();
    const prefix = JSON.stringify(this.cfg.prefix);
    let listed = 0;
    let token: string | undefined;
    for (let page = 0; ; page++) {
      if (page >= MAX_PAGES)
        throw new UpstreamError(`${this.#where}: the listing under prefix ${prefix} did not end after ${MAX_PAGES} pages; narrow the prefix`, "other");
      const query = new URLSearchParams({ "list-type": "2", "max-keys": String(PAGE_KEYS) });
      if (this.cfg.prefix !== "") query.set("prefix", this.cfg.prefix);
      if (token !== undefined) query.set("continuation-token", token);
      const res = await this.#get(`${this.#bucketPath || "/"}?${query}`, creds, signal);
      if (res.statusCode !== 200) throw await this.#failure("ListObjectsV2", res);
      const parsed = await this.#readPage(res);
      listed += parsed.objects.length;
      if (listed > MAX_OBJECTS) throw new UpstreamError(`${this.#where}: more than ${MAX_OBJECTS} objects under prefix ${prefix}; narrow the prefix`, "other");
      // Zero-byte keys ending in "/" are folder markers some tools create, not backups.
      await found(parsed.objects.filter((o) => !o.key.endsWith("/")));
      if (!parsed.truncated) return;
      if (parsed.nextToken === undefined) throw new UpstreamError(`${this.#where}: ListObjectsV2 page is truncated but has no NextContinuationToken`, "decode");
      token = parsed.nextToken;
    }
  }

  async #readPage(res: Dispatcher.ResponseData): Promise<ListPage> {
    const what = `${this.#where}: ListObjectsV2`;
    const reader = new ListPageReader(PAGE_KEYS);
    try {
      await readInPieces(res.body, MAX_LIST_PAGE_BYTES, what, (text) => reader.write(text), {
        hint: "a page of 1000 keys is far smaller: check that endpoint is an S3 API",
      });
      return reader.end();
    } catch (err) {
      if (err instanceof UpstreamError && err.message.startsWith(this.#where)) throw err;
      throw new UpstreamError(`${what} answer unreadable: ${errorMessage(err)}`, classifyError(err) === "other" ? "decode" : classifyError(err), {
        cause: err,
      });
    }
  }

  async readHead(object: BackupObject, bytes: number, signal: AbortSignal): Promise<Buffer> {
    const creds = await this.#credentials();
    const path = `${this.#bucketPath}/${object.key.split("/").map(encodeSegment).join("/")}`;
    const res = await this.#get(path, creds, signal, { range: `bytes=0-${bytes - 1}` });
    // 416: the object is empty, so no range of it exists.
    if (res.statusCode === 416) {
      await res.body.dump();
      return Buffer.alloc(0);
    }
    // 200: the server ignored Range; readHead still stops after `bytes`.
    if (res.statusCode !== 206 && res.statusCode !== 200) throw await this.#failure("GetObject", res);
    return readHead(res.body, bytes);
  }

  async close(): Promise<void> {
    const agent = this.#agent;
    this.#agent = undefined;
    await agent?.destroy();
  }

  async #credentials(): Promise<S3Credentials> {
    const field = `sources.backups.targets[${this.cfg.name}]`;
    const [accessKeyId, secretAccessKey, sessionToken] = await Promise.all([
      readSecret(this.cfg.accessKeyId, `${field}.accessKeyId`),
      readSecret(this.cfg.secretAccessKey, `${field}.secretAccessKey`),
      this.cfg.sessionToken ? readSecret(this.cfg.sessionToken, `${field}.sessionToken`) : undefined,
    ]);
    return { accessKeyId, secretAccessKey, ...(sessionToken && { sessionToken }) };
  }

  async #dispatcher(): Promise<Agent> {
    if (this.#agent) return this.#agent;
    const tls = this.cfg.tls;
    let ca: Buffer | undefined;
    if (tls?.caFile !== undefined) {
      try {
        ca = await readFile(tls.caFile);
      } catch (err) {
        throw new UpstreamError(`${this.#where}: cannot read tls.caFile ${tls.caFile}: ${(err as NodeJS.ErrnoException).code ?? "unreadable"}`, "tls");
      }
    }
    this.#agent = upstreamAgent({ ...(ca && { ca }), ...tls }, { timeoutMs: this.timeoutMs, connections: 4 });
    return this.#agent;
  }

  async #get(path: string, creds: S3Credentials, signal: AbortSignal, extra: Record<string, string> = {}): Promise<Dispatcher.ResponseData> {
    if (this.#configError) throw new UpstreamError(`${this.#where}: ${this.#configError}`, "other");
    const signed = signS3Request({ method: "GET", host: this.#host, path, region: this.cfg.region }, creds);
    // Only list requests carry a query; the operation names S3's API call, never the key or the signed URL.
    const operation = path.includes("?") ? "ListObjectsV2" : "GetObject";
    const upstream = {
      source: "backups",
      node: this.#host,
      operation,
      attributes: { "http.request.method": "GET", "aws.s3.bucket": this.cfg.bucket, "backup.target": this.cfg.name },
    };
    try {
      return await traced(
        upstream,
        async () =>
          request(`${this.#origin}${signed.path}`, {
            method: "GET",
            headers: { ...signed.headers, ...extra, "user-agent": "sidecar-exporter" },
            dispatcher: await this.#dispatcher(),
            signal,
          }),
        (r) => r.statusCode,
      );
    } catch (err) {
      if (err instanceof UpstreamError) throw err;
      const reason = signal.aborted ? "timeout" : classifyError(err);
      // A fresh agent re-reads tls.caFile, so a rotated CA is picked up on the next poll.
      if (reason === "tls") await this.close();
      const hint =
        reason === "tls"
          ? "; set tls.caFile to the CA that signed the endpoint's certificate, or tls.serverName to a name it holds"
          : reason === "connection"
            ? "; check endpoint and that the pod can reach it"
            : "";
      throw new UpstreamError(`${this.#where}: request failed: ${signal.aborted ? "timed out" : errorMessage(err)}${hint}`, reason, { cause: err });
    }
  }

  async #failure(operation: string, res: Dispatcher.ResponseData): Promise<UpstreamError> {
    let code: string | undefined;
    let message: string | undefined;
    try {
      ({ code, message } = parseErrorDocument(await readCapped(res.body, MAX_ERROR_BODY_BYTES, this.#where, { truncate: true })));
    } catch {
      // Not an S3 error document (a proxy's HTML page, a cut-off body): the status alone has to do.
    }
    const headerCode = res.headers["x-amz-error-code"];
    code ??= typeof headerCode === "string" && headerCode !== "" ? headerCode : undefined;
    const reason = reasonFor(res.statusCode, code);
    const hint = (code !== undefined ? HINTS[code] : undefined) ?? (res.statusCode === 404 ? "check endpoint, bucket and pathStyle" : undefined);
    const text =
      `${this.#where}: ${operation} failed with HTTP ${res.statusCode}` +
      `${code !== undefined ? ` ${oneLine(code, 64)}` : ""}${message !== undefined ? `: ${oneLine(message)}` : ""}${hint ? `; ${hint}` : ""}`;
    if (reason === "rate_limited") return new RetryAfterError(text, parseRetryAfter(res.headers["retry-after"]));
    return new UpstreamError(text, reason);
  }
}
