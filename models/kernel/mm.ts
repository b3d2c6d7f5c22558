import { ENOMEM, ERR_PTR, type ErrPtr, EINVAL } from './errno.ts';
import { PAGE_SIZE, type PageAllocator } from './page_alloc.ts';

/** A userspace virtual address. Branded so that a kernel pointer or an IOVA cannot pass for one. */
export type UserPtr = number & { readonly __brand: 'UserPtr' };

export function uptr(va: number): UserPtr {
  return va as UserPtr;
}

export interface Vma {
  readonly start: number;
  readonly end: number;
  /** owner label given to the frames (e.g. "qemu:guest-ram") */
  readonly owner: string;
  /** pfn of each page, populated at mmap time (MAP_POPULATE) */
  readonly pfns: Float64Array;
}

/** MAP_HUGETLB's default huge page size on x86_64 */
const HUGE_SIZE = 2 << 20;

/** Lowest address handed out by mmap; mappings grow upward from here. */
const MMAP_BASE = 0x7f00_0000_0000;

/**
 * A process's address space: mappings backed by physical frames, so that what the VMM writes at a
 * user address is the same memory a device DMA reaches through an IOMMU mapping of that page.
 */
export class Mm {
  readonly vmas: Vma[] = [];
  private next = MMAP_BASE;
  /** the counterpart of mm->pinned_vm, for accounting pin_user_pages */
  pinnedPages = 0;

  constructor(
    readonly name: string,
    private readonly pages: PageAllocator,
  ) {}

  /**
   * mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_ANONYMOUS|MAP_POPULATE): every page backed now. With
   * `huge` (MAP_HUGETLB, 2 MiB), the backing comes in physically contiguous, aligned 2 MiB runs,
   * as hugepage-backed guest RAM does, so the IOMMU can map it with large pages.
   */
  mmap(len: number, owner: string, opts: { huge?: boolean } = {}): UserPtr | ErrPtr {
    if (!(len > 0) || !Number.isInteger(len)) return ERR_PTR(-EINVAL);
    const huge = opts.huge === true;
    if (huge && len % HUGE_SIZE !== 0) return ERR_PTR(-EINVAL);
    const n = Math.ceil(len / PAGE_SIZE);
    const pfns = new Float64Array(n);
    const step = huge ? HUGE_SIZE / PAGE_SIZE : 1;
    for (let i = 0; i < n; i += step) {
      const pfn = huge ? this.pages.allocContiguous(owner, step, step, i) : this.pages.allocPage(owner, i);
      if (pfn < 0) {
        for (let j = 0; j < i; j++) this.pages.freePage(pfns[j]!);
        return ERR_PTR(-ENOMEM);
      }
      for (let j = 0; j < step; j++) pfns[i + j] = pfn + j;
    }
    // huge mappings start on a huge-page boundary, so VA and PA are aligned alike
    const align = huge ? HUGE_SIZE : PAGE_SIZE;
    const start = Math.ceil(this.next / align) * align;
    this.next = start + (n + 1) * PAGE_SIZE; // a guard page between mappings
    this.vmas.push({ start, end: start + n * PAGE_SIZE, owner, pfns });
    return uptr(start);
  }

  /** munmap of a whole mapping; returns 0 or −EINVAL. */
  munmap(addr: UserPtr): number {
    const i = this.vmas.findIndex((v) => v.start === addr);
    if (i < 0) return -EINVAL;
    const v = this.vmas[i]!;
    for (const pfn of v.pfns) this.pages.freePage(pfn);
    this.vmas.splice(i, 1);
    return 0;
  }

  findVma(va: number): Vma | undefined {
    for (const v of this.vmas) if (va >= v.start && va < v.end) return v;
    return undefined;
  }

  /** Physical address of a user address, or −1 when unmapped. */
  translate(va: number): number {
    const v = this.findVma(va);
    if (!v) return -1;
    const off = va - v.start;
    return v.pfns[Math.floor(off / PAGE_SIZE)]! * PAGE_SIZE + (off & (PAGE_SIZE - 1));
  }

  /** pfn of the page holding `va`, or −1. */
  pfnOf(va: number): number {
    const v = this.findVma(va);
    return v ? v.pfns[Math.floor((va - v.start) / PAGE_SIZE)]! : -1;
  }

  /**
   * Moves `len` bytes between user memory at `va` and `buf`, page by page, stopping at the first
   * unmapped page. Returns the number of bytes NOT moved, as raw_copy_{from,to}_user does.
   */
  access(va: number, buf: Uint8Array, off: number, len: number, write: boolean): number {
    let done = 0;
    while (done < len) {
      const a = va + done;
      const pa = this.translate(a);
      if (pa < 0) return len - done;
      const chunk = Math.min(len - done, PAGE_SIZE - (a & (PAGE_SIZE - 1)));
      if (write) this.pages.mem.write(pa, buf, off + done, chunk);
      else this.pages.mem.read(pa, buf, off + done, chunk);
      done += chunk;
    }
    return 0;
  }

  /** Frees every mapping: exit_mmap. */
  teardown(): void {
    while (this.vmas.length) this.munmap(uptr(this.vmas[0]!.start));
  }
}

