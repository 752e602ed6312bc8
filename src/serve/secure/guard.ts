import type { TLSSocket } from "node:tls";
import type { HttpBindings } from "@hono/node-server";
import type { Context, MiddlewareHandler } from "hono";
import type { MetricHandles } from "../../metrics/registry.ts";
import type { KubeAuthorizer } from "./kube-authorizer.ts";

/** Decides whether one request may go on; answers the refusal itself. */
export type Guard = MiddlewareHandler<{ Bindings: HttpBindings }>;

function refuse(c: Context, status: 401 | 403 | 503, reason: string) {
  if (status === 401) c.header("WWW-Authenticate", 'Bearer realm="sidecar-exporter"');
  return c.json({ error: reason }, status, { "cache-control": "no-store" });
}

/** Bearer token → TokenReview → SubjectAccessReview for the request's path, as controller-runtime does. */
export function kubernetesGuard(authorizer: KubeAuthorizer): Guard {
  return async (c, next) => {
    const decision = await authorizer.authorize(c.req.header("authorization"), c.req.path, "get");
    if (decision.status !== 200) return refuse(c, decision.status, decision.reason);
    await next();
  };
}

/**
 * Client certificates instead of tokens: the TLS layer asks for one and checks it against the client CA (without
 * rejecting, so the answer can say why); here it must be valid and its common name allowed.
 */
export function mtlsGuard(allowedCommonNames: readonly string[], metrics: MetricHandles): Guard {
  const allowed = new Set(allowedCommonNames);
  return async (c, next) => {
    const socket = c.env.incoming.socket as TLSSocket;
    const cert = socket.getPeerCertificate?.();
    if (!cert || Object.keys(cert).length === 0) {
      metrics.authnRequests.inc({ result: "no_token" });
      return refuse(c, 401, "no client certificate: present one signed by metrics.auth.clientCAFile");
    }
    if (!socket.authorized) {
      metrics.authnRequests.inc({ result: "unauthenticated_api" });
      return refuse(c, 401, `client certificate not accepted: ${String(socket.authorizationError ?? "unknown issuer")}`);
    }
    metrics.authnRequests.inc({ result: "authenticated_api" });
    const cn = typeof cert.subject?.CN === "string" ? cert.subject.CN : "";
    if (allowed.size > 0 && !allowed.has(cn)) {
      metrics.authzRequests.inc({ result: "denied_api" });
      return refuse(c, 403, `common name "${cn}" is not in metrics.auth.allowedCommonNames`);
    }
    metrics.authzRequests.inc({ result: "allowed_api" });
    await next();
  };
}
