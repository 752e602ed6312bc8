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
import { Counter, Gauge, Registry } from "prom-client";
import { parseExposition, type ParsedSample } from "./exposition.ts";

const [file, port] = process.argv.slice(2);
if (!file || !port) throw new Error("usage: peer-prom-client.ts <exposition file> <port>");

const gzipAsync = promisify(gzip);

function labelNames(samples: ParsedSample[]): string[] {
  const names = new Set<string>();
  for (const s of samples) for (const n of Object.keys(s.labels)) names.add(n);
  return [...names];
}

function loadRegistry(text: string): Registry {
  const registry = new Registry();
  for (const family of parseExposition(text)) {
    // prom-client renders a label-less metric nobody set as 0: a family without samples would add a series.
    if (family.samples.length === 0) continue;
    if (family.type === "counter") {
      const counter = new Counter({ name: family.name, help: family.help || family.name, labelNames: labelNames(family.samples), registers: [registry] });
      for (const s of family.samples) counter.inc(s.labels, s.value);
      continue;
    }
    // Gauges, untyped families, and each sample name of a histogram or summary.
    const byName = new Map<string, ParsedSample[]>();
    for (const s of family.samples) {
      const list = byName.get(s.name);
      if (list) list.push(s);
      else byName.set(s.name, [s]);
    }
    for (const [name, samples] of byName) {
      const gauge = new Gauge({ name, help: family.help || name, labelNames: labelNames(samples), registers: [registry] });
      for (const s of samples) gauge.set(s.labels, s.value);
    }
  }
  return registry;
}

const registry = loadRegistry(readFileSync(file, "utf8"));

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
