/**
 * Sparse physical memory in 4 KiB pages, backed by one growable Int32Array slab.
 *
 * Why this shape (DESIGN principle 10): a DMA walk makes up to 35 memory references, so a reference
 * must cost a few ns. Pages live in a slab indexed by a typed-array open-addressing hash table keyed
 * by page frame number (pfn < 2^40 for 52-bit addresses, an exact JS number), with a one-entry
 * "last page" cache in front. 64-bit quantities are handled as two 32-bit halves (`lo`, `hi`) so no
 * BigInt is needed in the hot path; a flag like XD (bit 63) is `hi >>> 31`.
 *
 * Two kinds of access:
 * - CPU-side `read*`/`write*` (drivers, tests, the guest): not counted.
 * - IOMMU-side `fetch`/`fetchEntry`/`update`: counted in `walkReads`/`walkWrites`. These are the
 *   memory references a walk makes; cost models read them (DESIGN "hardware" metric).
 *
 * Reads of a page that was never written return zeros and allocate nothing.
 */

const PAGE_SHIFT = 12;
const PAGE_SIZE = 4096;
const WORDS_PER_PAGE = 1024;
const TWO_POW_32 = 4294967296;
/** copies up to this many bytes go byte by byte: a subarray view per copy costs more than the loop */
const SMALL_COPY = 64;
/** page labels pack (offset, region id) in one exact double: 2^16 regions, offsets below 2^37 */
const REGION_IDS = 65536;
const MAX_REGION_OFFSET = 2 ** 37;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('memory.ts assumes a little-endian host (typed arrays use host byte order)');
}

export interface OwnerLabel {
  /** A stable region name: "guest0.ram", "host.pasid-tables", … never an address. */
  readonly region: string;
  /** Offset of the address inside the region. */
  readonly offset: number;
}

interface LabelRange {
  base: number;
  size: number;
  region: string;
  regionOffset: number;
}

export class PhysicalMemory {
  /** Physical address width in bits; every address must be below 2^addressBits (≤ 52). */
  readonly addressBits: number;
  /** Memory references made by the IOMMU (entry fetches during walks and structure fetches). */
  walkReads = 0;
  /** A/D-bit write-backs made by the IOMMU. */
  walkWrites = 0;
  /** High 32 bits of the last `fetch`/`readQword` (the return value is the low half). */
  hi = 0;

  /** frames at or above this are beyond the address width */
  private readonly pfnLimit: number;
  private words: Int32Array;
  private bytes: Uint8Array;
  private slotCount = 0;
  // pfn → slot hash table (linear probing; pages are never freed, so no tombstones)
  private keys: Float64Array;
  private vals: Int32Array;
  private mask: number;
  private lastPfn = -1;
  private lastBase = 0;
  private labels: LabelRange[] = [];
  /** per-frame labels, packed as regionOffset × REGION_IDS + region id + 1 (0: none) */
  private readonly pageLabels = new Map<number, number>();
  /** the same for the frames an allocator hands out, in a dense array (see `ownerWindow`) */
  private windowLabels = new Float64Array(0);
  private windowFirst = 0;
  private readonly regionIds = new Map<string, number>();
  /** the last region labelled and its id: frames are labelled a run at a time */
  private lastRegion: string | null = null;
  private lastRegionId = 0;
  private readonly regionNames: string[] = [];

  constructor(opts: { addressBits?: number; initialPages?: number } = {}) {
    this.addressBits = opts.addressBits ?? 52;
    if (this.addressBits > 52) throw new RangeError('physical addresses above 52 bits are not exact');
    this.pfnLimit = 2 ** (this.addressBits - PAGE_SHIFT);
    const pages = Math.max(16, opts.initialPages ?? 256);
    this.words = new Int32Array(pages * WORDS_PER_PAGE);
    this.bytes = new Uint8Array(this.words.buffer);
    const cap = nextPow2(pages * 2);
    this.keys = new Float64Array(cap).fill(-1);
    this.vals = new Int32Array(cap);
    this.mask = cap - 1;
  }

  /** Number of 4 KiB pages that hold data. */
  get allocatedPages(): number {
    return this.slotCount;
  }

  /** Total IOMMU references (reads + A/D writes). */
  get walkRefs(): number {
    return this.walkReads + this.walkWrites;
  }

  resetCounters(): void {
    this.walkReads = 0;
    this.walkWrites = 0;
  }

  // ---- page lookup -------------------------------------------------------------------------

  /** Word index of the page's first word, or -1 when the page was never written. */
  pageBase(pfn: number): number {
    if (pfn === this.lastPfn) return this.lastBase;
    const keys = this.keys;
    const mask = this.mask;
    let i = hashPfn(pfn) & mask;
    for (;;) {
      const k = keys[i]!;
      if (k === pfn) {
        const base = this.vals[i]! << 10;
        this.lastPfn = pfn;
        this.lastBase = base;
        return base;
      }
      if (k === -1) return -1;
      i = (i + 1) & mask;
    }
  }

  private ensurePage(pfn: number): number {
    const existing = this.pageBase(pfn);
    if (existing >= 0) return existing;
    if (pfn < 0 || pfn >= this.pfnLimit) {
      throw new RangeError(`physical address 0x${(pfn * PAGE_SIZE).toString(16)} beyond ${this.addressBits} bits`);
    }
    if ((this.slotCount + 1) * 2 > this.keys.length) this.growIndex();
    if ((this.slotCount + 1) * WORDS_PER_PAGE > this.words.length) this.growSlab();
    const slot = this.slotCount++;
    let i = hashPfn(pfn) & this.mask;
    while (this.keys[i] !== -1) i = (i + 1) & this.mask;
    this.keys[i] = pfn;
    this.vals[i] = slot;
    this.lastPfn = pfn;
    this.lastBase = slot << 10;
    return slot << 10;
  }

  private growSlab(): void {
    const next = new Int32Array(this.words.length * 2);
    next.set(this.words);
    this.words = next;
    this.bytes = new Uint8Array(next.buffer);
    this.lastPfn = -1;
  }

  private growIndex(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const cap = oldKeys.length * 2;
    this.keys = new Float64Array(cap).fill(-1);
    this.vals = new Int32Array(cap);
    this.mask = cap - 1;
    for (let j = 0; j < oldKeys.length; j++) {
      const k = oldKeys[j]!;
      if (k === -1) continue;
      let i = hashPfn(k) & this.mask;
      while (this.keys[i] !== -1) i = (i + 1) & this.mask;
      this.keys[i] = k;
      this.vals[i] = oldVals[j]!;
    }
    this.lastPfn = -1;
  }

  // ---- IOMMU-side, counted (hot path) ------------------------------------------------------

  /** Fetch qword `qidx` (0..511) of page `pfn`: one memory reference. Returns lo; sets `this.hi`. */
  fetch(pfn: number, qidx: number): number {
    this.walkReads++;
    const base = this.pageBase(pfn);
    if (base < 0) {
      this.hi = 0;
      return 0;
    }
    const w = base + (qidx << 1);
    this.hi = this.words[w + 1]!;
    return this.words[w]!;
  }

  /** Write back the low half of qword `qidx` of page `pfn` (an A/D-bit update): one reference. */
  update(pfn: number, qidx: number, lo: number): void {
    this.walkWrites++;
    const base = this.ensurePage(pfn);
    this.words[base + (qidx << 1)] = lo;
  }

  /**
   * Fetch a 128/256/512-bit structure entry (root, context, PASID entry) at `pa` as one memory
   * reference, into `out` as 32-bit words (little-endian order: out[0] = bits 31:0).
   */
  fetchEntry(pa: number, nWords: number, out: Int32Array): void {
    this.walkReads++;
    const base = this.pageBase(Math.floor(pa / PAGE_SIZE));
    if (base < 0) {
      out.fill(0, 0, nWords);
      return;
    }
    const w = base + ((pa & 4095) >>> 2);
    for (let i = 0; i < nWords; i++) out[i] = this.words[w + i]!;
  }

  // ---- CPU-side, uncounted -----------------------------------------------------------------

  readU8(pa: number): number {
    const base = this.pageBase(Math.floor(pa / PAGE_SIZE));
    return base < 0 ? 0 : this.bytes[base * 4 + (pa & 4095)]!;
  }

  writeU8(pa: number, v: number): void {
    const base = this.ensurePage(Math.floor(pa / PAGE_SIZE));
    this.bytes[base * 4 + (pa & 4095)] = v;
  }

  /** Aligned 32-bit read (unsigned). */
  readU32(pa: number): number {
    const base = this.pageBase(Math.floor(pa / PAGE_SIZE));
    return base < 0 ? 0 : this.words[base + ((pa & 4095) >>> 2)]! >>> 0;
  }

  writeU32(pa: number, v: number): void {
    checkAligned(pa, 4);
    const base = this.ensurePage(Math.floor(pa / PAGE_SIZE));
    this.words[base + ((pa & 4095) >>> 2)] = v | 0;
  }

  /** Aligned 64-bit read as halves: returns lo (signed int32); sets `this.hi`. */
  readQword(pa: number): number {
    checkAligned(pa, 8);
    const base = this.pageBase(Math.floor(pa / PAGE_SIZE));
    if (base < 0) {
      this.hi = 0;
      return 0;
    }
    const w = base + ((pa & 4095) >>> 2);
    this.hi = this.words[w + 1]!;
    return this.words[w]!;
  }

  writeQword(pa: number, lo: number, hi: number): void {
    checkAligned(pa, 8);
    const base = this.ensurePage(Math.floor(pa / PAGE_SIZE));
    const w = base + ((pa & 4095) >>> 2);
    this.words[w] = lo | 0;
    this.words[w + 1] = hi | 0;
  }

  /** Aligned 64-bit read as a number; throws when the value is not below 2^53. */
  readU64(pa: number): number {
    const lo = this.readQword(pa) >>> 0;
    const hi = this.hi >>> 0;
    if (hi >= 0x200000) throw new RangeError(`u64 at 0x${pa.toString(16)} is not exact as a number`);
    return hi * TWO_POW_32 + lo;
  }

  /** Aligned 64-bit write of a number below 2^53. */
  writeU64(pa: number, v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError('writeU64 takes a non-negative safe integer');
    this.writeQword(pa, v >>> 0, Math.floor(v / TWO_POW_32));
  }

  /** Any 64-bit value, for cold paths (tests, digests). */
  readU64Big(pa: number): bigint {
    const lo = this.readQword(pa) >>> 0;
    return (BigInt(this.hi >>> 0) << 32n) | BigInt(lo);
  }

  writeU64Big(pa: number, v: bigint): void {
    this.writeQword(pa, Number(v & 0xffffffffn), Number((v >> 32n) & 0xffffffffn));
  }

  /** Copies `len` bytes at `pa` into dst[dstOff…], a page at a time (never-written pages read as zeros). */
  readInto(pa: number, dst: Uint8Array, dstOff: number, len: number): void {
    while (len > 0) {
      const off = pa % PAGE_SIZE;
      const n = Math.min(len, PAGE_SIZE - off);
      const base = this.pageBase(Math.floor(pa / PAGE_SIZE));
      if (base < 0) dst.fill(0, dstOff, dstOff + n);
      else if (n <= SMALL_COPY) {
        const bytes = this.bytes;
        const from = base * 4 + off;
        for (let i = 0; i < n; i++) dst[dstOff + i] = bytes[from + i]!;
      } else dst.set(this.bytes.subarray(base * 4 + off, base * 4 + off + n), dstOff);
      pa += n;
      dstOff += n;
      len -= n;
    }
  }

  /** Copies src[srcOff, srcOff + len) to `pa`, a page at a time. */
  writeFrom(pa: number, src: Uint8Array, srcOff: number, len: number): void {
    while (len > 0) {
      const off = pa % PAGE_SIZE;
      const n = Math.min(len, PAGE_SIZE - off);
      const base = this.ensurePage(Math.floor(pa / PAGE_SIZE));
      if (n <= SMALL_COPY) {
        const bytes = this.bytes;
        const to = base * 4 + off;
        for (let i = 0; i < n; i++) bytes[to + i] = src[srcOff + i]!;
      } else this.bytes.set(src.subarray(srcOff, srcOff + n), base * 4 + off);
      pa += n;
      srcOff += n;
      len -= n;
    }
  }

  readBytes(pa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.readInto(pa, out, 0, len);
    return out;
  }

  writeBytes(pa: number, data: Uint8Array): void {
    this.writeFrom(pa, data, 0, data.length);
  }

  /** Was the page of `pa` ever written? A page that was not reads as zeros. */
  holdsData(pa: number): boolean {
    return this.pageBase(Math.floor(pa / PAGE_SIZE)) >= 0;
  }

  /** Zero a page only if it holds data: an untouched page already reads as zeros. */
  clearPage(pfn: number): void {
    const base = this.pageBase(pfn);
    if (base >= 0) this.words.fill(0, base, base + WORDS_PER_PAGE);
  }

  /**
   * Zero a whole page (e.g. a freshly allocated table page). A page never written already reads as
   * zeros and stays unallocated, so handing out a fresh frame costs no memory until it is written.
   */
  zeroPage(pfn: number): void {
    if (pfn < 0 || pfn >= this.pfnLimit) {
      throw new RangeError(`physical address 0x${(pfn * PAGE_SIZE).toString(16)} beyond ${this.addressBits} bits`);
    }
    this.clearPage(pfn);
  }

  // ---- owner labels ------------------------------------------------------------------------

  /**
   * Label [base, base+size) as belonging to `region` at `regionOffset`. Labels let the digest name
   * (region, offset) instead of host addresses, so two runs with different page allocations agree.
   */
  labelRange(base: number, size: number, region: string, regionOffset = 0): void {
    for (const l of this.labels) {
      if (base < l.base + l.size && l.base < base + size) {
        throw new RangeError(`label ${region} overlaps ${l.region}`);
      }
    }
    this.labels.push({ base, size, region, regionOffset });
    this.labels.sort((a, b) => a.base - b.base);
  }

  /**
   * Label one 4 KiB frame (or clear its label with null). A kernel's page allocator scatters the
   * pages of one region across memory, so per-frame labels are kept in a map, not in the ranges.
   */
  setPageOwner(pfn: number, region: string | null, regionOffset = 0): void {
    const w = pfn - this.windowFirst;
    const inWindow = w >= 0 && w < this.windowLabels.length;
    if (region === null) {
      if (inWindow) this.windowLabels[w] = 0;
      else this.pageLabels.delete(pfn);
      return;
    }
    let id = region === this.lastRegion ? this.lastRegionId : this.regionIds.get(region);
    if (id === undefined) {
      id = this.regionNames.push(region) - 1;
      if (id >= REGION_IDS) throw new RangeError(`more than ${REGION_IDS} page-owner regions`);
      this.regionIds.set(region, id);
    }
    this.lastRegion = region;
    this.lastRegionId = id;
    if (!(regionOffset >= 0 && regionOffset < MAX_REGION_OFFSET)) throw new RangeError(`page-owner offset 0x${regionOffset.toString(16)} of ${region} out of range`);
    const packed = regionOffset * REGION_IDS + id + 1;
    if (inWindow) this.windowLabels[w] = packed;
    else this.pageLabels.set(pfn, packed);
  }

  /**
   * Keeps the labels of frames [firstPfn, firstPfn + n) in a dense array rather than the map: the
   * range a page allocator hands out, labelled and cleared once per allocation.
   */
  ownerWindow(firstPfn: number, n: number): void {
    const next = new Float64Array(n);
    for (let i = 0; i < n && this.pageLabels.size; i++) {
      const old = this.pageLabels.get(firstPfn + i);
      if (old !== undefined) {
        next[i] = old;
        this.pageLabels.delete(firstPfn + i);
      }
    }
    for (let i = 0; i < this.windowLabels.length; i++) if (this.windowLabels[i]) this.pageLabels.set(this.windowFirst + i, this.windowLabels[i]!);
    this.windowLabels = next;
    this.windowFirst = firstPfn;
  }

  /** The owner of `pa`, or undefined when no label covers it. */
  owner(pa: number): OwnerLabel | undefined {
    const pfn = Math.floor(pa / PAGE_SIZE);
    const w = pfn - this.windowFirst;
    const pl = (w >= 0 && w < this.windowLabels.length ? this.windowLabels[w] : this.pageLabels.get(pfn)) ?? 0;
    if (pl) {
      const id = (pl - 1) % REGION_IDS;
      return { region: this.regionNames[id]!, offset: (pl - 1 - id) / REGION_IDS + (pa % PAGE_SIZE) };
    }
    const ls = this.labels;
    let lo = 0;
    let hi = ls.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const l = ls[mid]!;
      if (pa < l.base) hi = mid - 1;
      else if (pa >= l.base + l.size) lo = mid + 1;
      else return { region: l.region, offset: l.regionOffset + (pa - l.base) };
    }
    return undefined;
  }
}

/** Hash a pfn (an integer below 2^53) to 32 bits. */
function hashPfn(pfn: number): number {
  const h = Math.imul((pfn | 0) ^ Math.imul((pfn / TWO_POW_32) | 0, 0x85ebca6b), 0x9e3779b1);
  return h ^ (h >>> 16);
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function checkAligned(pa: number, n: number): void {
  if (pa % n !== 0) throw new RangeError(`unaligned ${n}-byte access at 0x${pa.toString(16)}`);
}

export const MEMORY_PAGE_SIZE = PAGE_SIZE;
