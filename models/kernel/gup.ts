import { P, kfn, type KFn } from '../../sim/index.ts';
import { EFAULT } from './errno.ts';
import type { Kernel } from './kernel.ts';
import type { Mm } from './mm.ts';

/**
 * pin_user_pages (mm/gup.c): the one way VFIO type1, iommufd and vhost-vdpa take long-term
 * references on user pages. Each pinned page is one pin for the leak tracker; accounting it to
 * the mm (pinned_vm / locked_vm) is the caller's business, as in the kernel.
 */
const FN_PIN: KFn = kfn({
  name: 'pin_user_pages',
  layer: 'mm',
  inheritLayer: true,
  sig: 'long pin_user_pages(unsigned long start, unsigned long nr_pages, unsigned int gup_flags, struct page **pages)',
  prov: { kind: 'merged', source: 'mm/gup.c' },
});
const FN_UNPIN: KFn = kfn({
  name: 'unpin_user_pages',
  layer: 'mm',
  inheritLayer: true,
  sig: 'void unpin_user_pages(struct page **pages, unsigned long npages)',
  prov: { kind: 'merged', source: 'mm/gup.c' },
});

/** A pinned page: its frame and the leak tracker's handle for the pin. */
export interface PinnedPage {
  readonly pfn: number;
  readonly handle: number;
}

/**
 * Pins `npages` pages from `start` (page-aligned) of `mm`, appending them to `out`. Returns the
 * number pinned, or −EFAULT when the first page is not mapped; like the kernel, it stops early
 * at an unmapped page after the first and returns how many it pinned.
 */
export function pin_user_pages(k: Kernel, mm: Mm, start: number, npages: number, out: PinnedPage[]): number {
  return k.sim.call(FN_PIN, () => {
    let n = 0;
    for (; n < npages; n++) {
      const va = start + n * 4096;
      const pfn = mm.pfnOf(va);
      if (pfn < 0) break;
      k.sim.charge(P.pinPage);
      out.push({ pfn, handle: k.sim.leaks.track('pin', `${mm.name} va 0x${va.toString(16)} pfn 0x${pfn.toString(16)}`) });
    }
    return n === 0 && npages > 0 ? -EFAULT : n;
  });
}

export function unpin_user_pages(k: Kernel, pages: readonly PinnedPage[]): void {
  if (!pages.length) return;
  k.sim.call(FN_UNPIN, () => {
    for (const p of pages) k.sim.leaks.release('pin', p.handle);
  });
}
