import { UpstreamError } from "../../errors.ts";

/**
 * A streaming reader for the XML S3 answers with: it takes the document a piece at a time, tells its handler
 * where elements start and end, and keeps the text only of the elements the handler asks for. Nothing else is
 * held, so the cost of a document is linear in its length and its memory bounded by the limits below, whatever
 * it contains. It reads what S3 sends — elements, attributes (skipped), comments, processing instructions, CDATA,
 * the five predefined entities and character references — and refuses a DTD, so entities cannot be defined.
 */
export interface XmlLimits {
  /** Elements nested deeper than this are refused. */
  maxDepth: number;
  /** The text kept for one element, in characters, after references are decoded. */
  maxTextChars: number;
  /** One tag, comment, processing instruction or CDATA section, in characters. */
  maxMarkupChars: number;
}

export interface XmlHandler {
  /** An element starts. `path` names the open elements from the root down, namespace prefixes dropped. */
  open(path: readonly string[]): void;
  /** Whether close() gets the text of the element at `path`. */
  keepText(path: readonly string[]): boolean;
  /** An element ends; `text` is its text, references decoded, when keepText said so and it has no child elements. */
  close(path: readonly string[], text: string): void;
}

const DEFAULT_LIMITS: XmlLimits = { maxDepth: 16, maxTextChars: 4096, maxMarkupChars: 8192 };

const PREDEFINED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
/** "&#x10FFFF;" is the longest reference that can be valid. */
const MAX_REFERENCE_CHARS = 10;
const REFERENCE_CHAR = /[#0-9A-Za-z]/;
const NAME = /^[A-Za-z_:][\w.:-]*$/;
const TEXT_RUN = /[^<&]+/y;
/** Characters XML 1.0 does not allow in a document, even escaped. */
const NOT_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;
const SPACE = /^[ \t\r\n]*$/;

function isXmlCodePoint(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

function malformed(message: string): UpstreamError {
  return new UpstreamError(`malformed XML: ${message}`, "decode");
}

function localName(name: string): string {
  const colon = name.lastIndexOf(":");
  return colon < 0 ? name : name.slice(colon + 1);
}

/** Index just past `close` searched from `from`, or -1 while it has not arrived yet. */
function after(s: string, close: string, from: number): number {
  const at = s.indexOf(close, from);
  return at < 0 ? -1 : at + close.length;
}

/** Checks the attributes of a start tag (their values are not kept); throws on anything that is not `name="value"`. */
function checkAttributes(s: string, tag: string): void {
  let i = 0;
  while (i < s.length) {
    const start = i;
    while (i < s.length && /\s/.test(s.charAt(i))) i++;
    if (i === s.length) return;
    if (i === start) throw malformed(`<${tag}>: attributes must be separated by white space`);
    const eq = s.indexOf("=", i);
    if (eq < 0 || !NAME.test(s.slice(i, eq).trimEnd())) throw malformed(`<${tag}>: malformed attribute`);
    i = eq + 1;
    while (i < s.length && /\s/.test(s.charAt(i))) i++;
    const quote = s.charAt(i);
    const end = quote === '"' || quote === "'" ? s.indexOf(quote, i + 1) : -1;
    if (end < 0 || s.slice(i + 1, end).includes("<")) throw malformed(`<${tag}>: malformed attribute value`);
    i = end + 1;
  }
}

export class XmlReader {
  readonly #limits: XmlLimits;
  /** Input not read yet: the start of a tag or reference whose end has not arrived. */
  #pending = "";
  /** Open elements: local names for the handler, names as written for matching end tags. */
  readonly #path: string[] = [];
  readonly #written: string[] = [];
  #keep = false;
  #text = "";
  #rootSeen = false;

  constructor(
    private readonly handler: XmlHandler,
    limits: Partial<XmlLimits> = {},
  ) {
    this.#limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** Reads the next piece of the document; throws UpstreamError("decode") as soon as it cannot be S3's XML. */
  write(piece: string): void {
    const s = this.#pending + piece;
    let i = 0;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      let next: number;
      if (c === 0x3c /* < */) next = this.#markup(s, i);
      else if (c === 0x26 /* & */) next = this.#reference(s, i);
      else {
        TEXT_RUN.lastIndex = i;
        TEXT_RUN.test(s);
        next = TEXT_RUN.lastIndex;
        this.#characters(s.slice(i, next));
      }
      if (next < 0) break;
      i = next;
    }
    this.#pending = s.slice(i);
    if (this.#pending.length > this.#limits.maxMarkupChars) throw malformed(`markup longer than ${this.#limits.maxMarkupChars} characters`);
  }

  /** The document is complete: throws unless it was exactly one root element. */
  end(): void {
    if (this.#pending !== "") throw malformed("the document ends inside markup");
    const open = this.#written.at(-1);
    if (open !== undefined) throw malformed(`unclosed <${open}>`);
    if (!this.#rootSeen) throw malformed("no root element");
  }

  #characters(text: string): void {
    if (NOT_XML_CHAR.test(text)) throw malformed("a character XML does not allow");
    if (this.#path.length === 0) {
      if (!SPACE.test(text)) throw malformed("text outside the root element");
      return;
    }
    if (this.#keep) this.#keepText(text);
  }

  #keepText(text: string): void {
    this.#text += text;
    if (this.#text.length > this.#limits.maxTextChars) {
      throw malformed(`<${this.#path.at(-1) ?? ""}> holds more than ${this.#limits.maxTextChars} characters`);
    }
  }

  /** Reads the reference at `i`; returns the index after it, or -1 when its end has not arrived. */
  #reference(s: string, i: number): number {
    let semi = i + 1;
    while (semi < s.length && semi - i < MAX_REFERENCE_CHARS && REFERENCE_CHAR.test(s.charAt(semi))) semi++;
    if (semi === s.length && semi - i < MAX_REFERENCE_CHARS) return -1;
    if (s.charAt(semi) !== ";") throw malformed("an & that does not start a reference");
    const name = s.slice(i + 1, semi);
    let decoded = PREDEFINED[name];
    if (decoded === undefined) {
      const cp = /^#[0-9]+$/.test(name) ? Number(name.slice(1)) : /^#x[0-9a-fA-F]+$/.test(name) ? Number.parseInt(name.slice(2), 16) : undefined;
      if (cp === undefined) throw malformed(`unknown entity &${name};`);
      if (!isXmlCodePoint(cp)) throw malformed(`&${name}; is not a character XML allows`);
      decoded = String.fromCodePoint(cp);
    }
    if (this.#path.length === 0) throw malformed("a reference outside the root element");
    if (this.#keep) this.#keepText(decoded);
    return semi + 1;
  }

  /** Reads the markup at `i`; returns the index after it, or -1 when its end has not arrived. */
  #markup(s: string, i: number): number {
    if (s.startsWith("<?", i)) return after(s, "?>", i + 2);
    if (s.startsWith("<!--", i)) return after(s, "-->", i + 4);
    if (s.startsWith("<![CDATA[", i)) {
      const end = after(s, "]]>", i + 9);
      if (end < 0) return -1;
      if (this.#path.length === 0) throw malformed("CDATA outside the root element");
      this.#characters(s.slice(i + 9, end - 3));
      return end;
    }
    const head = s.slice(i, i + 9);
    if (head.length < 9 && ("<![CDATA[".startsWith(head) || "<!--".startsWith(head))) return -1;
    // S3 never sends a DTD; refusing one keeps entity definitions, and so entity expansion, out entirely.
    if (/^<!doctype/i.test(head)) throw malformed("unexpected DOCTYPE");
    if (head.startsWith("<!")) throw malformed("unexpected markup <!");
    const close = s.startsWith("</", i);
    const gt = close ? s.indexOf(">", i + 2) : this.#endOfStartTag(s, i + 1);
    if (gt < 0) return -1;
    if (close) this.#endTag(s.slice(i + 2, gt).trimEnd());
    else this.#startTag(s.slice(i + 1, gt));
    return gt + 1;
  }

  /** The index of the start tag's closing ">" (one inside a quoted attribute value does not count), or -1. */
  #endOfStartTag(s: string, from: number): number {
    let quote = "";
    for (let k = from; k < s.length; k++) {
      const ch = s.charAt(k);
      if (quote !== "") {
        if (ch === quote) quote = "";
      } else if (ch === '"' || ch === "'") quote = ch;
      else if (ch === ">") return k;
    }
    return -1;
  }

  #startTag(inner: string): void {
    const selfClosing = inner.endsWith("/");
    const body = selfClosing ? inner.slice(0, -1) : inner;
    const nameEnd = body.search(/[\s]/);
    const written = nameEnd < 0 ? body : body.slice(0, nameEnd);
    if (!NAME.test(written)) throw malformed(`<${written.slice(0, 64)}> is not an element name`);
    if (nameEnd >= 0) checkAttributes(body.slice(nameEnd), written);
    if (this.#path.length === 0 && this.#rootSeen) throw malformed(`a second root element <${written}>`);
    if (this.#path.length >= this.#limits.maxDepth) throw malformed(`elements nested more than ${this.#limits.maxDepth} deep`);
    this.#rootSeen = true;
    this.#path.push(localName(written));
    this.#written.push(written);
    this.handler.open(this.#path);
    this.#text = "";
    this.#keep = this.handler.keepText(this.#path);
    if (selfClosing) this.#endTag(written);
  }

  #endTag(written: string): void {
    const open = this.#written.at(-1);
    if (open !== written) throw malformed(open === undefined ? `</${written}> closes nothing` : `expected </${open}>, found </${written}>`);
    const text = this.#keep ? this.#text : "";
    this.#keep = false;
    this.#text = "";
    this.handler.close(this.#path, text);
    this.#path.pop();
    this.#written.pop();
  }
}
