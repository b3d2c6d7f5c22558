/** Expected outcomes: which apply to which op, and how a step's `expect` resolves per stack. */
import { errnoByName } from '../models/kernel/errno.ts';
import type { Expectation, LeafOp, Outcome, StackName } from './types.ts';

export const DMA_OUTCOMES = ['ok', 'fault', 'iopf'] as const;
const LEAK_OPS: readonly LeafOp[] = ['unassign', 'close'];

/** An outcome as written in a file, or the reason it does not apply to `op`. */
export function parseOutcome(v: unknown, op: LeafOp): Outcome | { problem: string } {
  if (typeof v === 'object' && v !== null && 'leak' in v) {
    if (!LEAK_OPS.includes(op)) return { problem: `a leak outcome applies to ${LEAK_OPS.join(' and ')} only, not ${op}` };
    return { kind: 'leak', leaks: { ...(v as { leak: Record<string, number> }).leak } };
  }
  const s = String(v);
  if (op === 'dma') {
    if ((DMA_OUTCOMES as readonly string[]).includes(s)) return { kind: s as (typeof DMA_OUTCOMES)[number] };
    return { problem: `'${s}' is not a DMA outcome (expected ${DMA_OUTCOMES.join(', ')})` };
  }
  if (s === 'ok') return { kind: 'ok' };
  if (errnoByName(s) !== undefined) return { kind: 'errno', errno: s };
  if (s === 'fault' || s === 'iopf') return { problem: `'${s}' is a DMA outcome; ${op} expects ok or an errno name such as EINVAL` };
  return { problem: `unknown outcome '${s}' (expected ok or an errno name such as EINVAL)` };
}

export const OK_ON_BOTH: Expectation = { tunnel: { kind: 'ok' }, iommufd: { kind: 'ok' } };

/** true when the step is expected to fail with an errno on this stack (a negative test) */
export function expectsErrno(e: Expectation, stack: StackName): boolean {
  return e[stack].kind === 'errno';
}

export function outcomeText(o: Outcome): string {
  switch (o.kind) {
    case 'errno':
      return o.errno;
    case 'leak':
      return `leak ${Object.entries(o.leaks)
        .map(([k, n]) => `${k}×${n}`)
        .join(' ')}`;
    default:
      return o.kind;
  }
}
