/**
 * A narrow function_graph for side-by-side text: the duration column and the indented call
 * tree, as ftrace prints them, without the CPU column (sim/render/function-graph.ts prints the
 * full width).
 */
import type { SpanJson } from '../sim/index.ts';

export interface CompactOptions {
  /** cut off below this depth (1 = roots only) */
  maxDepth: number;
  /** at most this many lines; the rest is summarised in one line */
  maxLines: number;
}

function us(ns: number): string {
  return (ns / 1000).toFixed(3).padStart(8);
}

const BLANK = ' '.repeat(8);

export function compactGraph(roots: readonly SpanJson[], opts: CompactOptions): string[] {
  const lines: string[] = [];
  const visit = (s: SpanJson, depth: number): void => {
    const indent = ' '.repeat(depth + 1);
    const mark = s.prov.kind === 'projection' ? ' *' : s.prov.kind === 'posted' ? ' +' : '';
    if (s.children.length === 0 || depth + 1 >= opts.maxDepth) {
      lines.push(`${us(s.ns)} |${indent}${s.name}();${mark}`);
      return;
    }
    lines.push(`${BLANK} |${indent}${s.name}() {${mark}`);
    for (const c of s.children) visit(c, depth + 1);
    lines.push(`${us(s.ns)} |${indent}}`);
  };
  for (const r of roots) visit(r, 0);
  if (lines.length <= opts.maxLines) return lines;
  return [...lines.slice(0, opts.maxLines - 1), `${BLANK} | ... ${lines.length - opts.maxLines + 1} more lines`];
}
