/**
 * Readers of recorded call trees (StepResult.trace, SpanJson): conversion back to spans for the
 * engine's function_graph renderer, and the chains behind userPtrDepth and typeErasureHops.
 */
import { ERASED_CTYPES, type KFn, type ProvenanceKind, type Span, type SpanJson } from '../sim/index.ts';

/** SpanJson trees as Span objects (start 0, end = ns) so sim's functionGraph can render them. */
export function toSpans(roots: readonly SpanJson[]): Span[] {
  const conv = (j: SpanJson): Span => {
    const fn: KFn = {
      name: j.name,
      layer: j.layer,
      sig: j.sig,
      prov: { kind: j.prov.kind as ProvenanceKind, source: j.prov.source },
      ...(j.uapi ? { uapi: j.uapi } : {}),
      ...(j.entry ? { entry: j.entry } : {}),
    };
    const s: Span = { fn, start: 0, end: j.ns, children: j.children.map(conv) };
    if (j.op !== undefined) s.op = j.op;
    if (j.note !== undefined) s.note = j.note;
    return s;
  };
  return roots.map(conv);
}

export function countSpans(roots: readonly SpanJson[]): number {
  return roots.reduce((n, r) => n + 1 + countSpans(r.children), 0);
}

/** the uaccess routines record their caller's depth; their spans carry layer `uaccess` */
const UACCESS_LAYER = 'uaccess';

export interface UaccessChain {
  /** the caller's depth below the syscall frame (which is 0) */
  depth: number;
  /** from the syscall frame down to the uaccess routine */
  frames: string[];
}

/** The deepest uaccess call visible in the trace (get_user/put_user have no span of their own). */
export function deepestUaccess(roots: readonly SpanJson[]): UaccessChain | null {
  let best: UaccessChain | null = null;
  const visit = (s: SpanJson, chain: SpanJson[], syscallAt: number): void => {
    const here = s.entry === 'syscall' ? chain.length : syscallAt;
    if (s.layer === UACCESS_LAYER && syscallAt >= 0) {
      const depth = chain.length - 1 - syscallAt;
      if (!best || depth > best.depth) best = { depth, frames: [...chain.slice(syscallAt), s].map((f) => f.name) };
      return;
    }
    chain.push(s);
    for (const c of s.children) visit(c, chain, here);
    chain.pop();
  };
  for (const r of roots) visit(r, [], -1);
  return best;
}

export interface ErasedFrame {
  name: string;
  param: string;
  ctype: string;
}

/** The chain below an ioctl entry with the most frames carrying the uAPI data as an erased type. */
export function mostErasedChain(roots: readonly SpanJson[]): ErasedFrame[] {
  let best: ErasedFrame[] = [];
  const visit = (s: SpanJson, below: boolean, erased: ErasedFrame[]): void => {
    const hop = below && s.uapi !== undefined && ERASED_CTYPES.has(s.uapi.ctype);
    const now = hop ? [...erased, { name: s.name, param: s.uapi!.param, ctype: s.uapi!.ctype }] : erased;
    if (now.length > best.length) best = now;
    for (const c of s.children) visit(c, below || s.entry === 'ioctl', now);
  };
  for (const r of roots) visit(r, false, []);
  return best;
}
