/**
 * The exporter as the image runs it (`node dist/cli.js`): src/ bundled by the image's own build (scripts/build.ts,
 * `npm run build`) into a temporary directory laid out like the image's /app (dist/, protos/, package.json,
 * node_modules). Every phase of the benchmark runs this, since tsx's on-the-fly transpiling (its own memory, its
 * own start-up time) is not what runs in a pod.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildBundle } from "../scripts/build.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface CompiledExporter {
  /** dist/cli.js */
  cli: string;
  remove(): void;
}

function bundle(): CompiledExporter {
  const app = mkdtempSync(join(tmpdir(), "sidecar-bench-app-"));
  const remove = () => rmSync(app, { recursive: true, force: true });
  try {
    buildBundle(join(app, "dist"));
    writeFileSync(join(app, "package.json"), readFileSync(join(ROOT, "package.json")));
    symlinkSync(join(ROOT, "protos"), join(app, "protos"));
    symlinkSync(join(ROOT, "node_modules"), join(app, "node_modules"));
  } catch (err) {
    remove();
    throw err;
  }
  return { cli: join(app, "dist", "cli.js"), remove };
}

/**
 * The node flags of the image's ENTRYPOINT (V8 heap sizing), so that the benchmark's exporter runs as the
 * container's does: `["node", ...flags, "dist/cli.js"]` in the Dockerfile.
 */
export function imageNodeFlags(): string[] {
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, "Dockerfile"), "utf8"))?.[1];
  const exec = line === undefined ? [] : (JSON.parse(line) as string[]);
  const script = exec.indexOf("dist/cli.js");
  return exec[0] === "node" && script > 0 ? exec.slice(1, script) : [];
}

let shared: CompiledExporter | undefined;

/**
 * src/ bundled once per benchmark process: every caller gets the same directory, removed by remove() or, at the
 * latest, when the process exits.
 */
export function compileExporter(): CompiledExporter {
  if (shared) return shared;
  const compiled = bundle();
  const removeAtExit = () => compiled.remove();
  process.once("exit", removeAtExit);
  shared = {
    cli: compiled.cli,
    remove() {
      process.off("exit", removeAtExit);
      if (shared?.cli === compiled.cli) shared = undefined;
      compiled.remove();
    },
  };
  return shared;
}
