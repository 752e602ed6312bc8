/**
 * `npm run observe`: writes the Grafana dashboards, the Prometheus rules file and the PrometheusRule from
 * src/observe/. Dashboard files that no longer have a definition are removed, so dashboards/ holds exactly the
 * generated set.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DASHBOARD_DIR, renderObserveFiles } from "../src/observe/render.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const files = renderObserveFiles();

mkdirSync(join(root, DASHBOARD_DIR), { recursive: true });
for (const name of readdirSync(join(root, DASHBOARD_DIR))) {
  const path = `${DASHBOARD_DIR}/${name}`;
  if (name.endsWith(".json") && !files.has(path)) {
    rmSync(join(root, path));
    process.stdout.write(`removed ${path}\n`);
  }
}
for (const [path, content] of files) {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), content);
  process.stdout.write(`wrote ${path}\n`);
}
