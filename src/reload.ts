import { createHash } from "node:crypto";
import { firstFindings } from "./config/findings.ts";
import { loadConfig } from "./config/load.ts";
import { readConfigFile } from "./config/read-file.ts";
import type { Logger } from "./log.ts";
import { errorMessage } from "./log.ts";
import type { Runtime } from "./runtime.ts";

/**
 * Re-reads the configuration when asked (the CLI asks on SIGHUP) or when the file changes, and hands a valid one
 * to the runtime. A mounted ConfigMap changes by an atomic swap of a symlink (`..data`), which file watchers miss
 * or report on the wrong path, so the file's content is compared on a timer instead. An invalid file is rejected
 * with the same field errors as at start, and the running configuration stays.
 */
export class ConfigReloader {
  #digest: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<boolean> | undefined;

  constructor(
    private readonly file: string | undefined,
    private readonly runtime: Runtime,
    private readonly logger: Logger,
    private readonly pollMs = 5_000,
  ) {}

  async start(): Promise<void> {
    if (this.file === undefined) return;
    this.#digest = await this.#read();
    this.#timer = setInterval(() => void this.#poll(), this.pollMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /**
   * What the file holds now, to compare with the last look: a digest of its text, or the reason it is refused (not
   * a regular file, too large), read as the loader reads it so that neither waits on a FIFO nor reads without
   * bound. Undefined when it cannot be opened: mid-swap or gone, the next round looks again.
   */
  async #read(): Promise<string | undefined> {
    if (this.file === undefined) return undefined;
    const read = await readConfigFile(this.file);
    if (read.ok) return createHash("sha256").update(read.text).digest("hex");
    return read.refused ? `refused: ${read.message}` : undefined;
  }

  async #poll(): Promise<void> {
    const digest = await this.#read();
    if (digest === undefined || digest === this.#digest) return;
    this.#digest = digest;
    await this.reload("file changed");
  }

  /** Loads and applies the file once; concurrent triggers share one reload. Resolves true when applied. */
  reload(trigger: string): Promise<boolean> {
    this.#running ??= this.#reload(trigger).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #reload(trigger: string): Promise<boolean> {
    const { handles } = this.runtime.metrics;
    const result = await loadConfig(this.file);
    if (!result.ok) {
      handles.configReloads.inc({ result: "failure" });
      const { shown, more } = firstFindings(result.errors);
      this.logger.error(
        { trigger, file: this.file, errors: shown.map((e) => `${e.path}: ${e.message}`), ...(more > 0 && { moreErrors: more }) },
        "configuration reload rejected; the running configuration stays",
      );
      return false;
    }
    const { shown, more } = firstFindings(result.warnings);
    for (const w of shown) this.logger.warn({ path: w.path }, `configuration: ${w.message}`);
    if (more > 0) this.logger.warn({ more }, "configuration: further warnings, not shown");
    try {
      const outcome = await this.runtime.applyConfig(result.config);
      handles.configReloads.inc({ result: "success" });
      handles.configLastReloadSuccess.set(Date.now() / 1000);
      this.logger.info({ trigger, ...outcome }, "configuration reloaded");
      if (outcome.needsRestart.length > 0) {
        this.logger.warn({ settings: outcome.needsRestart }, "these settings change only with a restart; the rest was applied");
      }
      return true;
    } catch (err) {
      handles.configReloads.inc({ result: "failure" });
      this.logger.error({ trigger, err: errorMessage(err) }, "configuration reload failed while applying it");
      return false;
    }
  }
}
