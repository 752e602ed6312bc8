import type { BackupTargetState } from "../../checks/types.ts";
import { type BackupsSourceConfig, type Schedule, SOURCE_NAMES } from "../config.ts";
import { PolledSource } from "../poller.ts";
import type { Source, SourceContext, SourceStatus } from "../types.ts";
import { BackupsDriver, defaultListerFor, type ListerFactory } from "./driver.ts";

/**
 * The etcd backups source: a polled source that also answers for each backup target, which is what `backup`
 * checks read (the source registry finds it by its `backupTarget` method).
 */
export class BackupsSource implements Source {
  readonly name = SOURCE_NAMES.backups;
  readonly #polled: PolledSource;
  readonly #driver: BackupsDriver;

  constructor(config: BackupsSourceConfig & Schedule, ctx: SourceContext, listerFor: ListerFactory = defaultListerFor) {
    this.#driver = new BackupsDriver(config, ctx.metrics.handles, ctx.logger, listerFor, ctx.seriesLimit);
    this.#polled = new PolledSource(this.name, config, this.#driver, ctx.metrics.handles, ctx.logger);
  }

  start(): void {
    this.#polled.start();
  }

  stop(): Promise<void> {
    return this.#polled.stop();
  }

  get firstResult(): Promise<void> {
    return this.#polled.firstResult;
  }

  refresh(): Promise<void> {
    return this.#polled.refresh();
  }

  status(): SourceStatus {
    return this.#polled.status();
  }

  /** Per-target state is read live: after a failed poll the targets still tell which one failed and why. */
  debug(): Record<string, unknown> {
    return { ...this.#polled.debug(), targets: this.#driver.debugTargets() };
  }

  backupTarget(name: string): BackupTargetState | undefined {
    return this.#driver.target(name);
  }
}

export function createBackupsSource(config: BackupsSourceConfig & Schedule, ctx: SourceContext): BackupsSource {
  return new BackupsSource(config, ctx);
}
