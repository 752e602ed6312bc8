import { classifyError, type FailureReason } from "../../errors.ts";
import { errorMessage, type Logger } from "../../log.ts";
import { inSpan } from "../../tracing/spans.ts";
import { RetryAfterError } from "../health.ts";
import { ExpiredError, type KubeClient, type ResourceRef, type WatchEvent } from "./client.ts";
import type { ObjectBudget } from "./object-budget.ts";
import { asObject, asString, type Json, metaOf, type ObjectMeta } from "./objects.ts";

export type InformerState = "pending" | "synced" | "failed";

export interface InformerOutcome {
  ok: boolean;
  phase: "list" | "watch";
  durationMs: number;
  error?: unknown;
}

export interface InformerTiming {
  /** timeoutSeconds of each watch request; the server ends the stream then and the informer re-watches. */
  watchTimeoutSeconds: number;
  pageSize: number;
  /**
   * First retry delay after a failure or a watch that ended early with nothing delivered; doubles with each one
   * in a row up to backoffMaxMs, with jitter.
   */
  backoffBaseMs: number;
  /** Also how long a watch must stay open without an error to count as working when it delivers nothing. */
  backoffMaxMs: number;
  /** A missing CRD is retried this slowly: it is usually installed later, not seconds later. */
  notFoundRetryMs: number;
}

export interface InformerOptions<T> {
  client: KubeClient;
  ref: ResourceRef;
  kind: string;
  /** undefined: every namespace (or a cluster-scoped kind). */
  namespace: string | undefined;
  /** Room for objects, shared with the source's other informers. */
  budget: ObjectBudget;
  project(obj: Json, meta: ObjectMeta): T;
  /**
   * Whether a new view of a stored object says nothing new; the store then keeps the view it has and nobody is
   * told. Without it every event and every listed object is a change.
   */
  same?(stored: T, next: T): boolean;
  /** An object entered the store, new (`previous` undefined) or in place of `previous`. Synchronous; must not throw. */
  onStored(view: T, previous: T | undefined): void;
  /** An object left the store (deleted, or gone at a re-list). Synchronous; must not throw. */
  onRemoved(view: T): void;
  /** A list has been applied: the store now holds what the server held then. Synchronous; must not throw. */
  onListed(): void;
  /** A list or watch attempt succeeded or failed. Must not throw. */
  onOutcome(outcome: InformerOutcome): void;
  logger: Logger;
  timing: InformerTiming;
}

/** Resolves after `ms`, or at once when `signal` aborts; leaves no timer behind either way. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
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

/** Exponential backoff with jitter, stretched for a missing CRD and never shorter than a Retry-After. */
export function retryDelayMs(err: unknown, failures: number, timing: InformerTiming, random: () => number = Math.random): number {
  const exp = Math.min(timing.backoffMaxMs, timing.backoffBaseMs * 2 ** Math.max(0, failures - 1));
  let delay = exp / 2 + (random() * exp) / 2;
  if (classifyError(err) === "not_found") delay = Math.max(delay, timing.notFoundRetryMs);
  if (err instanceof RetryAfterError && err.retryAfterMs !== undefined) delay = Math.max(delay, err.retryAfterMs);
  return delay;
}

/**
 * Keeps an up-to-date store of one kind in one namespace scope: lists it, then watches from the list's
 * resourceVersion. A watch that the server ends is re-opened from the last version seen (BOOKMARKs move it);
 * a 410 Expired answer or event forces a fresh list; other errors back off and retry the step that failed. An
 * undecodable event fails the watch, which resumes from the last version decoded: the server sends everything
 * after it again, so nothing is lost and no list is needed. Every change to the store is told object by object
 * (onStored, onRemoved), so a reader can follow it without looking at the whole store again. A list is applied
 * to the store in one synchronous step, so no reader sees a half-applied one. New objects are kept only while
 * the shared budget has room; the others are counted as left out.
 */
export class Informer<T> {
  readonly store = new Map<string, T>();
  #state: InformerState = "pending";
  #error: string | undefined;
  #reason: FailureReason | undefined;
  #failures = 0;
  /** Watches in a row that ended early with nothing delivered: no failure, but they back off like one. */
  #earlyEnds = 0;
  /** Objects known to exist that the store does not hold for want of room. */
  #leftOut = 0;
  #resourceVersion: string | undefined;
  #listedAt: number | undefined;
  #watching = false;
  #controller: AbortController | undefined;
  #loop: Promise<void> | undefined;
  readonly #log: Logger;

  constructor(private readonly opts: InformerOptions<T>) {
    this.#log = opts.logger.child({ kind: opts.kind, ...(opts.namespace !== undefined && { namespace: opts.namespace }) });
  }

  get kind(): string {
    return this.opts.kind;
  }

  get namespace(): string | undefined {
    return this.opts.namespace;
  }

  get state(): InformerState {
    return this.#state;
  }

  /** True once a list has succeeded: the store then reflects the server, if perhaps not the latest of it. */
  get listed(): boolean {
    return this.#listedAt !== undefined;
  }

  get error(): string | undefined {
    return this.#error;
  }

  get reason(): FailureReason | undefined {
    return this.#reason;
  }

  get leftOut(): number {
    return this.#leftOut;
  }

  /** Attempts in a row that proved nothing: they set the backoff. */
  get #retries(): number {
    return this.#failures + this.#earlyEnds;
  }

  get running(): boolean {
    return this.#loop !== undefined;
  }

  start(): void {
    if (this.#loop) return;
    const controller = new AbortController();
    this.#controller = controller;
    this.#loop = this.#run(controller.signal).catch((err: unknown) => {
      // #run handles its own errors; reaching here is a defect, reported rather than left unhandled.
      this.#log.error({ err: errorMessage(err) }, "informer stopped unexpectedly");
    });
  }

  /** Aborts the request in flight and any pending retry, and waits until nothing of it is left running. */
  async stop(): Promise<void> {
    this.#controller?.abort();
    await this.#loop;
    this.#loop = undefined;
    this.#controller = undefined;
  }

  /** One list now, outside the watch loop (for a one-off refresh). Failures are recorded, not thrown. */
  async listOnce(signal: AbortSignal): Promise<void> {
    const started = performance.now();
    try {
      await this.#list(signal);
    } catch (err) {
      if (!signal.aborted) this.#failed(err, performance.now() - started, "list");
    }
  }

  async #run(signal: AbortSignal): Promise<void> {
    let needList = true;
    let expiredInRow = 0;
    while (!signal.aborted) {
      let phase: "list" | "watch" = needList ? "list" : "watch";
      const started = performance.now();
      try {
        if (needList) {
          await this.#list(signal);
          needList = false;
          phase = "watch";
        }
        const endedEarly = await this.#watch(signal);
        expiredInRow = 0;
        // The server ended the stream: resume from the last version seen, at once after a watch that proved
        // itself, and backing off from one that ended early with nothing, so a server that ends every watch as
        // it opens is not asked again in a tight loop.
        if (endedEarly) {
          this.#earlyEnds++;
          this.#log.debug({ earlyWatchEnds: this.#earlyEnds }, "watch ended early with nothing delivered");
          await sleep(retryDelayMs(undefined, this.#retries, this.opts.timing), signal);
        }
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof ExpiredError && phase === "watch") {
          this.#log.debug({ err: errorMessage(err) }, "watch expired, listing again");
          needList = true;
          expiredInRow++;
          if (expiredInRow > 1) await sleep(retryDelayMs(err, expiredInRow - 1, this.opts.timing), signal);
          continue;
        }
        this.#failed(err, phase === "list" ? performance.now() - started : 0, phase);
        await sleep(retryDelayMs(err, this.#retries, this.opts.timing), signal);
      }
    }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const started = performance.now();
    const attributes = { "source.name": "kubernetes", "kubernetes.kind": this.opts.kind, ...(this.opts.namespace !== undefined && { "k8s.namespace.name": this.opts.namespace }) };
    const { budget } = this.opts;
    const next = new Map<string, T>();
    // Room is taken page by page for objects the store does not hold yet, so a list never holds more than the
    // budget allows. Room held by stored objects the list no longer has comes free only once it is applied: new
    // objects left out for want of it come in at their next change or list.
    let taken = 0;
    let leftOut = 0;
    const read = (items: Json[], fromTop: boolean): void => {
      if (fromTop) {
        budget.release(taken);
        next.clear();
        taken = leftOut = 0;
      }
      for (const obj of items) {
        const meta = metaOf(obj);
        if (!meta) continue;
        if (!next.has(meta.key) && !this.store.has(meta.key)) {
          if (!budget.take()) {
            leftOut++;
            continue;
          }
          taken++;
        }
        next.set(meta.key, this.opts.project(obj, meta));
      }
    };
    let resourceVersion: string;
    try {
      resourceVersion = await inSpan(`list ${this.opts.kind}`, "source", attributes, () =>
        this.opts.client.list(this.opts.ref, this.opts.namespace, this.opts.timing.pageSize, signal, read),
      );
    } catch (err) {
      budget.release(taken);
      throw err;
    }
    // Vanished objects leave first: a reader that keeps something per name (a series) sees an object deleted and
    // made again under its name while the watch was down go before its successor comes, and the series room the
    // vanished held is free before new objects ask for theirs.
    for (const [key, view] of this.store) {
      if (next.has(key)) continue;
      this.store.delete(key);
      budget.release(1);
      this.opts.onRemoved(view);
    }
    for (const [key, view] of next) this.#put(key, view, this.store.get(key));
    this.#leftOut = leftOut;
    budget.drop(this.opts.kind, leftOut);
    this.#resourceVersion = resourceVersion;
    this.#listedAt = Date.now();
    this.opts.onListed();
    this.#succeeded(performance.now() - started, "list");
  }

  /**
   * One watch, until the server ends it; resolves to whether it ended early with nothing to show for it. Opening
   * a watch proves nothing (a server can accept one and then send garbage): the kind counts as working again, and
   * its backoff starts over, at the first decoded event (bookmarks included), once the watch has stayed open
   * without an error as long as the longest backoff, or when the server ends it at its timeoutSeconds.
   */
  async #watch(signal: AbortSignal): Promise<boolean> {
    const { timing } = this.opts;
    const opened = performance.now();
    let proven = false;
    let openLongEnough: NodeJS.Timeout | undefined;
    const prove = (): void => {
      if (proven) return;
      proven = true;
      clearTimeout(openLongEnough);
      if (this.#state !== "synced" || this.#retries > 0) this.#succeeded(0, "watch");
    };
    try {
      await this.opts.client.watch(
        this.opts.ref,
        this.opts.namespace,
        { resourceVersion: this.#resourceVersion ?? "", timeoutSeconds: timing.watchTimeoutSeconds },
        signal,
        {
          onOpen: () => {
            this.#watching = true;
            openLongEnough = setTimeout(prove, timing.backoffMaxMs);
          },
          onEvent: (ev) => {
            this.#apply(ev);
            prove();
          },
        },
      );
    } finally {
      clearTimeout(openLongEnough);
      this.#watching = false;
    }
    // Ended when it was asked to end (the server's clock may run a little ahead of this one).
    if (performance.now() - opened >= timing.watchTimeoutSeconds * 900) prove();
    return !proven;
  }

  #apply(ev: WatchEvent): void {
    if (ev.type === "BOOKMARK") {
      const rv = asString(asObject(ev.object.metadata)?.resourceVersion);
      if (rv !== undefined) this.#resourceVersion = rv;
      return;
    }
    const meta = metaOf(ev.object);
    // An event without a name cannot be stored; it moves nothing forward either.
    if (!meta) return;
    const previous = this.store.get(meta.key);
    if (ev.type === "DELETED") {
      if (previous !== undefined) {
        this.store.delete(meta.key);
        this.opts.budget.release(1);
        this.opts.onRemoved(previous);
      } else if (this.#leftOut > 0) {
        this.#leftOut--;
      }
    } else if (previous !== undefined || this.#admit(ev.type === "ADDED")) {
      this.#put(meta.key, this.opts.project(ev.object, meta), previous);
    }
    if (meta.resourceVersion !== undefined) this.#resourceVersion = meta.resourceVersion;
  }

  /**
   * Room for an object the store does not hold. Without room an ADDED object is counted as left out; any other
   * event for an object not held is about one already counted (left out at a list or when it was added), which
   * takes the room when there is some again.
   */
  #admit(added: boolean): boolean {
    const countedBefore = !added && this.#leftOut > 0;
    if (!this.opts.budget.take()) {
      if (!countedBefore) {
        this.#leftOut++;
        this.opts.budget.drop(this.opts.kind, 1);
      }
      return false;
    }
    if (countedBefore) this.#leftOut--;
    return true;
  }

  /** Stores `view` in place of `previous` (which has its room already), unless it says nothing new. */
  #put(key: string, view: T, previous: T | undefined): void {
    if (previous !== undefined && this.opts.same?.(previous, view)) return;
    this.store.set(key, view);
    this.opts.onStored(view, previous);
  }

  #succeeded(durationMs: number, phase: "list" | "watch"): void {
    if (this.#state === "failed") this.#log.info({ phase }, "kind recovered");
    this.#state = "synced";
    this.#error = this.#reason = undefined;
    this.#failures = this.#earlyEnds = 0;
    this.opts.onOutcome({ ok: true, phase, durationMs });
  }

  #failed(err: unknown, durationMs: number, phase: "list" | "watch"): void {
    this.#failures++;
    const wasFailing = this.#state === "failed";
    this.#state = "failed";
    this.#error = errorMessage(err);
    this.#reason = classifyError(err);
    const fields = { phase, reason: this.#reason, err: this.#error, failures: this.#failures };
    if (wasFailing) this.#log.debug(fields, "kind still failing");
    else this.#log.warn(fields, "kind failing");
    this.opts.onOutcome({ ok: false, phase, durationMs, error: err });
  }

  debug(): Record<string, unknown> {
    return {
      kind: this.opts.kind,
      namespace: this.opts.namespace ?? null,
      state: this.#state,
      objects: this.store.size,
      leftOut: this.#leftOut,
      resourceVersion: this.#resourceVersion ?? null,
      watching: this.#watching,
      listedAt: this.#listedAt ? new Date(this.#listedAt).toISOString() : null,
      error: this.#error ?? null,
      reason: this.#reason ?? null,
      consecutiveFailures: this.#failures,
      earlyWatchEnds: this.#earlyEnds,
    };
  }
}
