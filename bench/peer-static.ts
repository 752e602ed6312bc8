/**
 * The floor any /metrics can reach: the exposition's bytes held in a Buffer, plain and gzip'ed once at start, written
 * as they are on every request. Usage: peer-static.ts <exposition file> <port>
 */
import { gzipSync } from "node:zlib";
import { peerArgs, servePeer, TEXT_CONTENT_TYPE } from "./peer-server.ts";

const { exposition, port } = peerArgs("peer-static.ts");
const plain = Buffer.from(exposition);
const gzipped = gzipSync(plain);

servePeer(port, TEXT_CONTENT_TYPE, (gzip) => (gzip ? gzipped : plain));
