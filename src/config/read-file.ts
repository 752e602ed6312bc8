import { constants, type Stats } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";

/**
 * The largest configuration file that is read. A ConfigMap holds at most 1 MiB, so a larger file cannot be one, and
 * parsing and validating a file costs time and memory in proportion to its size, on the thread that answers probes.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export type ConfigFileRead =
  | { ok: true; text: string }
  /**
   * refused: the file is there but is not something the exporter reads (not a regular file, or too large), which
   * stays so until it changes; otherwise it could not be opened (gone, perhaps only for the moment of a swap).
   */
  | { ok: false; message: string; refused: boolean };

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a FIFO (named pipe)";
  if (stats.isSocket()) return "a socket";
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return "a device";
  return "of another kind";
}

const PASS_A_FILE = "pass the path of a YAML file with --config or SIDECAR_CONFIG";

function notRegular(kind: string): ConfigFileRead {
  return { ok: false, message: `the config file is ${kind}, not a regular file; ${PASS_A_FILE}`, refused: true };
}

/** size: undefined when the file grew past the limit after it was measured. */
function tooLarge(size: number | undefined): ConfigFileRead {
  const is = size === undefined ? "over" : `${size} bytes, over`;
  return {
    ok: false,
    message: `the config file is ${is} the limit of ${MAX_CONFIG_BYTES} bytes (1 MiB, the most a ConfigMap holds); check that --config or SIDECAR_CONFIG names the configuration file, and keep it under that size`,
    refused: true,
  };
}

/**
 * Reads a configuration file, refusing anything but a regular file (a symlink to one is followed, as a mounted
 * ConfigMap is one) and any file larger than MAX_CONFIG_BYTES, before a byte of it is parsed.
 */
export async function readConfigFile(file: string): Promise<ConfigFileRead> {
  let handle: FileHandle;
  try {
    // Non-blocking, so that opening a FIFO does not wait for a writer: what the path is, is decided on the open file.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Opening a Unix socket fails with ENXIO.
    if (code === "ENXIO") return notRegular("a socket");
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(code ?? err);
    return { ok: false, message: `cannot read the config file: ${why}; ${PASS_A_FILE}`, refused: false };
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) return notRegular(kindOf(stats));
    if (stats.size > MAX_CONFIG_BYTES) return tooLarge(stats.size);
    // At most one byte past the limit: a file that grows after stat, or reports no size, is still cut off.
    const buffer = Buffer.allocUnsafe(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_CONFIG_BYTES) return tooLarge(undefined);
    }
    return { ok: true, text: buffer.toString("utf8", 0, length) };
  } catch (err) {
    return { ok: false, message: `cannot read the config file: ${String((err as NodeJS.ErrnoException).code ?? err)}; ${PASS_A_FILE}`, refused: false };
  } finally {
    await handle.close();
  }
}
