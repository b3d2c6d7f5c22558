/**
 * Every registered struct against test/fixtures/uapi-layouts.json.
 *
 * How the fixture was produced (see also its "_meta" key): the header text of each struct was read
 * from public kernel trees and patch mails (torvalds/linux iommu.h @ 8be98d2f for v5.12, iommufd.h
 * @ b4d90dbc minus the 6.16/6.17 additions for v6.15, Liu Yi L's v8 mails, Jacob Pan's /dev/ioasid
 * V4), transcribed into C in a scratch folder outside the repo with a stub <linux/types.h>, and
 * compiled with gcc 12.2 (x86_64, -std=gnu11) into a program printing sizeof, _Alignof and the
 * offsetof of every member path. Only the numbers are in the repo.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allStructs, layoutOf, lookupStruct, structLayoutJson } from '../../../../models/kernel/uapi/index.ts';

interface FixtureRow {
  size: number;
  align: number;
  fields: Record<string, number>;
  nested: Record<string, number>;
  header: string;
  commit: string;
}
const fixture = JSON.parse(
  readFileSync(new URL('../../../fixtures/uapi-layouts.json', import.meta.url), 'utf8'),
) as { _meta: { how: string[]; compiler: string }; structs: Record<string, FixtureRow> };

describe('uapi layouts match gcc (golden fixture)', () => {
  it('registers at least 30 structs, and the fixture covers exactly the registry', () => {
    const names = allStructs().map((d) => d.name);
    expect(names.length).toBeGreaterThanOrEqual(30);
    expect(Object.keys(fixture.structs).sort()).toEqual([...names].sort());
    expect(fixture._meta.compiler).toMatch(/^gcc /);
    expect(fixture._meta.how.join(' ')).toMatch(/gcc compiled/);
  });

  for (const decl of allStructs()) {
    it(`${decl.name}: size, alignment and every offset`, () => {
      const row = fixture.structs[decl.name];
      expect(row, `fixture row for ${decl.name}`).toBeDefined();
      if (!row) return;
      const mine = structLayoutJson(decl);
      expect(mine.size).toBe(row.size);
      expect(layoutOf(decl).align).toBe(row.align);
      expect(mine.fields).toEqual(row.fields);
      expect(mine.nested).toEqual(row.nested);
      expect(row.header).toBe(decl.header);
      expect(row.commit).toBe(decl.source.ref);
    });
  }

  it('the fixture lists top-level fields in declaration order with rising offsets', () => {
    for (const [name, row] of Object.entries(fixture.structs)) {
      const offs = Object.values(row.fields);
      const decl = lookupStruct(name);
      const isUnionHeavy = decl?.fields.some((f) => f.kind === 'inline' && f.name === undefined);
      for (let i = 1; i < offs.length; i++) {
        if (!isUnionHeavy) expect(offs[i]!, `${name} field ${i}`).toBeGreaterThan(offs[i - 1]!);
        else expect(offs[i]!).toBeGreaterThanOrEqual(offs[i - 1]!);
      }
    }
  });
});
