import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { healthApp } from "../../src/serve/health-server.ts";
import { appListener, listen, listenWith, type Listening } from "../../src/serve/listen.ts";
import { healthListener } from "../../src/serve/liveness.ts";
import { StartupHealthModel } from "../../src/startup.ts";
import { CheckStore } from "../../src/state/checks.ts";
import { configFrom, get } from "../helpers.ts";

const config = configFrom({ health: { livenessPath: "/live" } });
const info = { version: "0.0.0-test", startedAt: Date.now() };
const app = () => healthApp(new StartupHealthModel(new CheckStore()), config, info);

const servers: Listening[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close(0);
});

async function serve(listening: Promise<Listening>): Promise<Listening> {
  const s = await listening;
  servers.push(s);
  return s;
}

/** What a client can tell apart in an answer. */
async function answer(url: string, method: "GET" | "HEAD" = "GET") {
  const { status, headers, body } = await get(url, {}, method);
  return { status, body, type: headers["content-type"], cache: headers["cache-control"], length: headers["content-length"] };
}

/** A GET with a body, which no endpoint takes: only the status line is read. */
function getWithBody(address: string, path: string): Promise<string> {
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello`));
    let data = "";
    socket.on("data", (d: Buffer) => {
      data += d.toString("latin1");
      if (data.includes("\r\n")) {
        socket.destroy();
        resolve(data.slice(0, data.indexOf("\r\n")));
      }
    });
    socket.on("error", reject);
  });
}

describe("the health server's first listener", () => {
  it("answers GET of each liveness path as the health app does, with no app loaded", async () => {
    const first = await serve(listenWith("health", healthListener(config.health).listener, "127.0.0.1", 0, "health.port"));
    const full = await serve(listen("health", app(), "127.0.0.1", 0, "health.port"));
    for (const path of ["/live", "/healthz", "/livez"]) {
      const early = await answer(`http://${first.address}${path}`);
      expect(early, path).toEqual({ status: 200, body: "ok", type: "text/plain; charset=utf-8", cache: "no-store", length: "2" });
      expect(early, path).toEqual(await answer(`http://${full.address}${path}`));
    }
  });

  it("holds every other request until the app is there, and the app answers it", async () => {
    const health = healthListener(config.health);
    const first = await serve(listenWith("health", health.listener, "127.0.0.1", 0, "health.port"));
    const full = await serve(listen("health", app(), "127.0.0.1", 0, "health.port"));
    const asked = [
      ["/readyz", "GET"],
      ["/healthz?verbose", "GET"],
      ["/healthz", "HEAD"],
      ["/healthz/", "GET"],
      ["/nothing-here", "GET"],
    ] as const;
    let settled = 0;
    const early = asked.map(([path, method]) => answer(`http://${first.address}${path}`, method).finally(() => settled++));
    const withBody = getWithBody(first.address, "/healthz").finally(() => settled++);
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(0);

    health.serve(await appListener(app()));
    const answers = await Promise.all(early);
    for (const [i, [path, method]] of asked.entries()) expect(answers[i], `${method} ${path}`).toEqual(await answer(`http://${full.address}${path}`, method));
    expect(answers.map((a) => a.status)).toEqual([503, 200, 200, 404, 404]);
    expect(await withBody).toBe("HTTP/1.1 400 Bad Request");
    expect(await getWithBody(full.address, "/healthz")).toBe("HTTP/1.1 400 Bad Request");
  });
});
