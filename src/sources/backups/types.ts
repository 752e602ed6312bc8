/** One backup as a target lists it. */
export interface BackupObject {
  /** S3: the full object key; filesystem: the file name. What `match` is tested against. */
  key: string;
  /** Epoch milliseconds. */
  lastModifiedMs: number;
  sizeBytes: number;
}

/** Where backups are kept: lists them and reads the start of one. */
export interface BackupLister {
  /** Every backup at the target; throws an UpstreamError saying what failed and where. */
  list(signal: AbortSignal): Promise<BackupObject[]>;
  /** At most `bytes` bytes from the start of the backup, without reading the rest. */
  readHead(object: BackupObject, bytes: number, signal: AbortSignal): Promise<Buffer>;
  /** Where the target points, for /debug/status; never credentials. */
  describe(): Record<string, string>;
  close(): Promise<void>;
}

/** A target stops listing after this many backups rather than holding an unbounded list in memory. */
export const MAX_OBJECTS = 100_000;
