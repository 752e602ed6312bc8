import { setImmediate as nextTurn } from "node:timers/promises";
import { UpstreamError } from "../errors.ts";

/** An undici response body, or any stream of buffers that can be cut off. */
export type Body = AsyncIterable<Buffer> & { destroy(): unknown };

/**
 * Reads a body as text, never more than `cap` bytes. Past the cap it either fails with reason `decode` (and stops
 * reading, so a huge answer costs nothing) or, with `truncate`, keeps the start — for error documents, where a
 * cut-off is harmless.
 */
export async function readCapped(body: Body, cap: number, what: string, opts: { truncate?: boolean; hint?: string } = {}): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length > cap) {
      body.destroy();
      if (!opts.truncate) throw new UpstreamError(`${what}: response is larger than ${cap} bytes${opts.hint ? `; ${opts.hint}` : ""}`, "decode");
      chunks.push(chunk.subarray(0, cap - size));
      size = cap;
      break;
    }
    size += chunk.length;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString("utf8");
}

/** The first `bytes` bytes of the body; the stream is closed once they are in, so the rest is never sent. */
export async function readHead(body: Body, bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= bytes) break; // leaving the loop destroys the stream
  }
  return Buffer.concat(chunks, size).subarray(0, bytes);
}

/** The longest piece readInPieces hands on at once. */
const PIECE_BYTES = 16 * 1024;

/**
 * Hands a body to `read` as UTF-8 text, in pieces of at most PIECE_BYTES with a turn of the event loop after
 * each, never more than `cap` bytes (past it: reason `decode`, and reading stops). For decoders that take their
 * input piece by piece: neither a large body nor a slow one to decode holds the event loop for long, since
 * chunks a socket has buffered would otherwise be handed over without the loop ever getting a turn.
 */
export async function readInPieces(body: Body, cap: number, what: string, read: (text: string) => void, opts: { hint?: string } = {}): Promise<void> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const decode = (bytes?: Buffer): string => {
    try {
      return bytes ? decoder.decode(bytes, { stream: true }) : decoder.decode();
    } catch {
      throw new UpstreamError(`${what}: response is not UTF-8 text`, "decode");
    }
  };
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length > cap) {
      body.destroy();
      throw new UpstreamError(`${what}: response is larger than ${cap} bytes${opts.hint ? `; ${opts.hint}` : ""}`, "decode");
    }
    size += chunk.length;
    for (let at = 0; at < chunk.length; at += PIECE_BYTES) {
      read(decode(chunk.subarray(at, at + PIECE_BYTES)));
      await nextTurn();
    }
  }
  read(decode());
}
