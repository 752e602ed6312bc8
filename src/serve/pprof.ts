import { Readable } from "node:stream";
import { getHeapSnapshot } from "node:v8";
import { Hono, type Context } from "hono";
import { errorMessage } from "../log.ts";

export interface PprofOptions {
  /** Longest CPU profile a request may ask for; longer requests are cut to this. */
  maxProfileSeconds: number;
}

/** Where healthApp mounts the routes below. */
export const PPROF_PREFIX = "/debug/pprof";
export const PPROF_PATHS = [`${PPROF_PREFIX}/heap`, `${PPROF_PREFIX}/profile?seconds=N`];

const DEFAULT_PROFILE_SECONDS = 30;

/**
 * What is being taken right now. Process-wide, because the profiler and the heap are: a snapshot taken during a
 * CPU profile would show up in it, and two snapshots at once would double the memory they cost.
 */
let busy: "a heap snapshot" | "a CPU profile" | undefined;

function stamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z").replace(/:/g, "");
}

function conflict(c: Context) {
  return c.json({ error: `${busy} is being taken; try again when it has finished` }, 409, { "cache-control": "no-store" });
}

/** Resolves after `ms`, or at once when `signal` fires (the client went away). */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal.aborted) done();
    else signal.addEventListener("abort", done, { once: true });
  });
}

/** Samples the JavaScript stack for `ms` through the inspector protocol; the result is a .cpuprofile document. */
async function cpuProfile(ms: number, signal: AbortSignal): Promise<object> {
  // Loaded on first use: a Node built without the inspector then fails this request, not the health server.
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
    await wait(ms, signal);
    const { profile } = await session.post("Profiler.stop");
    return profile;
  } finally {
    session.disconnect();
  }
}

/**
 * GET heap: a V8 heap snapshot, streamed. GET profile?seconds=N: a CPU profile of N seconds (default 30, at most
 * maxProfileSeconds). Both open in Chrome DevTools (Memory and Performance panels). One at a time; 409 otherwise.
 * HEAD answers the headers without taking anything.
 */
export function pprofRoutes(opts: PprofOptions): Hono {
  const app = new Hono();

  app.get("/heap", (c) => {
    const headers = {
      "content-type": "application/octet-stream",
      "content-disposition": `attachment; filename="heap-${stamp()}.heapsnapshot"`,
      "cache-control": "no-store",
    };
    if (busy) return conflict(c);
    if (c.req.method === "HEAD") return c.body(null, 200, headers);
    busy = "a heap snapshot";
    let snapshot: Readable;
    try {
      // Pauses the process while V8 walks the heap; the serialised snapshot is then streamed out.
      snapshot = getHeapSnapshot();
    } catch (err) {
      busy = undefined;
      return c.json({ error: `heap snapshot failed: ${errorMessage(err)}` }, 500);
    }
    // "close" comes both when the client read it all and when it went away half-way.
    snapshot.once("close", () => (busy = undefined));
    return c.body(Readable.toWeb(snapshot) as ReadableStream<Uint8Array>, 200, headers);
  });

  app.get("/profile", async (c) => {
    const max = opts.maxProfileSeconds;
    const raw = c.req.query("seconds");
    if (raw !== undefined && !/^[1-9]\d{0,5}$/.test(raw)) {
      return c.json({ error: `seconds must be a whole number of seconds, 1 to ${max}; got ${JSON.stringify(raw.slice(0, 20))}` }, 400);
    }
    const seconds = Math.min(raw === undefined ? DEFAULT_PROFILE_SECONDS : Number(raw), max);
    const headers = {
      "content-type": "application/json",
      "content-disposition": `attachment; filename="cpu-${stamp()}.cpuprofile"`,
      "cache-control": "no-store",
      "x-profile-seconds": String(seconds),
    };
    if (busy) return conflict(c);
    if (c.req.method === "HEAD") return c.body(null, 200, headers);
    busy = "a CPU profile";
    try {
      const profile = await cpuProfile(seconds * 1000, c.req.raw.signal);
      return c.body(JSON.stringify(profile), 200, headers);
    } catch (err) {
      return c.json({ error: `CPU profile failed: ${errorMessage(err)}` }, 500);
    } finally {
      busy = undefined;
    }
  });

  return app;
}
