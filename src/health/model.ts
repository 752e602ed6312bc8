import { EventEmitter } from "node:events";
import type { CheckStore, CheckView } from "../state/checks.ts";
import { readiness, type HealthReport, type SourceLine } from "./aggregate.ts";

/**
 * What the health endpoints and the gRPC health service read: the check store plus whether the process is
 * shutting down. Emits "change" whenever either may have changed an answer.
 */
export class HealthModel extends EventEmitter<{ change: [] }> {
  #shuttingDown = false;
  /**
   * Critical checks last seen not passing, by a change or by ready()'s last full look. Names that have passed or
   * gone since are dropped when ready() comes to them; one still failing settles ready() at once.
   */
  readonly #maybeFailing = new Set<string>();

  constructor(
    readonly store: CheckStore,
    private readonly sources: () => readonly SourceLine[] = () => [],
  ) {
    super();
    this.setMaxListeners(0); // one listener per open gRPC Watch stream
    store.on("change", (name, status) => {
      if (status === "pass") this.#maybeFailing.delete(name);
      else if (store.view(name)?.spec.critical) this.#maybeFailing.add(name);
      this.emit("change");
    });
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  beginShutdown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    this.emit("change");
  }

  /**
   * readiness().ok, answered without building the report while a critical check is known to fail: during a
   * start, when checks pass one by one, or while one flaps, every change would otherwise walk every check.
   */
  ready(): boolean {
    if (this.#shuttingDown) return false;
    for (const name of this.#maybeFailing) {
      const view = this.store.view(name);
      if (view?.spec.critical && view.status !== "pass") return false;
      this.#maybeFailing.delete(name);
    }
    const report = this.readiness();
    for (const item of report.items) if (!item.ok && !item.informational) this.#maybeFailing.add(item.name);
    return report.ok;
  }

  readiness(exclude?: ReadonlySet<string>): HealthReport {
    return readiness(this.store, { shuttingDown: this.#shuttingDown, sources: this.sources(), ...(exclude && { exclude }) });
  }

  check(name: string): CheckView | undefined {
    return this.store.view(name);
  }
}
