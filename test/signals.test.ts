import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { ProcessSignals } from "../src/signals.ts";

describe("signals taken before the process can act on them", () => {
  it("hands over the stops that came first, in order, and any number of SIGHUPs as one", () => {
    const source = new EventEmitter();
    const signals = new ProcessSignals(source);
    for (const name of ["SIGHUP", "SIGHUP", "SIGTERM", "SIGHUP", "SIGINT"]) source.emit(name);
    expect(signals.stopRequested).toBe("SIGTERM");

    const stops: string[] = [];
    signals.onStop((signal) => stops.push(signal));
    expect(stops).toEqual(["SIGTERM", "SIGINT"]);
    source.emit("SIGTERM");
    expect(stops).toEqual(["SIGTERM", "SIGINT", "SIGTERM"]);

    let hangups = 0;
    signals.onHangup(() => hangups++);
    expect(hangups).toBe(1);
    source.emit("SIGHUP");
    expect(hangups).toBe(2);
    signals.onHangup(undefined);
    source.emit("SIGHUP");
    expect(hangups).toBe(2);
  });
});
