import { createHash, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import * as x509 from "@peculiar/x509";
import type { Logger } from "../../log.ts";
import { errorMessage } from "../../log.ts";

x509.cryptoProvider.set(webcrypto);

export interface CertKey {
  cert: string;
  /** PEM private key; kept out of anything printable. */
  key: string;
}

export function fingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

/**
 * A self-signed certificate made in memory at start, for when no certificate is mounted: scrapers then verify it
 * by fingerprint or skip verification, as controller-runtime's default does. ECDSA P-256, valid for a year.
 */
export async function selfSignedCertificate(names: string[] = ["localhost", hostname()]): Promise<CertKey> {
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f; // a positive DER integer
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString("hex"),
    name: `CN=${names[0] ?? "sidecar-exporter"}`,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 365 * 86_400_000),
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...new Set(names)].map((n) => ({ type: "dns" as const, value: n }))),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/(.{64})/g, "$1\n").trim()}\n-----END PRIVATE KEY-----\n`;
  return { cert: cert.toString("pem"), key };
}

async function readPair(certFile: string, keyFile: string): Promise<CertKey> {
  const [cert, key] = await Promise.all([readFile(certFile, "utf8"), readFile(keyFile, "utf8")]);
  return { cert, key };
}

/**
 * A certificate and key from files (a cert-manager or Secret volume), re-read every `everyMs`. Kubernetes updates
 * such volumes by swapping a symlink, which file watchers miss, so the files' content is compared instead. A
 * change is handed to `onChange` (the server's setSecureContext); a half-written or broken pair is logged and
 * the previous one kept.
 */
export class CertificateFiles {
  #digest = "";
  #timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly certFile: string,
    readonly keyFile: string,
    private readonly logger: Logger,
  ) {}

  static async load(certFile: string, keyFile: string, logger: Logger): Promise<{ files: CertificateFiles; pair: CertKey }> {
    const files = new CertificateFiles(certFile, keyFile, logger);
    let pair: CertKey;
    try {
      pair = await readPair(certFile, keyFile);
      fingerprint(pair.cert); // fails on a file that is not a certificate
    } catch (err) {
      throw new Error(`metrics.tls: cannot load ${certFile} and ${keyFile}: ${errorMessage(err)}; mount the certificate Secret there or remove metrics.tls to use a self-signed one`);
    }
    files.#digest = files.#hash(pair);
    return { files, pair };
  }

  #hash(pair: CertKey): string {
    return createHash("sha256").update(pair.cert).update("\0").update(pair.key).digest("hex");
  }

  watch(everyMs: number, onChange: (pair: CertKey) => void): void {
    this.#timer = setInterval(() => void this.#check(onChange), everyMs);
    this.#timer.unref();
  }

  /** Reads the files once and applies a change; exposed so a reload can also be asked for. */
  async #check(onChange: (pair: CertKey) => void): Promise<void> {
    let pair: CertKey;
    try {
      pair = await readPair(this.certFile, this.keyFile);
    } catch (err) {
      this.logger.warn({ err: errorMessage(err), certFile: this.certFile }, "cannot re-read the metrics certificate; keeping the current one");
      return;
    }
    const digest = this.#hash(pair);
    if (digest === this.#digest) return;
    try {
      onChange(pair);
      this.#digest = digest;
      this.logger.info({ certFile: this.certFile, sha256: fingerprint(pair.cert) }, "metrics certificate reloaded");
    } catch (err) {
      // A cert and key written one after the other can be seen half-updated; the next round picks up the pair.
      this.logger.warn({ err: errorMessage(err), certFile: this.certFile }, "new metrics certificate not usable yet; keeping the current one");
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
