/**
 * The cost parameters a sensitivity analysis moves: each primitive's ns figure, and the per-byte
 * figure of the primitives priced per byte. Positions match the usage and flat price vectors.
 */
import { NPRIM, PRIMITIVES, type CostTable, type PrimitiveKind } from '../sim/index.ts';

export interface SweepParameter {
  /** `syscall.ns`, `copyFromUser.perByte` */
  id: string;
  kind: PrimitiveKind;
  field: 'ns' | 'perByte';
  /** index in the usage and flat price vectors */
  index: number;
  low: number;
  default: number;
  high: number;
  source: string;
  estimate: boolean;
}

export function sweepParameters(table: CostTable): SweepParameter[] {
  const out: SweepParameter[] = [];
  PRIMITIVES.forEach((kind, i) => {
    const c = table[kind];
    const common = { kind, source: c.source, estimate: c.estimate };
    out.push({ id: `${kind}.ns`, field: 'ns', index: i, ...c.ns, ...common });
    if (c.perByte) out.push({ id: `${kind}.perByte`, field: 'perByte', index: NPRIM + i, ...c.perByte, ...common });
  });
  return out;
}

export function unitOf(p: SweepParameter): string {
  return p.field === 'perByte' ? 'ns/B' : 'ns';
}
