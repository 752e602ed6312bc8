/** Something the schedule runs once at its due time. `slot` belongs to the schedule: -1 while not queued. */
export interface Job {
  dueAt: number;
  /** How much earlier than due the job may run, to share a wake-up with another. */
  readonly earlyMs: number;
  slot: number;
  run(): void;
}

/** libuv rounds timers to whole milliseconds; a job this close to due runs rather than waits for another wake-up. */
const ROUNDING_MS = 1;

/**
 * Many recurring jobs on one timer: a min-heap by due time and a single Node timer for the earliest. Rescheduling
 * a check reuses its heap entry, where a setTimeout per run would allocate a timer (and, for each distinct
 * delay, a timer list) that lives a whole interval. A wake-up also runs the jobs after it that may run early,
 * so a thousand checks need far fewer wake-ups than runs.
 */
export class Schedule {
  readonly #heap: Job[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** The due time the timer is set for. */
  #armedAt = Number.POSITIVE_INFINITY;
  readonly #fire = (): void => this.#runDue();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Runs `job` in `delayMs` from now, replacing its earlier place in the schedule if it had one. */
  after(job: Job, delayMs: number): void {
    this.#remove(job);
    job.dueAt = this.now() + delayMs;
    job.slot = this.#heap.length;
    this.#heap.push(job);
    this.#up(job.slot);
    this.#arm();
  }

  cancel(job: Job): void {
    this.#remove(job);
    this.#arm();
  }

  #runDue(): void {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = this.now() + ROUNDING_MS;
    try {
      for (let next = this.#heap[0]; next !== undefined && next.dueAt - next.earlyMs <= now; next = this.#heap[0]) {
        this.#remove(next);
        next.run();
      }
    } finally {
      this.#arm();
    }
  }

  #arm(): void {
    const next = this.#heap[0];
    if (next === undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#armedAt = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.#timer !== undefined && this.#armedAt === next.dueAt) return;
    clearTimeout(this.#timer);
    this.#armedAt = next.dueAt;
    this.#timer = setTimeout(this.#fire, Math.max(0, next.dueAt - this.now()));
  }

  #remove(job: Job): void {
    const i = job.slot;
    if (i < 0) return;
    job.slot = -1;
    const last = this.#heap.pop() as Job;
    if (i === this.#heap.length) return;
    this.#heap[i] = last;
    last.slot = i;
    this.#down(i);
    this.#up(last.slot);
  }

  #up(i: number): void {
    const heap = this.#heap;
    const job = heap[i] as Job;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = heap[parent] as Job;
      if (above.dueAt <= job.dueAt) break;
      heap[i] = above;
      above.slot = i;
      i = parent;
    }
    heap[i] = job;
    job.slot = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const job = heap[i] as Job;
    const n = heap.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && (heap[right] as Job).dueAt < (heap[left] as Job).dueAt ? right : left;
      const below = heap[child] as Job;
      if (below.dueAt >= job.dueAt) break;
      heap[i] = below;
      below.slot = i;
      i = child;
    }
    heap[i] = job;
    job.slot = i;
  }
}
