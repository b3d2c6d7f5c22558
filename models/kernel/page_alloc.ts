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
  /** zeroes a frame (cheaply when it was never written) */
  zeroPage(pfn: number): void;
}

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

/**
 * A frame allocator over a range of physical frames. Which free frame a request gets is drawn from
 * the seeded RNG: the seed changes page placement, never meaning (DESIGN principle 8).
 */
export class PageAllocator {
  /** free frames in free[0, nfree), in no order; pos[pfn - first] is a frame's index there, −1 when allocated */
  private readonly free: Float64Array;
  private nfree: number;
  private readonly pos: Int32Array;

  constructor(
    private readonly sim: Sim,
    readonly mem: HostMemory,
    private readonly firstPfn: number,
    private readonly nrFrames: number,
  ) {
    this.free = new Float64Array(nrFrames);
    this.nfree = nrFrames;
    this.pos = new Int32Array(nrFrames);
    for (let i = 0; i < nrFrames; i++) {
      this.free[i] = firstPfn + i;
      this.pos[i] = i;
    }
  }

  get nrFree(): number {
    return this.nfree;
  }

  private take(pfn: number, owner: string, index: number): void {
    const i = this.pos[pfn - this.firstPfn]!;
    const last = this.free[--this.nfree]!;
    this.free[i] = last;
    this.pos[last - this.firstPfn] = i;
    this.pos[pfn - this.firstPfn] = -1;
    this.mem.zeroPage(pfn);
    this.mem.setOwner(pfn, owner, index);
  }

  private isFree(pfn: number): boolean {
    const o = pfn - this.firstPfn;
    return o >= 0 && o < this.nrFrames && this.pos[o]! >= 0;
  }

  /** alloc_page: returns a pfn or −1 when out of memory. Frames come zeroed. */
  allocPage(owner: string, index: number): number {
    if (this.nfree === 0) return -1;
    const pfn = this.free[this.sim.rng.int(this.nfree)]!;
    this.take(pfn, owner, index);
    return pfn;
  }

  /**
   * n physically contiguous frames (a boot-time ring or directory, or a huge page), at a seeded
   * place, the first frame a multiple of `alignPages`; returns the first pfn or −1.
   */
  allocContiguous(owner: string, n: number, alignPages = 1, firstIndex = 0): number {
    const lo = Math.ceil(this.firstPfn / alignPages);
    const hi = Math.floor((this.firstPfn + this.nrFrames - n) / alignPages);
    if (hi < lo || this.nfree < n) return -1;
    for (let attempt = 0; attempt < 64; attempt++) {
      const start = alignPages === 1 ? this.free[this.sim.rng.int(this.nfree)]! : (lo + this.sim.rng.int(hi - lo + 1)) * alignPages;
      let ok = true;
      for (let i = 0; i < n && ok; i++) ok = this.isFree(start + i);
      if (!ok) continue;
      for (let i = 0; i < n; i++) this.take(start + i, owner, firstIndex + i);
      return start;
    }
    return -1;
  }

  freePage(pfn: number): void {
    if (this.isFree(pfn)) throw new Error(`free_page: pfn 0x${pfn.toString(16)} is already free`);
    this.mem.setOwner(pfn, null, 0);
    this.pos[pfn - this.firstPfn] = this.nfree;
    this.free[this.nfree++] = pfn;
  }
}

