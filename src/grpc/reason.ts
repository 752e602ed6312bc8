import * as grpc from "@grpc/grpc-js";
import type { FailureReason } from "../errors.ts";

const TLS_DETAILS = /certificate|SSL|TLS|handshake|alert|self[- ]signed|unable to verify|CERT_/i;

/** The failure reason of a gRPC status, reading the details where one code covers several causes. */
export function reasonForGrpcError(code: grpc.status, details: string): FailureReason {
  switch (code) {
    case grpc.status.DEADLINE_EXCEEDED:
    case grpc.status.CANCELLED:
      return "timeout";
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
      return "unauthorized";
    case grpc.status.NOT_FOUND:
      return "not_found";
    case grpc.status.UNAVAILABLE:
      // grpc-js reports a failed handshake as UNAVAILABLE with the TLS error in the details.
      return TLS_DETAILS.test(details) ? "tls" : "connection";
    case grpc.status.RESOURCE_EXHAUSTED:
      // The same code reports a reply over the receive limit, which is about the reply, not about load.
      return /larger than max/i.test(details) ? "decode" : "rate_limited";
    case grpc.status.INTERNAL:
      return /pars|deserializ|decod/i.test(details) ? "decode" : "other";
    default:
      return "other";
  }
}
