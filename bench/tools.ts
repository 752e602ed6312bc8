/** The load tool and the peers: found on PATH, installed with apt-get when missing and allowed, and their versions. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { log } from "./log.ts";

function which(name: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function firstLine(command: string, args: string[]): string {
  try {
    const out = execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    return out.split("\n")[0]?.trim() ?? "";
  } catch (err) {
    // wrk -v prints its version and exits 1.
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ""}${e.stderr ?? ""}`.split("\n")[0]?.trim() ?? "";
  }
}

export interface Tools {
  wrk: string;
  nodeExporter: string | undefined;
  blackbox: string | undefined;
  versions: Record<string, string>;
}

const DEBIAN_PACKAGES = { wrk: "wrk", nodeExporter: "prometheus-node-exporter", blackbox: "prometheus-blackbox-exporter" };

/** Finds wrk and the two peers; as root on Debian, installs the missing ones with apt-get. */
export function findTools(): Tools {
  const find = () => ({
    wrk: which("wrk"),
    nodeExporter: which("prometheus-node-exporter") ?? which("node_exporter"),
    blackbox: which("prometheus-blackbox-exporter") ?? which("blackbox_exporter"),
  });
  let found = find();
  const missing = (Object.keys(DEBIAN_PACKAGES) as (keyof typeof DEBIAN_PACKAGES)[]).filter((k) => !found[k]);
  if (missing.length > 0 && process.getuid?.() === 0 && which("apt-get")) {
    const packages = missing.map((k) => DEBIAN_PACKAGES[k]);
    log(`installing ${packages.join(", ")} with apt-get`);
    try {
      const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
      execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
      execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...packages], { stdio: "inherit", env });
    } catch {
      log("apt-get failed; going on with what is installed");
    }
    found = find();
  }
  if (!found.wrk) throw new Error(`wrk is required: apt-get install ${Object.values(DEBIAN_PACKAGES).join(" ")}`);
  const versions: Record<string, string> = { wrk: firstLine(found.wrk, ["-v"]).replace(/^wrk /, "").replace(/ Copyright.*$/, "") };
  if (found.nodeExporter) versions.node_exporter = firstLine(found.nodeExporter, ["--version"]).replace(/^node_exporter, version /, "");
  if (found.blackbox) versions.blackbox_exporter = firstLine(found.blackbox, ["--version"]).replace(/^blackbox_exporter, version /, "");
  for (const [k, v] of [["prometheus-node-exporter", found.nodeExporter], ["prometheus-blackbox-exporter", found.blackbox]] as const) {
    if (!v) log(`${k} not found: its column stays empty (apt-get install ${k})`);
  }
  return { wrk: found.wrk, nodeExporter: found.nodeExporter, blackbox: found.blackbox, versions };
}

export function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}
