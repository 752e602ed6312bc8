import type { Dispatcher } from "undici";
import { UpstreamError } from "../errors.ts";

/**
 * How much of a body nobody reads is drained so the connection can be kept; past this the connection is dropped
 * instead. The same limit undici's body.dump() uses.
 */
const DISCARD_LIMIT = 128 * 1024;

/** What stays the same from one run of a check to the next. */
export interface ExchangeTarget {
  origin: string;
  /** Path and query. */
  path: string;
  method: string;
  /**
   * The longest body to keep, as text, for a response with this status; undefined discards the body. A kept body
   * longer than that fails the exchange with reason `decode`, naming `what`.
   */
  keepBody(status: number): number | undefined;
  what: string;
}

/** A finished exchange: the final status (1xx are skipped) and the kept body, if it was kept. */
export interface Answer {
  readonly status: number;
  readonly body: string | undefined;
}

/**
 * One request, settled once its body is over: kept (capped) or discarded as it arrives. undici's request() would
 * wrap every response in a Readable stream and an AsyncResource; a check needs neither and runs often enough for
 * that to show. Fails when no response comes, or when a kept body fails; a discarded body cannot fail it (a
 * connection broken after the status only ends the draining, as with undici's body.dump()).
 */
export function exchange(dispatcher: Dispatcher, target: ExchangeTarget, headers: Record<string, string>, signal: AbortSignal): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const handler = new ExchangeHandler(target, signal, resolve, reject);
    dispatcher.dispatch({ origin: target.origin, path: target.path, method: target.method as Dispatcher.HttpMethod, headers }, handler);
  });
}

class ExchangeHandler implements Dispatcher.DispatchHandler, Answer {
  status = 0;
  body: string | undefined;
  #phase: "waiting" | "body" | "done" = "waiting";
  #controller: Dispatcher.DispatchController | undefined;
  /** Why the caller gave up, when that happened before undici handed over the controller. */
  #abortReason: Error | undefined;
  /** Bytes to keep, or undefined when the body is discarded. */
  #cap: number | undefined;
  #chunks: Buffer[] = [];
  #size = 0;
  readonly #onAbort = (): void => {
    const reason = abortReason(this.signal);
    if (this.#controller) this.#controller.abort(reason);
    else this.#abortReason = reason;
  };

  constructor(
    private readonly target: ExchangeTarget,
    private readonly signal: AbortSignal,
    private readonly resolve: (answer: Answer) => void,
    private readonly reject: (err: unknown) => void,
  ) {
    if (signal.aborted) this.#abortReason = abortReason(signal);
    else signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abortReason !== undefined) controller.abort(this.#abortReason);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200 || this.#phase !== "waiting") return;
    this.#phase = "body";
    this.status = statusCode;
    this.#cap = this.target.keepBody(statusCode);
    if (this.#cap === undefined && this.target.method !== "HEAD" && Number(headers["content-length"]) > DISCARD_LIMIT) this.#dropDiscarded(controller);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#phase !== "body") return;
    const cap = this.#cap;
    if (cap === undefined) {
      this.#size += chunk.length;
      if (this.#size > DISCARD_LIMIT) this.#dropDiscarded(controller);
      return;
    }
    if (this.#size + chunk.length > cap) {
      const err = new UpstreamError(`${this.target.what}: response is larger than ${cap} bytes`, "decode");
      this.#fail(err);
      controller.abort(err);
      return;
    }
    this.#size += chunk.length;
    this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.#phase !== "body") return;
    if (this.#cap !== undefined) this.body = Buffer.concat(this.#chunks, this.#size).toString("utf8");
    this.#succeed();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#phase === "body" && this.#cap === undefined) this.#succeed();
    else if (this.#phase !== "done") this.#fail(err);
  }

  /** Gives up on a discarded body too long to drain: the connection goes, the answer stands. */
  #dropDiscarded(controller: Dispatcher.DispatchController): void {
    this.#succeed();
    controller.abort(new Error("response body not read"));
  }

  #succeed(): void {
    this.#end();
    this.resolve(this);
  }

  #fail(err: unknown): void {
    this.#end();
    this.reject(err);
  }

  #end(): void {
    this.#phase = "done";
    this.#chunks = [];
    this.signal.removeEventListener("abort", this.#onAbort);
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error("aborted");
}
