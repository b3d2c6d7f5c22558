import {
  P,
  priceByLayer,
  priceRecording,
  primitiveCount,
  primitivesJson,
  spanTreeJson,
  treeMetrics,
  type PriceVector,
  type StepRecording,
} from '../sim/index.ts';
import { NUMERIC_KEYS, type StepNumbers, type StepResult } from './results.ts';

/**
 * Turns the engine's recording of one step into the step's results: every figure is read off the
 * recording (primitives, copies, ioctls, spans); latency is the recording priced at `prices` plus
 * the contention the scheduler recorded.
 */
export function stepResult(
  rec: StepRecording,
  prices: PriceVector,
  meta: { path: string; op: string; line: number; keepTrace: boolean },
): StepResult {
  const tm = treeMetrics(rec.trace);
  const byLayer = priceByLayer(rec, prices);
  const r: StepResult = {
    path: meta.path,
    op: meta.op,
    line: meta.line,
    thread: rec.thread,
    ok: true,
    syscalls: rec.syscalls,
    ioctls: rec.ioctls.length,
    ioctlList: rec.ioctls.map((i) => ({ ...i })),
    copiesFromUser: rec.copiesFromUser,
    bytesFromUser: rec.bytesFromUser,
    copiesToUser: rec.copiesToUser,
    bytesToUser: rec.bytesToUser,
    latencyNs: priceRecording(rec, prices) + rec.contentionNs,
    contentionNs: rec.contentionNs,
    frames: tm.frames,
    maxDepth: tm.maxDepth,
    layerCrossings: tm.layerCrossings,
    userPtrDepth: rec.userPtrDepth,
    typeErasureHops: tm.typeErasureHops,
    vmExits: primitiveCount(rec, P.vmExitUser),
    layers: tm.layers,
    latencyByLayer: byLayer,
    primitives: primitivesJson(rec),
    provenance: tm.provenance,
    handlers: tm.handlers,
    validations: Object.fromEntries([...rec.validations].map(([k, v]) => [k, [...v].sort()])),
    locks: Object.fromEntries([...rec.locks].map(([k, v]) => [k, { ...v }])),
    counters: Object.fromEntries([...rec.counters].sort(([a], [b]) => a.localeCompare(b))),
  };
  if (meta.keepTrace) r.trace = spanTreeJson(rec.trace);
  return r;
}

/** Sums the numeric keys over steps; depths and hops take the maximum, as a total of depths means nothing. */
export function totalsOf(steps: readonly StepResult[]): StepNumbers {
  const t = Object.fromEntries(NUMERIC_KEYS.map((k) => [k, 0])) as unknown as StepNumbers;
  const maxKeys = new Set<keyof StepNumbers>(['maxDepth', 'userPtrDepth', 'typeErasureHops']);
  t.userPtrDepth = -1;
  for (const s of steps) {
    for (const k of NUMERIC_KEYS) t[k] = maxKeys.has(k) ? Math.max(t[k], s[k]) : t[k] + s[k];
  }
  return t;
}
