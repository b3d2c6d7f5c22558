import { NPRIM, PRIMITIVES, type PrimitiveKind } from './primitives.ts';
import type { PriceVector } from './costs/profile.ts';
import { TraceBuffer, type Span } from './tracer.ts';

/** Per ioctl issued by userspace, what it moved across the user boundary. */
export interface IoctlRecord {
  name: string;
  /** the file type the number was resolved against */
  file: string;
  ret: number;
  copiesFromUser: number;
  bytesFromUser: number;
  copiesToUser: number;
  bytesToUser: number;
}

export interface LockStat {
  taken: number;
  heldNs: number;
  waitNs: number;
}

/**
 * What one step did, in primitives: record once, price many (DESIGN principle 3). Counts and bytes
 * per layer are flat arrays indexed by primitive id: `[count0, bytes0, count1, bytes1, …]`.
 */
export interface StepRecording {
  path: string;
  label: string;
  thread: string;
  startNs: number;
  endNs: number;
  prims: Map<string, Float64Array>;
  syscalls: number;
  ioctls: IoctlRecord[];
  copiesFromUser: number;
  bytesFromUser: number;
  copiesToUser: number;
  bytesToUser: number;
  /** deepest frame (syscall frame = 0) that called a uaccess primitive; −1 if none did */
  userPtrDepth: number;
  /** per struct, the places that validated it */
  validations: Map<string, Set<string>>;
  locks: Map<string, LockStat>;
  /** contention wait recorded at the clock profile's prices */
  contentionNs: number;
  /** hardware and other event counters (qiDescriptors, iotlbHits, …) */
  counters: Map<string, number>;
  /** the step's spans, recorded flat */
  readonly traceBuf: TraceBuffer;
  /** spans other threads recorded during the step, merged in (mergeRecording) */
  readonly mergedBufs: TraceBuffer[];
  /** the step's call forest (traceBuf's trees, then the merged ones), built when read */
  readonly trace: Span[];
  /** the ioctls in progress on this step's thread (internal) */
  readonly ioctlStack: IoctlRecord[];
}

/** A step's recording: a class, so that the `trace` getter lives on the prototype (an object
 * literal with a getter costs a new accessor per step). */
class Recording implements StepRecording {
  endNs: number;
  readonly prims = new Map<string, Float64Array>();
  syscalls = 0;
  readonly ioctls: IoctlRecord[] = [];
  copiesFromUser = 0;
  bytesFromUser = 0;
  copiesToUser = 0;
  bytesToUser = 0;
  userPtrDepth = -1;
  readonly validations = new Map<string, Set<string>>();
  readonly locks = new Map<string, LockStat>();
  contentionNs = 0;
  readonly counters = new Map<string, number>();
  readonly traceBuf = new TraceBuffer();
  readonly mergedBufs: TraceBuffer[] = [];
  readonly ioctlStack: IoctlRecord[] = [];

  constructor(
    public path: string,
    public label: string,
    public thread: string,
    public startNs: number,
  ) {
    this.endNs = startNs;
  }

  get trace(): Span[] {
    const own = this.traceBuf.spans();
    return this.mergedBufs.length ? own.concat(...this.mergedBufs.map((b) => b.spans())) : own;
  }
}

/**
 * Accumulates into the recording of the thread that is running. The Sim switches `current` when it
 * switches threads; charges made outside any step go to `unattributed`.
 */
export class Recorder {
  readonly unattributed: StepRecording = new Recording('-', 'unattributed', '-', 0);
  current: StepRecording = this.unattributed;

  open(path: string, label: string, thread: string, now: number): StepRecording {
    return new Recording(path, label, thread, now);
  }

  // the last (recording, layer) charged and its array: most charges repeat the previous one's
  private lastRec: StepRecording | null = null;
  private lastLayer = '';
  private lastPrims: Float64Array = new Float64Array(0);

  charge(layer: string, kind: number, count: number, bytes: number): void {
    let a: Float64Array | undefined;
    if (this.current === this.lastRec && layer === this.lastLayer) a = this.lastPrims;
    else {
      a = this.current.prims.get(layer);
      if (!a) this.current.prims.set(layer, (a = new Float64Array(NPRIM * 2)));
      this.lastRec = this.current;
      this.lastLayer = layer;
      this.lastPrims = a;
    }
    a[kind * 2]! += count;
    a[kind * 2 + 1]! += bytes;
  }

  syscall(): void {
    this.current.syscalls++;
  }

  beginIoctl(name: string, file: string): void {
    const rec: IoctlRecord = {
      name,
      file,
      ret: 0,
      copiesFromUser: 0,
      bytesFromUser: 0,
      copiesToUser: 0,
      bytesToUser: 0,
    };
    this.current.ioctls.push(rec);
    this.current.ioctlStack.push(rec);
  }

  endIoctl(ret: number): void {
    const rec = this.current.ioctlStack.pop();
    if (!rec) throw new Error('recorder: endIoctl without beginIoctl');
    rec.ret = ret;
  }

  /** One uaccess copy (copy_*_user, copy_struct_from_user, get_user, put_user) at a frame depth. */
  copy(dir: 'from' | 'to', bytes: number, depth: number): void {
    const r = this.current;
    const io = r.ioctlStack[r.ioctlStack.length - 1];
    if (dir === 'from') {
      r.copiesFromUser++;
      r.bytesFromUser += bytes;
      if (io) {
        io.copiesFromUser++;
        io.bytesFromUser += bytes;
      }
    } else {
      r.copiesToUser++;
      r.bytesToUser += bytes;
      if (io) {
        io.copiesToUser++;
        io.bytesToUser += bytes;
      }
    }
    if (depth > r.userPtrDepth) r.userPtrDepth = depth;
  }

  validate(struct: string, where: string): void {
    let s = this.current.validations.get(struct);
    if (!s) this.current.validations.set(struct, (s = new Set()));
    s.add(where);
  }

  lock(name: string, heldNs: number, waitNs: number): void {
    let l = this.current.locks.get(name);
    if (!l) this.current.locks.set(name, (l = { taken: 0, heldNs: 0, waitNs: 0 }));
    l.taken++;
    l.heldNs += heldNs;
    l.waitNs += waitNs;
  }

  contention(ns: number): void {
    this.current.contentionNs += ns;
  }

  count(name: string, n = 1): void {
    const c = this.current.counters;
    c.set(name, (c.get(name) ?? 0) + n);
  }
}

/** Priced latency of a recording under one price vector: a dot product, no re-simulation. */
export function priceRecording(r: StepRecording, pv: PriceVector): number {
  let total = 0;
  for (const a of r.prims.values()) total += dot(a, pv);
  return total;
}

/** Priced latency per layer. */
export function priceByLayer(r: StepRecording, pv: PriceVector): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [layer, a] of r.prims) out[layer] = dot(a, pv);
  return out;
}

function dot(a: Float64Array, pv: PriceVector): number {
  let t = 0;
  for (let k = 0; k < NPRIM; k++) t += a[k * 2]! * pv.ns[k]! + a[k * 2 + 1]! * pv.perByte[k]!;
  return t;
}

/** Prices many recordings under many profiles: result[p][r]. */
export function priceMany(rs: readonly StepRecording[], pvs: readonly PriceVector[]): Float64Array[] {
  return pvs.map((pv) => Float64Array.from(rs, (r) => priceRecording(r, pv)));
}

/** `{layer: {kind: {count, bytes}}}`, kinds with zero count omitted: the JSON form. */
export function primitivesJson(r: StepRecording): Record<string, Partial<Record<PrimitiveKind, { count: number; bytes: number }>>> {
  const out: Record<string, Partial<Record<PrimitiveKind, { count: number; bytes: number }>>> = {};
  for (const layer of [...r.prims.keys()].sort()) {
    const a = r.prims.get(layer)!;
    const row: Partial<Record<PrimitiveKind, { count: number; bytes: number }>> = {};
    PRIMITIVES.forEach((k, i) => {
      if (a[i * 2]! !== 0) row[k] = { count: a[i * 2]!, bytes: a[i * 2 + 1]! };
    });
    out[layer] = row;
  }
  return out;
}

/** Total count of one primitive kind across layers. */
export function primitiveCount(r: StepRecording, kind: number): number {
  let n = 0;
  for (const a of r.prims.values()) n += a[kind * 2]!;
  return n;
}
