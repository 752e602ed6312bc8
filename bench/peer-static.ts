/**
 * The floor any /metrics can reach: the exposition's bytes held in a Buffer, plain and gzip'ed once at start, written
 * as they are on every request. Usage: peer-static.ts <exposition file> <port>
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { gzipSync } from "node:zlib";

const [file, port] = process.argv.slice(2);
if (!file || !port) throw new Error("usage: peer-static.ts <exposition file> <port>");

const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
const plain = readFileSync(file);
const gzipped = gzipSync(plain);

createServer((req, res) => {
  req.resume();
  if (req.url !== "/metrics") {
    res.writeHead(404).end();
    return;
  }
  const gzip = /\bgzip\b/.test(req.headers["accept-encoding"] ?? "");
  const body = gzip ? gzipped : plain;
  res.writeHead(200, { "content-type": CONTENT_TYPE, "content-length": body.length, vary: "Accept-Encoding", ...(gzip && { "content-encoding": "gzip" }) });
  res.end(body);
}).listen(Number(port), "127.0.0.1");
