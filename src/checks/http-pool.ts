import { createHash } from "node:crypto";
import type { Agent } from "undici";
import { upstreamAgent, type AgentTls } from "../http/agent.ts";

/** A share of a keep-alive pool; `release` gives it back, and the last share closes the pool's sockets. */
export interface PoolLease {
  readonly agent: Agent;
  release(): Promise<void>;
}

interface Shared {
  agent: Agent;
  users: number;
}

/**
 * Pools by origin, TLS settings and timeout. A check runs once per interval, longer than a server keeps an idle
 * socket open, so a pool of its own would open (and the server close) a connection on every run; checks that
 * share an origin keep its sockets busy enough to be reused.
 */
const pools = new Map<string, Shared>();

function keyOf(origin: string, tls: AgentTls, timeoutMs: number): string {
  const hash = createHash("sha256");
  for (const part of [tls.ca, tls.cert, tls.key]) {
    hash.update(part === undefined ? "-" : `${part.length}:`);
    if (part !== undefined) hash.update(part);
  }
  return JSON.stringify([origin, timeoutMs, tls.serverName ?? null, tls.insecureSkipVerify ?? false, hash.digest("hex")]);
}

/**
 * How much later than the check's timeout the pool's own connect, header and body timeouts fire. The check's
 * runner cuts a run off at its timeout and reports it; undici's timeouts only back that up, and at the same
 * moment they would race it and report one hang in another wording now and then.
 */
const BACKSTOP_MS = 1_000;

/** A share of the keep-alive pool to `origin` with these TLS settings, made on first use. */
export function leasePool(origin: string, tls: AgentTls, timeoutMs: number): PoolLease {
  const key = keyOf(origin, tls, timeoutMs);
  let shared = pools.get(key);
  if (!shared) {
    shared = { agent: upstreamAgent(tls, { timeoutMs: timeoutMs + BACKSTOP_MS }), users: 0 };
    pools.set(key, shared);
  }
  shared.users++;
  const mine = shared;
  let released = false;
  return {
    agent: mine.agent,
    async release() {
      if (released) return;
      released = true;
      mine.users--;
      if (mine.users > 0) return;
      if (pools.get(key) === mine) pools.delete(key);
      await mine.agent.destroy();
    },
  };
}
