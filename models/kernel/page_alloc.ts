import type { Sim } from '../../sim/index.ts';

/**
 * The host's physical memory as the kernel's page allocator sees it: byte access by physical
 * address and an owner label per frame (so the hardware digest can name a page by its owner and
 * offset, never by its address). The emulated machine's memory implements it.
 */
export interface HostMemory {
  read(pa: number, dst: Uint8Array, dstOff: number, len: number): void;
  write(pa: number, src: Uint8Array, srcOff: number, len: number): void;
  /** labels frame `pfn` as page `index` of `owner`, or clears the label */
  setOwner(pfn: number, owner: string | null, index: number): void;
}

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

/**
 * A frame allocator over a range of physical frames. Which free frame a request gets is drawn from
 * the seeded RNG: the seed changes page placement, never meaning (DESIGN principle 8).
 */
export class PageAllocator {
  private readonly free: number[];

  constructor(
    private readonly sim: Sim,
    readonly mem: HostMemory,
    firstPfn: number,
    nrFrames: number,
  ) {
    this.free = Array.from({ length: nrFrames }, (_, i) => firstPfn + i);
  }

  get nrFree(): number {
    return this.free.length;
  }

  /** alloc_page: returns a pfn or −1 when out of memory. Frames come zeroed. */
  allocPage(owner: string, index: number): number {
    if (this.free.length === 0) return -1;
    const i = this.sim.rng.int(this.free.length);
    const pfn = this.free[i]!;
    this.free[i] = this.free[this.free.length - 1]!;
    this.free.pop();
    this.mem.write(pfn * PAGE_SIZE, ZERO_PAGE, 0, PAGE_SIZE);
    this.mem.setOwner(pfn, owner, index);
    return pfn;
  }

  /** n physically contiguous frames (a boot-time ring or table); returns the first pfn or −1. */
  allocContiguous(owner: string, n: number): number {
    const free = new Set(this.free);
    const starts = this.free.filter((p) => {
      for (let i = 1; i < n; i++) if (!free.has(p + i)) return false;
      return true;
    });
    if (!starts.length) return -1;
    const first = starts[this.sim.rng.int(starts.length)]!;
    for (let i = 0; i < n; i++) {
      const at = this.free.indexOf(first + i);
      this.free[at] = this.free[this.free.length - 1]!;
      this.free.pop();
      this.mem.write((first + i) * PAGE_SIZE, ZERO_PAGE, 0, PAGE_SIZE);
      this.mem.setOwner(first + i, owner, i);
    }
    return first;
  }

  freePage(pfn: number): void {
    this.mem.setOwner(pfn, null, 0);
    this.free.push(pfn);
  }
}

const ZERO_PAGE = new Uint8Array(PAGE_SIZE);
