import { DEFAULT_COSTS } from './costs/default-profile.ts';
import { pricesAt, type PriceVector } from './costs/profile.ts';
import { FailNth } from './failnth.ts';
import { LeakTracker } from './leaks.ts';
import { Oops } from './oops.ts';
import { P } from './primitives.ts';
import { Recorder, type StepRecording } from './recorder.ts';
import { Resource } from './resource.ts';
import { Rng } from './rng.ts';
import { Scheduler, type SimThread } from './scheduler.ts';
import { TraceBuffer, Tracer, type KFn } from './tracer.ts';

/** a step opened on a thread that has not run since */
interface PendingStep {
  readonly path: string;
  readonly label: string;
  readonly startNs: number;
}

export interface SimOptions {
  seed?: number;
  /** build span trees (default true); layers, depths and oops frames are kept either way */
  trace?: boolean;
  /** the prices that advance thread clocks; re-simulate at low/high only for contended figures */
  clockPrices?: PriceVector;
}

/**
 * One simulated machine's engine: clocks and scheduler, recorder, tracer, fail-nth, leaks and RNG.
 * Model code receives it and charges primitives through it; it imports no model.
 */
export class Sim {
  readonly rng: Rng;
  readonly sched = new Scheduler();
  readonly recorder = new Recorder();
  readonly tracer: Tracer;
  readonly failnth = new FailNth();
  readonly leaks = new LeakTracker();
  readonly prices: PriceVector;
  private readonly stepOf: (StepRecording | undefined)[] = [];
  /** steps opened on a thread that has not run since: the recording is made when it first runs */
  private readonly pendingOf: (PendingStep | undefined)[] = [];
  private lastPending: PendingStep | null = null;
  private readonly sinkOf: (TraceBuffer | undefined)[] = [];
  /** spans outside any step are not kept */
  private readonly idleSink = new TraceBuffer(true);

  constructor(opts: SimOptions = {}) {
    this.rng = new Rng(opts.seed ?? 1);
    this.tracer = new Tracer(opts.trace ?? true);
    this.prices = opts.clockPrices ?? pricesAt(DEFAULT_COSTS, 'default');
    this.tracer.sink = this.idleSink;
    this.sched.onSwitch = (t) => {
      const r = this.recordingOf(t);
      this.recorder.current = r ?? this.recorder.unattributed;
      this.tracer.sink = this.sinkOf[t.id] ?? this.idleSink;
    };
  }

  get thread(): SimThread {
    return this.sched.current;
  }

  get now(): number {
    return this.sched.current.clock;
  }

  /** Charges `count` primitives of `kind` (and `bytes` moved) to the running frame's layer. */
  charge(kind: number, count = 1, bytes = 0): void {
    this.recorder.charge(this.tracer.layer(), kind, count, bytes);
    this.sched.current.clock += count * this.prices.ns[kind]! + bytes * this.prices.perByte[kind]!;
  }

  /**
   * Runs `body` inside a span of kernel function `fn`. An exception escaping model code becomes an
   * oops carrying the frames open where it was thrown; it is never swallowed.
   */
  call<T>(fn: KFn, body: () => T, op?: string, note?: string): T {
    const tr = this.tracer;
    const depth = tr.currentDepth;
    tr.enter(fn, this.sched.current.clock, op, note);
    try {
      const r = body();
      tr.exit(this.sched.current.clock);
      return r;
    } catch (e) {
      const oops = e instanceof Oops ? e : new Oops(e instanceof Error ? e.message : String(e), tr.stack(), e);
      tr.unwindTo(depth, this.sched.current.clock);
      throw oops;
    }
  }

  /** Reports an oops at the current frames. */
  oops(message: string): never {
    throw new Oops(message, this.tracer.stack());
  }

  /** The fail-nth hook of an allocation site: charges kmalloc; returns 0 or ENOMEM (positive). */
  allocHook(site: string): number {
    this.charge(P.kmalloc);
    return this.failnth.hit('alloc', site);
  }

  /** The fail-nth hook of an object lookup: charges an xarray lookup; returns 0 or ENOENT. */
  lookupHook(site: string): number {
    this.charge(P.xaLookup);
    return this.failnth.hit('lookup', site);
  }

  /**
   * An injection point that costs nothing when it does not fire (iommufd_should_fail compiles to
   * `false` outside CONFIG_IOMMUFD_TEST): true when the armed injector fails it.
   */
  injectHook(site: string): boolean {
    return this.failnth.hit('inject', site) !== 0;
  }

  /**
   * Takes a shared resource for the running thread, charging `kind` (mutex, spinlock, …). A busy
   * resource advances the thread's clock; the wait is recorded as contention.
   */
  lock(res: Resource, kind: number): void {
    this.charge(kind);
    let wait: number;
    try {
      wait = res.acquire(this.sched.current);
    } catch (e) {
      this.oops((e as Error).message);
    }
    this.recorder.contention(wait);
    if (wait > 0) this.recorder.lock(res.name, 0, wait);
  }

  unlock(res: Resource): void {
    let held: number;
    try {
      held = res.release(this.sched.current);
    } catch (e) {
      this.oops((e as Error).message);
    }
    this.recorder.lock(res.name, held, 0);
  }

  /**
   * Opens a step on a thread: its charges, copies and spans accumulate until endStep. The
   * recording is made when the thread first runs, so the many threads a step might wake (one per
   * device) cost nothing when they stay idle.
   */
  beginStep(t: SimThread, path: string, label: string): void {
    if (this.stepOf[t.id] || this.pendingOf[t.id]) throw new Error(`step ${(this.stepOf[t.id] ?? this.pendingOf[t.id])!.path} still open on ${t.name}`);
    // a step opened on every thread at one instant shares one descriptor (it is only read)
    const last = this.lastPending;
    this.pendingOf[t.id] = last && last.path === path && last.label === label && last.startNs === t.clock ? last : (this.lastPending = { path, label, startNs: t.clock });
    if (t === this.sched.current) this.sched.onSwitch?.(t);
  }

  /** The thread's open step, made on first use; undefined when no step is open. */
  private recordingOf(t: SimThread): StepRecording | undefined {
    const r = this.stepOf[t.id];
    if (r) return r;
    const p = this.pendingOf[t.id];
    if (!p) return undefined;
    const made = this.recorder.open(p.path, p.label, t.name, p.startNs);
    this.pendingOf[t.id] = undefined;
    this.stepOf[t.id] = made;
    this.sinkOf[t.id] = made.traceBuf;
    return made;
  }

  /** Closes the step open on `t` and returns its recording (empty when the thread never ran). */
  endStep(t: SimThread): StepRecording {
    this.recordingOf(t);
    return this.endStepIfRan(t)!;
  }

  /**
   * Closes the step open on `t`: its recording, or null when the thread did not run during it.
   * A thread with no step open is an error.
   */
  endStepIfRan(t: SimThread): StepRecording | null {
    if (this.pendingOf[t.id]) {
      this.pendingOf[t.id] = undefined;
      return null;
    }
    const r = this.stepOf[t.id];
    if (!r) throw new Error(`no step open on ${t.name}`);
    r.endNs = t.clock;
    this.stepOf[t.id] = undefined;
    this.sinkOf[t.id] = this.idleSink;
    if (t === this.sched.current) this.sched.onSwitch?.(t);
    return r;
  }

  /** Runs `fn` as one step on thread `t`, now, and returns its recording. */
  step(t: SimThread, path: string, label: string, fn: () => void): StepRecording {
    this.beginStep(t, path, label);
    try {
      this.sched.runOn(t, fn);
    } catch (e) {
      this.endStep(t);
      throw e;
    }
    return this.endStep(t);
  }
}
