import { execFileSync } from "node:child_process";
import { mkdirSync, statSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readConfigFile } from "../../src/config/read-file.ts";
import { checksWithBadTimeouts, runCli, stopCli, writeConfig, type CliRun } from "../cli-process.ts";

const runs: CliRun[] = [];
afterEach(async () => {
  for (const run of runs.splice(0)) await stopCli(run);
});

function cli(args: string[]): CliRun {
  const run = runCli(args);
  runs.push(run);
  return run;
}

describe("the configuration file", () => {
  it("is refused over 1 MiB before it is parsed: exit 2, naming the file, its size and the limit", async () => {
    // 51,000 checks, each with an error: the whole of it would be parsed and every error printed.
    const file = writeConfig(checksWithBadTimeouts(51_000));
    const run = cli(["--config", file]);
    expect(await run.exited).toBe(2);
    const { size } = statSync(file);
    expect(run.stderr()).toContain(`✗ ${file}: the config file is ${size} bytes, over the limit of 1048576 bytes (1 MiB`);
    expect(run.stderr().trim().split("\n")).toHaveLength(2);
  });

  it("with thousands of errors, prints the first 20 and how many more", async () => {
    const file = writeConfig(checksWithBadTimeouts(5_000));
    const run = cli(["--config", file]);
    expect(await run.exited).toBe(2);
    const err = run.stderr();
    expect(err).toContain(`invalid configuration in ${file} (5000 errors)`);
    const shown = err.split("\n").filter((l) => l.startsWith("  ✗ "));
    expect(shown).toHaveLength(20);
    expect(shown[0]).toBe('  ✗ healthChecks.dependencies[0].timeout: "5" is not a duration, use e.g. "5s", "1m30s" or "7d"');
    expect(err).toContain("  … and 4980 more errors\n");
  });

  it("is refused when it is a FIFO, instead of waiting for a writer: exit 2", async () => {
    const file = join(dirname(writeConfig({})), "fifo.yaml");
    execFileSync("mkfifo", [file]);
    const run = cli(["--config", file]);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(`✗ ${file}: the config file is a FIFO (named pipe), not a regular file; pass the path of a YAML file`);
  });

  it("is refused when it is a directory: exit 2", async () => {
    const dir = join(dirname(writeConfig({})), "config.d");
    mkdirSync(dir);
    const run = cli(["--config", dir]);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(`✗ ${dir}: the config file is a directory, not a regular file`);
  });

  it("is read through a symlink, as a mounted ConfigMap is", async () => {
    const file = writeConfig({ metrics: { port: 9123 } });
    const link = join(dirname(file), "link.yaml");
    symlinkSync(file, link);
    const run = cli(["--config", link, "--print-config"]);
    expect(await run.exited).toBe(0);
    expect(run.stdout()).toContain("port: 9123");
  });

  it("is refused when it is a socket", async () => {
    const path = join(dirname(writeConfig({})), "config.sock");
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      expect(await readConfigFile(path)).toMatchObject({ ok: false, refused: true, message: expect.stringContaining("is a socket, not a regular file") });
    } finally {
      server.close();
    }
  });
});
