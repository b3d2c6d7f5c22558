import { P, kfn, type KFn, type LeakCount } from '../../sim/index.ts';
import { EFAULT } from './errno.ts';
import type { Kernel } from './kernel.ts';
import type { Mm } from './mm.ts';

/**
 * pin_user_pages (mm/gup.c): the one way VFIO type1, iommufd and vhost-vdpa take long-term
 * references on user pages. Accounting pins to the mm (pinned_vm / locked_vm) is the caller's
 * business, as in the kernel.
 */
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'mm', inheritLayer: true, sig, prov: { kind: 'merged', source: 'mm/gup.c' } });
const FN_PIN = fn('pin_user_pages', 'long pin_user_pages(unsigned long start, unsigned long nr_pages, unsigned int gup_flags, struct page **pages)');
const FN_PIN_FAST = fn('pin_user_pages_fast', 'int pin_user_pages_fast(unsigned long start, int nr_pages, unsigned int gup_flags, struct page **pages)');
const FN_UNPIN = fn('unpin_user_pages', 'void unpin_user_pages(struct page **pages, unsigned long npages)');

/**
 * The pages of one user range that are pinned now, by page index: the frame in an Int32Array
 * (−1 when not pinned) that grows to the highest index pinned, so a range far larger than what
 * can be pinned costs nothing. Every pinned page is one pin for the leak tracker, counted under
 * one entry that names the range: a mapping of guest RAM costs no allocation per page.
 */
export class PinnedPages {
  private pfns = new Int32Array(0);
  private leak: LeakCount | null = null;

  constructor(
    private readonly k: Kernel,
    /** user address of index 0 */
    readonly uaddr: number,
    readonly npages: number,
    /** whose pins (the leak tracker's label, with the range) */
    private readonly owner: string,
  ) {}

  /** pages pinned now */
  get count(): number {
    return this.leak?.n ?? 0;
  }

  /** the frame pinned at `index`, or −1 */
  pfnAt(index: number): number {
    return index < this.pfns.length ? this.pfns[index]! : -1;
  }

  /** Takes the pin on `pfn` for page `index`. Pinning an index twice is a bug (oops). */
  pin(index: number, pfn: number): void {
    if (index < 0 || index >= this.npages) this.k.sim.oops(`${this.label()}: page ${index} is outside the range`);
    if (index >= this.pfns.length) this.grow(index);
    if (this.pfns[index] !== -1) this.k.sim.oops(`${this.label()}: page ${index} pinned twice`);
    this.pfns[index] = pfn;
    (this.leak ??= this.k.sim.leaks.counted('pin', this.label())).n++;
  }

  /** Drops the pin of page `index`; returns false when it was not pinned. */
  unpin(index: number): boolean {
    if (this.pfnAt(index) === -1) return false;
    this.pfns[index] = -1;
    if (--this.leak!.n === 0) {
      this.k.sim.leaks.drop(this.leak!);
      this.leak = null;
    }
    return true;
  }

  /** Drops every pin in [from, from + n). */
  unpinRange(from: number, n: number): number {
    let dropped = 0;
    const end = Math.min(from + n, this.pfns.length);
    for (let i = from; i < end; i++) if (this.unpin(i)) dropped++;
    return dropped;
  }

  /** Calls `fn` for each pinned page, in index order. */
  forEach(fn: (index: number, pfn: number) => void): void {
    for (let i = 0; i < this.pfns.length; i++) if (this.pfns[i]! >= 0) fn(i, this.pfns[i]!);
  }

  private grow(index: number): void {
    const next = new Int32Array(Math.min(this.npages, Math.max(index + 1, this.pfns.length * 2, 64))).fill(-1);
    next.set(this.pfns);
    this.pfns = next;
  }

  private label(): string {
    const end = this.uaddr + this.npages * 4096;
    return `${this.owner} va 0x${this.uaddr.toString(16)}-0x${end.toString(16)}`;
  }
}

/**
 * Pins `npages` pages from `start` (page-aligned) of `mm` into `out` from index `at`. Returns the
 * number pinned, or −EFAULT when the first page is not mapped; like the kernel, it stops early at
 * an unmapped page after the first and returns how many it pinned.
 */
export function pin_user_pages(k: Kernel, mm: Mm, start: number, npages: number, out: PinnedPages, at = 0): number {
  return k.sim.call(FN_PIN, () => pinRun(k, mm, start, npages, out, at));
}

/** pin_user_pages_fast: the same pins, taken by the caller's own mm without mmap_lock (iommufd) */
export function pin_user_pages_fast(k: Kernel, mm: Mm, start: number, npages: number, out: PinnedPages, at = 0): number {
  return k.sim.call(FN_PIN_FAST, () => pinRun(k, mm, start, npages, out, at));
}

function pinRun(k: Kernel, mm: Mm, start: number, npages: number, out: PinnedPages, at: number): number {
  let n = 0;
  for (; n < npages; n++) {
    const pfn = mm.pfnOf(start + n * 4096);
    if (pfn < 0) break;
    out.pin(at + n, pfn);
  }
  // one charge of n pins: the same count and clock advance as n charges of one
  if (n) k.sim.charge(P.pinPage, n);
  return n === 0 && npages > 0 ? -EFAULT : n;
}

/** Drops every pin `pages` holds; returns how many. */
export function unpin_user_pages(k: Kernel, pages: PinnedPages): number {
  if (!pages.count) return 0;
  return k.sim.call(FN_UNPIN, () => pages.unpinRange(0, pages.npages));
}
