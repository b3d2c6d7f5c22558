/**
 * The tracer: every modelled kernel function runs inside a span that carries its kernel name,
 * layer, C signature, the parameter that carries the uAPI data with its C type, an optional
 * operation tag, and provenance (DESIGN principles 2 and 6).
 *
 * The frame stack is always kept (layers, depths and oopses need it); span objects are built only
 * when tracing is on, so tracing off costs a push and a pop.
 */

export type ProvenanceKind = 'merged' | 'posted' | 'projection';

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
}

export function kfn(def: KFn): KFn {
  return Object.freeze(def);
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

/** One shape for every recorded span keeps the tracing-on path monomorphic. */
class SpanNode implements Span {
  end: number;
  readonly children: Span[] = [];
  constructor(
    readonly fn: KFn,
    public start: number,
    public op: string | undefined,
    public note: string | undefined,
  ) {
    this.end = start;
  }
}

const MAX_DEPTH = 256;

export class Tracer {
  enabled: boolean;
  private readonly frames: KFn[] = [];
  private readonly open: Span[] = [];
  private depth = 0;
  /** depths of the syscall frames currently on the stack */
  private readonly syscallDepths: number[] = [];
  /** where root spans go: the running step's trace (the Sim switches it with the thread) */
  sink: Span[] = [];

  constructor(enabled = true) {
    this.enabled = enabled;
  }

  enter(fn: KFn, now: number, op?: string, note?: string): void {
    if (this.depth >= MAX_DEPTH) throw new Error(`trace depth exceeds ${MAX_DEPTH} at ${fn.name}: runaway recursion`);
    this.frames[this.depth] = fn;
    if (fn.entry === 'syscall') this.syscallDepths.push(this.depth);
    if (this.enabled) {
      const span = new SpanNode(fn, now, op, note);
      const parent = this.open[this.open.length - 1];
      if (parent) parent.children.push(span);
      else this.sink.push(span);
      this.open.push(span);
    }
    this.depth++;
  }

  exit(now: number): void {
    if (this.depth === 0) throw new Error('tracer: exit without enter');
    this.depth--;
    const fn = this.frames[this.depth]!;
    if (fn.entry === 'syscall') this.syscallDepths.pop();
    if (this.enabled) {
      const span = this.open.pop();
      if (span) span.end = now;
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
    for (let i = this.depth - 1; i >= 0; i--) {
      const f = this.frames[i]!;
      if (!f.inheritLayer) return f.layer;
    }
    return fallback;
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
