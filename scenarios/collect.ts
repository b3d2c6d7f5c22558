import {
  P,
  priceByLayer,
  priceRecording,
  primitiveCount,
  primitivesJson,
  flattenTrace,
  bufferMetrics,
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
  const tm = bufferMetrics([rec.traceBuf, ...rec.mergedBufs]);
  const byLayer = priceByLayer(rec, prices);
  const r: StepResult = {
    path: meta.path,
    op: meta.op,
    line: meta.line,
    thread: rec.thread,
    ok: true,
    syscalls: rec.syscalls,
    ioctls: rec.ioctls.length,
    // the recording is dropped after this: its records need no copy
    ioctlList: rec.ioctls,
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
    locks: locksJson(rec),
    counters: Object.fromEntries([...rec.counters].sort(([a], [b]) => a.localeCompare(b))),
  };
  if (meta.keepTrace) r.flatTrace = flattenTrace([rec.traceBuf, ...rec.mergedBufs]);
  return r;
}

/**
 * The step's locks by name. Lock names carry instance names (hundreds differ across a suite), so
 * the object is made without a prototype: V8 keeps it as a hash table instead of growing a hidden
 * class for every order of names (Object.fromEntries here cost more than the rest of the step's
 * figures). JSON and the readers see the same keys in the same order.
 */
function locksJson(rec: StepRecording): Record<string, { taken: number; heldNs: number; waitNs: number }> {
  const out = Object.create(null) as Record<string, { taken: number; heldNs: number; waitNs: number }>;
  for (const [k, v] of rec.locks) out[k] = { taken: v.taken, heldNs: v.heldNs, waitNs: v.waitNs };
  return out;
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

/** Adds what another thread recorded during the same step into `into` (a chain of work). */
export function mergeRecording(into: StepRecording, from: StepRecording): void {
  for (const [layer, a] of from.prims) {
    let b = into.prims.get(layer);
    if (!b) into.prims.set(layer, (b = new Float64Array(a.length)));
    for (let i = 0; i < a.length; i++) b[i]! += a[i]!;
  }
  into.syscalls += from.syscalls;
  into.ioctls.push(...from.ioctls);
  into.copiesFromUser += from.copiesFromUser;
  into.bytesFromUser += from.bytesFromUser;
  into.copiesToUser += from.copiesToUser;
  into.bytesToUser += from.bytesToUser;
  into.userPtrDepth = Math.max(into.userPtrDepth, from.userPtrDepth);
  for (const [s, where] of from.validations) {
    const t = into.validations.get(s) ?? new Set<string>();
    for (const w of where) t.add(w);
    into.validations.set(s, t);
  }
  for (const [n, l] of from.locks) {
    const t = into.locks.get(n) ?? { taken: 0, heldNs: 0, waitNs: 0 };
    t.taken += l.taken;
    t.heldNs += l.heldNs;
    t.waitNs += l.waitNs;
    into.locks.set(n, t);
  }
  into.contentionNs += from.contentionNs;
  for (const [n, c] of from.counters) into.counters.set(n, (into.counters.get(n) ?? 0) + c);
  into.mergedBufs.push(from.traceBuf, ...from.mergedBufs);
}
