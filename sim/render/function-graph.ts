import type { KFn, Span } from '../tracer.ts';

export interface GraphOptions {
  /** the CPU column ftrace prints; we print the simulated thread id */
  cpu?: number;
  /** append the layer and provenance as a trailing comment on entry lines */
  annotate?: boolean;
  /** cut off below this depth (1 = roots only) */
  maxDepth?: number;
}

function dur(ns: number): string {
  // ftrace prints microseconds with three decimals, right-aligned in a 10-column field
  return `${(ns / 1000).toFixed(3)} us`.padStart(11);
}

/**
 * Renders spans in the style of ftrace's function_graph tracer:
 *
 *     0)               |  vfio_fops_unl_ioctl() {
 *     0)   0.050 us    |    _copy_from_user();
 *     0)   1.234 us    |  }
 */
export function functionGraph(roots: readonly Span[], opts: GraphOptions = {}): string {
  const cpu = `${String(opts.cpu ?? 0).padStart(2)})`;
  const blank = ' '.repeat(14);
  const lines: string[] = [];
  const visit = (s: Span, depth: number): void => {
    const indent = '  '.repeat(depth);
    const tag = opts.annotate ? `  /* ${s.fn.layer}; ${s.fn.prov.kind}${s.op ? `; op=${s.op}` : ''} */` : '';
    const leaf = s.children.length === 0 || (opts.maxDepth !== undefined && depth + 1 >= opts.maxDepth);
    if (leaf) {
      lines.push(`${cpu} ${dur(s.end - s.start)}    |  ${indent}${s.fn.name}();${tag}`);
      return;
    }
    lines.push(`${cpu} ${blank} |  ${indent}${s.fn.name}() {${tag}`);
    for (const c of s.children) visit(c, depth + 1);
    lines.push(`${cpu} ${dur(s.end - s.start)}    |  ${indent}}`);
  };
  for (const r of roots) visit(r, 0);
  return lines.join('\n');
}

export interface SpanJson {
  name: string;
  layer: string;
  sig: string;
  prov: { kind: string; source: string };
  uapi?: { param: string; ctype: string };
  op?: string;
  note?: string;
  /** the syscall frame or a file's ioctl entry (KFn.entry), for depth and erasure readers */
  entry?: 'syscall' | 'ioctl';
  ns: number;
  children: SpanJson[];
}

/** One span's JSON: the function's facts, the per-call tags (op, note), its time and children. */
export function spanJson(fn: KFn, ns: number, op: string | undefined, note: string | undefined, children: SpanJson[]): SpanJson {
  const j: SpanJson = { name: fn.name, layer: fn.layer, sig: fn.sig, prov: { kind: fn.prov.kind, source: fn.prov.source }, ns, children };
  if (fn.uapi) j.uapi = { param: fn.uapi.param, ctype: fn.uapi.ctype };
  const o = op ?? fn.op;
  if (o !== undefined) j.op = o;
  if (note !== undefined) j.note = note;
  if (fn.entry !== undefined) j.entry = fn.entry;
  return j;
}

export function spanTreeJson(roots: readonly Span[]): SpanJson[] {
  const conv = (s: Span): SpanJson => spanJson(s.fn, s.end - s.start, s.op, s.note, s.children.map(conv));
  return roots.map(conv);
}
