/**
 * The guest's page allocator over guest-physical frames. Which free frame a request gets is drawn
 * from a seeded RNG (DESIGN principle 8): the seed moves guest tables and user pages around in GPA
 * space, never what they mean. The low 1 MiB is left alone, as on a PC guest.
 */
import type { Rng } from '../../sim/rng.ts';
import type { GuestMemory } from './memory.ts';

const PAGE = 4096;
export const GUEST_RESERVED_LOW = 0x100000;

export class GuestPageAllocator {
  /** free frames in free[0, nfree), in no order */
  private readonly free: Int32Array;
  private nfree = 0;
  /** index of a frame in `free`, −1 when allocated or reserved */
  private readonly pos: Int32Array;

  constructor(
    readonly mem: GuestMemory,
    private readonly rng: Rng,
    reservedLow = GUEST_RESERVED_LOW,
  ) {
    const n = mem.size / PAGE;
    this.pos = new Int32Array(n).fill(-1);
    this.free = new Int32Array(n);
    for (let f = Math.ceil(reservedLow / PAGE); f < n; f++) {
      this.pos[f] = this.nfree;
      this.free[this.nfree++] = f;
    }
  }

  get nrFree(): number {
    return this.nfree;
  }

  private take(f: number): void {
    const i = this.pos[f]!;
    const last = this.free[--this.nfree]!;
    this.free[i] = last;
    this.pos[last] = i;
    this.pos[f] = -1;
    this.mem.zeroPage(f);
  }

  /** alloc_page: a zeroed frame's GPA, or −1. */
  allocPage(): number {
    if (this.nfree === 0) return -1;
    const f = this.free[this.rng.int(this.nfree)]!;
    this.take(f);
    return f * PAGE;
  }

  /** alloc_pages(order): `n` GPA-contiguous zeroed frames; the first GPA, or −1. */
  allocContiguous(n: number): number {
    const isFree = (f: number): boolean => f < this.pos.length && this.pos[f]! >= 0;
    const fits = (s: number): boolean => {
      for (let i = 0; i < n; i++) if (!isFree(s + i)) return false;
      return true;
    };
    let start = -1;
    for (let attempt = 0; attempt < 64 && start < 0 && this.nfree >= n; attempt++) {
      const s = this.free[this.rng.int(this.nfree)]!;
      if (fits(s)) start = s;
    }
    for (let s = 0; start < 0 && s + n <= this.pos.length; s++) if (fits(s)) start = s;
    if (start < 0) return -1;
    for (let i = 0; i < n; i++) this.take(start + i);
    return start * PAGE;
  }

  freePage(gpa: number): void {
    const f = gpa / PAGE;
    if (!Number.isInteger(f) || f < 0 || f >= this.pos.length || this.pos[f]! >= 0) throw new Error(`guest: freeing frame 0x${gpa.toString(16)} that is not allocated`);
    this.pos[f] = this.nfree;
    this.free[this.nfree++] = f;
  }
}
