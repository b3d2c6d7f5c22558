/**
 * Simulated threads with their own clocks, and the scheduler (DESIGN principle 4). A thread runs one
 * unit of work (a syscall, a hardware event) to completion. The scheduler always runs the thread
 * whose next unit starts earliest, ties broken by thread id.
 */

export class SimThread {
  /** the thread's virtual clock, ns */
  clock = 0;
  /** total time spent waiting on busy resources, ns */
  contentionNs = 0;
  /** pending units, ordered by (at, seq) */
  readonly queue: Unit[] = [];

  constructor(
    readonly id: number,
    readonly name: string,
  ) {}

  /** the time this thread's next unit would start, or Infinity */
  nextStart(): number {
    const u = this.queue[0];
    return u === undefined ? Infinity : Math.max(this.clock, u.at);
  }
}

interface Unit {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

export class Scheduler {
  readonly threads: SimThread[] = [];
  /** the thread whose unit is running; model code charges time to it */
  current: SimThread;
  private seq = 0;
  /** called whenever the running thread changes, so the Sim can switch recordings */
  onSwitch: ((t: SimThread) => void) | null = null;
  private readonly idle: SimThread;

  constructor() {
    this.idle = this.current = this.spawn('init');
  }

  spawn(name: string): SimThread {
    const t = new SimThread(this.threads.length, name);
    this.threads.push(t);
    return t;
  }

  /**
   * Queues a unit of work on a thread. `at` is the earliest virtual time it may start: an interrupt
   * or page request arriving at a given time; 0 means as soon as the thread is free.
   */
  post(t: SimThread, fn: () => void, at = 0): void {
    const u: Unit = { at, seq: this.seq++, fn };
    const q = t.queue;
    let i = q.length;
    while (i > 0 && (q[i - 1]!.at > at)) i--;
    q.splice(i, 0, u);
  }

  /** Runs the earliest unit of any thread; false when nothing is pending. */
  step(): boolean {
    let best: SimThread | null = null;
    let bestStart = Infinity;
    for (const t of this.threads) {
      const s = t.nextStart();
      if (s < bestStart) {
        best = t;
        bestStart = s;
      }
    }
    if (!best) return false;
    const u = best.queue.shift()!;
    best.clock = bestStart;
    this.runOn(best, u.fn);
    return true;
  }

  /** Runs units until none is pending (or `limit` units ran); returns the number run. */
  run(limit = Infinity): number {
    let n = 0;
    while (n < limit && this.step()) n++;
    return n;
  }

  /** Runs `fn` now, as the given thread, restoring the previous current thread afterwards. */
  runOn<T>(t: SimThread, fn: () => T): T {
    const prev = this.current;
    this.current = t;
    if (prev !== t) this.onSwitch?.(t);
    try {
      return fn();
    } finally {
      this.current = prev;
      if (prev !== t) this.onSwitch?.(prev);
    }
  }

  /** the latest clock of any thread: the makespan */
  horizon(): number {
    let h = 0;
    for (const t of this.threads) if (t.clock > h) h = t.clock;
    return h;
  }

  get initThread(): SimThread {
    return this.idle;
  }
}
