import { writeFileSync } from "node:fs";
import { renderMetricsReference } from "../src/metrics/reference.ts";

const target = new URL("../docs/metrics.md", import.meta.url);
writeFileSync(target, renderMetricsReference());
process.stdout.write(`wrote ${target.pathname}\n`);
