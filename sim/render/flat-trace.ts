/**
 * A step's call forest as a few typed arrays and a table of the functions it names: what a run
 * keeps of a step's trace and what a worker thread sends back (a structured clone of typed arrays
 * is a copy of bytes). It becomes SpanJson trees only where a reader asks for them, so a suite
 * whose report shows a handful of call graphs never builds a million span objects.
 */
import { kfnById, kfnCount, type KFn, type TraceBuffer } from '../tracer.ts';
import { spanJson, type SpanJson } from './function-graph.ts';

export interface FlatTrace {
  /** per span, in recording order (a parent before its children): index into `fns` */
  readonly fn: Int32Array;
  /** per span: the parent's index, −1 for a root */
  readonly parent: Int32Array;
  /** per span: duration in ns */
  readonly ns: Float64Array;
  /** the functions the spans name, once each (plain data: a structured clone keeps them) */
  readonly fns: readonly KFn[];
  /** per-call tags, rare: [span index, op, note] */
  readonly tags: [number, string | undefined, string | undefined][];
}

/** The buffers' forests, one after the other, as one FlatTrace. */
export function flattenTrace(bufs: readonly TraceBuffer[]): FlatTrace {
  const n = bufs.reduce((t, b) => t + b.n, 0);
  const fn = new Int32Array(n);
  const parent = new Int32Array(n);
  const ns = new Float64Array(n);
  const fns: KFn[] = [];
  // registry number → index in `fns` + 1 (0: not yet seen)
  const local = new Int32Array(kfnCount());
  const tags: FlatTrace['tags'] = [];
  let at = 0;
  for (const b of bufs) {
    for (let i = 0; i < b.n; i++) {
      const id = b.fnIdAt(i);
      let k = local[id]! - 1;
      if (k < 0) {
        k = fns.push(kfnById(id)) - 1;
        local[id] = k + 1;
      }
      fn[at + i] = k;
      const p = b.parentAt(i);
      parent[at + i] = p < 0 ? -1 : at + p;
      ns[at + i] = b.nsAt(i);
    }
    for (let k = 0; k < b.tagCount; k++) tags.push([at + b.tagIndexAt(k), b.tagOpAt(k), b.tagNoteAt(k)]);
    at += b.n;
  }
  return { fn, parent, ns, fns, tags };
}

/** The SpanJson forest of a FlatTrace (what spanTreeJson gives for the same spans). */
export function flatTraceJson(t: FlatTrace): SpanJson[] {
  const tagOf = new Map(t.tags.map(([i, op, note]) => [i, { op, note }]));
  const nodes: SpanJson[] = new Array(t.fn.length);
  const roots: SpanJson[] = [];
  for (let i = 0; i < t.fn.length; i++) {
    const tag = tagOf.get(i);
    const j = spanJson(t.fns[t.fn[i]!]!, t.ns[i]!, tag?.op, tag?.note, []);
    nodes[i] = j;
    const p = t.parent[i]!;
    if (p < 0) roots.push(j);
    else nodes[p]!.children.push(j);
  }
  return roots;
}
