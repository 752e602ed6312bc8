import type { MiddlewareHandler } from "hono";

/** True when the request announces a body: a non-zero Content-Length or any Transfer-Encoding (chunked). */
export function announcesBody(contentLength: string | undefined, transferEncoding: string | undefined): boolean {
  if (transferEncoding !== undefined && transferEncoding.trim() !== "") return true;
  return contentLength !== undefined && contentLength.trim() !== "0";
}

/**
 * Refuses GET and HEAD requests that carry a body, before anything reads it: no endpoint takes one, and a body
 * would only be a way to hold a connection and its memory. The connection is closed after the answer, so the
 * server does not go on to read and discard the body either.
 */
export const noBodyOnGet: MiddlewareHandler = async (c, next) => {
  const method = c.req.method;
  if ((method === "GET" || method === "HEAD") && announcesBody(c.req.header("content-length"), c.req.header("transfer-encoding"))) {
    return c.json({ error: `${method} requests take no body` }, 400, { connection: "close" });
  }
  await next();
};
