import { isIP } from "node:net";
import * as tls from "node:tls";
import type { Secret } from "../../secret.ts";

export interface TlsProbeOptions {
  ca: Buffer;
  cert: Buffer;
  key: Secret;
  /** Epoch milliseconds after which the probe gives up without a verdict. */
  until: number;
  signal: AbortSignal;
}

/** How long to wait after our side of the handshake for the server to reject the client certificate. */
const ALERT_WAIT_MS = 1_000;

function splitEndpoint(endpoint: string): { host: string; port: number } {
  const at = endpoint.lastIndexOf(":");
  const host = endpoint.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(endpoint.slice(at + 1)) };
}

/**
 * grpc-js reports a server that rejects the client certificate as a bare "Failed to connect": with TLS 1.3 the
 * rejection arrives as an alert after the client's side of the handshake, and the HTTP/2 layer drops it. This
 * repeats the handshake on a plain TLS socket to learn what went wrong. Resolves with the TLS error message when
 * the handshake is refused (or the server hangs up on it), undefined when TLS is fine or the endpoint is not
 * reachable at all.
 */
export function probeTls(endpoint: string, opts: TlsProbeOptions): Promise<string | undefined> {
  const { host, port } = splitEndpoint(endpoint);
  const budget = opts.until - Date.now();
  if (!Number.isInteger(port) || budget <= 0 || opts.signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    let done = false;
    const socket = tls.connect({
      host,
      port,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key.reveal(),
      ALPNProtocols: ["h2"],
      ...(isIP(host) === 0 && { servername: host }),
    });
    const finish = (verdict: string | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(verdict);
    };
    const onAbort = (): void => finish(undefined);
    let timer = setTimeout(() => finish(undefined), budget);
    opts.signal.addEventListener("abort", onAbort, { once: true });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      const code = String(err.code ?? "");
      const isTls = /^(ERR_SSL|ERR_TLS|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH)/.test(code) || /alert|certificate|SSL/i.test(err.message);
      finish(isTls ? err.message : undefined);
    });
    let handshakeDone = false;
    socket.on("secureConnect", () => {
      handshakeDone = true;
      clearTimeout(timer);
      timer = setTimeout(() => finish(undefined), Math.min(ALERT_WAIT_MS, Math.max(0, opts.until - Date.now())));
    });
    // The server's first HTTP/2 frame means it accepted the certificate.
    socket.on("data", () => finish(undefined));
    // An HTTP/2 server speaks first; hanging up right after the handshake instead is how a TLS 1.3 server that
    // does not send an alert refuses the client certificate.
    socket.on("close", () => finish(handshakeDone ? "the server closed the connection right after the handshake" : undefined));
  });
}
