/**
 * A step's call forest as a few typed arrays and a table of the functions it names: what a run
 * keeps of a step's trace and what a worker thread sends back (a structured clone of typed arrays
 * is a copy of bytes). It becomes SpanJson trees only where a reader asks for them, so a suite
 * whose report shows a handful of call graphs never builds a million span objects.
 */
import type { KFn, TraceBuffer } from '../tracer.ts';
import type { SpanJson } from './function-graph.ts';

/** The function facts a SpanJson carries, once per distinct function of the trace. */
type FnFacts = Omit<SpanJson, 'ns' | 'children' | 'op' | 'note'> & { op?: string };

export interface FlatTrace {
  /** per span, in recording order (a parent before its children): index into `fns` */
  readonly fn: Int32Array;
  /** per span: the parent's index, −1 for a root */
  readonly parent: Int32Array;
  /** per span: duration in ns */
  readonly ns: Float64Array;
  readonly fns: FnFacts[];
  /** per-call tags, rare: [span index, op, note] */
  readonly tags: [number, string | undefined, string | undefined][];
}

function facts(fn: KFn): FnFacts {
  const f: FnFacts = { name: fn.name, layer: fn.layer, sig: fn.sig, prov: { kind: fn.prov.kind, source: fn.prov.source } };
  if (fn.uapi) f.uapi = { param: fn.uapi.param, ctype: fn.uapi.ctype };
  if (fn.op !== undefined) f.op = fn.op;
  if (fn.entry !== undefined) f.entry = fn.entry;
  return f;
}

/** The buffers' forests, one after the other, as one FlatTrace. */
export function flattenTrace(bufs: readonly TraceBuffer[]): FlatTrace {
  const n = bufs.reduce((t, b) => t + b.n, 0);
  const fn = new Int32Array(n);
  const parent = new Int32Array(n);
  const ns = new Float64Array(n);
  const fns: FnFacts[] = [];
  const fnIndex = new Map<KFn, number>();
  const tags: FlatTrace['tags'] = [];
  let at = 0;
  for (const b of bufs) {
    for (let i = 0; i < b.n; i++) {
      const f = b.fnAt(i);
      let k = fnIndex.get(f);
      if (k === undefined) {
        k = fns.push(facts(f)) - 1;
        fnIndex.set(f, k);
      }
      fn[at + i] = k;
      const p = b.parentAt(i);
      parent[at + i] = p < 0 ? -1 : at + p;
      ns[at + i] = b.nsAt(i);
      const op = b.opAt(i);
      const note = b.noteAt(i);
      if (op !== undefined || note !== undefined) tags.push([at + i, op, note]);
    }
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
    const { op: fnOp, ...f } = t.fns[t.fn[i]!]!;
    const j: SpanJson = { name: f.name, layer: f.layer, sig: f.sig, prov: { ...f.prov }, ns: t.ns[i]!, children: [] };
    if (f.uapi) j.uapi = { ...f.uapi };
    const tag = tagOf.get(i);
    const op = tag?.op ?? fnOp;
    if (op !== undefined) j.op = op;
    if (tag?.note !== undefined) j.note = tag.note;
    if (f.entry !== undefined) j.entry = f.entry;
    nodes[i] = j;
    const p = t.parent[i]!;
    if (p < 0) roots.push(j);
    else nodes[p]!.children.push(j);
  }
  return roots;
}
