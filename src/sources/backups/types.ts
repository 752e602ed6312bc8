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
  /**
   * Hands every backup at the target to `found`, a batch at a time as they are read (an S3 page, a batch of
   * files), keeping none of them; throws an UpstreamError saying what failed and where.
   */
  list(signal: AbortSignal, found: (batch: BackupObject[]) => void | Promise<void>): Promise<void>;
  /** At most `bytes` bytes from the start of the backup, without reading the rest. */
  readHead(object: BackupObject, bytes: number, signal: AbortSignal): Promise<Buffer>;
  /** Where the target points, for /debug/status; never credentials. */
  describe(): Record<string, string>;
  close(): Promise<void>;
}

/** A target stops listing after this many backups rather than walking an unbounded listing. */
export const MAX_OBJECTS = 100_000;
