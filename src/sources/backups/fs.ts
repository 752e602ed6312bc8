import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { type FailureReason, UpstreamError } from "../../errors.ts";
import type { BackupTargetConfig } from "../config.ts";
import { type BackupLister, type BackupObject, MAX_OBJECTS } from "./types.ts";

export type FilesystemTargetConfig = Extract<BackupTargetConfig, { type: "filesystem" }>;

/** Files are stat'ed this many at a time: fast on a local disk, gentle on a network mount. */
const STAT_BATCH = 32;

function reasonForCode(code: string | undefined): FailureReason {
  if (code === "ENOENT" || code === "ENOTDIR") return "not_found";
  if (code === "EACCES" || code === "EPERM") return "unauthorized";
  if (code === "ETIMEDOUT") return "timeout";
  return "other";
}

const HINTS: Record<string, string> = {
  ENOENT: "the directory does not exist: mount the backup volume there or fix path",
  ENOTDIR: "path is not a directory",
  EACCES: "the exporter's user may not read it: fix the volume's permissions or the pod's fsGroup",
  EPERM: "the exporter's user may not read it: fix the volume's permissions or the pod's fsGroup",
};

/**
 * Backups in one directory (a mounted volume). Only regular files directly inside it count, symbolic links
 * to regular files included: backup tools write into one directory, and not descending keeps a poll bounded
 * on a volume that also holds other data. Names starting with "." are skipped, since uploaders and rsync
 * write such temporary files before the rename that completes a backup.
 */
export class FilesystemLister implements BackupLister {
  readonly #where: string;

  constructor(private readonly cfg: FilesystemTargetConfig) {
    this.#where = `filesystem target ${JSON.stringify(cfg.name)} (${cfg.path})`;
  }

  describe(): Record<string, string> {
    return { path: this.cfg.path };
  }

  #fail(action: string, err: unknown): UpstreamError {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code !== undefined ? HINTS[code] : undefined;
    // No `cause`: the code says it all, and the cause's message would repeat the path.
    return new UpstreamError(`${this.#where}: cannot ${action}: ${code ?? (err as Error).message}${hint ? `; ${hint}` : ""}`, reasonForCode(code));
  }

  async list(signal: AbortSignal, found: (batch: BackupObject[]) => void | Promise<void>): Promise<void> {
    let names: string[];
    try {
      const entries = await readdir(this.cfg.path, { withFileTypes: true });
      names = entries.filter((e) => (e.isFile() || e.isSymbolicLink()) && !e.name.startsWith(".")).map((e) => e.name);
    } catch (err) {
      throw this.#fail("list the directory", err);
    }
    if (names.length > MAX_OBJECTS) {
      throw new UpstreamError(`${this.#where}: more than ${MAX_OBJECTS} files; point path at the directory that holds only the backups`, "other");
    }
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      signal.throwIfAborted();
      const batch = names.slice(i, i + STAT_BATCH);
      const stats = await Promise.all(
        batch.map((name) =>
          // A file removed between readdir and stat (rotation) is simply no longer there.
          stat(join(this.cfg.path, name)).catch((err: NodeJS.ErrnoException) => {
            if (err.code === "ENOENT") return undefined;
            throw this.#fail(`stat ${name}`, err);
          }),
        ),
      );
      const files: BackupObject[] = [];
      stats.forEach((s, j) => {
        if (s?.isFile()) files.push({ key: batch[j] as string, lastModifiedMs: s.mtimeMs, sizeBytes: s.size });
      });
      await found(files);
    }
  }

  async readHead(object: BackupObject, bytes: number, signal: AbortSignal): Promise<Buffer> {
    signal.throwIfAborted();
    let file;
    try {
      file = await open(join(this.cfg.path, object.key), "r");
    } catch (err) {
      throw this.#fail(`open ${object.key}`, err);
    }
    try {
      const buf = Buffer.alloc(bytes);
      const { bytesRead } = await file.read(buf, 0, bytes, 0);
      return buf.subarray(0, bytesRead);
    } catch (err) {
      throw this.#fail(`read ${object.key}`, err);
    } finally {
      await file.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {}
}
