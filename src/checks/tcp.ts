import { connect } from "node:net";
import type { TcpCheckSpec } from "../config/types.ts";
import { traced } from "../tracing/spans.ts";
import type { ProberFactory } from "./types.ts";

export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(address.slice(i + 1)) };
}

/** Passes when a TCP connection opens; the connection is closed at once. */
export const tcpProber: ProberFactory<TcpCheckSpec> = (spec) => {
  const { host, port } = splitHostPort(spec.address);
  return {
    probe(signal) {
      return traced({ source: "check", node: spec.address, operation: "TCP connect" }, () => new Promise((resolve, reject) => {
        const socket = connect({ host, port, signal });
        socket.once("connect", () => {
          socket.destroy();
          resolve({ ok: true, message: "connected" });
        });
        socket.once("error", (err) => {
          socket.destroy();
          reject(err);
        });
      }));
    },
    async close() {},
  };
};
