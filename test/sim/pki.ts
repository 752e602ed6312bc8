// Throwaway PKI for tests: a CA plus leaf certificates for servers and clients.
// ECDSA P-256 keeps key generation fast enough to mint fresh material per test file.

import { randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

// @peculiar/x509 needs a WebCrypto implementation; Node's is complete for ECDSA.
x509.cryptoProvider.set(webcrypto);

export type CertKey = {
  /** PEM certificate. */
  certPem: string;
  /** PEM PKCS#8 private key ("PRIVATE KEY"). */
  keyPem: string;
};

export type IssueCertOptions = {
  commonName: string;
  /** Subject organizations; Talos reads the client's role from these, e.g. "os:reader". */
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Adds extendedKeyUsage clientAuth. */
  client?: boolean;
  /** Adds extendedKeyUsage serverAuth. */
  server?: boolean;
  notBefore?: Date;
  /** A date in the past yields an expired certificate. */
  notAfter?: Date;
};

const EC_KEY = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

// Backdated so a clock that is slightly behind still accepts freshly minted certs.
function defaultNotBefore(): Date {
  return new Date(Date.now() - HOUR_MS);
}

function defaultNotAfter(): Date {
  return new Date(Date.now() + 365 * DAY_MS);
}

// RFC 5280 wants a positive serial of at most 20 octets; clearing the top bit keeps the
// DER integer positive without a leading zero octet.
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString("hex");
}

function escapeRdnValue(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, "\\$1");
}

function distinguishedName(commonName: string, organizations: string[] = []): string {
  const parts = organizations.map((o) => `O=${escapeRdnValue(o)}`);
  parts.push(`CN=${escapeRdnValue(commonName)}`);
  return parts.join(", ");
}

async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"]);
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

async function importPrivateKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  const der = x509.PemConverter.decodeFirst(keyPem);
  return webcrypto.subtle.importKey("pkcs8", der, EC_KEY, false, ["sign"]);
}

/** Creates a self-signed CA certificate allowed to sign leaf certificates. */
export async function createCA(commonName: string): Promise<CertKey> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: distinguishedName(commonName),
    notBefore: defaultNotBefore(),
    notAfter: new Date(Date.now() + 10 * 365 * DAY_MS),
    signingAlgorithm: SIGNING,
    keys: keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await privateKeyPem(keys.privateKey) };
}

/** Issues a leaf certificate signed by `ca`. */
export async function issueCert(ca: CertKey, opts: IssueCertOptions): Promise<CertKey> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importPrivateKey(ca.keyPem);
  const keys = await generateKeys();

  const usages: string[] = [];
  if (opts.server) usages.push(x509.ExtendedKeyUsage.serverAuth);
  if (opts.client) usages.push(x509.ExtendedKeyUsage.clientAuth);

  const san: { type: "dns" | "ip"; value: string }[] = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
  ];

  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    // ECDSA keys only sign during the handshake; keyEncipherment is an RSA-only usage.
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert),
  ];
  if (usages.length > 0) extensions.push(new x509.ExtendedKeyUsageExtension(usages, false));
  if (san.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(san, false));

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: distinguishedName(opts.commonName, opts.organizations),
    issuer: caCert.subjectName,
    notBefore: opts.notBefore ?? defaultNotBefore(),
    notAfter: opts.notAfter ?? defaultNotAfter(),
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions,
  });
  return { certPem: cert.toString("pem"), keyPem: await privateKeyPem(keys.privateKey) };
}
