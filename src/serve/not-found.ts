import type { Context } from "hono";

/** Every unknown path answers JSON, so a typo in a probe or scrape config is easy to see with curl. */
export function notFound(endpoints: () => string[]) {
  return (c: Context) =>
    c.json({ error: "not found", path: c.req.path, endpoints: endpoints() }, 404);
}
