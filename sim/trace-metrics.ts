import type { ProvenanceKind, Span } from './tracer.ts';

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

export function treeMetrics(roots: readonly Span[]): TreeMetrics {
  const m: TreeMetrics = {
    frames: 0,
    maxDepth: 0,
    layers: [],
    layerCrossings: 0,
    typeErasureHops: 0,
    provenance: 'merged',
    handlers: {},
  };
  const seenLayers = new Set<string>();
  const handlers = new Map<string, Set<string>>();

  const visit = (s: Span, depth: number, parentLayer: string | null, belowIoctl: boolean, hops: number): void => {
    m.frames++;
    if (depth > m.maxDepth) m.maxDepth = depth;
    const { fn } = s;
    // a library routine belongs to its caller's layer
    const layer = fn.inheritLayer && parentLayer !== null ? parentLayer : fn.layer;
    if (!seenLayers.has(layer)) {
      seenLayers.add(layer);
      m.layers.push(layer);
    }
    if (parentLayer !== null && parentLayer !== layer) m.layerCrossings++;
    if (PROV_RANK[fn.prov.kind] > PROV_RANK[m.provenance]) m.provenance = fn.prov.kind;
    const op = s.op ?? fn.op;
    if (fn.handler && op !== undefined) {
      let set = handlers.get(op);
      if (!set) handlers.set(op, (set = new Set()));
      set.add(layer);
    }
    let h = hops;
    if (belowIoctl && fn.uapi && ERASED_CTYPES.has(fn.uapi.ctype)) h++;
    if (h > m.typeErasureHops) m.typeErasureHops = h;
    const nowBelow = belowIoctl || fn.entry === 'ioctl';
    for (const c of s.children) visit(c, depth + 1, layer, nowBelow, h);
  };
  for (const r of roots) visit(r, 1, null, false, 0);
  for (const [op, set] of handlers) m.handlers[op] = [...set].sort();
  return m;
}
