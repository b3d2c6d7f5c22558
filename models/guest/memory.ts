/**
 * Guest RAM as the guest and its vIOMMU see it: a guest-physical address space whose bytes live in
 * host memory, in the frames behind the VMM's mmap of guest RAM (scattered, as the host's seeded
 * allocator handed them out). Every accessor translates GPA → HPA through that mapping, so what
 * the guest writes is what a device DMA reaches through the host VT-d's nested translation.
 *
 * It subclasses PhysicalMemory so the vIOMMU instance (a Vtd over this memory) and the page-table
 * writer run unchanged. The vIOMMU is not on the DMA hot path (device DMA goes through the HOST
 * VT-d), so the per-access translation costs nothing that matters. Its own structure fetches are
 * counted here (QEMU's dma_memory_read of guest tables), not in the host's walk counters.
 */
import { PhysicalMemory, type OwnerLabel } from '../hw/memory.ts';

const PAGE = 4096;

export class GuestMemory extends PhysicalMemory {
  /** bytes of guest RAM, GPA [0, size) */
  readonly size: number;

  constructor(
    /** host physical memory */
    readonly host: PhysicalMemory,
    /** host pfn of each guest frame (the VMM's mapping of guest RAM) */
    readonly frames: ArrayLike<number>,
  ) {
    super({ addressBits: host.addressBits, initialPages: 16 });
    this.size = frames.length * PAGE;
  }

  /** The host physical address of `gpa`; a GPA outside guest RAM is a model bug. */
  hpa(gpa: number): number {
    const pfn = gpa >= 0 ? this.frames[Math.floor(gpa / PAGE)] : undefined;
    if (pfn === undefined) throw new RangeError(`GPA 0x${gpa.toString(16)} outside guest RAM (0x${this.size.toString(16)} bytes)`);
    return pfn * PAGE + (gpa % PAGE);
  }

  private hostPfn(gfn: number): number {
    return this.hpa(gfn * PAGE) / PAGE;
  }

  // ---- vIOMMU-side, counted on this instance ------------------------------------------------

  override fetch(pfn: number, qidx: number): number {
    this.walkReads++;
    const lo = this.host.readQword(this.hostPfn(pfn) * PAGE + qidx * 8);
    this.hi = this.host.hi;
    return lo;
  }

  override update(pfn: number, qidx: number, lo: number): void {
    this.walkWrites++;
    const pa = this.hostPfn(pfn) * PAGE + qidx * 8;
    this.host.readQword(pa);
    this.host.writeQword(pa, lo, this.host.hi);
  }

  override fetchEntry(pa: number, nWords: number, out: Int32Array): void {
    this.walkReads++;
    const hpa = this.hpa(pa);
    for (let i = 0; i < nWords; i += 2) {
      out[i] = this.host.readQword(hpa + i * 4);
      out[i + 1] = this.host.hi;
    }
  }

  // ---- CPU-side (the guest kernel, the VMM's emulation) ---------------------------------------

  override holdsData(pa: number): boolean {
    return this.host.holdsData(this.hpa(pa));
  }

  override readInto(pa: number, dst: Uint8Array, dstOff: number, len: number): void {
    while (len > 0) {
      const n = Math.min(len, PAGE - (pa % PAGE));
      this.host.readInto(this.hpa(pa), dst, dstOff, n);
      pa += n;
      dstOff += n;
      len -= n;
    }
  }

  override writeFrom(pa: number, src: Uint8Array, srcOff: number, len: number): void {
    while (len > 0) {
      const n = Math.min(len, PAGE - (pa % PAGE));
      this.host.writeFrom(this.hpa(pa), src, srcOff, n);
      pa += n;
      srcOff += n;
      len -= n;
    }
  }

  override readU8(pa: number): number {
    return this.host.readU8(this.hpa(pa));
  }

  override writeU8(pa: number, v: number): void {
    this.host.writeU8(this.hpa(pa), v);
  }

  override readU32(pa: number): number {
    return this.host.readU32(this.hpa(pa));
  }

  override writeU32(pa: number, v: number): void {
    this.host.writeU32(this.hpa(pa), v);
  }

  override readQword(pa: number): number {
    const lo = this.host.readQword(this.hpa(pa));
    this.hi = this.host.hi;
    return lo;
  }

  override writeQword(pa: number, lo: number, hi: number): void {
    this.host.writeQword(this.hpa(pa), lo, hi);
  }

  override clearPage(pfn: number): void {
    this.host.clearPage(this.hostPfn(pfn));
  }

  override zeroPage(pfn: number): void {
    this.host.zeroPage(this.hostPfn(pfn));
  }

  /** The host's label of the frame behind `gpa` (the VMM labels guest RAM by region and GPA). */
  override owner(pa: number): OwnerLabel | undefined {
    return pa >= 0 && pa < this.size ? this.host.owner(this.hpa(pa)) : undefined;
  }
}
