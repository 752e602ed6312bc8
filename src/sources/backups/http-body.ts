import { UpstreamError } from "../../errors.ts";

type Body = AsyncIterable<Buffer> & { destroy(): unknown };

/** Reads the whole body as text, failing once it passes `cap` bytes instead of filling memory. */
export async function readCappedText(body: Body, cap: number, where: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > cap) {
      body.destroy();
      throw new UpstreamError(`${where}: response is larger than ${cap} bytes`, "decode");
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString("utf8");
}

/** Reads at most `cap` bytes and drops the rest of the body; for error documents, where a cut-off is harmless. */
export async function readTextUpTo(body: Body, cap: number): Promise<string> {
  return (await readHead(body, cap)).toString("utf8");
}

/** The first `bytes` bytes of the body; the connection is closed once they are in, so the rest is never sent. */
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
