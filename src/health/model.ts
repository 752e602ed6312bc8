import { EventEmitter } from "node:events";
import type { CheckStore, CheckView } from "../state/checks.ts";
import { readiness, type HealthReport, type SourceLine } from "./aggregate.ts";

/**
 * What the health endpoints and the gRPC health service read: the check store plus whether the process is
 * shutting down. Emits "change" whenever either may have changed an answer.
 */
export class HealthModel extends EventEmitter<{ change: [] }> {
  #shuttingDown = false;

  constructor(
    readonly store: CheckStore,
    private readonly sources: () => readonly SourceLine[] = () => [],
  ) {
    super();
    this.setMaxListeners(0); // one listener per open gRPC Watch stream
    store.on("change", () => this.emit("change"));
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  beginShutdown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    this.emit("change");
  }

  readiness(exclude?: ReadonlySet<string>): HealthReport {
    return readiness(this.store, { shuttingDown: this.#shuttingDown, sources: this.sources(), ...(exclude && { exclude }) });
  }

  check(name: string): CheckView | undefined {
    return this.store.view(name);
  }
}
