import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PRIMITIVES, isPrimitiveKind, type PrimitiveKind } from '../primitives.ts';
import { DEFAULT_COSTS } from './default-profile.ts';
import type { CostTable, PrimitiveCost, Range } from './profile.ts';

const ns = z.number().finite().nonnegative();
const range = z
  .strictObject({ low: ns, default: ns, high: ns })
  .refine((r) => r.low <= r.default && r.default <= r.high, {
    message: 'expected low <= default <= high',
  });
const figure = z.union([ns, range]);
const entry = z.strictObject({
  ns: figure.optional(),
  perByte: figure.optional(),
  source: z.string().min(1).optional(),
});
const profileSchema = z.strictObject({
  name: z.string().min(1).optional(),
  costs: z.record(z.string(), entry),
});

export class ProfileError extends Error {
  override name = 'ProfileError';
}

function toRange(f: number | Range): Range {
  return typeof f === 'number' ? { low: f, default: f, high: f } : f;
}

/**
 * Validates a cost profile given as parsed JSON. Kinds not named keep their default entry.
 * Errors name the offending path, e.g. `costs.syscall.ns.low – Too small: …`.
 */
export function parseProfile(json: unknown, origin = 'profile'): { name: string; table: CostTable } {
  const r = profileSchema.safeParse(json);
  if (!r.success) {
    const msgs = r.error.issues.map((i) => `${origin}: ${i.path.join('.') || '(root)'} – ${i.message}`);
    throw new ProfileError(msgs.join('\n'));
  }
  const table: Record<PrimitiveKind, PrimitiveCost> = { ...DEFAULT_COSTS };
  for (const [kind, e] of Object.entries(r.data.costs)) {
    if (!isPrimitiveKind(kind)) {
      throw new ProfileError(
        `${origin}: costs.${kind} – unknown primitive; expected one of ${PRIMITIVES.join(', ')}`,
      );
    }
    const base = DEFAULT_COSTS[kind];
    if (e.perByte !== undefined && base.perByte === undefined) {
      throw new ProfileError(`${origin}: costs.${kind}.perByte – ${kind} is not priced per byte`);
    }
    const perByte = e.perByte !== undefined ? toRange(e.perByte) : base.perByte;
    table[kind] = {
      ns: e.ns !== undefined ? toRange(e.ns) : base.ns,
      ...(perByte ? { perByte } : {}),
      source: e.source ?? (e.ns !== undefined || e.perByte !== undefined ? `${origin} (user-supplied)` : base.source),
      estimate: e.ns !== undefined || e.perByte !== undefined ? true : base.estimate,
    };
  }
  return { name: r.data.name ?? origin, table };
}

export function loadProfileFile(path: string): { name: string; table: CostTable } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ProfileError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ProfileError(`${path}: not JSON – ${(e as Error).message}`);
  }
  return parseProfile(json, path);
}
