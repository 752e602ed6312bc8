import { Budget, type BudgetOptions } from "../../metrics/budget.ts";

/**
 * How many objects one watch-driven source keeps across all its kinds and namespaces, so a flood of objects
 * cannot exhaust the exporter's memory; what finds no room is counted in sidecar_objects_dropped_total{source,kind}.
 */
export class ObjectBudget extends Budget {
  constructor(opts: BudgetOptions) {
    super(opts, "object limit reached: new objects are left out (raise sources.kubernetes.maxObjects if the cluster really has that many)");
  }

  /** Makes the kind's count exist at zero. */
  track(kind: string): void {
    this.start({ kind });
  }

  /** Counts objects of `kind` that found no room, and warns about it at most once a minute. */
  drop(kind: string, count: number): void {
    this.count(count, { kind }, { kind });
  }
}
