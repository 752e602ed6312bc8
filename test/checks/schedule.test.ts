import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Schedule, type Job } from "../../src/checks/schedule.ts";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A job that notes when it ran, by the fake clock. */
function job(name: string, ran: string[], earlyMs = 0): Job {
  return { dueAt: 0, earlyMs, slot: -1, run: () => ran.push(`${name}@${Date.now()}`) };
}

function schedule(): Schedule {
  return new Schedule(() => Date.now());
}

describe("schedule", () => {
  it("runs each job once, at its due time, in due order", () => {
    const ran: string[] = [];
    const s = schedule();
    const start = Date.now();
    s.after(job("c", ran), 300);
    s.after(job("a", ran), 100);
    s.after(job("b", ran), 200);
    vi.advanceTimersByTime(1_000);
    expect(ran).toEqual([`a@${start + 100}`, `b@${start + 200}`, `c@${start + 300}`]);
  });

  it("moves a job that is scheduled again instead of running it twice, and forgets a cancelled one", () => {
    const ran: string[] = [];
    const s = schedule();
    const start = Date.now();
    const a = job("a", ran);
    const b = job("b", ran);
    s.after(a, 100);
    s.after(b, 150);
    s.after(a, 400);
    s.cancel(b);
    vi.advanceTimersByTime(1_000);
    expect(ran).toEqual([`a@${start + 400}`]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("lets a job that may run early share the wake-up of an earlier one", () => {
    const ran: string[] = [];
    const s = schedule();
    const start = Date.now();
    s.after(job("first", ran), 100);
    s.after(job("near", ran, 50), 140);
    s.after(job("far", ran, 50), 200);
    vi.advanceTimersByTime(1_000);
    expect(ran).toEqual([`first@${start + 100}`, `near@${start + 100}`, `far@${start + 200}`]);
  });

  it("keeps one timer for any number of jobs, and none once they have all run", () => {
    const ran: string[] = [];
    const s = schedule();
    for (let i = 0; i < 50; i++) s.after(job(String(i), ran), 10 + ((i * 37) % 100));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(200);
    expect(ran).toHaveLength(50);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("runs a job scheduled from inside another job's run", () => {
    const ran: string[] = [];
    const s = schedule();
    const start = Date.now();
    const again = job("again", ran);
    const first: Job = { dueAt: 0, earlyMs: 0, slot: -1, run: () => s.after(again, 50) };
    s.after(first, 10);
    vi.advanceTimersByTime(100);
    expect(ran).toEqual([`again@${start + 60}`]);
  });

  it("runs whatever is left after any mix of scheduling and cancelling, each job once, in order, at most 1 ms early", () => {
    const op = fc.record({ job: fc.integer({ min: 0, max: 19 }), delay: fc.integer({ min: 0, max: 500 }), cancel: fc.boolean() });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const s = schedule();
        const start = Date.now();
        const runs: { id: number; at: number }[] = [];
        const jobs = Array.from({ length: 20 }, (_, id): Job => ({ dueAt: 0, earlyMs: 0, slot: -1, run: () => runs.push({ id, at: Date.now() }) }));
        const expected = new Map<number, number>();
        for (const o of ops) {
          const j = jobs[o.job] as Job;
          if (o.cancel) {
            s.cancel(j);
            expected.delete(o.job);
          } else {
            s.after(j, o.delay);
            expected.set(o.job, start + o.delay);
          }
        }
        vi.advanceTimersByTime(1_000);
        expect(runs.map((r) => r.at)).toEqual([...runs.map((r) => r.at)].sort((a, b) => a - b));
        expect(runs.map((r) => r.id).sort((a, b) => a - b)).toEqual([...expected.keys()].sort((a, b) => a - b));
        // Timers count whole milliseconds: a job due a millisecond after another runs with it rather than wait.
        for (const r of runs) expect(expected.get(r.id)! - r.at).toBeOneOf([0, 1]);
        expect(vi.getTimerCount()).toBe(0);
      }),
    );
  });
});
