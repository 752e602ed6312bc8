import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";

const ROOT = join(import.meta.dirname, "..");

export interface CliRun {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Runs the real CLI in its own process, as a user or the kubelet would. */
export function runCli(args: string[], env: Record<string, string> = {}): CliRun {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/cli.ts"), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

export function writeConfig(doc: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), "sidecar-cli-"));
  const file = join(dir, "config.yaml");
  writeFileSync(file, typeof doc === "string" ? doc : stringify(doc));
  return file;
}

/**
 * Stops a run with SIGTERM and waits for it, with SIGKILL after `graceMs`: a process whose event loop is stuck
 * never runs its handler, and a test that found one must not leave it behind.
 */
export async function stopCli(run: CliRun, graceMs = 10_000): Promise<number | null> {
  if (run.child.exitCode !== null || run.child.signalCode !== null) return run.exited;
  run.child.kill("SIGTERM");
  const timer = setTimeout(() => run.child.kill("SIGKILL"), graceMs);
  try {
    return await run.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** A configuration of `n` checks, each with a timeout that is not a duration: `n` errors, about 100 bytes each. */
export function checksWithBadTimeouts(n: number): string {
  const lines = ["healthChecks:", "  dependencies:"];
  for (let i = 0; i < n; i++) lines.push(`    - { name: check-${String(i).padStart(6, "0")}, type: http, url: "http://127.0.0.1:1/x", timeout: "5", interval: 15s }`);
  return `${lines.join("\n")}\n`;
}
