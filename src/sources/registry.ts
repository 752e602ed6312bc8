import type { BackupTargetState, SourceStatus, SourceStatusReader } from "../checks/types.ts";
import type { Source } from "./types.ts";

/** A source that can answer for backup targets (the backups source). */
interface BackupSource extends Source {
  backupTarget(name: string): BackupTargetState | undefined;
}

function isBackupSource(s: Source): s is BackupSource {
  return typeof (s as Partial<BackupSource>).backupTarget === "function";
}

/** The running sources, by name; what `source` and `backup` checks and /debug/status read. */
export class SourceRegistry implements SourceStatusReader {
  readonly #sources: Map<string, Source>;
  readonly #running = new Set<Source>();
  /** Sources this replica deliberately leaves to another (leader election), with why. */
  readonly #standby = new Map<string, string>();

  constructor(sources: Source[]) {
    this.#sources = new Map(sources.map((s) => [s.name, s]));
  }

  get names(): string[] {
    return [...this.#sources.keys()];
  }

  get(name: string): Source | undefined {
    return this.#sources.get(name);
  }

  /** Adds a source built after the registry was made; it starts with the others. */
  add(source: Source): void {
    if (this.#sources.has(source.name)) throw new Error(`source ${source.name} is already registered`);
    this.#sources.set(source.name, source);
  }

  /** Starts the named sources (every source when none are named); a started source is no longer on standby. */
  start(names: readonly string[] = this.names): void {
    for (const s of this.#pick(names)) {
      this.#standby.delete(s.name);
      if (this.#running.has(s)) continue;
      this.#running.add(s);
      s.start();
    }
  }

  /** Resolves when every running source has finished its first poll, or after `maxWaitMs`, whichever is first. */
  async firstResults(maxWaitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs)));
    await Promise.race([Promise.all([...this.#running].map((s) => s.firstResult)), deadline]);
    clearTimeout(timer);
  }

  /**
   * Swaps a source for one built from new settings (undefined removes it): the old one stops, the new one starts
   * if `run` says this replica polls it.
   */
  async replace(name: string, next: Source | undefined, run: boolean): Promise<void> {
    const old = this.#sources.get(name);
    if (old) {
      this.#running.delete(old);
      this.#sources.delete(name);
      await old.stop();
    }
    if (!next) return;
    this.#sources.set(name, next);
    if (run) this.start([name]);
  }

  /** Stops the named sources (every source when none are named). */
  async stop(names: readonly string[] = this.names): Promise<void> {
    await Promise.all(
      this.#pick(names).map((s) => {
        this.#running.delete(s);
        return s.stop();
      }),
    );
  }

  /**
   * Marks sources as polled elsewhere (by the replica that leads): until started again they report up with
   * `why` as their detail, so checks of them pass here and the leader's own checks judge them.
   */
  standby(names: readonly string[], why: string): void {
    for (const s of this.#pick(names)) this.#standby.set(s.name, why);
  }

  /** Why this replica does not poll the source, while it is on standby. */
  standbyReason(name: string): string | undefined {
    return this.#standby.get(name);
  }

  #pick(names: readonly string[]): Source[] {
    return names.flatMap((n) => this.#sources.get(n) ?? []);
  }

  sourceStatus(name: string): SourceStatus | undefined {
    const why = this.#standby.get(name);
    if (why !== undefined && this.#sources.has(name)) return { up: true, detail: why };
    return this.#sources.get(name)?.status();
  }

  backupTarget(name: string): BackupTargetState | undefined {
    for (const s of this.#sources.values()) if (isBackupSource(s)) return s.backupTarget(name);
    return undefined;
  }

  /** Each source's up/down state, for /readyz?verbose. */
  lines(): { name: string; up: boolean; error?: string }[] {
    return [...this.#sources.values()].map((s) => {
      const st = this.sourceStatus(s.name) ?? s.status();
      return { name: s.name, up: st.up, ...(st.error !== undefined && { error: st.error }) };
    });
  }

  debug(): Record<string, unknown>[] {
    return [...this.#sources.values()].map((s) => {
      const why = this.#standby.get(s.name);
      return why === undefined ? s.debug() : { ...s.debug(), standby: why };
    });
  }
}
