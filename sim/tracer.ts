/**
 * The tracer: every modelled kernel function runs inside a span that carries its kernel name,
 * layer, C signature, the parameter that carries the uAPI data with its C type, an optional
 * operation tag, and provenance (DESIGN principles 2 and 6).
 *
 * The frame stack is always kept (layers, depths and oopses need it); span objects are built only
 * when tracing is on, so tracing off costs a push and a pop.
 */

/**
 * merged: upstream kernel code; posted: on a list, never merged; projection: nobody wrote it (we
 * model what its advocates described); hardware: the emulated device, after the spec.
 */
export type ProvenanceKind = 'merged' | 'posted' | 'projection' | 'hardware';

export interface Provenance {
  readonly kind: ProvenanceKind;
  /** a file and version, or a patch mail, e.g. "drivers/iommu/iommufd/main.c @ v6.15" */
  readonly source: string;
}

/** Where the uAPI data travels in a frame: the parameter or member, and its C type there. */
export interface UapiCarrier {
  readonly param: string;
  readonly ctype: string;
}

/** A modelled kernel (or VMM, or hardware) function, declared once as data. */
export interface KFn {
  readonly name: string;
  readonly layer: string;
  /** the C signature as in the source */
  readonly sig: string;
  readonly prov: Provenance;
  readonly uapi?: UapiCarrier;
  /** the IOMMU operation an ioctl handler implements (bind, invalidate, fault, …) */
  readonly op?: string;
  /** `syscall`: the syscall frame (depth 0 for userPtrDepth); `ioctl`: the file's ioctl entry */
  readonly entry?: 'syscall' | 'ioctl';
  /** true for a subsystem's ioctl handler of an IOMMU operation (handlerDuplication) */
  readonly handler?: boolean;
  /**
   * Library routines (_copy_from_user, memcpy) charge their primitives to the caller's layer, so
   * per-layer figures say which layer copied; the span still shows in the call graph.
   */
  readonly inheritLayer?: boolean;
  /** the function's number in this thread's registry (set by `kfn`): what trace buffers store */
  readonly id?: number;
}

/** every function declared in this thread, by number: a trace buffer stores numbers, not pointers */
const registry: KFn[] = [];
/** numbers of functions built as plain objects rather than through `kfn` (tests) */
const literalIds = new WeakMap<KFn, number>();

/**
 * Declares a function. Every KFn gets the same shape (absent fields stored as undefined) so that
 * the tracer's reads of `entry` and `inheritLayer`, on every call, stay monomorphic.
 */
export function kfn(def: KFn): KFn {
  const { name, layer, sig, prov, uapi, op, entry, handler, inheritLayer } = def;
  const f = Object.freeze({ name, layer, sig, prov, uapi, op, entry, handler, inheritLayer, id: registry.length }) as KFn;
  registry.push(f);
  return f;
}

/** A function's registry number; one built as a plain object gets one on first use. */
export function kfnId(fn: KFn): number {
  if (fn.id !== undefined && registry[fn.id] === fn) return fn.id;
  let id = literalIds.get(fn);
  if (id === undefined) {
    id = registry.push(fn) - 1;
    literalIds.set(fn, id);
  }
  return id;
}

export function kfnById(id: number): KFn {
  return registry[id]!;
}

/** how many functions are registered: ids are below this */
export function kfnCount(): number {
  return registry.length;
}

export interface Span {
  readonly fn: KFn;
  /** a per-call operation tag, when the function dispatches on a runtime value */
  op?: string | undefined;
  /** free-form per-call annotation (e.g. the ioctl name resolved for this file type) */
  note?: string | undefined;
  start: number;
  end: number;
  readonly children: Span[];
}

/**
 * Spans of one step, recorded flat in typed arrays (no allocation per span once warm) and turned
 * into a tree only when someone reads it: tracing on stays cheap, and steps whose call graphs no
 * report shows never build one.
 */
const NO_F64 = new Float64Array(0);
const NO_I32 = new Int32Array(0);

function grown<T extends Float64Array | Int32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

export class TraceBuffer {
  n = 0;
  /** per span, the function's registry number (kfnId) */
  private fnIds: Int32Array = NO_I32;
  /** per-call tags are rare: the indices of the spans that have one, ascending, and the tags */
  private readonly tagged: number[] = [];
  private readonly ops: (string | undefined)[] = [];
  private readonly notes: (string | undefined)[] = [];
  // empty until the first span (an idle wait records none); then 512 spans, doubling
  private start: Float64Array = NO_F64;
  private end: Float64Array = NO_F64;
  private parent: Int32Array = NO_I32;
  private tree: Span[] | null = null;

  /** A buffer that records nothing: spans outside any step. */
  constructor(readonly discard = false) {}

  push(fn: KFn, now: number, op: string | undefined, note: string | undefined, parent: number): number {
    if (this.discard) return -1;
    const i = this.n++;
    if (i === this.start.length) this.grow();
    this.fnIds[i] = kfnId(fn);
    if (op !== undefined || note !== undefined) {
      this.tagged.push(i);
      this.ops.push(op);
      this.notes.push(note);
    }
    this.start[i] = now;
    this.end[i] = now;
    this.parent[i] = parent;
    this.tree = null;
    return i;
  }

  close(i: number, now: number): void {
    if (i >= 0) this.end[i] = now;
  }

  private grow(): void {
    const cap = Math.max(512, this.start.length * 2);
    this.start = grown(this.start, new Float64Array(cap));
    this.end = grown(this.end, new Float64Array(cap));
    this.parent = grown(this.parent, new Int32Array(cap));
    this.fnIds = grown(this.fnIds, new Int32Array(cap));
  }

  fnAt(i: number): KFn {
    return registry[this.fnIds[i]!]!;
  }

  /** the span's function as its registry number */
  fnIdAt(i: number): number {
    return this.fnIds[i]!;
  }

  /** the parent span's index in this buffer, −1 for a root */
  parentAt(i: number): number {
    return this.parent[i]!;
  }

  /** how many spans carry a per-call tag; the k-th of them, in span order, is at tagIndexAt(k) */
  get tagCount(): number {
    return this.tagged.length;
  }

  tagIndexAt(k: number): number {
    return this.tagged[k]!;
  }

  tagOpAt(k: number): string | undefined {
    return this.ops[k];
  }

  tagNoteAt(k: number): string | undefined {
    return this.notes[k];
  }

  /** the span's duration on its thread's clock */
  nsAt(i: number): number {
    return this.end[i]! - this.start[i]!;
  }

  /** The spans as a tree (roots in order), built once per change. */
  spans(): Span[] {
    if (this.tree) return this.tree;
    const nodes: Span[] = [];
    const roots: Span[] = [];
    let k = 0;
    for (let i = 0; i < this.n; i++) {
      const node: Span = { fn: registry[this.fnIds[i]!]!, start: this.start[i]!, end: this.end[i]!, children: [] };
      if (k < this.tagged.length && this.tagged[k] === i) {
        const op = this.ops[k];
        if (op !== undefined) node.op = op;
        const note = this.notes[k++];
        if (note !== undefined) node.note = note;
      }
      nodes.push(node);
      const p = this.parent[i]!;
      if (p < 0) roots.push(node);
      else nodes[p]!.children.push(node);
    }
    return (this.tree = roots);
  }
}

const MAX_DEPTH = 256;

export class Tracer {
  enabled: boolean;
  private readonly frames: KFn[] = [];
  /** per open frame, the layer it charges to (its own, or its caller's for a library routine); null: none yet */
  private readonly frameLayers: (string | null)[] = [];
  /** the open spans' indices in their buffers */
  private readonly openIdx: number[] = [];
  private readonly openBuf: TraceBuffer[] = [];
  private depth = 0;
  /** depths of the syscall frames currently on the stack */
  private readonly syscallDepths: number[] = [];
  /** where spans go: the running step's buffer (the Sim switches it with the thread) */
  sink: TraceBuffer = new TraceBuffer(true);

  constructor(enabled = true) {
    this.enabled = enabled;
  }

  enter(fn: KFn, now: number, op?: string, note?: string): void {
    if (this.depth >= MAX_DEPTH) throw new Error(`trace depth exceeds ${MAX_DEPTH} at ${fn.name}: runaway recursion`);
    this.frames[this.depth] = fn;
    this.frameLayers[this.depth] = fn.inheritLayer ? (this.depth ? this.frameLayers[this.depth - 1]! : null) : fn.layer;
    if (fn.entry === 'syscall') this.syscallDepths.push(this.depth);
    if (this.enabled) {
      const top = this.openBuf.length - 1;
      // a span whose parent lives in another buffer (a nested switch of thread) starts a root
      const parent = top >= 0 && this.openBuf[top] === this.sink ? this.openIdx[top]! : -1;
      this.openIdx.push(this.sink.push(fn, now, op, note, parent));
      this.openBuf.push(this.sink);
    }
    this.depth++;
  }

  exit(now: number): void {
    if (this.depth === 0) throw new Error('tracer: exit without enter');
    this.depth--;
    const fn = this.frames[this.depth]!;
    if (fn.entry === 'syscall') this.syscallDepths.pop();
    if (this.enabled && this.openBuf.length) {
      this.openBuf.pop()!.close(this.openIdx.pop()!, now);
    }
  }

  /** Unwinds to `depth` after an exception escaped several frames. */
  unwindTo(depth: number, now: number): void {
    while (this.depth > depth) this.exit(now);
  }

  get currentDepth(): number {
    return this.depth;
  }

  /** The layer of the innermost frame, or `fallback` outside any frame. */
  layer(fallback = 'user'): string {
    return (this.depth ? this.frameLayers[this.depth - 1] : null) ?? fallback;
  }

  /**
   * Depth of the innermost frame relative to the innermost syscall frame (which is 0); −1 when no
   * syscall frame is open. The uaccess primitives record this as userPtrDepth.
   */
  depthBelowSyscall(): number {
    const base = this.syscallDepths[this.syscallDepths.length - 1];
    return base === undefined ? -1 : this.depth - 1 - base;
  }

  /** The open frames, outermost first: what an oops prints. */
  stack(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.depth; i++) out.push(this.frames[i]!.name);
    return out;
  }
}
