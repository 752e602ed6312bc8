import { inspect } from "node:util";
import { isSensitiveParam, REDACTED, redactUserInfo, rememberSecret, Secret } from "./secret.ts";

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The name=value pairs of a query or fragment ("?a=1&b=2"), as written; a pair without "=" has no value. */
function params(part: string): { pair: string; name: string; value: string | undefined }[] {
  if (part.length < 2) return [];
  return part
    .slice(1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      return eq < 0 ? { pair, name: pair, value: undefined } : { pair, name: pair.slice(0, eq), value: pair.slice(eq + 1) };
    });
}

const sensitive = (name: string) => isSensitiveParam(decoded(name));

/** "?a=1&token=x" → "?a=1&token=[REDACTED]"; the same for a fragment. Names and other values stay as written. */
function redactParams(part: string): string {
  if (!part.includes("=")) return part;
  return `${part[0]}${params(part)
    .map((p) => (p.value !== undefined && sensitive(p.name) ? `${p.name}=${REDACTED}` : p.pair))
    .join("&")}`;
}

/** The URL as it may be printed: redactUserInfo's user info, sensitive parameters' values redacted. */
function shownUrl(url: URL): string {
  if (!url.href.startsWith(`${url.protocol}//`)) return `${url.protocol}${url.pathname}${redactParams(url.search)}${redactParams(url.hash)}`;
  const info = url.password !== "" ? `${url.username}:${url.password}` : url.username;
  return `${url.protocol}//${info === "" ? "" : `${redactUserInfo(info)}@`}${url.host}${url.pathname}${redactParams(url.search)}${redactParams(url.hash)}`;
}

/**
 * Remembers, for scrubbing, the credentials a URL carries: its password (or its user name when that stands
 * alone) and the values of its sensitive query and fragment parameters, as written and decoded.
 */
export function rememberUrlCredentials(url: URL): void {
  const parts = [url.password !== "" ? url.password : url.username];
  for (const p of [...params(url.search), ...params(url.hash)]) if (p.value !== undefined && sensitive(p.name)) parts.push(p.value);
  for (const part of parts) {
    if (part === "") continue;
    rememberSecret(part);
    rememberSecret(decoded(part));
  }
}

/**
 * A URL that may carry credentials in its user info or query, as the configuration (or a file it names) gives
 * it. Its string, JSON and inspect forms have them redacted ("http://user:[REDACTED]@host/", "?token=[REDACTED]");
 * `reveal()` is the one deliberate way to the URL itself, for the request. The credentials are remembered, so
 * scrubbing catches them wherever else they turn up.
 */
export class SecretUrl {
  readonly #url: URL;
  readonly #shown: string;

  /** Throws a TypeError when `url` is not a URL, as `new URL` does. */
  constructor(url: string | URL) {
    this.#url = new URL(url);
    this.#shown = shownUrl(this.#url);
    rememberUrlCredentials(this.#url);
  }

  reveal(): string {
    return this.#url.href;
  }

  get protocol(): string {
    return this.#url.protocol;
  }

  /** host[:port] */
  get host(): string {
    return this.#url.host;
  }

  get hostname(): string {
    return this.#url.hostname;
  }

  get port(): string {
    return this.#url.port;
  }

  /** scheme://host[:port], which has no place for credentials. */
  get origin(): string {
    return this.#url.origin;
  }

  get pathname(): string {
    return this.#url.pathname;
  }

  /** Path and query, as a request line carries them. */
  get path(): string {
    return `${this.#url.pathname}${this.#url.search}`;
  }

  /** The user info as a Basic Authorization header, which undici does not send by itself; undefined without any. */
  basicAuthorization(): Secret | undefined {
    const { username, password } = this.#url;
    if (username === "" && password === "") return undefined;
    return new Secret(`Basic ${Buffer.from(`${decoded(username)}:${decoded(password)}`).toString("base64")}`);
  }

  /**
   * The URL with `suffix` ("/path", with a "?query" of its own if any) after its path, whose trailing slashes are
   * dropped first; the query of both is kept.
   */
  child(suffix: string): SecretUrl {
    const url = new URL(this.#url.href);
    const q = suffix.indexOf("?");
    url.pathname = `${url.pathname.replace(/\/+$/, "")}${q < 0 ? suffix : suffix.slice(0, q)}`;
    if (q >= 0) url.search = url.search === "" ? suffix.slice(q + 1) : `${url.search.slice(1)}&${suffix.slice(q + 1)}`;
    return new SecretUrl(url);
  }

  toString(): string {
    return this.#shown;
  }

  toJSON(): string {
    return this.#shown;
  }

  [inspect.custom](): string {
    return this.#shown;
  }
}
