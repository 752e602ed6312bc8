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
