import { describe, expect, it } from 'vitest';
import { PageRanges } from '../../scenarios/page-ranges.ts';

describe('PageRanges', () => {
  it('merges touching runs, splits on removal, answers covers and overlaps', () => {
    const r = new PageRanges();
    r.add(0, 4);
    r.add(4, 8);
    r.add(20, 24);
    expect(r.covers(0, 8)).toBe(true);
    expect(r.covers(6, 21)).toBe(false);
    r.remove(2, 3);
    expect([r.covers(0, 2), r.covers(3, 8), r.covers(1, 4)]).toEqual([true, true, false]);
    expect([r.overlaps(2, 3), r.overlaps(8, 20), r.overlaps(7, 21)]).toEqual([false, false, true]);
    const c = r.clone();
    r.remove(0, 100);
    expect([r.empty, c.empty, c.covers(20, 24)]).toEqual([true, false, true]);
  });
});
