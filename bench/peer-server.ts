/**
 * The HTTP side every peer shares, so peers differ only in how they make a body: /metrics answered with whatever
 * `body(gzip)` gives, gzip'ed when the scraper accepts it; 404 elsewhere, 500 with the error when making failed.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The peer's arguments: the exposition file it serves the data of, and the port. */
export function peerArgs(name: string): { exposition: string; port: number } {
  const [file, port] = process.argv.slice(2);
  if (!file || !port) throw new Error(`usage: ${name} <exposition file> <port>`);
  return { exposition: readFileSync(file, "utf8"), port: Number(port) };
}

export function servePeer(port: number, contentType: string, body: (gzip: boolean) => Buffer | Promise<Buffer>): void {
  createServer((req, res) => {
    req.resume();
    if (req.url !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    const gzip = /\bgzip\b/.test(req.headers["accept-encoding"] ?? "");
    const send = (b: Buffer) => {
      res.writeHead(200, { "content-type": contentType, "content-length": b.length, vary: "Accept-Encoding", ...(gzip && { "content-encoding": "gzip" }) });
      res.end(b);
    };
    const fail = (err: unknown) => res.writeHead(500).end(String(err));
    try {
      // A body at hand is written in the same turn: the static peer is the floor, and waits for nothing.
      const made = body(gzip);
      if (Buffer.isBuffer(made)) send(made);
      else made.then(send, fail);
    } catch (err) {
      fail(err);
    }
  }).listen(port, "127.0.0.1");
}
