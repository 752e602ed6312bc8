import { execFile, spawn } from "node:child_process";
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { cp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, get, healthClient, httpServer } from "../helpers.ts";
import {
  copyPaths,
  type Dockerfile,
  effectiveInstructions,
  findStage,
  type Instruction,
  isIgnored,
  parseDockerfile,
  parseDockerignore,
  type Stage,
  stageEnv,
  stageLabels,
} from "./dockerfile.ts";

const ROOT = join(import.meta.dirname, "../..");
const DOCKERFILE = readFileSync(join(ROOT, "Dockerfile"), "utf8");
const DOCKERIGNORE = readFileSync(join(ROOT, ".dockerignore"), "utf8");
const PKG = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** A slim Node 20 image (Debian slim or distroless): what the runtime stage may start from. */
const NODE20_RUNTIME = /^(?:docker\.io\/(?:library\/)?)?node:20(?:\.\d+){0,2}-(?:bookworm|bullseye)-slim$|^gcr\.io\/distroless\/nodejs20-debian1[12](?::[\w.-]+)?$/;
const NPM_INSTALL = /\bnpm\s+(ci|install|i|prune)\b([^&;|]*)/g;
const PORTS = ["8080", "8081", "8082", "8443"];
const OCI_LABELS = ["title", "description", "version", "licenses"].map((k) => `org.opencontainers.image.${k}`);

function finalStage(file: Dockerfile): Stage {
  const stage = file.stages.at(-1);
  if (!stage) throw new Error("the Dockerfile has no FROM");
  return stage;
}

/** The image a stage finally rests on, following FROM <stage> chains. */
function baseImage(file: Dockerfile, stage: Stage): string {
  const parent = findStage(file, stage.from);
  return parent && parent.index < stage.index ? baseImage(file, parent) : stage.from;
}

function workdir(instructions: Instruction[]): string {
  let dir = "/";
  for (const ins of instructions.filter((i) => i.keyword === "WORKDIR")) dir = posix.resolve(dir, ins.args.trim());
  return dir;
}

/** Whether the node_modules a stage ends with hold production dependencies only. */
function productionOnly(instructions: Instruction[]): boolean {
  let prod = false;
  for (const ins of instructions.filter((i) => i.keyword === "RUN")) {
    for (const m of ins.args.matchAll(NPM_INSTALL)) prod = /--omit[= ]dev\b/.test(m[2] ?? "");
  }
  return prod;
}

/** Every rule the image is built to, as a list of what breaks them; empty when none does. */
function imageRuleViolations(file: Dockerfile, dockerignore: string): string[] {
  const out: string[] = [];
  if (file.stages.length < 2) out.push("one stage only: the compiler and dev dependencies would ship in the image");
  const last = finalStage(file);
  const own = last.instructions;
  const inherited = effectiveInstructions(file, last);

  const base = baseImage(file, last);
  if (!NODE20_RUNTIME.test(base)) out.push(`final stage starts from ${base}, not a slim Node 20 image`);

  const user = inherited.filter((i) => i.keyword === "USER").at(-1)?.args.trim();
  const uid = /^(\d+)(?::\d+)?$/.exec(user ?? "")?.[1];
  if (uid === undefined) out.push(`USER is ${user ?? "not set"}: it must be numeric, so the kubelet can check runAsNonRoot`);
  else if (Number(uid) === 0) out.push("USER is 0 (root)");

  for (const ins of own.filter((i) => i.keyword === "COPY" || i.keyword === "ADD")) {
    const { sources } = copyPaths(ins);
    const from = ins.flags.from;
    if (from === undefined) {
      if (sources.some((s) => s.split("/").includes("node_modules"))) out.push(`line ${ins.line}: node_modules copied from the build context`);
      continue;
    }
    const stage = findStage(file, from);
    if (!stage) continue;
    const instructions = effectiveInstructions(file, stage);
    const dir = workdir(instructions);
    // The stage's node_modules lies in its WORKDIR: copying that directory or one above it copies them too.
    const takesModules = sources.some((s) => {
      const abs = posix.resolve(dir, s);
      return abs.split("/").includes("node_modules") || dir === abs || dir.startsWith(abs === "/" ? "/" : `${abs}/`);
    });
    if (takesModules && !productionOnly(instructions)) {
      out.push(`line ${ins.line}: node_modules copied from stage ${from}, which did not end with npm ci/prune --omit=dev`);
    }
  }
  for (const ins of own.filter((i) => i.keyword === "RUN")) {
    for (const m of ins.args.matchAll(NPM_INSTALL)) {
      if (!/--omit[= ]dev\b/.test(m[2] ?? "")) out.push(`line ${ins.line}: the final stage runs npm ${m[1]} with dev dependencies`);
    }
  }

  const entrypoint = inherited.filter((i) => i.keyword === "ENTRYPOINT").at(-1);
  const exec = entrypoint?.exec;
  if (!exec) out.push("ENTRYPOINT is missing or in shell form: signals would go to a shell, not to node");
  else if (!/(^|\/)node$/.test(exec[0] ?? "") || !exec.includes("dist/cli.js")) out.push(`ENTRYPOINT ${JSON.stringify(exec)} does not run node dist/cli.js`);

  for (const stage of file.stages) {
    for (const ins of stage.instructions.filter((i) => i.keyword === "HEALTHCHECK" && i.args.trim().toUpperCase() !== "NONE")) {
      out.push(`line ${ins.line}: HEALTHCHECK; the kubelet's probes check health`);
    }
  }

  if (stageEnv(last).NODE_ENV !== "production") out.push("NODE_ENV is not production in the final stage");
  const exposed = new Set(own.filter((i) => i.keyword === "EXPOSE").flatMap((i) => i.args.split(/\s+/).map((p) => p.replace(/\/tcp$/, ""))));
  for (const port of PORTS) if (!exposed.has(port)) out.push(`port ${port} is not EXPOSEd`);
  const labels = stageLabels(last);
  for (const label of OCI_LABELS) if (!labels[label]) out.push(`label ${label} is missing`);

  const rules = parseDockerignore(dockerignore);
  for (const path of ["node_modules", "dist", "coverage", "test", ".git", "node_modules/zod/package.json", "test/cli.test.ts"]) {
    if (!isIgnored(rules, path)) out.push(`.dockerignore lets ${path} into the build context`);
  }
  for (const stage of file.stages) {
    for (const ins of stage.instructions.filter((i) => (i.keyword === "COPY" || i.keyword === "ADD") && i.flags.from === undefined)) {
      for (const source of copyPaths(ins).sources) {
        if (isIgnored(rules, source.replace(/^\.\//, ""))) out.push(`line ${ins.line}: ${source} is copied but .dockerignore leaves it out`);
      }
    }
  }
  return out;
}

describe("Dockerfile parser", () => {
  it("reads stages, names, global ARG defaults, continued lines, flags and exec forms", () => {
    const file = parseDockerfile(
      [
        "# syntax=docker/dockerfile:1",
        "ARG BASE=node:20.20-bookworm-slim",
        "FROM ${BASE} AS build",
        "RUN npm ci \\",
        "    # a comment inside the continuation",
        "    --omit=dev",
        "FROM $BASE",
        "COPY --from=build --chown=1:1 /src/dist ./dist",
        'ENTRYPOINT ["node", "dist/cli.js"]',
        'ENV A=1 B="two words"',
      ].join("\n"),
    );
    expect(file.globalArgs).toEqual({ BASE: "node:20.20-bookworm-slim" });
    expect(file.stages.map((s) => [s.name, s.from])).toEqual([
      ["build", "node:20.20-bookworm-slim"],
      [undefined, "node:20.20-bookworm-slim"],
    ]);
    expect(file.stages[0]?.instructions[0]).toMatchObject({ keyword: "RUN", args: "npm ci --omit=dev", line: 4 });
    const copy = file.stages[1]?.instructions[0];
    expect(copy?.flags).toEqual({ from: "build", chown: "1:1" });
    expect(copy && copyPaths(copy)).toEqual({ sources: ["/src/dist"], dest: "./dist" });
    expect(file.stages[1]?.instructions[1]?.exec).toEqual(["node", "dist/cli.js"]);
    expect(stageEnv(file.stages[1] as Stage)).toEqual({ A: "1", B: "two words" });
  });

  it("matches .dockerignore patterns against paths and their parent directories, last rule winning", () => {
    const rules = parseDockerignore("node_modules\n/dist/\n**/*.log\ndocs\n!docs/keep.md\n");
    expect(isIgnored(rules, "node_modules/a/b.js")).toBe(true);
    expect(isIgnored(rules, "dist")).toBe(true);
    expect(isIgnored(rules, "src/x/y.log")).toBe(true);
    expect(isIgnored(rules, "docs/other.md")).toBe(true);
    expect(isIgnored(rules, "docs/keep.md")).toBe(false);
    expect(isIgnored(rules, "src/cli.ts")).toBe(false);
  });
});

describe("Dockerfile rules", () => {
  it("the repository's Dockerfile and .dockerignore break none", () => {
    const file = parseDockerfile(DOCKERFILE);
    expect(imageRuleViolations(file, DOCKERIGNORE)).toEqual([]);
    // The facts the rules rest on, stated plainly.
    expect(file.stages.length).toBeGreaterThanOrEqual(2);
    expect(baseImage(file, finalStage(file))).toMatch(/^node:20\.\d+-bookworm-slim$/);
    expect(effectiveInstructions(file, finalStage(file)).filter((i) => i.keyword === "USER").at(-1)?.args).toBe("65532:65532");
  });

  it("each rule catches what it is there for", () => {
    const single = parseDockerfile(
      ["FROM node:20", "WORKDIR /app", "COPY . .", "RUN npm ci", "USER root", "HEALTHCHECK CMD curl -f localhost:8081/healthz", "CMD npm start"].join("\n"),
    );
    expect(imageRuleViolations(single, "dist\n")).toEqual([
      "one stage only: the compiler and dev dependencies would ship in the image",
      "final stage starts from node:20, not a slim Node 20 image",
      "USER is root: it must be numeric, so the kubelet can check runAsNonRoot",
      "line 4: the final stage runs npm ci with dev dependencies",
      "ENTRYPOINT is missing or in shell form: signals would go to a shell, not to node",
      "line 6: HEALTHCHECK; the kubelet's probes check health",
      "NODE_ENV is not production in the final stage",
      ...PORTS.map((p) => `port ${p} is not EXPOSEd`),
      ...OCI_LABELS.map((l) => `label ${l} is missing`),
      ".dockerignore lets node_modules into the build context",
      ".dockerignore lets coverage into the build context",
      ".dockerignore lets test into the build context",
      ".dockerignore lets .git into the build context",
      ".dockerignore lets node_modules/zod/package.json into the build context",
      ".dockerignore lets test/cli.test.ts into the build context",
    ]);

    // A real multi-stage file whose runtime takes the builder's full node_modules, directly or by its workdir.
    const leaky = DOCKERFILE.replace("COPY --from=prod-deps /src/node_modules ./node_modules", "COPY --from=build /src/node_modules ./node_modules");
    expect(leaky).not.toBe(DOCKERFILE);
    expect(imageRuleViolations(parseDockerfile(leaky), DOCKERIGNORE)).toEqual([
      expect.stringMatching(/node_modules copied from stage build, which did not end with npm ci\/prune --omit=dev$/),
    ]);
    const wholeDir = DOCKERFILE.replace("COPY --from=build /src/dist ./dist", "COPY --from=build /src ./");
    expect(imageRuleViolations(parseDockerfile(wholeDir), DOCKERIGNORE)).toHaveLength(1);
    // Pruning the builder's tree is as good as a separate production install.
    const pruned = leaky.replace("RUN npm run build && chmod 0755 dist/cli.js", "RUN npm run build && chmod 0755 dist/cli.js && npm prune --omit=dev");
    expect(imageRuleViolations(parseDockerfile(pruned), DOCKERIGNORE)).toEqual([]);

    const zeroUser = DOCKERFILE.replace("USER 65532:65532", "USER 0:0");
    expect(imageRuleViolations(parseDockerfile(zeroUser), DOCKERIGNORE)).toEqual(["USER is 0 (root)"]);
    expect(imageRuleViolations(parseDockerfile(DOCKERFILE), `${DOCKERIGNORE}\nprotos\n`)).toEqual([
      expect.stringMatching(/protos is copied but .dockerignore leaves it out$/),
    ]);
  });
});

/**
 * The final stage's /app, put together on disk from the Dockerfile's own COPY lines: dist/ compiled with the build
 * stage's command, node_modules holding exactly what `npm ci --omit=dev` installs (the packages package-lock.json
 * does not mark `dev`), and protos/ and package.json from the context. Then the entrypoint runs from there with
 * the image's environment, as the container would.
 */
describe("the runtime stage's layout, assembled without Docker", () => {
  const file = parseDockerfile(DOCKERFILE);
  const last = finalStage(file);
  const env = stageEnv(last);
  let work: string;
  let app: string;
  let fingerprint: string;

  /** Copies a tree as hard links where it can: ten thousand small files copied cost seconds, linked they do not. */
  function linkTree(from: string, to: string): void {
    mkdirSync(to, { recursive: true });
    for (const e of readdirSync(from, { withFileTypes: true })) {
      const [src, dst] = [join(from, e.name), join(to, e.name)];
      if (e.isDirectory()) linkTree(src, dst);
      else if (e.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
      else {
        try {
          linkSync(src, dst);
        } catch {
          copyFileSync(src, dst); // another file system
        }
      }
    }
  }

  /** The build's esbuild metafile: which source files each output file holds, and what each output imports. */
  let metafile: string;

  // The build is asynchronous: a worker blocked for a minute by a synchronous one loses its link to vitest.
  async function compileDist(): Promise<string> {
    const out = join(work, "build-dist");
    metafile = join(work, "build-meta.json");
    await promisify(execFile)("npm", ["run", "--silent", "build", "--", "--outdir", out, "--metafile", metafile], { cwd: ROOT });
    return out;
  }

  function productionModules(): string {
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
      packages: Record<string, { dev?: boolean; optional?: boolean }>;
    };
    const copied: string[] = [];
    const entries = Object.entries(lock.packages)
      .filter(([path, meta]) => path.startsWith("node_modules/") && !meta.dev)
      .sort(([a], [b]) => a.length - b.length);
    for (const [path, meta] of entries) {
      // A nested copy comes with its parent.
      if (copied.some((c) => path.startsWith(`${c}/`))) continue;
      const from = join(ROOT, path);
      if (!existsSync(from)) {
        if (meta.optional) continue; // another platform's binary
        throw new Error(`${path} is in package-lock.json but not installed; run npm ci`);
      }
      linkTree(from, join(work, "prod", path));
      copied.push(path);
    }
    return join(work, "prod", "node_modules");
  }

  /** What a `COPY --from=<stage> <source>` in the runtime stage refers to, produced locally. */
  async function stageOutput(stageRef: string, source: string): Promise<string> {
    const stage = findStage(file, stageRef);
    if (!stage) throw new Error(`COPY --from=${stageRef}: no such stage`);
    const instructions = effectiveInstructions(file, stage);
    const abs = posix.resolve(workdir(instructions), source);
    const runs = instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
    if (abs === posix.join(workdir(instructions), "dist") && runs.some((r) => r.includes("npm run build"))) return compileDist();
    if (abs === posix.join(workdir(instructions), "node_modules") && productionOnly(instructions)) return productionModules();
    throw new Error(`the layout test cannot produce ${abs} of stage ${stageRef}; teach stageOutput how`);
  }

  function snapshot(dir: string): string {
    const lines: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else lines.push(`${p} ${statSync(p).size} ${statSync(p).mtimeMs}`);
      }
    };
    walk(dir);
    return lines.sort().join("\n");
  }

  function entrypoint(args: string[], extraEnv: Record<string, string> = {}) {
    const exec = effectiveInstructions(file, last).filter((i) => i.keyword === "ENTRYPOINT").at(-1)?.exec ?? [];
    const [command, ...rest] = exec;
    if (command !== "node") throw new Error(`ENTRYPOINT ${JSON.stringify(exec)}: the layout test runs "node ..." entrypoints only`);
    return spawn(process.execPath, [...rest, ...args], {
      cwd: app,
      env: { PATH: process.env.PATH ?? "", ...env, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
  }

  /**
   * Runs the entrypoint until it logs that it started, with the addresses it logged; stop() sends SIGTERM, or
   * SIGINT to a start without a configuration file, whose default shutdown delay SIGINT skips.
   */
  async function startEntrypoint(args: string[], extraEnv: Record<string, string> = {}) {
    const child = entrypoint(args, extraEnv);
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const stop = (signal: "SIGTERM" | "SIGINT" = "SIGTERM") => void child.kill(signal);
    try {
      const started = await eventually(() => {
        const line = stdout.split("\n").find((l) => l.includes('"sidecar-exporter started"'));
        return line ? (JSON.parse(line) as { metrics: string; health: string; grpc: string }) : undefined;
      }, 15_000);
      return { started, stop, exited };
    } catch (err) {
      stop();
      throw err;
    }
  }

  async function run(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = entrypoint(args, extraEnv);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    return { code, stdout, stderr };
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "sidecar-image-"));
    const root = workdir(effectiveInstructions(file, last));
    app = join(work, "rootfs", root);
    await mkdir(app, { recursive: true });
    for (const ins of last.instructions.filter((i) => i.keyword === "COPY")) {
      const { sources, dest } = copyPaths(ins);
      const target = join(work, "rootfs", posix.resolve(root, dest));
      for (const source of sources) {
        const from = ins.flags.from === undefined ? join(ROOT, source) : await stageOutput(ins.flags.from, source);
        // As COPY does: a directory's contents go into the destination; a file goes into it when it ends in "/".
        const to = !statSync(from).isDirectory() && dest.endsWith("/") ? join(target, posix.basename(source)) : target;
        await mkdir(dirname(to), { recursive: true });
        await cp(from, to, { recursive: true });
      }
    }
    fingerprint = snapshot(app);
  }, 180_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it("holds dist/, protos/ beside it, package.json and production dependencies only", () => {
    expect(existsSync(join(app, "dist/cli.js"))).toBe(true);
    expect(readFileSync(join(app, "dist/cli.js"), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(existsSync(join(app, "protos/grpc/health/v1/health.proto"))).toBe(true);
    expect(JSON.parse(readFileSync(join(app, "package.json"), "utf8"))).toMatchObject({ version: PKG.version });
    const installed = new Set(readdirSync(join(app, "node_modules")).flatMap((n) => (n.startsWith("@") ? readdirSync(join(app, "node_modules", n)).map((s) => `${n}/${s}`) : [n])));
    for (const dep of Object.keys(PKG.dependencies)) expect(installed, dep).toContain(dep);
    // A devDependency can also be a production one's dependency (@types/node is protobufjs'); the rest must be absent.
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.keys(PKG.devDependencies).filter((d) => lock.packages[`node_modules/${d}`]?.dev);
    expect(devOnly).toEqual(expect.arrayContaining(["typescript", "tsx", "vitest"]));
    for (const dev of devOnly) expect(installed, dev).not.toContain(dev);
    expect(existsSync(join(app, "src"))).toBe(false);
    expect(existsSync(join(app, "test"))).toBe(false);
  });

  it("runs --version and --print-config from the assembled tree", async () => {
    const version = await run(["--version"]);
    expect(version).toMatchObject({ code: 0, stderr: "" });
    expect(version.stdout.trim()).toBe(PKG.version);

    for (const config of ["examples/demo.yaml", "k8s/base/config.yaml"]) {
      const printed = await run(["--config", join(ROOT, config), "--print-config"]);
      expect(printed.stderr, config).toBe("");
      expect(printed.code, config).toBe(0);
      expect(printed.stdout).toMatch(/^metrics:\n/);
    }
  });

  it("serves metrics, health and gRPC health (protos found beside dist/) and writes nothing into the image", async () => {
    const configFile = join(work, "config.yaml");
    writeFileSync(
      configFile,
      [
        "metrics: { port: 0 }",
        "health: { port: 0 }",
        "grpcHealth: { port: 0 }",
        "server: { address: 127.0.0.1, shutdownDelay: 0s, shutdownGracePeriod: 1s }",
        "logging: { format: json }",
      ].join("\n"),
    );
    const { started, stop, exited } = await startEntrypoint(["--config", configFile]);
    try {
      expect((await get(`http://${started.health}/healthz`)).status).toBe(200);
      const metrics = await get(`http://${started.metrics}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.body).toContain("# TYPE process_cpu_seconds_total counter");
      const client = healthClient(started.grpc);
      try {
        const status = await new Promise<string>((resolve, reject) =>
          client.Check({ service: "" }, (err, res) => (err ? reject(err) : resolve(res.status))),
        );
        expect(status).toBe("SERVING");
      } finally {
        client.close();
      }
    } finally {
      stop();
    }
    expect(await exited).toBe(0);
    expect(snapshot(app)).toBe(fingerprint);
  });

  /** Every port from the environment, each one the system picks. */
  const EPHEMERAL_PORTS = { SIDECAR_HEALTH_PORT: "0", SIDECAR_METRICS_PORT: "0", SIDECAR_GRPC_HEALTH_PORT: "0" };
  /** A path on the loopback at the port of an address the exporter logged ("0.0.0.0:PORT"). */
  const local = (address: string, path: string) => `http://127.0.0.1:${address.slice(address.lastIndexOf(":") + 1)}${path}`;

  it("starts with no configuration at all, the ports from the environment, and answers /healthz and /metrics", async () => {
    const { started, stop, exited } = await startEntrypoint([], EPHEMERAL_PORTS);
    try {
      const health = await get(local(started.health, "/healthz"));
      expect(health).toMatchObject({ status: 200, body: "ok" });
      expect((await get(local(started.health, "/readyz"))).status).toBe(200);
      const metrics = await get(local(started.metrics, "/metrics"));
      expect(metrics.status).toBe(200);
      expect(metrics.body).toContain("# TYPE sidecar_build_info gauge");
    } finally {
      stop("SIGINT");
    }
    expect(await exited).toBe(0);
  });

  it("serves /metrics from the scrape thread, whose module the bundle holds beside cli.js", async () => {
    const { started, stop, exited } = await startEntrypoint([], { ...EPHEMERAL_PORTS, SIDECAR_METRICS_SCRAPE_THREAD: "true" });
    try {
      const metrics = await get(local(started.metrics, "/metrics"));
      expect(metrics.status).toBe(200);
      expect(metrics.body).toContain("# TYPE sidecar_build_info gauge");
    } finally {
      stop("SIGINT");
    }
    expect(await exited).toBe(0);
  });

  it("matches a bodyMatch over a large body on the pattern's worker thread, whose module the bundle holds beside cli.js", async () => {
    const upstream = await httpServer((_req, res) => res.end(`${"a".repeat(1_000_000)}ok`));
    const configFile = join(work, "body-match.yaml");
    writeFileSync(configFile, JSON.stringify({ healthChecks: { dependencies: [{ name: "big", type: "http", url: upstream.url, bodyMatch: "a+ok$", timeout: "10s" }] } }));
    const { started, stop, exited } = await startEntrypoint(["--config", configFile], EPHEMERAL_PORTS);
    try {
      const verdict = await eventually(async () => {
        const state = JSON.parse((await get(local(started.health, "/health/big"))).body) as { status: string };
        return state.status === "pending" ? undefined : state;
      }, 15_000);
      expect(verdict).toMatchObject({ status: "pass" });
    } finally {
      stop();
      await upstream.close();
    }
    expect(await exited).toBe(0);
  });

  it("exits 2 on an invalid configuration, naming the field, before any server listens", async () => {
    const configFile = join(work, "invalid.yaml");
    // A pattern the engine cannot run is refused there too: the engine is read from node_modules, not the bundle.
    writeFileSync(
      configFile,
      ["metrics: { port: 70000 }", "health: { port: 0 }", "logging: { format: json }", "healthChecks: { dependencies: [{ name: web, type: http, url: 'http://a', bodyMatch: '(?=ok)' }] }"].join("\n"),
    );
    const result = await run(["--config", configFile]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("invalid configuration");
    expect(result.stderr).toMatch(/✗ metrics\.port: /);
    expect(result.stderr).toMatch(/✗ healthChecks\.dependencies\[0\]\.bodyMatch: "\(\?=ok\)" is not a pattern/);
    expect(result.stdout).not.toContain("listening");
  });

  it("loads no more than the configuration's validation and node:http before the health server listens", () => {
    // What runs before listening: the CLI's static imports, then the runtime module with its own (cli.ts imports
    // it with import() once the configuration is valid); the rest (logging, Hono and the fetch API it brings,
    // sources, metrics, gRPC) is imported after.
    const meta = JSON.parse(readFileSync(metafile, "utf8")) as {
      outputs: Record<string, { entryPoint?: string; inputs: Record<string, unknown>; imports: { path: string; kind: string; external?: boolean }[] }>;
    };
    const outputs = meta.outputs;
    const staticClosure = (start: string[]): Set<string> => {
      const seen = new Set<string>();
      const stack = [...start];
      for (let out = stack.pop(); out !== undefined; out = stack.pop()) {
        if (seen.has(out)) continue;
        seen.add(out);
        for (const i of outputs[out]?.imports ?? []) if (i.kind === "import-statement" && !i.external) stack.push(i.path);
      }
      return seen;
    };
    const entry = Object.keys(outputs).filter((o) => outputs[o]?.entryPoint === "src/cli.ts");
    const runtime = Object.keys(outputs).filter((o) => outputs[o]?.inputs["src/runtime.ts"] !== undefined);
    expect(entry).toHaveLength(1);
    expect(runtime).toHaveLength(1);
    const loaded = [...staticClosure([...entry, ...runtime])].map((o) => outputs[o]);
    const inputs = loaded.flatMap((o) => Object.keys(o?.inputs ?? {}));
    // Inputs are named relative to the checkout; node_modules may be a link to elsewhere.
    const packages = new Set(inputs.map((i) => /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(i)?.[1]).filter((p) => p !== undefined));
    expect([...packages].sort()).toEqual(["fastest-levenshtein", "zod"]);
    // `import { z }` anywhere would bring zod's `z` object, and every locale with it; `import * as z` lets the
    // bundler keep only what is used.
    expect(inputs.filter((i) => i.includes("zod/v4/locales/")).map((i) => i.slice(i.indexOf("zod/")))).toEqual(["zod/v4/locales/en.js"]);
    // Node's own modules that take the longest to load, none of them needed to listen on plain HTTP.
    const builtins = loaded.flatMap((o) => (o?.imports ?? []).filter((i) => i.external && i.kind === "import-statement").map((i) => i.path.replace(/^node:/, "")));
    expect(builtins.filter((b) => ["https", "http2", "tls", "crypto", "worker_threads"].includes(b))).toEqual([]);
  });
});
