/**
 * What most Node services do: a prom-client Registry behind a plain node:http server, `registry.metrics()` on every
 * scrape, gzip'ed per request when the scraper accepts it (as the `compression` middleware would). The registry
 * holds the series of a captured exposition. Counters and gauges are loaded as what they are; a histogram's
 * _bucket, _sum and _count samples are loaded as gauges of those names, which renders the same number of lines of
 * the same shape, since only the cost of rendering is compared. Usage: peer-prom-client.ts <exposition file> <port>
 */
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { peerArgs, servePeer } from "./peer-server.ts";
import { loadPromClientRegistry } from "./prom-client-registry.ts";

const gzipAsync = promisify(gzip);
const { exposition, port } = peerArgs("peer-prom-client.ts");
const registry = loadPromClientRegistry(exposition);

servePeer(port, registry.contentType, async (wantsGzip) => {
  const text = await registry.metrics();
  return wantsGzip ? gzipAsync(text) : Buffer.from(text);
});
