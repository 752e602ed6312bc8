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

  constructor(sources: Source[]) {
    this.#sources = new Map(sources.map((s) => [s.name, s]));
  }

  get names(): string[] {
    return [...this.#sources.keys()];
  }

  get(name: string): Source | undefined {
    return this.#sources.get(name);
  }

  start(): void {
    for (const s of this.#sources.values()) s.start();
  }

  /** Resolves when every source has finished its first poll, or after `maxWaitMs`, whichever is first. */
  async firstResults(maxWaitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs)));
    await Promise.race([Promise.all([...this.#sources.values()].map((s) => s.firstResult)), deadline]);
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#sources.values()].map((s) => s.stop()));
  }

  sourceStatus(name: string): SourceStatus | undefined {
    return this.#sources.get(name)?.status();
  }

  backupTarget(name: string): BackupTargetState | undefined {
    for (const s of this.#sources.values()) if (isBackupSource(s)) return s.backupTarget(name);
    return undefined;
  }

  /** Each source's up/down state, for /readyz?verbose. */
  lines(): { name: string; up: boolean; error?: string }[] {
    return [...this.#sources.values()].map((s) => {
      const st = s.status();
      return { name: s.name, up: st.up, ...(st.error !== undefined && { error: st.error }) };
    });
  }

  debug(): Record<string, unknown>[] {
    return [...this.#sources.values()].map((s) => s.debug());
  }
}
