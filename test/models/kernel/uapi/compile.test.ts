import { describe, expect, it } from 'vitest';
import { Rng } from '../../../../sim/rng.ts';
import { codecPaths } from '../../../../models/kernel/uapi/codec.ts';
import {
  allStructs,
  decode,
  encode,
  iommu_cache_invalidate_info,
  layoutOf,
  type LaidNode,
  type LaidRecord,
  type StructDecl,
  type UapiInput,
  type UapiInputValue,
} from '../../../../models/kernel/uapi/index.ts';

// the generated encoders and decoders must give exactly what the generic walk gives, for every
// registered struct: random values in, the same bytes out; random bytes in, the same object out

const MAX: Record<string, bigint> = { 1: 0xffn, 2: 0xffffn, 4: 0xffff_ffffn, 8: 0xffff_ffff_ffff_ffffn };

function scalarValue(rng: Rng, node: Extract<LaidNode, { kind: 'scalar' }>): UapiInputValue {
  const max = MAX[node.size]!;
  const signed = node.type.startsWith('__s');
  const pick = rng.u32() % 5;
  if (pick === 0) return 0;
  if (pick === 1) return max >> (signed ? 1n : 0n); // the largest: a bigint for 64 bits
  if (pick === 2 && signed) return -1;
  if (pick === 3 && node.size === 8) return (BigInt(rng.u32()) << 32n) | BigInt(rng.u32());
  return rng.u32() % Number(max > 0xffffn ? 0x10000 : max);
}

function nodeValue(rng: Rng, node: LaidNode): UapiInputValue | undefined {
  switch (node.kind) {
    case 'scalar':
      return scalarValue(rng, node);
    case 'record':
      return recordValue(rng, node);
    case 'array':
      if (node.elem.kind === 'scalar' && node.elem.type === 'char') return 'abc'.slice(0, Math.min(3, node.count));
      return Array.from({ length: node.count }, () => nodeValue(rng, node.elem) ?? 0);
    case 'flex':
      return undefined;
  }
}

/** members left out at random; one member per union, as a caller would give */
function recordValue(rng: Rng, rec: LaidRecord, into: Record<string, UapiInputValue> = {}): Record<string, UapiInputValue> {
  const fields = rec.union ? [rec.fields[rng.u32() % rec.fields.length]!] : rec.fields;
  for (const f of fields) {
    if (f.name === undefined) {
      if (f.node.kind === 'record') recordValue(rng, f.node, into);
      continue;
    }
    if (rng.u32() % 4 === 0) continue;
    const v = nodeValue(rng, f.node);
    if (v !== undefined) into[f.name] = v;
  }
  return into;
}

const structs: readonly StructDecl[] = allStructs();

describe('generated codec', () => {
  it.each(structs.map((d) => [d.name, d] as const))('%s: encodes as the generic walk does, on its fast path', (_n, decl) => {
    const rng = new Rng(7).fork(decl.name);
    const size = layoutOf(decl).size;
    for (let i = 0; i < 40; i++) {
      const v = recordValue(rng, layoutOf(decl).root);
      const fast = new Uint8Array(size);
      expect(codecPaths.compiled(decl).enc(fast, v)).toBe(true);
      expect(fast).toEqual(codecPaths.encodeFixed(decl, v, size));
      expect(encode(decl, v).subarray(0, size)).toEqual(fast);
    }
  });

  it.each(structs.map((d) => [d.name, d] as const))('%s: decodes as the generic walk does, members in the same order', (_n, decl) => {
    const rng = new Rng(11).fork(decl.name);
    const size = layoutOf(decl).size;
    for (let i = 0; i < 20; i++) {
      const bytes = Uint8Array.from({ length: size }, () => rng.u32() & 0xff);
      const fast = codecPaths.compiled(decl).dec(bytes);
      const slow = codecPaths.decodeFixed(decl, bytes);
      expect(fast).toEqual(slow);
      expect(JSON.stringify(fast, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x))).toBe(JSON.stringify(slow, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x)));
    }
  });

  it('leaves to the generic walk what it is not sure of, which then names the member', () => {
    const { enc } = codecPaths.compiled(iommu_cache_invalidate_info);
    const buf = (): Uint8Array => new Uint8Array(layoutOf(iommu_cache_invalidate_info).size);
    const cases: [UapiInput, RegExp][] = [
      [{ argsz: 2 ** 32 }, /iommu_cache_invalidate_info\.argsz: value 4294967296 out of range for __u32/],
      [{ version: 1.5 }, /iommu_cache_invalidate_info\.version: 1\.5 is not an exact integer/],
      [{ cache: '1' }, /iommu_cache_invalidate_info\.cache: expected an integer for __u8, got string/],
      [{ bogus: 1 }, /iommu_cache_invalidate_info: unknown member "bogus"/],
      [{ granu: { pasid_info: { pasid: -1 } } }, /granu\.pasid_info\.pasid: value -1 out of range for __u64/],
      [{ granu: { nope: {} } }, /iommu_cache_invalidate_info\.granu: unknown member "nope"/],
    ];
    for (const [v, err] of cases) {
      expect(enc(buf(), v)).toBe(false);
      expect(() => encode(iommu_cache_invalidate_info, v)).toThrow(err);
    }
  });

  it('takes two agreeing union members on the generic path and writes the same bytes', () => {
    const v = { granu: { pasid_info: { flags: 1 }, addr_info: { flags: 1 } } };
    expect(codecPaths.compiled(iommu_cache_invalidate_info).enc(new Uint8Array(layoutOf(iommu_cache_invalidate_info).size), v)).toBe(false);
    expect(decode(iommu_cache_invalidate_info, encode(iommu_cache_invalidate_info, v))).toMatchObject({ granu: { pasid_info: { flags: 1 }, addr_info: { flags: 1 } } });
  });
});
