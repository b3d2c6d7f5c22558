import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.ts';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/uapi-layouts.json', import.meta.url), 'utf8')) as {
  structs: Record<string, { size: number; fields: Record<string, number> }>;
};

describe('ioasid-sim structs', () => {
  it('--json lists at least 30 structs whose sizes and offsets equal the gcc fixture', () => {
    const r = cli('structs', '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { structs: Record<string, { size: number; fields: Record<string, number>; nested: Record<string, number> }> };
    const names = Object.keys(out.structs);
    expect(names.length).toBeGreaterThanOrEqual(30);
    for (const n of names) {
      const golden = fixture.structs[n];
      expect(golden, n).toBeDefined();
      expect(out.structs[n]!.size, n).toBe(golden!.size);
      expect(out.structs[n]!.fields, n).toEqual(golden!.fields);
    }
    expect(out.structs.iommu_gpasid_bind_data!.nested['vendor.vtd.pat']).toBeTypeOf('number');
  });

  it('prints a table of at most 80 columns', () => {
    const r = cli('structs', '--design', 'B');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.every((l) => l.length <= 80)).toBe(true);
    expect(lines.some((l) => /^iommu_hwpt_alloc\s+48\s+B\s/.test(l))).toBe(true);
    expect(lines.some((l) => /^iommu_gpasid_bind_data\b/.test(l))).toBe(false);
  });

  it('refuses an unknown struct and a bad --design with exit 2', () => {
    expect(cli('structs', 'iommu_nonesuch').code).toBe(2);
    const r = cli('structs', '--design', 'C');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
