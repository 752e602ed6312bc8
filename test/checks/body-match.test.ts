import { afterEach, describe, expect, it } from "vitest";
import { runCli, writeConfig, type CliRun } from "../cli-process.ts";
import { eventually, httpServer, type TestServer } from "../helpers.ts";

const ONE_MB = 1_000_000;
/** A probe that takes longer than this to answer counts as a frozen process: the kubelet's own timeouts are seconds. */
const PROBE_TIMEOUT_MS = 3_000;

/** x and y in a fixed pseudo-random order: a body on which a pattern of a thousand positions has no shortcut. */
function xyBody(length: number): string {
  let seed = 1;
  let out = "";
  for (let i = 0; i < length; i++) {
    seed = (seed * 1_103_515_245 + 12_345) & 0x7fff_ffff;
    out += seed & 0x4000 ? "x" : "y";
  }
  return out;
}

const BODIES: Record<string, string> = {
  "/many-a": "a".repeat(ONE_MB),
  "/many-a-then-ok": `${"a".repeat(ONE_MB)}{"status":"ok"}`,
  "/a-then-bang": `${"a".repeat(40)}!`,
  "/x-and-y": xyBody(ONE_MB),
};

let upstream: TestServer | undefined;
let run: CliRun | undefined;
afterEach(async () => {
  // SIGKILL: a process whose event loop is stuck would never act on SIGTERM.
  run?.child.kill("SIGKILL");
  await run?.exited;
  run = undefined;
  await upstream?.close();
  upstream = undefined;
});

/** GET that gives up after `ms`: a frozen exporter must fail the test, not hang it. */
async function getWithin(url: string, ms: number): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(ms) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    throw new Error(`${url} did not answer within ${ms} ms: ${(err as Error).message}`);
  }
}

describe("bodyMatch over hostile bodies", () => {
  it("keeps /healthz answering while patterns run over a 1 MB body and a backtracking trap, and gives each check its verdict", async () => {
    upstream = await httpServer((req, res) => {
      const body = BODIES[req.url ?? ""];
      res.writeHead(body === undefined ? 404 : 200, { "content-type": "text/plain" }).end(body ?? "");
    });
    const url = (path: string) => `${upstream?.url}${path}`;
    const check = (name: string, path: string, bodyMatch: string, timeout = "20s") => ({
      name,
      type: "http",
      url: url(path),
      bodyMatch,
      interval: "60s",
      timeout,
    });
    run = runCli([
      "--config",
      writeConfig({
        metrics: { port: 0 },
        health: { port: 0 },
        grpcHealth: { enabled: false },
        server: { address: "127.0.0.1" },
        logging: { level: "info" },
        healthChecks: {
          dependencies: [
            // A backtracking engine scans the rest of the body from every position: quadratic, minutes for 1 MB.
            check("dot-star", "/many-a", ".*ok.*"),
            check("found-at-end", "/many-a-then-ok", '"status":\\s*"ok"'),
            // Nested quantifiers: a backtracking engine tries every split of the 40 a's, 2^40 of them.
            check("nested", "/a-then-bang", "^(a+)+$"),
            // Linear, but a thousand positions tracked over every byte of a megabyte: seconds even for RE2. The
            // check's timeout ends it.
            check("long-program", "/x-and-y", "x[xy]{1000}[^xy]", "3s"),
          ],
        },
      }),
    ]);
    const listening = await eventually(
      () =>
        run
          ?.stdout()
          .split("\n")
          .find((l) => l.includes("health server listening")),
      20_000,
    );
    const health = `http://${(JSON.parse(listening) as { address: string }).address}`;

    const verdicts = await eventually(
      async () => {
        const alive = await getWithin(`${health}/healthz`, PROBE_TIMEOUT_MS);
        expect(alive).toEqual({ status: 200, body: "ok" });
        const states: Record<string, { status: string; reason: string | null; error: string | null }> = {};
        for (const name of ["dot-star", "found-at-end", "nested", "long-program"]) {
          states[name] = JSON.parse((await getWithin(`${health}/health/${name}`, PROBE_TIMEOUT_MS)).body) as (typeof states)[string];
        }
        return Object.values(states).every((s) => s.status !== "pending") ? states : undefined;
      },
      60_000,
      100,
    );
    expect(verdicts["dot-star"]).toMatchObject({ status: "fail", reason: "unhealthy", error: "body does not match /.*ok.*/" });
    expect(verdicts["found-at-end"]).toMatchObject({ status: "pass" });
    expect(verdicts["nested"]).toMatchObject({ status: "fail", reason: "unhealthy", error: "body does not match /^(a+)+$/" });
    expect(verdicts["long-program"]).toMatchObject({ status: "fail", reason: "timeout" });
    // And still answering once every check has had its run.
    expect(await getWithin(`${health}/healthz`, PROBE_TIMEOUT_MS)).toEqual({ status: 200, body: "ok" });
  }, 90_000);
});
