import { PACKAGE_VERSION } from "./package-root.ts";

/** The package version, from the package's own package.json wherever the code runs from. */
export const VERSION: string = PACKAGE_VERSION;
