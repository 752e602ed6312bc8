// The two documents S3 answers with here: a ListObjectsV2 page and an Error.
import { UpstreamError } from "../../errors.ts";
import type { BackupObject } from "./types.ts";
import { XmlReader } from "./xml.ts";

/** One ListObjectsV2 page holds at most 1000 keys; a page of that size is a few hundred KiB of XML. */
export const PAGE_KEYS = 1000;

export interface ListPage {
  objects: BackupObject[];
  truncated: boolean;
  nextToken: string | undefined;
}

type EntryField = "Key" | "LastModified" | "Size";
const ENTRY_FIELDS = new Set<string>(["Key", "LastModified", "Size"]);
const PAGE_FIELDS = new Set<string>(["IsTruncated", "NextContinuationToken"]);

/**
 * Reads one ListObjectsV2 page as it arrives, keeping only what a backup needs (Key, LastModified and Size of
 * each entry, IsTruncated, NextContinuationToken). Anything that is not a well-formed ListBucketResult is a
 * decode failure, and so is a page of more entries than were asked for.
 */
export class ListPageReader {
  readonly #xml: XmlReader;
  readonly #objects: BackupObject[] = [];
  #entry: Partial<Record<EntryField, string>> | undefined;
  #truncated: string | undefined;
  #token: string | undefined;

  constructor(maxKeys: number) {
    this.#xml = new XmlReader({
      open: (path) => {
        const name = path[path.length - 1];
        if (path.length === 1 && name !== "ListBucketResult") throw new UpstreamError(`expected a ListBucketResult document, got <${name}>`, "decode");
        if (path.length !== 2 || name !== "Contents") return;
        if (this.#objects.length >= maxKeys) throw new UpstreamError(`the page lists more than the ${maxKeys} objects asked for`, "decode");
        this.#entry = {};
      },
      keepText: (path) =>
        (path.length === 2 && PAGE_FIELDS.has(path[1] as string)) || (path.length === 3 && path[1] === "Contents" && ENTRY_FIELDS.has(path[2] as string)),
      close: (path, text) => {
        const name = path[path.length - 1] as string;
        if (path.length === 3 && this.#entry && ENTRY_FIELDS.has(name)) this.#entry[name as EntryField] ??= text;
        else if (path.length === 2 && name === "Contents") this.#endEntry();
        else if (path.length === 2 && name === "IsTruncated") this.#truncated ??= text;
        else if (path.length === 2 && name === "NextContinuationToken") this.#token ??= text;
      },
    });
  }

  write(text: string): void {
    this.#xml.write(text);
  }

  end(): ListPage {
    this.#xml.end();
    const truncated = this.#truncated ?? "false";
    if (truncated !== "true" && truncated !== "false") throw new UpstreamError(`IsTruncated is ${JSON.stringify(truncated)}`, "decode");
    return { objects: this.#objects, truncated: truncated === "true", nextToken: this.#token || undefined };
  }

  #endEntry(): void {
    const { Key: key, LastModified: lastModified = "", Size: sizeText = "" } = this.#entry ?? {};
    this.#entry = undefined;
    const at = Date.parse(lastModified);
    const size = /^\d+$/.test(sizeText) ? Number(sizeText) : NaN;
    if (!key || !Number.isFinite(at) || !Number.isSafeInteger(size)) {
      throw new UpstreamError(`ListBucketResult entry ${JSON.stringify(key ?? "")} lacks a valid Key, LastModified or Size`, "decode");
    }
    this.#objects.push({ key, lastModifiedMs: at, sizeBytes: size });
  }
}

/** A whole ListObjectsV2 page at once. */
export function parseListPage(xml: string, maxKeys = PAGE_KEYS): ListPage {
  const reader = new ListPageReader(maxKeys);
  reader.write(xml);
  return reader.end();
}

/** Code and Message of an S3 Error document; throws UpstreamError("decode") when it is not one. */
export function parseErrorDocument(xml: string): { code?: string; message?: string } {
  const found: { code?: string; message?: string } = {};
  const reader = new XmlReader({
    open: (path) => {
      if (path.length === 1 && path[0] !== "Error") throw new UpstreamError(`expected an Error document, got <${path[0]}>`, "decode");
    },
    keepText: (path) => path.length === 2 && (path[1] === "Code" || path[1] === "Message"),
    close: (path, text) => {
      if (path.length !== 2 || text === "") return;
      if (path[1] === "Code") found.code ??= text;
      else if (path[1] === "Message") found.message ??= text;
    },
  });
  reader.write(xml);
  reader.end();
  return found;
}
