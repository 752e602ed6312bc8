import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const NAME = "sidecar-exporter";

/**
 * The package's own directory, where package.json, protos/ and node_modules/ lie, and its version. Code runs
 * from src/ (tsx), from dist/ file by file (tsc), or from one chunk of the bundle in dist/, so no path relative to
 * a module's own file holds for all three: the directory is found once, walking up from this module to the
 * package.json that names this package. Without one (a dist/ copied on its own) the module's parent directory
 * stands in, and the version is 0.0.0.
 */
function find(): { root: string; version: string } {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; ) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown; version?: unknown };
      if (pkg.name === NAME) return { root: dir, version: typeof pkg.version === "string" ? pkg.version : "0.0.0" };
    } catch {
      // No package.json here, or not one that parses: look further up.
    }
    const parent = dirname(dir);
    if (parent === dir) return { root: dirname(start), version: "0.0.0" };
    dir = parent;
  }
}

const found = find();

/** The directory holding package.json, protos/ and node_modules/: /app in the image, the checkout elsewhere. */
export const PACKAGE_ROOT: string = found.root;

/** The version in that package.json. */
export const PACKAGE_VERSION: string = found.version;

/**
 * require() as if from package.json: a package left out of the bundle (pino-pretty, for the console log format)
 * resolves from the package's node_modules whichever file of src/ or dist/ asks for it.
 */
export const packageRequire: NodeJS.Require = createRequire(join(PACKAGE_ROOT, "package.json"));
