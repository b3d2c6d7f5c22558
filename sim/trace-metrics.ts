import type { KFn, ProvenanceKind, Span, TraceBuffer } from './tracer.ts';

/** C types that erase the uAPI struct's type: a frame carrying the data as one of these is a hop. */
export const ERASED_CTYPES: ReadonlySet<string> = new Set(['unsigned long', 'void *', 'void __user *']);

export interface TreeMetrics {
  /** number of spans */
  frames: number;
  /** deepest span, a root being depth 1 */
  maxDepth: number;
  /** distinct layers, in order of first appearance */
  layers: string[];
  /** parent→child edges whose layers differ */
  layerCrossings: number;
  /**
   * The most type-erasing frames on any one chain below an ioctl entry frame: a frame counts when
   * it declares a uAPI carrier whose C type is `unsigned long`, `void *` or `void __user *`. The
   * ioctl entry itself (whose `unsigned long arg` is the ABI) does not count. Taking the maximum
   * over chains, rather than the sum over frames, keeps a per-device loop from inflating the figure.
   */
  typeErasureHops: number;
  /** the strongest provenance among the frames: projection > posted > merged */
  provenance: ProvenanceKind;
  /** per operation tag, the layers whose ioctl handler spans implement it */
  handlers: Record<string, string[]>;
}

const PROV_RANK: Record<ProvenanceKind, number> = { hardware: 0, merged: 0, posted: 1, projection: 2 };

/**
 * The metric rules, one span at a time: the tree walk and the flat walk over trace buffers feed
 * it the same (span, parent) facts. After `span`, `layer`, `below` and `hops` hold what the span's
 * children inherit.
 */
class MetricsAcc {
  readonly m: TreeMetrics = { frames: 0, maxDepth: 0, layers: [], layerCrossings: 0, typeErasureHops: 0, provenance: 'merged', handlers: {} };
  private readonly seenLayers = new Set<string>();
  private readonly handlers = new Map<string, Set<string>>();
  layer = '';
  below = false;
  hops = 0;

  span(fn: KFn, spanOp: string | undefined, depth: number, parentLayer: string | null, belowIoctl: boolean, hops: number): void {
    const m = this.m;
    m.frames++;
    if (depth > m.maxDepth) m.maxDepth = depth;
    // a library routine belongs to its caller's layer
    const layer = fn.inheritLayer && parentLayer !== null ? parentLayer : fn.layer;
    if (!this.seenLayers.has(layer)) {
      this.seenLayers.add(layer);
      m.layers.push(layer);
    }
    if (parentLayer !== null && parentLayer !== layer) m.layerCrossings++;
    if (PROV_RANK[fn.prov.kind] > PROV_RANK[m.provenance]) m.provenance = fn.prov.kind;
    const op = spanOp ?? fn.op;
    if (fn.handler && op !== undefined) {
      let set = this.handlers.get(op);
      if (!set) this.handlers.set(op, (set = new Set()));
      set.add(layer);
    }
    let h = hops;
    if (belowIoctl && fn.uapi && ERASED_CTYPES.has(fn.uapi.ctype)) h++;
    if (h > m.typeErasureHops) m.typeErasureHops = h;
    this.layer = layer;
    this.below = belowIoctl || fn.entry === 'ioctl';
    this.hops = h;
  }

  done(): TreeMetrics {
    for (const [op, set] of this.handlers) this.m.handlers[op] = [...set].sort();
    return this.m;
  }
}

/** The metrics of a call tree. */
export function treeMetrics(roots: readonly Span[]): TreeMetrics {
  const acc = new MetricsAcc();
  const visit = (s: Span, depth: number, parentLayer: string | null, belowIoctl: boolean, hops: number): void => {
    acc.span(s.fn, s.op, depth, parentLayer, belowIoctl, hops);
    const { layer, below, hops: h } = acc;
    for (const c of s.children) visit(c, depth + 1, layer, below, h);
  };
  for (const r of roots) visit(r, 1, null, false, 0);
  return acc.done();
}

/**
 * The same metrics read straight off flat trace buffers, as if their trees were one forest in
 * buffer order, without building a span object: every step's figures come from here.
 */
export function bufferMetrics(bufs: readonly TraceBuffer[]): TreeMetrics {
  const acc = new MetricsAcc();
  let depth = new Int32Array(0);
  let below = new Uint8Array(0);
  let hops = new Int32Array(0);
  let layer: string[] = [];
  for (const b of bufs) {
    const n = b.n;
    if (depth.length < n) {
      depth = new Int32Array(n);
      below = new Uint8Array(n);
      hops = new Int32Array(n);
      layer = new Array<string>(n);
    }
    // a span's parent is recorded before it, so one forward pass sees every parent first
    let k = 0;
    let nextTagged = b.tagCount ? b.tagIndexAt(0) : -1;
    for (let i = 0; i < n; i++) {
      let op: string | undefined;
      if (i === nextTagged) {
        op = b.tagOpAt(k++);
        nextTagged = k < b.tagCount ? b.tagIndexAt(k) : -1;
      }
      const p = b.parentAt(i);
      if (p < 0) acc.span(b.fnAt(i), op, 1, null, false, 0);
      else acc.span(b.fnAt(i), op, depth[p]! + 1, layer[p]!, below[p] === 1, hops[p]!);
      depth[i] = p < 0 ? 1 : depth[p]! + 1;
      layer[i] = acc.layer;
      below[i] = acc.below ? 1 : 0;
      hops[i] = acc.hops;
    }
  }
  return acc.done();
}
