import { classifyError, UpstreamError } from "../errors.ts";
import { errorMessage, type Logger } from "../log.ts";
import { CONFLICT, type LeaseApi } from "./lease-client.ts";
import { type LeaseRecord, microTime, sameRecord, type StoredLease } from "./lease.ts";

export interface ElectionTiming {
  /** How long a follower waits, from the last change it saw, before it takes a Lease over. */
  leaseDurationMs: number;
  /** How long a leader keeps leading without a successful renewal before it steps down. */
  renewDeadlineMs: number;
  /** Time between attempts to acquire or renew; also the deadline of each request. */
  retryPeriodMs: number;
}

export interface ElectorSettings extends ElectionTiming {
  identity: string;
  /** namespace/name, for logs. */
  lease: string;
}

export interface ElectorHooks {
  /** Builds the Lease client; called again after a failure, so a connection that cannot be set up is retried. */
  connect(): Promise<LeaseApi>;
  /** This replica now leads: start the work only the leader does. */
  startedLeading(): void;
  /** This replica no longer leads: stop that work; resolves once it has stopped. */
  stoppedLeading(): Promise<void>;
  /** sidecar_leader. */
  gauge: { set(value: number): void };
  logger: Logger;
}

/** Followers spread their attempts a little, so replicas that started together do not race every round. */
const FOLLOWER_JITTER = 0.2;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, with the semantics of client-go's leaderelection: a
 * Lease held by another replica is respected until `leaseDuration` has passed since this replica last saw it
 * change (its own clock, so skew between nodes does not matter); an expired or released one is taken over
 * with an update at the observed resourceVersion, so of two replicas racing only one wins. The leader renews
 * every retry period and steps down at once when no renewal has succeeded within the renew deadline, which is
 * shorter than the lease duration: it stops before any follower can take over. On stop, a leader releases the
 * Lease so a successor need not wait for it to expire.
 */
export class LeaderElector {
  readonly #controller = new AbortController();
  #api: LeaseApi | undefined;
  #leading = false;
  /** The Lease as this replica last read or wrote it, and when (monotonic clock) its record last changed. */
  #observed: StoredLease | undefined;
  #observedAt = 0;
  /** Monotonic time the latest successful acquire or renew started: the leader's clock for the renew deadline. */
  #renewedAt = 0;
  #loggedHolder: string | undefined;
  #failing = false;
  #loop: Promise<void> | undefined;
  #decided: () => void = () => undefined;
  /** Resolves after the first attempt to acquire (won or not), or at stop: when it is known whether to lead. */
  readonly firstDecision = new Promise<void>((resolve) => (this.#decided = resolve));
  #stopping: Promise<void> | undefined;

  constructor(
    private readonly settings: ElectorSettings,
    private readonly hooks: ElectorHooks,
  ) {
    hooks.gauge.set(0);
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** The holder this replica last saw ("" when released), undefined before the first read. */
  get holder(): string | undefined {
    return this.#observed?.record.holderIdentity;
  }

  start(): void {
    this.#loop ??= this.#run(this.#controller.signal);
  }

  /** Stops campaigning; a leader stops its work, then hands the Lease back. Safe to call more than once. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#controller.abort();
      await this.#loop;
      this.#decided();
      const wasLeading = this.#leading;
      if (wasLeading) await this.#stepDown("shutting down", "info");
      if (wasLeading && this.#api) await this.#release(this.#api);
      await this.#api?.close().catch(() => undefined);
    })();
    return this.#stopping;
  }

  debug(): Record<string, unknown> {
    return {
      identity: this.settings.identity,
      lease: this.settings.lease,
      leading: this.#leading,
      holder: this.holder ?? null,
      leaseTransitions: this.#observed?.record.leaseTransitions ?? null,
    };
  }

  async #run(signal: AbortSignal): Promise<void> {
    const { retryPeriodMs, renewDeadlineMs } = this.settings;
    while (!signal.aborted) {
      if (this.#leading) {
        const left = this.#renewedAt + renewDeadlineMs - performance.now();
        if (left <= 0) {
          await this.#stepDown(`no renewal succeeded within the renew deadline (${renewDeadlineMs}ms)`);
          continue;
        }
        const renewed = await this.#attempt(Math.min(retryPeriodMs, left), signal);
        if (signal.aborted) break;
        if (!renewed && this.#heldByOther()) await this.#stepDown(`${this.holder ?? "another replica"} holds the lease now`);
        else await sleep(Math.min(retryPeriodMs, Math.max(0, this.#renewedAt + renewDeadlineMs - performance.now())), signal);
      } else {
        const acquired = await this.#attempt(retryPeriodMs, signal);
        this.#decided();
        if (signal.aborted) break;
        if (acquired) this.#becomeLeader();
        else await sleep(retryPeriodMs * (1 + Math.random() * FOLLOWER_JITTER), signal);
      }
    }
  }

  /** One round of acquire-or-renew; true when this replica holds the Lease afterwards. Never throws. */
  async #attempt(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const started = performance.now();
    // One deadline for the whole round, however many requests it takes.
    const deadline = started + timeoutMs;
    const remaining = (): number => {
      const left = deadline - performance.now();
      if (left <= 0) throw new UpstreamError(`lease requests took longer than ${timeoutMs}ms`, "timeout");
      return left;
    };
    try {
      this.#api ??= await this.hooks.connect();
      const won = await this.#tryAcquireOrRenew(this.#api, remaining, signal);
      if (won) this.#renewedAt = started;
      this.#recovered();
      return won;
    } catch (err) {
      if (!signal.aborted) this.#failed(err);
      return false;
    }
  }

  async #tryAcquireOrRenew(api: LeaseApi, remaining: () => number, signal: AbortSignal): Promise<boolean> {
    const now = Date.now();
    // A leader's last write is usually still current: renew it without reading first; a conflict (someone
    // wrote since, or the Lease was deleted) falls through to reading it.
    if (this.#leading && this.#observed?.record.holderIdentity === this.settings.identity) {
      const renewed = await api.update(this.#observed, this.#record(this.#observed.record, now), remaining(), signal);
      if (renewed !== CONFLICT) {
        this.#observe(renewed);
        return true;
      }
    }
    const current = await api.get(remaining(), signal);
    if (current === undefined) {
      const created = await api.create(this.#record(undefined, now), remaining(), signal);
      if (created !== CONFLICT) {
        this.#observe(created);
        return true;
      }
      // Another replica created it first: learn who holds it.
      await this.#reread(api, remaining, signal);
      return false;
    }
    this.#observe(current);
    if (this.#heldByOther() && this.#unexpired()) return false;
    const written = await api.update(current, this.#record(current.record, now), remaining(), signal);
    if (written !== CONFLICT) {
      this.#observe(written);
      return true;
    }
    await this.#reread(api, remaining, signal);
    return false;
  }

  async #reread(api: LeaseApi, remaining: () => number, signal: AbortSignal): Promise<void> {
    const current = await api.get(remaining(), signal);
    if (current) this.#observe(current);
  }

  /** The record this replica writes: a renewal keeps the acquisition, a takeover starts a new one. */
  #record(previous: LeaseRecord | undefined, now: number): LeaseRecord {
    const stamp = microTime(now);
    const mine = previous?.holderIdentity === this.settings.identity;
    return {
      holderIdentity: this.settings.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.settings.leaseDurationMs / 1000)),
      acquireTime: mine && previous.acquireTime !== undefined ? previous.acquireTime : stamp,
      renewTime: stamp,
      leaseTransitions: previous === undefined ? 0 : mine ? previous.leaseTransitions : previous.leaseTransitions + 1,
    };
  }

  #observe(lease: StoredLease): void {
    if (!sameRecord(this.#observed?.record, lease.record)) this.#observedAt = performance.now();
    this.#observed = lease;
    const holder = lease.record.holderIdentity;
    if (!this.#leading && holder !== "" && holder !== this.settings.identity && holder !== this.#loggedHolder) {
      this.#loggedHolder = holder;
      this.hooks.logger.info({ lease: this.settings.lease, holder, identity: this.settings.identity }, "following the leader");
    }
  }

  #heldByOther(): boolean {
    const holder = this.#observed?.record.holderIdentity ?? "";
    return holder !== "" && holder !== this.settings.identity;
  }

  /** Judged by this replica's clock since it saw the record change, with the duration the holder wrote. */
  #unexpired(): boolean {
    const seconds = this.#observed?.record.leaseDurationSeconds ?? 0;
    const durationMs = seconds > 0 ? seconds * 1000 : this.settings.leaseDurationMs;
    return this.#observedAt + durationMs > performance.now();
  }

  #becomeLeader(): void {
    this.#leading = true;
    this.#loggedHolder = undefined;
    this.hooks.gauge.set(1);
    const transitions = this.#observed?.record.leaseTransitions ?? 0;
    this.hooks.logger.info({ lease: this.settings.lease, identity: this.settings.identity, leaseTransitions: transitions }, "became leader");
    this.hooks.startedLeading();
  }

  async #stepDown(why: string, level: "info" | "warn" = "warn"): Promise<void> {
    if (!this.#leading) return;
    this.#leading = false;
    this.hooks.gauge.set(0);
    this.hooks.logger[level]({ lease: this.settings.lease, identity: this.settings.identity, reason: why }, "lost leadership");
    await this.hooks.stoppedLeading().catch((err: unknown) => this.hooks.logger.error({ err: errorMessage(err) }, "stopping the leader's sources failed"));
  }

  /** ReleaseOnCancel: an empty holder with a one-second duration, so any follower takes over at its next round. */
  async #release(api: LeaseApi): Promise<void> {
    const signal = new AbortController().signal;
    const deadline = performance.now() + this.settings.retryPeriodMs;
    const remaining = (): number => Math.max(1, deadline - performance.now());
    const released = (previous: LeaseRecord): LeaseRecord => {
      const stamp = microTime(Date.now());
      return { holderIdentity: "", leaseDurationSeconds: 1, acquireTime: stamp, renewTime: stamp, leaseTransitions: previous.leaseTransitions };
    };
    try {
      let current = this.#observed;
      for (let round = 0; round < 2 && current?.record.holderIdentity === this.settings.identity; round++) {
        const written = await api.update(current, released(current.record), remaining(), signal);
        if (written !== CONFLICT) {
          this.#observe(written);
          this.hooks.logger.info({ lease: this.settings.lease, identity: this.settings.identity }, "released the leader lease");
          return;
        }
        // A renewal cut off by the stop may have landed: read the current version and try once more.
        current = await api.get(remaining(), signal);
      }
    } catch (err) {
      this.hooks.logger.warn({ lease: this.settings.lease, err: errorMessage(err) }, "could not release the leader lease; a successor takes over once it expires");
    }
  }

  #failed(err: unknown): void {
    const fields = { lease: this.settings.lease, reason: classifyError(err), err: errorMessage(err) };
    // Once per run of failures: the next attempt comes within seconds, and so would the next line.
    if (!this.#failing) this.hooks.logger.warn(fields, "leader election: lease request failed");
    else this.hooks.logger.debug(fields, "leader election: lease request still failing");
    this.#failing = true;
  }

  #recovered(): void {
    if (this.#failing) this.hooks.logger.info({ lease: this.settings.lease }, "leader election: lease requests work again");
    this.#failing = false;
  }
}
