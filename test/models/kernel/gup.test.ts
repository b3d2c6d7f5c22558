import { describe, expect, it } from 'vitest';
import { P, primitiveCount } from '../../../sim/index.ts';
import { EFAULT, IS_ERR } from '../../../models/kernel/errno.ts';
import { PinnedPages, pin_user_pages, unpin_user_pages } from '../../../models/kernel/gup.ts';
import { bootKernel } from '../../helpers/kernel.ts';

function setup(pages: number) {
  const env = bootKernel();
  const buf = env.task.mm.mmap(pages * 4096, 'qemu:ram');
  if (IS_ERR(buf)) throw new Error('mmap');
  return { ...env, buf: Number(buf) };
}

describe('pin_user_pages into PinnedPages', () => {
  it('pins each page once, counted under one leak entry that names the range', () => {
    const { k, task, buf } = setup(8);
    const pins = new PinnedPages(k, buf, 8, 'vfio qemu');
    const t = k.sim.sched.spawn('t');
    const rec = k.sim.step(t, '1', 'pin', () => expect(pin_user_pages(k, task.mm, buf, 8, pins)).toBe(8));
    expect(pins.count).toBe(8);
    expect(k.sim.leaks.count('pin')).toBe(8);
    // the frames are the mm's
    for (let i = 0; i < 8; i++) expect(pins.pfnAt(i)).toBe(task.mm.pfnOf(buf + i * 4096));
    // one pinPage primitive per page, however the charge is made
    expect(primitiveCount(rec, P.pinPage)).toBe(8);
    expect(() => k.sim.leaks.assertClean()).toThrow(new RegExp(`8 leaked\\n {2}pin: vfio qemu va 0x${buf.toString(16)}-0x${(buf + 8 * 4096).toString(16)} \\(8\\)`));
    expect(unpin_user_pages(k, pins)).toBe(8);
    expect(pins.count).toBe(0);
    expect(k.sim.leaks.count('pin')).toBe(0);
    k.sim.leaks.assertClean();
  });

  it('stops at an unmapped page after the first, and fails with EFAULT on an unmapped first page', () => {
    const { k, task, buf } = setup(4);
    const pins = new PinnedPages(k, buf, 6, 'vhost-vdpa qemu');
    expect(pin_user_pages(k, task.mm, buf, 6, pins)).toBe(4);
    expect(pins.pfnAt(4)).toBe(-1);
    const none = new PinnedPages(k, buf + 4 * 4096, 2, 'vhost-vdpa qemu');
    expect(pin_user_pages(k, task.mm, buf + 4 * 4096, 2, none)).toBe(-EFAULT);
    expect(none.count).toBe(0);
    expect(k.sim.leaks.count('pin')).toBe(4);
  });

  it('unpins single pages and ranges, and refuses a double pin or a page outside the range', () => {
    const { k, task, buf } = setup(4);
    const pins = new PinnedPages(k, buf, 4, 'iopt_pages qemu');
    expect(pin_user_pages(k, task.mm, buf + 4096, 2, pins, 1)).toBe(2);
    expect(pins.unpin(0)).toBe(false);
    expect(pins.unpin(1)).toBe(true);
    expect(pins.unpin(1)).toBe(false);
    expect(() => pins.pin(2, 0x1234)).toThrow(/page 2 pinned twice/);
    expect(() => pins.pin(4, 0x1234)).toThrow(/page 4 is outside the range/);
    expect(pins.unpinRange(0, 4)).toBe(1);
    expect(k.sim.leaks.count('pin')).toBe(0);
  });
});

describe('counted leak entries', () => {
  it('count with their owner, end at zero, and refuse to end while holding anything', () => {
    const { k } = bootKernel();
    const c = k.sim.leaks.counted('pin', 'ioas 1 pages');
    c.n += 3;
    k.sim.leaks.track('pin', 'one page');
    expect(k.sim.leaks.count('pin')).toBe(4);
    expect(k.sim.leaks.snapshot()).toMatchObject({ pin: 4 });
    expect(() => k.sim.leaks.drop(c)).toThrow(/dropped with 3 live/);
    c.n = 0;
    k.sim.leaks.drop(c);
    expect(() => k.sim.leaks.drop(c)).toThrow(/dropped twice/);
    expect(k.sim.leaks.count('pin')).toBe(1);
  });
});
