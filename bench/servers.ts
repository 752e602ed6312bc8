/**
 * The processes the benchmark starts: the exporter, the peer servers and load tools. Every one is remembered and
 * stopped by `stopAll` (also on exit, Ctrl-C, SIGTERM or a crash), so a run leaves nothing behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { compileExporter, imageNodeFlags } from "./compiled.ts";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

const TAIL_BYTES = 16 * 1024;

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  /** Exit code, or the signal's name. */
  exited: Promise<number | string>;
  readonly running: boolean;
  /** The last bytes the process wrote to stdout and stderr, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

const live = new Set<Proc>();

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

export function spawnProc(name: string, command: string, args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Proc {
  const child = spawn(command, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    // In the benchmark's process group: Ctrl-C in a terminal reaches every child too. A child's own children
    // (tsx's esbuild service) end when their parent's pipes close.
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const pid = child.pid;
  let tail = "";
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-TAIL_BYTES);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let running = true;
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => {
      running = false;
      live.delete(proc);
      resolve(code ?? signal ?? "unknown");
    });
    child.on("error", (err) => {
      running = false;
      live.delete(proc);
      tail += `\n${err.message}`;
      resolve("spawn error");
    });
  });
  const proc: Proc = {
    name,
    pid,
    child,
    exited,
    get running() {
      return running;
    },
    output: () => tail,
    async stop() {
      if (!running) return;
      signal(pid, "SIGTERM");
      // An exporter whose event loop is stuck never runs its SIGTERM handler.
      const timer = setTimeout(() => signal(pid, "SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
  live.add(proc);
  return proc;
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}

/** Kills every process still running when this one ends, however it ends. */
export function installCleanup(onSignal: () => Promise<void>): void {
  process.on("exit", () => {
    for (const p of live) signal(p.pid, "SIGKILL");
  });
  let signalled = false;
  for (const name of ["SIGINT", "SIGTERM"] as const) {
    process.on(name, () => {
      if (signalled) process.exit(130);
      signalled = true;
      process.stderr.write(`\n${name}: stopping everything the benchmark started\n`);
      void onSignal().finally(() => process.exit(130));
    });
  }
}

/** `n` distinct ports nothing listens on right now (held together while chosen, so they differ). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer());
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve))));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error("no free port");
  return port;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One GET on a fresh connection. */
export function httpGet(url: string, headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: no answer in ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `url` answers 200 (and `accept` agrees), or fails with the process' output. */
export async function waitForHttp(url: string, proc: Proc | undefined, timeoutMs: number, accept: (a: HttpAnswer) => boolean = () => true): Promise<HttpAnswer> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    if (proc && !proc.running) throw new Error(`${proc.name} exited (${String(await proc.exited)}) before ${url} answered:\n${proc.output()}`);
    try {
      const answer = await httpGet(url, {}, 10_000);
      if (answer.status === 200 && accept(answer)) return answer;
      last = `status ${answer.status}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})${proc ? `:\n${proc.output()}` : ""}`);
}

/**
 * This exporter as the image runs it: `node <the entrypoint's flags> dist/cli.js`, from src/ bundled once per
 * benchmark run. `nodeArgs` replace the entrypoint's flags (an empty list runs node with none).
 */
export function startExporter(name: string, configFile: string, env: Record<string, string>, nodeArgs: string[] = imageNodeFlags()): Proc {
  return spawnProc(name, process.execPath, [...nodeArgs, compileExporter().cli, "--config", configFile], { env: { ...env, SIDECAR_LOG_FORMAT: "json" } });
}

/** A peer server of this directory (peer-static.ts, peer-prom-client.ts), run the same way as the exporter. */
export function startNodePeer(name: string, script: string, args: string[]): Proc {
  return spawnProc(name, process.execPath, ["--import", "tsx", fileURLToPath(new URL(script, import.meta.url)), ...args]);
}

export function startNodeExporter(binary: string, textfileDir: string, port: number): Proc {
  return spawnProc("node_exporter", binary, [
    "--collector.disable-defaults",
    "--collector.textfile",
    `--collector.textfile.directory=${textfileDir}`,
    // Its own go_* and process_* would clash with the process_* families in the file.
    "--web.disable-exporter-metrics",
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=warn",
  ]);
}

export function startBlackbox(binary: string, configFile: string, port: number): Proc {
  return spawnProc("blackbox_exporter", binary, [`--config.file=${configFile}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"]);
}

export { sleep };
