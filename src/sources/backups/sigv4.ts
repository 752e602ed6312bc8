import aws4 from "aws4";
import type { Secret } from "../../secret.ts";

/** Credentials as read for one poll; files are re-read every poll so rotated Secrets are picked up. */
export interface S3Credentials {
  accessKeyId: Secret;
  secretAccessKey: Secret;
  sessionToken?: Secret;
}

export interface S3RequestToSign {
  method: "GET";
  /** host[:port] exactly as it will be sent in the Host header. */
  host: string;
  /** Percent-encoded path and query, e.g. "/bucket?list-type=2&prefix=etcd%2F". */
  path: string;
  region: string;
  /** Signing time; default now. */
  now?: Date;
}

export interface SignedS3Request {
  /** The path to send: the query re-encoded in the form that was signed. */
  path: string;
  /** Lower-case header names: host, x-amz-date, x-amz-content-sha256, authorization, x-amz-security-token. */
  headers: Record<string, string>;
}

/** yyyyMMdd'T'HHmmss'Z', the x-amz-date form. */
export function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]|\.\d{3}/g, "");
}

/**
 * Signs a bodiless S3 request with AWS Signature Version 4 (Authorization header form) using the `aws4`
 * package. The result holds credentials (in authorization and x-amz-security-token): it goes on the wire
 * and nowhere else.
 */
export function signS3Request(req: S3RequestToSign, creds: S3Credentials): SignedS3Request {
  const signed = aws4.sign(
    {
      method: req.method,
      host: req.host,
      path: req.path,
      service: "s3",
      region: req.region,
      headers: { "X-Amz-Date": amzDate(req.now ?? new Date()) },
    },
    {
      accessKeyId: creds.accessKeyId.reveal(),
      secretAccessKey: creds.secretAccessKey.reveal(),
      ...(creds.sessionToken && { sessionToken: creds.sessionToken.reveal() }),
    },
  );
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(signed.headers ?? {})) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : String(value);
  }
  return { path: signed.path ?? req.path, headers };
}
