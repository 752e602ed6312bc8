/**
 * `npm run build`: src/cli.ts bundled by esbuild into dist/ as minified ESM, split into chunks so that what the
 * CLI imports dynamically (everything after the health server listens) is read and compiled only then, with
 * source maps (the image sets --enable-source-maps). Type-checking stays with tsc (`npm run typecheck`).
 *
 *   node --import tsx scripts/build.ts [--outdir DIR] [--metafile FILE]
 *
 * A start reads a few chunks rather than a module file for every source file and every dependency's file; that
 * and the minified code to compile are what the bundle saves. The metafile says which sources went into which
 * chunk and what each chunk imports (test/deploy checks what loads before the health server listens).
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildSync, type BuildOptions } from "esbuild";
import { WORKER_MODULES } from "../src/worker-modules.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * The bundled CommonJS packages call require() for Node's modules and their own optional parts; an ES module has
 * no require, so each chunk makes one. Packages loaded at run time by name (pino-pretty, only for the console
 * log format; re2js, required by src/patterns/pattern.ts only for a configuration with a pattern) stay out of the
 * bundle and are found in node_modules.
 */
const REQUIRE_BANNER = 'import { createRequire as __sidecarCreateRequire } from "node:module"; const require = __sidecarCreateRequire(import.meta.url);';

export function buildOptions(outdir: string): BuildOptions {
  return {
    absWorkingDir: ROOT,
    // Each worker thread's module is an entry of its own: a worker is started from a file (see src/worker-modules.ts).
    entryPoints: { cli: "src/cli.ts", ...Object.fromEntries(Object.entries(WORKER_MODULES).map(([name, path]) => [name, join("src", path)])) },
    outdir,
    bundle: true,
    splitting: true,
    minify: true,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: "linked",
    // Stack traces need the mappings only; with --enable-source-maps Node reads and parses each chunk's map as
    // the chunk loads, so the sources themselves would only add to every start.
    sourcesContent: false,
    // dist/ holds cli.js (the bin entry and the image's entrypoint), the worker threads' modules and a directory of the chunks they import.
    chunkNames: "chunks/[name]-[hash]",
    external: ["pino-pretty"],
    banner: { js: REQUIRE_BANNER },
    logLevel: "warning",
  };
}

/**
 * Builds into outdir (emptied first) and returns it; cli.js is made executable, as the bin entry is run. Synchronous
 * (about a second), so the benchmark can build where it spawns the exporter.
 */
export function buildBundle(outdir: string, metafile?: string): string {
  const dir = resolve(outdir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const result = buildSync({ ...buildOptions(dir), metafile: metafile !== undefined });
  if (metafile !== undefined && result.metafile) writeFileSync(resolve(metafile), JSON.stringify(result.metafile));
  chmodSync(join(dir, "cli.js"), 0o755);
  return dir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { outdir: { type: "string", default: join(ROOT, "dist") }, metafile: { type: "string" } } });
  try {
    buildBundle(values.outdir, values.metafile);
  } catch (err) {
    // esbuild has printed each error with its place already.
    process.stderr.write(`build failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
