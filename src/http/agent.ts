import { Agent } from "undici";

export interface AgentTls {
  ca?: Buffer | string;
  cert?: Buffer | string;
  key?: Buffer | string;
  serverName?: string;
  insecureSkipVerify?: boolean;
}

/**
 * A keep-alive pool to one upstream with its TLS settings and deadlines. `streaming` turns off undici's own
 * header and body timeouts for long-lived responses (watches), whose deadlines the caller enforces itself.
 */
export function upstreamAgent(tls: AgentTls, opts: { timeoutMs: number; connections?: number; streaming?: boolean }): Agent {
  return new Agent({
    connect: {
      ...(tls.ca !== undefined && { ca: tls.ca }),
      ...(tls.cert !== undefined && { cert: tls.cert }),
      ...(tls.key !== undefined && { key: tls.key }),
      ...(tls.serverName !== undefined && { servername: tls.serverName }),
      rejectUnauthorized: !(tls.insecureSkipVerify ?? false),
      timeout: opts.timeoutMs,
    },
    headersTimeout: opts.streaming ? 0 : opts.timeoutMs,
    bodyTimeout: opts.streaming ? 0 : opts.timeoutMs,
    ...(opts.connections !== undefined && { connections: opts.connections }),
  });
}
