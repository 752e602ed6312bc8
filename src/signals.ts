/**
 * SIGTERM, SIGINT and SIGHUP, taken before the first port opens: with no listener for one of them, Node ends the
 * process at once (exit 143, 130, 129), open ports and all. One that comes while the process cannot act on it yet,
 * because it is still starting, is kept until it can.
 */
export type StopSignal = "SIGTERM" | "SIGINT";

type SignalSource = Pick<NodeJS.EventEmitter, "on">;

export class ProcessSignals {
  #stopsWaiting: StopSignal[] = [];
  #firstStop: StopSignal | undefined;
  #onStop: ((signal: StopSignal) => void) | undefined;
  #hangupWaiting = false;
  #onHangup: (() => void) | undefined;

  /** Listens from now on, for the life of the process: a listener removed later would bring Node's default back. */
  constructor(source: SignalSource = process) {
    source.on("SIGTERM", () => this.#stop("SIGTERM"));
    source.on("SIGINT", () => this.#stop("SIGINT"));
    source.on("SIGHUP", () => this.#hangup());
  }

  /** The first SIGTERM or SIGINT, once one has come. */
  get stopRequested(): StopSignal | undefined {
    return this.#firstStop;
  }

  /** `handler` takes every SIGTERM and SIGINT, those that came already first, in order. */
  onStop(handler: (signal: StopSignal) => void): void {
    this.#onStop = handler;
    for (const signal of this.#stopsWaiting.splice(0)) handler(signal);
  }

  /**
   * `handler` takes every SIGHUP from now on, and is called once at once if any came while there was none: a
   * reload reads the file as it is then, so one reload answers them all. Undefined: SIGHUPs are ignored.
   */
  onHangup(handler: (() => void) | undefined): void {
    this.#onHangup = handler;
    if (handler && this.#hangupWaiting) {
      this.#hangupWaiting = false;
      handler();
    }
  }

  #stop(signal: StopSignal): void {
    this.#firstStop ??= signal;
    if (this.#onStop) this.#onStop(signal);
    else this.#stopsWaiting.push(signal);
  }

  #hangup(): void {
    if (this.#onHangup) this.#onHangup();
    else this.#hangupWaiting = true;
  }
}
