import { XMLParser, XMLValidator } from "fast-xml-parser";
import { UpstreamError } from "../../errors.ts";

/**
 * The XML S3 answers with (ListBucketResult, Error), as a plain element tree. fast-xml-parser does the parsing;
 * this module only insists the document is well-formed and turns the parser's ordered output into elements.
 */
export interface XmlElement {
  /** Local name: a namespace prefix ("s3:Key") is dropped. */
  readonly name: string;
  readonly children: XmlElement[];
  /** The element's own text, entities decoded; empty for elements that have children. */
  text: string;
}

/** fast-xml-parser's preserveOrder output: one single-key object per node, "#text" for text. */
type OrderedNode = Record<string, OrderedNode[] | string>;

const parser = new XMLParser({
  preserveOrder: true,
  removeNSPrefix: true,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: true,
});

function toElement(node: OrderedNode): XmlElement | undefined {
  const name = Object.keys(node).find((k) => k !== "#text" && k !== ":@");
  if (name === undefined) return undefined;
  const content = node[name];
  const element: XmlElement = { name, children: [], text: "" };
  if (Array.isArray(content)) {
    for (const child of content) {
      const text = child["#text"];
      if (typeof text === "string") element.text += text;
      else {
        const el = toElement(child);
        if (el) element.children.push(el);
      }
    }
  }
  // S3 documents have no mixed content: text beside child elements is only indentation.
  if (element.children.length > 0) element.text = "";
  return element;
}

/** Parses a document into its root element; throws UpstreamError("decode") when it is not well-formed. */
export function parseXml(doc: string): XmlElement {
  // S3 never sends a DTD; refusing one keeps entity expansion tricks out entirely.
  if (/<!DOCTYPE/i.test(doc)) throw new UpstreamError("malformed XML: unexpected DOCTYPE", "decode");
  let nodes: OrderedNode[];
  try {
    const valid = XMLValidator.validate(doc);
    if (valid !== true) throw new UpstreamError(`malformed XML: ${valid.err.msg} (line ${valid.err.line})`, "decode");
    nodes = parser.parse(doc) as OrderedNode[];
  } catch (err) {
    // The validator passes some broken documents ("<a/") that the parser then trips over with a TypeError,
    // and the parser refuses deep nesting with a plain Error: all of it is a malformed answer.
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError(`malformed XML: ${err instanceof Error ? err.message : String(err)}`, "decode");
  }
  const roots = nodes.map(toElement).filter((e): e is XmlElement => e !== undefined);
  if (roots.length !== 1) throw new UpstreamError(`malformed XML: expected one root element, found ${roots.length}`, "decode");
  return roots[0] as XmlElement;
}

export function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** The text of the first child of that name, or undefined when there is none. */
export function childText(el: XmlElement, name: string): string | undefined {
  return el.children.find((c) => c.name === name)?.text;
}
