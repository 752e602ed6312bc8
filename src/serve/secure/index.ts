import { readFile } from "node:fs/promises";
import type { ServerOptions as HttpsOptions, Server as HttpsServer } from "node:https";
import type { Config } from "../../config/types.ts";
import type { Logger } from "../../log.ts";
import type { MetricHandles } from "../../metrics/registry.ts";
import { loadConnection, type KubeConnection } from "../../sources/kubernetes/kubeconfig.ts";
import { CertificateFiles, fingerprint, selfSignedCertificate } from "./certificates.ts";
import { kubernetesGuard, mtlsGuard, type Guard } from "./guard.ts";
import { KubeAuthorizer } from "./kube-authorizer.ts";

/** TLS 1.2 and 1.3 with forward-secret AEAD suites only. */
const CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

export interface SecureServing {
  /** Options for the metrics server's https.createServer; undefined when metrics are served in plain HTTP. */
  tls?: HttpsOptions;
  metricsGuard?: Guard;
  debugGuard?: Guard;
  /** Hands the running HTTPS server over, so rotated certificates are swapped in. */
  attach(server: HttpsServer): void;
  close(): Promise<void>;
}

/** One lazily made connection to the API server; a failed attempt is forgotten so the next request retries. */
function lazyConnection(auth: Config["metrics"]["auth"]): () => Promise<KubeConnection> {
  let pending: Promise<KubeConnection> | undefined;
  return () => {
    pending ??= loadConnection({ kubeconfig: auth.kubeconfig, context: auth.context }).catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

/** Everything metrics.secure and debug.protect ask for: certificate, TLS options and the guards. */
export async function secureServing(config: Config, metrics: MetricHandles, logger: Logger): Promise<SecureServing> {
  const { auth } = config.metrics;
  const needsKube = (config.metrics.secure && auth.mode === "kubernetes") || config.debug.protect;
  const authorizer = needsKube
    ? new KubeAuthorizer(lazyConnection(auth), { ttlMs: auth.cacheTtlMs, maxEntries: auth.cacheSize, timeoutMs: auth.timeoutMs }, metrics, logger)
    : undefined;
  const debugGuard = config.debug.protect && authorizer ? kubernetesGuard(authorizer) : undefined;
  if (!config.metrics.secure) {
    return { ...(debugGuard && { debugGuard }), attach: () => undefined, close: async () => authorizer?.close() };
  }

  let files: CertificateFiles | undefined;
  let pair;
  if (config.metrics.tls) {
    ({ files, pair } = await CertificateFiles.load(config.metrics.tls.certFile, config.metrics.tls.keyFile, logger));
    logger.info({ certFile: config.metrics.tls.certFile, sha256: fingerprint(pair.cert) }, "metrics certificate loaded");
  } else {
    pair = await selfSignedCertificate();
    logger.info({ sha256: fingerprint(pair.cert) }, "no metrics.tls given: serving a self-signed certificate made at start");
  }
  let clientCA: Buffer | undefined;
  if (auth.mode === "mtls" && auth.clientCAFile) {
    try {
      clientCA = await readFile(auth.clientCAFile);
    } catch (err) {
      throw new Error(`metrics.auth.clientCAFile: cannot read ${auth.clientCAFile}: ${(err as NodeJS.ErrnoException).code ?? "unreadable"}`);
    }
  }
  const tls: HttpsOptions = {
    cert: pair.cert,
    key: pair.key,
    minVersion: "TLSv1.2",
    ciphers: CIPHERS,
    honorCipherOrder: true,
    ...(clientCA && { ca: clientCA, requestCert: true, rejectUnauthorized: false }),
  };
  const metricsGuard =
    auth.mode === "kubernetes" && authorizer ? kubernetesGuard(authorizer) : auth.mode === "mtls" ? mtlsGuard(auth.allowedCommonNames, metrics) : undefined;
  if (auth.mode === "none") logger.warn("metrics.auth.mode is none: /metrics is served over TLS to anyone who can reach it");
  return {
    tls,
    ...(metricsGuard && { metricsGuard }),
    ...(debugGuard && { debugGuard }),
    attach(server) {
      files?.watch(config.metrics.tls?.reloadIntervalMs ?? 10_000, (next) =>
        server.setSecureContext({ ...tls, cert: next.cert, key: next.key }),
      );
    },
    async close() {
      files?.stop();
      await authorizer?.close();
    },
  };
}
