/**
 * Re-pricing recorded primitives: record once, price many (DESIGN principle 3). A step's
 * `primitives` JSON, summed over layers, becomes a usage vector `[count_0 … count_N-1, bytes_0 …
 * bytes_N-1]`; a price vector flattens to `[ns_0 … ns_N-1, perByte_0 … perByte_N-1]`; latency is
 * their dot product.
 */
import { NPRIM, P, isPrimitiveKind, type PriceVector } from '../sim/index.ts';
import type { PrimitiveCounts } from '../scenarios/results.ts';

/** counts then bytes per primitive kind, summed over layers */
export type UsageVector = Float64Array;
/** ns then ns-per-byte per primitive kind */
export type FlatPrices = Float64Array;

export const USAGE_LENGTH = 2 * NPRIM;

export function emptyUsage(): UsageVector {
  return new Float64Array(USAGE_LENGTH);
}

/** Adds one step's (or one layer's) primitives into `into`. */
export function addPrimitives(into: UsageVector, prims: PrimitiveCounts, onlyLayer?: string): UsageVector {
  for (const [layer, kinds] of Object.entries(prims)) {
    if (onlyLayer !== undefined && layer !== onlyLayer) continue;
    for (const [kind, cb] of Object.entries(kinds)) {
      if (!cb || !isPrimitiveKind(kind)) continue;
      const i = P[kind];
      into[i] = into[i]! + cb.count;
      into[NPRIM + i] = into[NPRIM + i]! + cb.bytes;
    }
  }
  return into;
}

export function usageOf(prims: PrimitiveCounts): UsageVector {
  return addPrimitives(emptyUsage(), prims);
}

export function addUsage(into: UsageVector, from: UsageVector): UsageVector {
  for (let i = 0; i < USAGE_LENGTH; i++) into[i] = into[i]! + from[i]!;
  return into;
}

export function flatPrices(pv: PriceVector): FlatPrices {
  const f = new Float64Array(USAGE_LENGTH);
  f.set(pv.ns, 0);
  f.set(pv.perByte, NPRIM);
  return f;
}

export function priceUsage(u: UsageVector, prices: FlatPrices): number {
  let t = 0;
  for (let i = 0; i < USAGE_LENGTH; i++) t += u[i]! * prices[i]!;
  return t;
}

/** Priced latency of a step's `primitives` JSON (contention not included). */
export function pricePrimitives(prims: PrimitiveCounts, pv: PriceVector): number {
  return priceUsage(usageOf(prims), flatPrices(pv));
}

/** Priced latency per layer of a step's `primitives` JSON. */
export function pricePrimitivesByLayer(prims: PrimitiveCounts, pv: PriceVector): Record<string, number> {
  const flat = flatPrices(pv);
  const out: Record<string, number> = {};
  for (const layer of Object.keys(prims)) out[layer] = priceUsage(addPrimitives(emptyUsage(), prims, layer), flat);
  return out;
}
