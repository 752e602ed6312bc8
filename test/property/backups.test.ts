import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseListPage } from "../../src/sources/backups/s3-xml.ts";
import { BBOLT_MAGIC, BBOLT_MAGIC_OFFSET, verifySnapshotHead } from "../../src/sources/backups/verify.ts";
import { XmlReader } from "../../src/sources/backups/xml.ts";
import { readFixtureSnapshot } from "../sim/etcd-snapshot.ts";
import { expectUpstreamError, outcome, outcomeAsync } from "./outcome.ts";

const escapeXml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
/** XML 1.0 allows these characters; S3 keys are Unicode, but control characters cannot appear even escaped. */
const xmlText = fc.string({ maxLength: 20 }).map((s) => s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, ""));

const field = (good: fc.Arbitrary<string>) => fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: xmlText });
const contents = fc.record(
  {
    Key: field(fc.stringMatching(/^etcd\/[a-z0-9-]{1,12}\.db(\.gz)?$/)),
    LastModified: field(fc.date({ min: new Date(0), max: new Date(4_102_444_800_000), noInvalidDate: true }).map((d) => d.toISOString())),
    Size: field(fc.oneof(fc.nat().map(String), fc.constantFrom("-1", "1e3", "99999999999999999999"))),
    ETag: xmlText,
  },
  { requiredKeys: [] },
);
const listResult = fc.record({
  root: fc.constantFrom("ListBucketResult", "s3:ListBucketResult", "Error"),
  contents: fc.array(contents, { maxLength: 4 }),
  truncated: fc.option(field(fc.constantFrom("true", "false")), { nil: undefined }),
  token: fc.option(xmlText, { nil: undefined }),
});
const listXml = listResult.map(({ root, contents: items, truncated, token }) => {
  const body = items
    .map(
      (c) =>
        `<Contents>${Object.entries(c)
          .map(([k, v]) => `<${k}>${escapeXml(v)}</${k}>`)
          .join("")}</Contents>`,
    )
    .join("\n  ");
  const tail = `${truncated === undefined ? "" : `<IsTruncated>${escapeXml(truncated)}</IsTruncated>`}${token === undefined ? "" : `<NextContinuationToken>${escapeXml(token)}</NextContinuationToken>`}`;
  const ns = root.includes(":") ? ' xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"' : "";
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root}${ns}>\n  <Name>bucket</Name>${body}${tail}</${root}>`;
});
/** Documents: real-looking pages, pages cut short or spliced with junk, XML tricks, and noise. */
const xmlDoc = fc.oneof(
  listXml,
  fc
    .tuple(listXml, fc.nat(), fc.constantFrom("", "<", "&", "&amp", "]]>", "<![CDATA[x", "<!-- ", "&#0;", "&#x110000;", "<a>", "</b>", "\u0000"))
    .map(([xml, at, junk]) => {
      const cut = at % (xml.length + 1);
      return xml.slice(0, cut) + junk + xml.slice(cut);
    }),
  fc.constantFrom(
    '<!DOCTYPE lolz [<!ENTITY lol "lol">]><ListBucketResult>&lol;</ListBucketResult>',
    "<a><b></a></b>",
    "<a/><b/>",
    "",
    "<?xml version='1.0'?>",
    "<ListBucketResult><Contents><Key>&nbsp;&copy;</Key></Contents></ListBucketResult>",
  ),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: "binary", maxLength: 80 }),
);

/** What a reader reports of `doc` fed in the given pieces: every start and end of an element, with its text. */
function events(doc: string, cuts: number[]): string[] {
  const seen: string[] = [];
  const reader = new XmlReader({
    open: (path) => void seen.push(`<${path.join("/")}>`),
    keepText: () => true,
    close: (path, text) => void seen.push(`</${path.join("/")}> ${JSON.stringify(text)}`),
  });
  let from = 0;
  for (const cut of [...cuts.map((c) => c % (doc.length + 1)), doc.length].sort((a, b) => a - b)) {
    reader.write(doc.slice(from, cut));
    from = cut;
  }
  reader.end();
  return seen;
}

/** Text of XML's allowed characters, written with every way XML has to write a character. */
const writtenText = fc.array(
  fc.oneof(
    xmlText.map((t) => ({ text: t, written: escapeXml(t) })),
    xmlText.filter((t) => !t.includes("]]>")).map((t) => ({ text: t, written: `<![CDATA[${t}]]>` })),
    fc
      .constantFrom(["'", "&apos;"], ['"', "&quot;"], ["A", "&#65;"], ["\u00e9", "&#xE9;"], ["\u{1F600}", "&#x1F600;"])
      .map(([text, written]) => ({ text: text as string, written: written as string })),
  ),
  { maxLength: 8 },
);

describe("S3 XML", () => {
  it("the XML reader: any document, cut anywhere, is read exactly as when whole, or refused as decode", () => {
    fc.assert(
      fc.property(xmlDoc, fc.array(fc.nat(), { maxLength: 6 }), (doc, cuts) => {
        const whole = outcome(() => events(doc, []));
        const cut = outcome(() => events(doc, cuts));
        expectUpstreamError(whole, ["decode"]);
        expectUpstreamError(cut, ["decode"]);
        expect(cut.ok).toBe(whole.ok);
        if (whole.ok && cut.ok) expect(cut.value).toEqual(whole.value);
      }),
      { numRuns: 800 },
    );
  });

  it("the XML reader gives back any text exactly as it was written, in any pieces", () => {
    fc.assert(
      fc.property(writtenText, fc.array(fc.nat(), { maxLength: 6 }), (parts, cuts) => {
        const doc = `<R><K>${parts.map((p) => p.written).join("")}</K></R>`;
        expect(events(doc, cuts)).toEqual(["<R>", "<R/K>", `</R/K> ${JSON.stringify(parts.map((p) => p.text).join(""))}`, '</R> ""']);
      }),
      { numRuns: 500 },
    );
  });

  it("parseListPage: any document is a page of valid objects or a decode UpstreamError", () => {
    const outcomes = { pages: 0, refused: 0 };
    fc.assert(
      fc.property(xmlDoc, (doc) => {
        const result = outcome(() => parseListPage(doc));
        expectUpstreamError(result, ["decode"]);
        outcomes[result.ok ? "pages" : "refused"]++;
        if (!result.ok) return;
        for (const o of result.value.objects) {
          expect(o.key.length).toBeGreaterThan(0);
          expect(Number.isFinite(o.lastModifiedMs)).toBe(true);
          expect(Number.isSafeInteger(o.sizeBytes)).toBe(true);
          expect(o.sizeBytes).toBeGreaterThanOrEqual(0);
        }
        expect(typeof result.value.truncated).toBe("boolean");
      }),
      { numRuns: 800 },
    );
    // Not vacuous: some documents are pages. About one in thirty is, so this holds in any run of 800.
    expect(outcomes.pages).toBeGreaterThan(8);
  });

  it("deeply nested elements are refused or read, never a stack overflow", () => {
    for (const n of [1_000, 100_000]) {
      const doc = `<ListBucketResult>${"<a>".repeat(n)}${"</a>".repeat(n)}</ListBucketResult>`;
      const result = outcome(() => parseListPage(doc));
      expectUpstreamError(result, ["decode"]);
    }
  });
});

describe("snapshot head verification", () => {
  const snapshot = readFixtureSnapshot();
  const head = (bytes: Buffer, n: number) => bytes.subarray(0, Math.min(bytes.length, n));
  const withMagic = fc.uint8Array({ minLength: 20, maxLength: 200 }).map((b) => {
    const buf = Buffer.from(b);
    buf.writeUInt32LE(BBOLT_MAGIC, BBOLT_MAGIC_OFFSET);
    return buf;
  });
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    withMagic,
    // Gzip'ed, whole or cut anywhere, with or without the magic inside.
    fc
      .tuple(
        fc.oneof(
          withMagic,
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
          fc.constant(snapshot.subarray(0, 4096)),
        ),
        fc.nat(),
      )
      .map(([raw, cut]) => {
        const gz = gzipSync(raw);
        return head(gz, 2 + (cut % gz.length));
      }),
    // Gzip with a few bytes changed.
    fc.tuple(withMagic, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })).map(([raw, flips]) => {
      const gz = Buffer.from(gzipSync(raw));
      for (const [at, v] of flips) gz[2 + (at % (gz.length - 2))] = v;
      return gz;
    }),
    fc
      .tuple(
        fc.constantFrom([0x28, 0xb5, 0x2f, 0xfd], [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], [0x42, 0x5a, 0x68], [0x04, 0x22, 0x4d, 0x18], [0x1f, 0x8b]),
        fc.uint8Array({ maxLength: 40 }),
      )
      .map(([magic, rest]) => Buffer.concat([Buffer.from(magic), rest])),
  );

  it("any bytes give a verdict with a reason; the magic, plain or gzip'ed, is always found", async () => {
    await fc.assert(
      fc.asyncProperty(bytes, fc.nat(), async (data, size) => {
        const result = await outcomeAsync(() => verifySnapshotHead(data, size));
        // A verdict, never an error: a bad backup is a finding about the backup, not a failure of the source.
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(typeof result.value.verified).toBe("boolean");
        expect(result.value.reason.trim().length).toBeGreaterThan(0);
        const plainMagic = data.length >= 20 && data[0] !== 0x1f && data.readUInt32LE(BBOLT_MAGIC_OFFSET) === BBOLT_MAGIC;
        if (size > 0 && plainMagic) expect(result.value.verified).toBe(true);
        if (data.length < 20 && !(data[0] === 0x1f && data[1] === 0x8b)) expect(result.value.verified).toBe(false);
      }),
      { numRuns: 800 },
    );
  });

  it("a gzip'ed snapshot is verified in full, and a longer prefix never loses a verdict a shorter one had", async () => {
    const gz = gzipSync(snapshot);
    expect(await verifySnapshotHead(gz, gz.length)).toEqual({ verified: true, reason: "bbolt magic found (gzip)" });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: gz.length }), fc.integer({ min: 1, max: gz.length }), async (a, b) => {
        const [short, long] = a < b ? [a, b] : [b, a];
        const first = await verifySnapshotHead(head(gz, short), gz.length);
        const second = await verifySnapshotHead(head(gz, long), gz.length);
        if (first.verified) expect(second.verified).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
