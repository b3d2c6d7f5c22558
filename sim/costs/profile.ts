import { NPRIM, PRIMITIVES, type PrimitiveKind } from '../primitives.ts';

/** A low/default/high triple in nanoseconds. */
export interface Range {
  readonly low: number;
  readonly default: number;
  readonly high: number;
}

export interface PrimitiveCost {
  /** ns per occurrence */
  readonly ns: Range;
  /** ns per byte moved, for the copy primitives */
  readonly perByte?: Range;
  /** where the figure comes from */
  readonly source: string;
  /** true when the figure is an engineering estimate rather than a measurement */
  readonly estimate: boolean;
}

export type CostTable = { readonly [K in PrimitiveKind]: PrimitiveCost };

/**
 * A point profile: one ns figure (and per-byte figure) per primitive, as flat arrays so that
 * pricing a recording is a dot product.
 */
export interface PriceVector {
  readonly name: string;
  readonly ns: Float64Array;
  readonly perByte: Float64Array;
}

export type Point = 'low' | 'default' | 'high';

export function pricesAt(table: CostTable, point: Point, name: string = point): PriceVector {
  const ns = new Float64Array(NPRIM);
  const perByte = new Float64Array(NPRIM);
  PRIMITIVES.forEach((k, i) => {
    const c = table[k];
    ns[i] = c.ns[point];
    perByte[i] = c.perByte?.[point] ?? 0;
  });
  return { name, ns, perByte };
}

/** Builds a price vector from explicit per-kind figures; kinds not given take `base`. */
export function pricesFrom(
  base: PriceVector,
  name: string,
  over: Partial<Record<PrimitiveKind, { ns?: number; perByte?: number }>>,
): PriceVector {
  const ns = Float64Array.from(base.ns);
  const perByte = Float64Array.from(base.perByte);
  PRIMITIVES.forEach((k, i) => {
    const o = over[k];
    if (o?.ns !== undefined) ns[i] = o.ns;
    if (o?.perByte !== undefined) perByte[i] = o.perByte;
  });
  return { name, ns, perByte };
}
