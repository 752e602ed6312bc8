/**
 * What most Node services do: a prom-client Registry behind a plain node:http server, `registry.metrics()` on every
 * scrape, gzip'ed per request when the scraper accepts it (as the `compression` middleware would). The registry
 * holds the series of a captured exposition. Counters and gauges are loaded as what they are; a histogram's
 * _bucket, _sum and _count samples are loaded as gauges of those names, which renders the same number of lines of
 * the same shape, since only the cost of rendering is compared. Usage: peer-prom-client.ts <exposition file> <port>
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { loadPromClientRegistry } from "./prom-client-registry.ts";

const [file, port] = process.argv.slice(2);
if (!file || !port) throw new Error("usage: peer-prom-client.ts <exposition file> <port>");

const gzipAsync = promisify(gzip);

const registry = loadPromClientRegistry(readFileSync(file, "utf8"));

createServer((req, res) => {
  req.resume();
  if (req.url !== "/metrics") {
    res.writeHead(404).end();
    return;
  }
  const wantsGzip = /\bgzip\b/.test(req.headers["accept-encoding"] ?? "");
  registry
    .metrics()
    .then(async (text) => {
      const body = wantsGzip ? await gzipAsync(text) : Buffer.from(text);
      res.writeHead(200, { "content-type": registry.contentType, "content-length": body.length, ...(wantsGzip && { "content-encoding": "gzip" }) });
      res.end(body);
    })
    .catch((err: unknown) => {
      res.writeHead(500).end(String(err));
    });
}).listen(Number(port), "127.0.0.1");
