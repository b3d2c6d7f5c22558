/**
 * Paging-entry formats (vtd-model §A.5) and a small page-table writer for drivers and tests.
 *
 * First stage (IA-32e format; linux iommu.h DMA_FL_PTE_*, qemu VTD_FL_*):
 *   P 0, R/W 1, U/S 2, PWT 3, PCD 4, A 5, D 6 (leaf), PS 7, XD 63, address 51:12.
 * Second stage (EPT-like; linux DMA_PTE_*, qemu VTD_SS_*):
 *   R 0, W 1, X 2 (with SLEE), PS 7, A 8 / D 9 (with SSADE) [R: not seen in code], SNP 11, address 51:12.
 * 9 index bits per level over a 12-bit offset; levels 1/2/3 leaves are 4 KiB / 2 MiB / 1 GiB.
 */
import type { PhysicalMemory } from '../memory.ts';
import type { PageAllocator } from './tables.ts';

export const FS = Object.freeze({ P: 1, RW: 2, US: 4, PWT: 8, PCD: 16, A: 32, D: 64, PS: 128 });
/** XD is bit 63: bit 31 of the high word. */
export const FS_XD_HI = 0x80000000 | 0;
export const SS = Object.freeze({ R: 1, W: 2, X: 4, PS: 128, A: 256, D: 512, SNP: 2048 });

export const PAGE_4K = 0x1000;
export const PAGE_2M = 0x200000;
export const PAGE_1G = 0x40000000;

/** Leaf level for a page size: 4 KiB → 1, 2 MiB → 2, 1 GiB → 3. */
export function leafLevel(pageSize: number): number {
  if (pageSize === PAGE_4K) return 1;
  if (pageSize === PAGE_2M) return 2;
  if (pageSize === PAGE_1G) return 3;
  throw new RangeError(`unsupported page size ${pageSize}`);
}

const TWO_POW_32 = 4294967296;

/** Index into the level-`level` table (1 = leaf table) for input address `va` (< 2^53). */
export function tableIndex(va: number, level: number): number {
  return Math.floor(va / 2 ** (12 + 9 * (level - 1))) % 512;
}

export type Stage = 'first' | 'second';

export interface MapFlags {
  /** First stage: writable (R/W). Second stage: W. */
  write?: boolean;
  /** Second stage: R (default true). */
  read?: boolean;
  /** Second stage: X. */
  exec?: boolean;
  /** First stage: U/S = user-accessible (default true). */
  user?: boolean;
  /** First stage: XD. */
  xd?: boolean;
  /** First stage: pre-set A (and D for writable leaves), so a walk needs no write-back. */
  accessed?: boolean;
}

/**
 * Writes page tables of one format into memory. Table pointers in non-leaf entries come from
 * `translateTable`, so a guest writing first-stage tables in guest-physical space can use the same
 * writer (identity by default). Non-leaf entries are fully permissive, as Linux writes them.
 */
export class PageTableWriter {
  constructor(
    readonly mem: PhysicalMemory,
    readonly stage: Stage,
    readonly levels: number,
    readonly root: number,
    /** Allocates a zeroed table page; returns the address the tables point at (GPA or HPA). */
    readonly alloc: PageAllocator,
    /** Maps a table address as written in entries to the physical address the writer accesses. */
    readonly toPhys: (tableAddr: number) => number = (a) => a,
  ) {}

  /** Map [va, va+size) → pa with pages of `pageSize`. */
  map(va: number, pa: number, size: number, pageSize: number, flags: MapFlags = {}): void {
    for (let off = 0; off < size; off += pageSize) this.mapOne(va + off, pa + off, pageSize, flags);
  }

  /** Remove a leaf mapping without any invalidation (callers model the software flush). */
  unmap(va: number, pageSize: number): void {
    const slot = this.leafSlot(va, leafLevel(pageSize), false);
    if (slot >= 0) this.clearLeaf(slot);
  }

  /** Clears the leaf entry at `slot` (an address leafSlot gave). */
  clearLeaf(slot: number): void {
    this.mem.writeQword(slot, 0, 0);
  }

  /** Rewrite a leaf in place (e.g. to show a stale IOTLB entry). */
  remap(va: number, pa: number, pageSize: number, flags: MapFlags = {}): void {
    this.mapOne(va, pa, pageSize, flags);
  }

  mapOne(va: number, pa: number, pageSize: number, flags: MapFlags): void {
    const level = leafLevel(pageSize);
    if (va % pageSize !== 0 || pa % pageSize !== 0) throw new RangeError('unaligned mapping');
    const slot = this.leafSlot(va, level, true);
    const [lo, hi] = this.leafBits(pa, level, flags);
    this.mem.writeQword(slot, lo, hi);
  }

  /** Physical address of the entry for `va` at `level`, creating tables above it when asked. */
  leafSlot(va: number, level: number, create: boolean): number {
    let table = this.root;
    for (let l = this.levels; l > level; l--) {
      const slot = this.toPhys(table) + tableIndex(va, l) * 8;
      const lo = this.mem.readQword(slot);
      const hi = this.mem.hi;
      if (!this.present(lo)) {
        if (!create) return -1;
        const next = this.alloc();
        const [nlo, nhi] = this.tableBits(next);
        this.mem.writeQword(slot, nlo, nhi);
        table = next;
      } else {
        if ((lo & 0x80) !== 0) throw new RangeError('a large page already maps this range');
        table = (hi & 0xfffff) * TWO_POW_32 + ((lo & ~0xfff) >>> 0);
      }
    }
    return this.toPhys(table) + tableIndex(va, level) * 8;
  }

  private present(lo: number): boolean {
    return this.stage === 'first' ? (lo & FS.P) !== 0 : (lo & (SS.R | SS.W)) !== 0;
  }

  private tableBits(addr: number): [number, number] {
    const lo = (addr % TWO_POW_32) & ~0xfff;
    const hi = Math.floor(addr / TWO_POW_32) | 0;
    // Non-leaf entries grant everything; the leaf decides (linux pfn_to_dma_pte / first-level setup).
    return this.stage === 'first' ? [lo | FS.P | FS.RW | FS.US, hi] : [lo | SS.R | SS.W | SS.X, hi];
  }

  private leafBits(pa: number, level: number, f: MapFlags): [number, number] {
    const lo0 = (pa % TWO_POW_32) & ~0xfff;
    let hi = Math.floor(pa / TWO_POW_32) | 0;
    let lo = lo0 | (level > 1 ? 0x80 : 0);
    if (this.stage === 'first') {
      lo |= FS.P;
      if (f.write) lo |= FS.RW;
      if (f.user ?? true) lo |= FS.US;
      if (f.accessed) lo |= FS.A | (f.write ? FS.D : 0);
      if (f.xd) hi |= FS_XD_HI;
    } else {
      if (f.read ?? true) lo |= SS.R;
      if (f.write) lo |= SS.W;
      if (f.exec) lo |= SS.X;
    }
    return [lo, hi];
  }
}
