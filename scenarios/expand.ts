/**
 * Expands the step tree into the flat list a runner executes: each `repeat` iteration and each
 * `parallel` branch becomes ordinary steps with their execution path ("5.3.1": step 5, iteration
 * or branch 3, inner step 1) and source line.
 */
import type { FlatStep, ParallelPlace, StepNode } from './types.ts';

export function expand(tree: readonly StepNode[]): FlatStep[] {
  const out: FlatStep[] = [];
  const walk = (nodes: readonly StepNode[], prefix: string, vcpu: number, parallel: ParallelPlace | undefined): void => {
    for (const [i, n] of nodes.entries()) {
      const path = prefix ? `${prefix}.${i + 1}` : String(i + 1);
      if (n.kind === 'repeat') {
        for (let it = 1; it <= n.times; it++) walk(n.body, `${path}.${it}`, vcpu, parallel);
      } else if (n.kind === 'parallel') {
        for (const [k, branch] of n.branches.entries()) walk(branch, `${path}.${k + 1}`, k, { block: path, branch: k + 1 });
      } else {
        out.push({ path, line: n.line, vcpu, ...(parallel ? { parallel } : {}), step: n.step, expect: n.expect });
      }
    }
  };
  walk(tree, '', 0, undefined);
  return out;
}

/** A run of steps on vCPU 0, or one parallel block with one list of steps per branch (vCPU). */
export type Segment =
  | { readonly kind: 'serial'; readonly steps: readonly FlatStep[] }
  | { readonly kind: 'parallel'; readonly block: string; readonly branches: readonly (readonly FlatStep[])[] };

/** Groups a flat list into serial runs and parallel blocks, in order: what a runner walks. */
export function segments(flat: readonly FlatStep[]): Segment[] {
  const out: Segment[] = [];
  let serial: FlatStep[] = [];
  let block: { block: string; branches: FlatStep[][] } | undefined;
  const flush = (): void => {
    if (serial.length) out.push({ kind: 'serial', steps: serial });
    if (block) out.push({ kind: 'parallel', ...block });
    serial = [];
    block = undefined;
  };
  for (const s of flat) {
    if (!s.parallel) {
      if (block) flush();
      serial.push(s);
      continue;
    }
    if (block?.block !== s.parallel.block) {
      flush();
      block = { block: s.parallel.block, branches: [] };
    }
    (block.branches[s.parallel.branch - 1] ??= []).push(s);
  }
  flush();
  return out;
}
