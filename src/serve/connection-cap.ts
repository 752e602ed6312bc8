/**
 * The connections one server keeps open (limits.maxConnections), and which one gives way when a new one arrives at
 * the cap. Node's own server.maxConnections turns the newcomer away, so a cap's worth of clients that connect and
 * then sit idle, or send their request a byte at a time, would keep the kubelet's probes out. Here the cap makes
 * room instead: it closes the keep-alive connection idle the longest (nothing received since its last answer), else
 * the connection waiting the longest (a request still arriving, an answer its client does not read, nothing sent
 * yet). Only when every connection has a request being answered is the newcomer closed, and a request's timeout
 * bounds that.
 *
 * It also closes connections left at rest too long, which Node does not always do: a connection that never sends
 * a byte has no timeout at all in node:http, nor one that never finishes its HTTP/2 preface in grpc-js.
 */
import type { Socket } from "node:net";

/** Why the cap closed a connection: to make room for a new one (idle, stalled), or the new one itself (refused). */
export type DropReason = "idle" | "stalled" | "refused";
export const DROP_REASONS: readonly DropReason[] = ["idle", "stalled", "refused"];
/** Told of connections the cap closed, `count` of them for one reason. */
export type DropReport = (reason: DropReason, count: number) => void;

/** Something being answered on a connection: an HTTP response, a gRPC stream. Ended once the server wrote all of it. */
export interface InFlight {
  readonly writableEnded: boolean;
}

/**
 * A connection's remote end as `address:port`, the form grpc-js gives as a call's peer. It names the connection
 * for the requests that arrive on it, whether they see the TCP socket itself or a TLS socket over it.
 */
export function peerOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string | undefined {
  return socket.remoteAddress === undefined ? undefined : `${socket.remoteAddress}:${socket.remotePort ?? ""}`;
}

export interface CapOptions {
  /** Connections open at once; Infinity for no cap. */
  max: number;
  /** A connection with nothing in flight and nothing received is closed after this long at rest. */
  idleTimeoutMs: number;
  /** A connection with nothing being worked on but something arriving or left unread is closed after this long. */
  stalledTimeoutMs: number;
}

type State = "busy" | "idle" | "stalled";

class Connection {
  readonly inFlight = new Set<InFlight>();
  /** When it last started or finished something, or was accepted: how long it has been idle or stalled. */
  restSince: number;
  #bytesAtRest: number;
  /** Whether it has been answered at least once: an idle keep-alive connection rather than a new one. */
  answered = false;

  constructor(
    readonly peer: string,
    readonly socket: Socket,
  ) {
    this.restSince = performance.now();
    this.#bytesAtRest = socket.bytesRead;
  }

  rest(): void {
    this.restSince = performance.now();
    // bytesRead counts at the handle, so it moves even while node:http's parser reads the socket natively.
    this.#bytesAtRest = this.socket.bytesRead;
  }

  state(): State {
    if (this.inFlight.size > 0) {
      for (const work of this.inFlight) if (!work.writableEnded) return "busy";
      return "stalled";
    }
    return this.socket.bytesRead > this.#bytesAtRest ? "stalled" : "idle";
  }
}

export class ConnectionCap {
  readonly #open = new Map<string, Connection>();
  readonly #sweeper: NodeJS.Timeout;
  #report: DropReport | undefined;
  /** Drops made before anyone listened (the health server opens before the metrics registry exists). */
  readonly #unreported = new Map<DropReason, number>();

  constructor(private readonly options: CapOptions) {
    const shortest = Math.min(options.idleTimeoutMs, options.stalledTimeoutMs);
    this.#sweeper = setInterval(() => this.#closeRested(), Math.min(1_000, Math.max(10, shortest / 2)));
    this.#sweeper.unref();
  }

  /** Connections open now. */
  get size(): number {
    return this.#open.size;
  }

  /** Takes a newly accepted connection, making room for it or closing it at once. */
  admit(socket: Socket): void {
    const peer = peerOf(socket);
    if (peer === undefined) return; // already gone
    if (this.#open.size >= this.options.max && !this.#makeRoom()) {
      socket.destroy();
      this.#drop("refused");
      return;
    }
    const connection = new Connection(peer, socket);
    this.#open.set(peer, connection);
    socket.once("close", () => {
      if (this.#open.get(peer) === connection) this.#open.delete(peer);
    });
  }

  /** Marks `work` as being answered on the connection of `peer`; the function returned marks it done. */
  hold(peer: string | undefined, work: InFlight): () => void {
    const connection = peer === undefined ? undefined : this.#open.get(peer);
    if (!connection) return () => undefined;
    connection.inFlight.add(work);
    connection.rest();
    return () => {
      if (!connection.inFlight.delete(work)) return;
      connection.answered = true;
      connection.rest();
    };
  }

  /** Something was answered at once on the connection of `peer` (a unary call): it is not idle. */
  touch(peer: string | undefined): void {
    const connection = peer === undefined ? undefined : this.#open.get(peer);
    if (!connection) return;
    connection.answered = true;
    connection.rest();
  }

  /** Passes every drop to `report`, those already made first. */
  onDrop(report: DropReport): void {
    this.#report = report;
    for (const [reason, count] of this.#unreported) report(reason, count);
    this.#unreported.clear();
  }

  /** Stops closing connections left at rest; the server closes the rest itself. */
  stop(): void {
    clearInterval(this.#sweeper);
  }

  /**
   * Closes the connections nothing was ever answered on and nothing is in flight on, for a server that shuts down:
   * the others are closed by their protocol, after what they were last sent has reached them.
   */
  closeUnused(): void {
    for (const connection of this.#open.values()) if (!connection.answered && connection.inFlight.size === 0) this.#close(connection);
  }

  closeAll(): void {
    for (const connection of this.#open.values()) this.#close(connection);
  }

  #drop(reason: DropReason): void {
    if (this.#report) this.#report(reason, 1);
    else this.#unreported.set(reason, (this.#unreported.get(reason) ?? 0) + 1);
  }

  #close(connection: Connection): void {
    this.#open.delete(connection.peer);
    connection.socket.destroy();
  }

  /**
   * Closes the connection that has waited the longest since its last answer, else the one waiting the longest of
   * the rest (a request head still arriving, an answer left unread, or nothing sent yet); false when every one is
   * busy. Age decides among the rest because a new connection has sent nothing yet either: the probe that just
   * connected is the last of them to go.
   */
  #makeRoom(): boolean {
    let kept: Connection | undefined;
    let waiting: Connection | undefined;
    for (const connection of this.#open.values()) {
      const state = connection.state();
      if (state === "busy") continue;
      if (state === "idle" && connection.answered && (!kept || connection.restSince < kept.restSince)) kept = connection;
      if (!waiting || connection.restSince < waiting.restSince) waiting = connection;
    }
    const victim = kept ?? waiting;
    if (!victim) return false;
    this.#drop(victim.state() === "idle" ? "idle" : "stalled");
    this.#close(victim);
    return true;
  }

  #closeRested(): void {
    const now = performance.now();
    for (const connection of this.#open.values()) {
      const state = connection.state();
      if (state === "busy") continue;
      const limit = state === "idle" ? this.options.idleTimeoutMs : this.options.stalledTimeoutMs;
      if (now - connection.restSince >= limit) this.#close(connection);
    }
  }
}
