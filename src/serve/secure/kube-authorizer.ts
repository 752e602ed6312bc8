import { createHash } from "node:crypto";
import { type Agent, request } from "undici";
import { upstreamAgent } from "../../http/agent.ts";
import { readCapped } from "../../http/body.ts";
import { errorMessage, type Logger } from "../../log.ts";
import type { MetricHandles } from "../../metrics/registry.ts";
import type { KubeConnection } from "../../sources/kubernetes/kubeconfig.ts";
import { readAccessReview, readTokenReview, type ReviewedUser } from "./reviews.ts";

/** What a request is allowed: 200 go on, 401 who are you, 403 not you, 503 cannot tell now (never an open door). */
export type Decision = { status: 200; user: string } | { status: 401 | 403 | 503; reason: string };

export interface AuthorizerOptions {
  /** How long a decision is reused for the same token and path. */
  ttlMs: number;
  /** At most this many decisions are kept; the oldest go first. */
  maxEntries: number;
  /** Deadline of each review request. */
  timeoutMs: number;
}

const MAX_REVIEW_BYTES = 1024 * 1024;

function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1];
}

/**
 * Authentication and authorization as controller-runtime's metrics filter does it: the bearer token is checked with
 * a TokenReview, then its user with a SubjectAccessReview for the verb on the non-resource path. Decisions are
 * cached by a hash of the token (never the token), bounded in size and time; a failed review answers 503.
 */
export class KubeAuthorizer {
  readonly #cache = new Map<string, { decision: Decision; expiresAt: number }>();
  #agent: Agent | undefined;

  constructor(
    private readonly connection: () => Promise<KubeConnection>,
    private readonly opts: AuthorizerOptions,
    private readonly metrics: MetricHandles,
    private readonly logger: Logger,
  ) {}

  async authorize(authorization: string | undefined, path: string, verb = "get"): Promise<Decision> {
    const token = bearerToken(authorization);
    if (!token) {
      this.metrics.authnRequests.inc({ result: "no_token" });
      return { status: 401, reason: "no bearer token: send Authorization: Bearer <service-account token>" };
    }
    const key = `${createHash("sha256").update(token).digest("hex")}\0${verb}\0${path}`;
    const now = Date.now();
    const hit = this.#cache.get(key);
    if (hit && hit.expiresAt > now) {
      this.#count(hit.decision, true);
      return hit.decision;
    }
    const decision = await this.#review(token, path, verb);
    if (decision.status !== 503) this.#remember(key, decision, now);
    return decision;
  }

  #remember(key: string, decision: Decision, now: number): void {
    this.#cache.delete(key);
    this.#cache.set(key, { decision, expiresAt: now + this.opts.ttlMs });
    while (this.#cache.size > this.opts.maxEntries) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
  }

  #count(decision: Decision, cached: boolean): void {
    const source = cached ? "cache" : "api";
    if (decision.status === 401) this.metrics.authnRequests.inc({ result: `unauthenticated_${source}` });
    else {
      this.metrics.authnRequests.inc({ result: `authenticated_${source}` });
      this.metrics.authzRequests.inc({ result: `${decision.status === 200 ? "allowed" : "denied"}_${source}` });
    }
  }

  /** The answer's JSON, of any shape: the readers in reviews.ts decide what it says. */
  async #post(path: string, body: unknown): Promise<unknown> {
    const conn = await this.connection();
    this.#agent ??= upstreamAgent(conn.tls, { timeoutMs: this.opts.timeoutMs, connections: 4 });
    const authorization = await conn.credentials.authorization();
    const res = await request(conn.server.child(path).reveal(), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", ...(authorization && { authorization }) },
      body: JSON.stringify(body),
      dispatcher: this.#agent,
      signal: AbortSignal.timeout(this.opts.timeoutMs),
    });
    const text = await readCapped(res.body, MAX_REVIEW_BYTES, path);
    if (res.statusCode === 401) conn.credentials.invalidate();
    if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}`);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new Error(`${path} answered with a body that is not JSON`);
    }
  }

  async #review(token: string, path: string, verb: string): Promise<Decision> {
    let user: ReviewedUser;
    try {
      const review = readTokenReview(
        await this.#post("/apis/authentication.k8s.io/v1/tokenreviews", { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } }),
      );
      if (!review.authenticated) {
        const decision: Decision = { status: 401, reason: "the token was not accepted by the Kubernetes API (TokenReview)" };
        this.#count(decision, false);
        return decision;
      }
      user = review.user;
    } catch (err) {
      this.metrics.authnRequests.inc({ result: "error" });
      this.logger.warn({ err: errorMessage(err) }, "TokenReview failed; answering 503");
      return { status: 503, reason: "cannot verify the token now (TokenReview failed); try again later" };
    }
    try {
      const allowed = readAccessReview(
        await this.#post("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user: user.username,
            ...(user.uid !== undefined && { uid: user.uid }),
            ...(user.groups && { groups: user.groups }),
            ...(user.extra && { extra: user.extra }),
            nonResourceAttributes: { path, verb },
          },
        }),
      );
      const decision: Decision = allowed
        ? { status: 200, user: user.username }
        : { status: 403, reason: `${user.username} may not ${verb} ${path}; grant it with a ClusterRole rule for nonResourceURLs ["${path}"] verbs ["${verb}"]` };
      this.#count(decision, false);
      return decision;
    } catch (err) {
      this.metrics.authnRequests.inc({ result: "authenticated_api" });
      this.metrics.authzRequests.inc({ result: "error" });
      this.logger.warn({ err: errorMessage(err) }, "SubjectAccessReview failed; answering 503");
      return { status: 503, reason: "cannot check authorization now (SubjectAccessReview failed); try again later" };
    }
  }

  async close(): Promise<void> {
    await this.#agent?.close();
  }
}
