import { Hono, type Context, type MiddlewareHandler } from "hono";
import type { Config } from "../config/types.ts";
import { liveness, verboseText, type HealthReport } from "../health/aggregate.ts";
import { checkJson, debugStatus, type DebugInfo } from "../health/debug-status.ts";
import type { HealthModel } from "../health/model.ts";
import { scrub } from "../secret.ts";
import { livenessPaths, TEXT_HEADERS as TEXT } from "./liveness.ts";
import { noBodyOnGet } from "./no-body.ts";
import { notFound } from "./not-found.ts";
import { PPROF_PATHS, PPROF_PREFIX, pprofRoutes } from "./pprof.ts";
import type { Guard } from "./secure/guard.ts";

function wantsVerbose(c: Context): boolean {
  return c.req.query("verbose") !== undefined;
}

/** kube-apiserver accepts ?exclude=a&exclude=b; a comma-separated list is accepted too. */
function excluded(c: Context): string[] {
  return (c.req.queries("exclude") ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
}

function answer(c: Context, kind: "livez" | "readyz" | "healthz", report: HealthReport, excludedNames: string[] = []) {
  const status = report.ok ? 200 : 503;
  // Like kube-apiserver: a terse "ok" on success, the full list whenever something fails or it is asked for.
  const body = report.ok && !wantsVerbose(c) ? "ok" : verboseText(kind, report, excludedNames);
  return c.body(body, status, TEXT);
}

export function healthApp(model: HealthModel, config: Config, info: DebugInfo, sources?: () => unknown[], debugGuard?: Guard): Hono {
  const app = new Hono();
  app.use(noBodyOnGet);
  const { readinessPath } = config.health;
  // GET of these without a query is answered by serve/liveness.ts before the request gets here, the same way.
  const livePaths = livenessPaths(config.health);
  const readyPaths = [...new Set([readinessPath, "/readyz"])];
  // Read from the store on each request, so checks added or removed by a reload are answered at once.
  const checkPaths = (): Map<string, string> => {
    const paths = new Map<string, string>();
    for (const { spec } of model.store.views()) {
      paths.set(spec.endpoint, spec.name);
      paths.set(`/health/${spec.name}`, spec.name);
    }
    return paths;
  };
  // Profiling is listed only when it is on; off, its paths are as unknown as any other.
  const pprof = config.debug.pprof.enabled ? PPROF_PATHS : [];
  const endpoints = () => [...livePaths, ...readyPaths, ...readyPaths.map((p) => `${p}/<check>`), ...checkPaths().keys(), "/debug/status", ...pprof];

  app.get("/", (c) => c.json({ name: "sidecar-exporter", endpoints: endpoints() }));

  for (const path of livePaths) {
    app.get(path, (c) => answer(c, path === "/livez" ? "livez" : "healthz", liveness()));
  }
  for (const path of readyPaths) {
    app.get(path, (c) => {
      const names = excluded(c);
      return answer(c, "readyz", model.readiness(new Set(names)), names);
    });
    app.get(`${path}/*`, (c) => {
      // Everything after the prefix, so "source/talos" works as a name too.
      const name = decodeURIComponent(c.req.path.slice(path.length + 1));
      const item = model.readiness().items.find((i) => i.name === name);
      const view = model.check(name);
      if (!item && !view) return c.json({ error: `no check named "${name}"`, checks: model.store.views().map((v) => v.spec.name) }, 404);
      // Non-critical checks can be asked for by name too, even though they do not gate /readyz.
      const ok = item ? item.ok : view?.status === "pass";
      const reason = item?.reason ?? (view ? checkJson(view).error ?? view.status : "");
      if (ok) return c.body(wantsVerbose(c) ? `[+]${name} ok\n` : "ok", 200, TEXT);
      return c.body(scrub(`[-]${name} failed: ${reason}\n`), 503, TEXT);
    });
  }
  app.get("*", async (c, next) => {
    const name = checkPaths().get(c.req.path);
    const view = name === undefined ? undefined : model.check(name);
    if (!view) return next();
    return c.body(scrub(JSON.stringify(checkJson(view))), view.status === "pass" ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
  });
  // Probe paths stay open (the kubelet sends no token); only the debugging aids can be put behind authorization.
  if (debugGuard) app.use("/debug/*", debugGuard as unknown as MiddlewareHandler);
  app.get("/debug/status", (c) =>
    c.body(debugStatus(model, info, sources), 200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" }),
  );
  if (config.debug.pprof.enabled) app.route(PPROF_PREFIX, pprofRoutes(config.debug.pprof));
  app.notFound(notFound(endpoints));
  return app;
}
