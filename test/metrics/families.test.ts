import { gunzipSync } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CachedExposition } from "../../src/metrics/exposition.ts";
import { Gauge, Histogram, LINES_PER_CHUNK } from "../../src/metrics/families.ts";

const gauge = () => new Gauge({ name: "demo_value", help: "demo", labelNames: ["id"] });
const dirtyCount = (chunks: readonly { dirty: boolean }[]) => chunks.filter((c) => c.dirty).length;
const lines = (b: Buffer) => b.toString("utf8").split("\n").filter((l) => l !== "");

describe("chunked families", () => {
  it("puts a family's series in chunks of about LINES_PER_CHUNK lines, and a change marks only its own chunk", () => {
    const g = gauge();
    for (let i = 0; i < LINES_PER_CHUNK * 3 + 10; i++) g.set({ id: String(i) }, i);
    const chunks = g.takeChunks();
    expect(chunks).toHaveLength(4);
    expect(dirtyCount(chunks)).toBe(4);
    for (const c of chunks) g.renderChunk(c);
    expect(dirtyCount(g.takeChunks())).toBe(0);

    g.set({ id: "700" }, 0.5);
    expect(dirtyCount(g.takeChunks())).toBe(1);
    const [changed] = g.takeChunks().filter((c) => c.dirty);
    expect(lines(g.renderChunk(changed!))).toContain('demo_value{id="700"} 0.5');
    // Set to what it already is: nothing to render.
    g.set({ id: "700" }, 0.5);
    expect(dirtyCount(g.takeChunks())).toBe(0);
  });

  it("keeps a histogram's series whole in one chunk, sized by its lines per series", () => {
    const buckets = [0.1, 1, 10];
    const h = new Histogram({ name: "demo_seconds", help: "demo", labelNames: ["id"], buckets });
    const perChunk = Math.floor(LINES_PER_CHUNK / (buckets.length + 3));
    for (let i = 0; i < perChunk + 1; i++) h.observe({ id: String(i) }, 0.5);
    const chunks = h.takeChunks();
    expect(chunks).toHaveLength(2);
    const second = lines(h.renderChunk(chunks[1]!));
    expect(second).toEqual([
      `demo_seconds_bucket{id="${perChunk}",le="0.1"} 0`,
      `demo_seconds_bucket{id="${perChunk}",le="1.0"} 1`,
      `demo_seconds_bucket{id="${perChunk}",le="10.0"} 1`,
      `demo_seconds_bucket{id="${perChunk}",le="+Inf"} 1`,
      `demo_seconds_sum{id="${perChunk}"} 0.5`,
      `demo_seconds_count{id="${perChunk}"} 1`,
    ]);
  });

  it("fills the room removals leave before opening a new chunk, and drops a chunk that empties", () => {
    const g = gauge();
    for (let i = 0; i < LINES_PER_CHUNK * 2; i++) g.set({ id: String(i) }, 1);
    for (let i = 0; i < 5; i++) g.remove({ id: String(i) });
    for (let i = 0; i < 5; i++) g.set({ id: `new-${i}` }, 2);
    expect(g.takeChunks()).toHaveLength(2);
    for (let i = LINES_PER_CHUNK; i < LINES_PER_CHUNK * 2; i++) g.remove({ id: String(i) });
    expect(g.takeChunks()).toHaveLength(1);
    expect(g.size).toBe(LINES_PER_CHUNK);
  });

  it("renders, after any sequence of sets and removals, exactly the series the family holds, in every form", async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), id: fc.integer({ min: 0, max: 1500 }), value: fc.integer({ min: -5, max: 5 }) }),
      fc.record({ kind: fc.constant("remove" as const), id: fc.integer({ min: 0, max: 1500 }) }),
      fc.record({ kind: fc.constant("render" as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 400 }), async (ops) => {
        const g = gauge();
        const exposition = new CachedExposition([g], { maxRenderIntervalMs: 1_000, renderCostFactor: 100 });
        const model = new Map<string, number>();
        for (const o of ops) {
          if (o.kind === "set") {
            g.set({ id: String(o.id) }, o.value);
            model.set(String(o.id), o.value);
          } else if (o.kind === "remove") {
            g.remove({ id: String(o.id) });
            model.delete(String(o.id));
          } else {
            await exposition.flush();
          }
        }
        await exposition.flush();
        exposition.close();
        const expected = [...model].map(([id, v]) => `demo_value{id="${id}"} ${v}`).sort();
        const text = Buffer.concat(exposition.body("text").parts);
        const gz = gunzipSync(Buffer.concat(exposition.body("textGzip").parts));
        expect(gz.equals(text)).toBe(true);
        const samples = lines(text).filter((l) => !l.startsWith("#"));
        expect(samples.sort()).toEqual(expected);
      }),
      { numRuns: 60 },
    );
  });

  it("compresses a large rendering off the event loop into the same bytes, and a later change recompresses one chunk", async () => {
    const g = gauge();
    for (let i = 0; i < 20_000; i++) g.set({ id: `series-${i}` }, i);
    const exposition = new CachedExposition([g], { maxRenderIntervalMs: 1_000, renderCostFactor: 100 });
    await exposition.flush();
    const gzipOf = () => gunzipSync(Buffer.concat(exposition.body("textGzip").parts));
    const before = Buffer.concat(exposition.body("text").parts);
    expect(before.length).toBeGreaterThan(256 * 1024);
    expect(gzipOf().equals(before)).toBe(true);
    g.set({ id: "series-123" }, -1);
    await exposition.flush();
    const after = Buffer.concat(exposition.body("text").parts);
    expect(lines(after)).toContain('demo_value{id="series-123"} -1');
    expect(gzipOf().equals(after)).toBe(true);
    exposition.close();
  });

  it("paces a family by the cost of its renderings after the first, whose cost says little", async () => {
    const g = gauge();
    const exposition = new CachedExposition([g], { maxRenderIntervalMs: 60_000, renderCostFactor: 1e9 });
    const rendered = () => exposition.renderCount("demo_value");
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await exposition.flush();
    expect(rendered()).toBe(1);
    g.set({ id: "a" }, 1);
    await sleep(100);
    // Not held back by the first rendering's cost.
    expect(rendered()).toBe(2);
    g.set({ id: "a" }, 2);
    await sleep(200);
    // The second one's cost, times 1e9, holds the next back (up to the 60 s cap); a flush renders at once.
    expect(rendered()).toBe(2);
    await exposition.flush();
    expect(rendered()).toBe(3);
    expect(lines(Buffer.concat(exposition.body("text").parts))).toContain('demo_value{id="a"} 2');
    exposition.close();
  });
});
