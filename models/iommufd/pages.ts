import { kfn, type KFn } from '../../sim/index.ts';
import { EFAULT, EINVAL, ENOMEM, EOVERFLOW, ERR_PTR, type ErrPtr } from '../kernel/errno.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { PinnedPages, pin_user_pages_fast } from '../kernel/gup.ts';
import { Mutex, mutex_lock, mutex_unlock } from '../kernel/locks.ts';
import type { Mm } from '../kernel/mm.ts';
import { kfree, kzalloc, type KAlloc } from '../kernel/slab.ts';
import type { IommuDomain } from '../iommu/types.ts';
import type { IoptArea } from './io_pagetable.ts';
import type { IoptPagesAccount } from './iommufd_private.ts';

/**
 * iopt_pages (drivers/iommu/iommufd/pages.c @ v6.15): a linear array of user pages that one or more
 * areas map. A page is pinned exactly once while any area that uses it is stored in a domain
 * (pages->domains_itree), however many domains and areas map it; the first domain filled is the
 * area's storage_domain, and later fills read the PFNs back instead of pinning again. The last
 * unfill unpins. IOAS_COPY shares the iopt_pages, so it shares the pins; two IOAS_MAP calls of
 * the same memory make two iopt_pages and pin twice.
 *
 * Modelled: pin, account (pinned_vm) and unpin per page; the batch and page-list allocations as
 * fail-nth sites; iommu_map of each physically contiguous run. Not modelled: in-kernel accesses
 * (access_itree and the pinned_pfns xarray), the RLIMIT_MEMLOCK limit, file-backed pages.
 */
const fn = (name: string, sig: string): KFn =>
  kfn({ name, layer: 'iommufd', sig, prov: { kind: 'merged', source: 'drivers/iommu/iommufd/pages.c @ v6.15' } });

const FN = {
  alloc_user_pages: fn('iopt_alloc_user_pages', 'struct iopt_pages *iopt_alloc_user_pages(void __user *uptr, unsigned long length, bool writable)'),
  alloc_pages: fn('iopt_alloc_pages', 'static struct iopt_pages *iopt_alloc_pages(unsigned long start_byte, unsigned long length, bool writable)'),
  release_pages: fn('iopt_release_pages', 'void iopt_release_pages(struct kref *kref)'),
  reader_first: fn('pfn_reader_first', 'static int pfn_reader_first(struct pfn_reader *pfns, struct iopt_pages *pages, unsigned long start_index, unsigned long last_index)'),
  user_pin: fn('pfn_reader_user_pin', 'static int pfn_reader_user_pin(struct pfn_reader_user *user, struct iopt_pages *pages, unsigned long start_index, unsigned long last_index)'),
  reader_destroy: fn('pfn_reader_destroy', 'static void pfn_reader_destroy(struct pfn_reader *pfns)'),
  update_pinned: fn('do_update_pinned', 'static int do_update_pinned(struct iopt_pages *pages, unsigned long npages, bool inc, struct pfn_reader_user *user)'),
  batch_to_domain: fn('batch_to_domain', 'static int batch_to_domain(struct pfn_batch *batch, struct iommu_domain *domain, struct iopt_area *area, unsigned long start_index)'),
  unmap_nofail: fn('iommu_unmap_nofail', 'static void iommu_unmap_nofail(struct iommu_domain *domain, unsigned long iova, size_t size)'),
  unfill_domain: fn('iopt_area_unfill_domain', 'void iopt_area_unfill_domain(struct iopt_area *area, struct iopt_pages *pages, struct iommu_domain *domain)'),
  unmap_domain: fn('iopt_area_unmap_domain', 'void iopt_area_unmap_domain(struct iopt_area *area, struct iommu_domain *domain)'),
  fill_domain: fn('iopt_area_fill_domain', 'int iopt_area_fill_domain(struct iopt_area *area, struct iommu_domain *domain)'),
  fill_domains: fn('iopt_area_fill_domains', 'int iopt_area_fill_domains(struct iopt_area *area, struct iopt_pages *pages)'),
  unfill_domains: fn('iopt_area_unfill_domains', 'void iopt_area_unfill_domains(struct iopt_area *area, struct iopt_pages *pages)'),
};

export const PAGE_SIZE = 4096;
export const ULONG_MAX = (1n << 64n) - 1n;
/** SIZE_MAX − PAGE_SIZE: the largest length iopt_alloc_pages accepts */
const MAX_LENGTH = ULONG_MAX - BigInt(PAGE_SIZE);

/** struct iopt_pages (IOPT_ADDRESS_USER) */
export interface IoptPages {
  readonly k: Kernel;
  readonly alloc: KAlloc;
  kref: number;
  readonly mutex: Mutex;
  readonly source_mm: Mm;
  /** page-aligned start of the user range */
  readonly uptr: number;
  readonly npages: number;
  npinned: number;
  last_npinned: number;
  readonly writable: boolean;
  account_mode: IoptPagesAccount;
  /** the pages pinned now, by index: the pin is the struct page reference pin_user_pages took */
  readonly pinned: PinnedPages;
  /** areas whose storage_domain holds their slice (their pages_node is in domains_itree) */
  readonly domains_itree: Set<IoptArea>;
}

/** iopt_alloc_user_pages: an iopt_pages for [uptr, uptr + length) of current's mm; nothing pinned yet. */
export function iopt_alloc_user_pages(k: Kernel, uptr: bigint, length: bigint, writable: boolean): IoptPages | ErrPtr {
  return k.sim.call(FN.alloc_user_pages, () => {
    if (uptr + length > ULONG_MAX) return ERR_PTR(-EOVERFLOW);
    const uptr_down = uptr - (uptr % BigInt(PAGE_SIZE));
    return iopt_alloc_pages(k, uptr_down, Number(uptr - uptr_down), length, writable);
  });
}

function iopt_alloc_pages(k: Kernel, uptr_down: bigint, start_byte: number, length: bigint, writable: boolean): IoptPages | ErrPtr {
  return k.sim.call(FN.alloc_pages, () => {
    // size_t lengths, and DIV_ROUND_UP must not overflow
    if (length > MAX_LENGTH || length === 0n) return ERR_PTR(-EINVAL);
    const alloc = kzalloc(k, 'struct iopt_pages');
    if (!alloc) return ERR_PTR(-ENOMEM);
    const npages = Number((length + BigInt(start_byte) + BigInt(PAGE_SIZE - 1)) / BigInt(PAGE_SIZE));
    const pages: IoptPages = {
      k,
      alloc,
      kref: 1,
      mutex: new Mutex(k, 'pages->mutex'),
      source_mm: k.cur().mm,
      uptr: Number(uptr_down),
      npages,
      npinned: 0,
      last_npinned: 0,
      writable,
      // capable(CAP_IPC_LOCK) would give NONE: the modelled VMM is unprivileged
      account_mode: 'USER',
      pinned: new PinnedPages(k, Number(uptr_down), npages, `iopt_pages ${k.cur().mm.name}`),
      domains_itree: new Set(),
    };
    return pages;
  });
}

export function iopt_get_pages_ref(pages: IoptPages): void {
  pages.kref++;
}

/** iopt_put_pages: kref_put(&pages->kref, iopt_release_pages) */
export function iopt_put_pages(pages: IoptPages): void {
  if (pages.kref <= 0) pages.k.sim.oops('iopt_put_pages: kref underflow');
  if (--pages.kref > 0) return;
  pages.k.sim.call(FN.release_pages, () => {
    if (pages.domains_itree.size || pages.npinned || pages.pinned.count) {
      pages.k.sim.oops(`iopt_release_pages: released with ${pages.npinned} pages pinned`);
    }
    kfree(pages.k, pages.alloc);
  });
}

// ---- area geometry (io_pagetable.h) ---------------------------------------------------------

export const iopt_area_index = (area: IoptArea): number => area.pages_node.start;
export const iopt_area_last_index = (area: IoptArea): number => area.pages_node.last;
export const iopt_area_iova = (area: IoptArea): bigint => area.node.start;
export const iopt_area_last_iova = (area: IoptArea): bigint => area.node.last;
export const iopt_area_length = (area: IoptArea): bigint => area.node.last - area.node.start + 1n;

/** the byte offset in the area's iopt_pages of `iova` */
export function iopt_area_start_byte(area: IoptArea, iova: bigint): number {
  return Number(iova - iopt_area_iova(area)) + area.page_offset + iopt_area_index(area) * PAGE_SIZE;
}

function iopt_area_index_to_iova(area: IoptArea, index: number): bigint {
  const i = index - iopt_area_index(area);
  if (i === 0) return iopt_area_iova(area);
  return iopt_area_iova(area) - BigInt(area.page_offset) + BigInt(i * PAGE_SIZE);
}

function iopt_area_index_to_iova_last(area: IoptArea, index: number): bigint {
  if (index === iopt_area_last_index(area)) return iopt_area_last_iova(area);
  return iopt_area_iova(area) - BigInt(area.page_offset) + BigInt((index - iopt_area_index(area) + 1) * PAGE_SIZE) - 1n;
}

// ---- pinning ----------------------------------------------------------------------------------

/**
 * struct pfn_reader, reduced: the PFNs of [start_index, last_index], read from a domain that
 * already stores them (another area on these pages) or pinned from the source mm.
 */
interface PfnReader {
  readonly pages: IoptPages;
  readonly start_index: number;
  /** the PFN of each index from start_index */
  readonly pfns: Int32Array;
  /** runs this reader pinned, as (first index, count) pairs: released unless a domain stores them */
  pinned_here: number[];
  batch: KAlloc | null;
  upages: KAlloc | null;
  /** how many struct page pointers upages holds (upages_len / sizeof(struct page *)) */
  upages_cap: number;
}

/** temp_kmalloc's ceiling (TEMP_MEMORY_LIMIT): at most 8192 struct page pointers per pin call */
const TEMP_MEMORY_LIMIT = 65536;

/** Is `index` held by an area stored in a domain (in domains_itree)? Then its pin stays. */
function stored_in_domain(pages: IoptPages, index: number): boolean {
  for (const a of pages.domains_itree) {
    if (index >= iopt_area_index(a) && index <= iopt_area_last_index(a)) return true;
  }
  return false;
}

function unpin_page(pages: IoptPages, index: number): void {
  if (!pages.pinned.unpin(index)) pages.k.sim.oops(`unpin_user_page: index ${index} is not pinned`);
  pages.npinned--;
}

/** pfn_reader_first: reads every PFN of the range; on failure nothing stays pinned. */
function pfn_reader_first(pages: IoptPages, start_index: number, last_index: number): PfnReader | number {
  const k = pages.k;
  return k.sim.call(FN.reader_first, () => {
    const pfns: PfnReader = { pages, start_index, pfns: new Int32Array(last_index - start_index + 1), pinned_here: [], batch: null, upages: null, upages_cap: 0 };
    // batch_init: temp_kmalloc of the pfn batch (iommufd_should_fail + kmalloc)
    pfns.batch = kzalloc(k, 'pfn_batch');
    if (!pfns.batch) return -ENOMEM;
    let index = start_index;
    while (index <= last_index) {
      const held = pages.pinned.pfnAt(index);
      if (held >= 0) {
        // batch_from_domain: the storage domain holds it (iommu_iova_to_phys there)
        pfns.pfns[index - start_index] = held;
        index++;
        continue;
      }
      // a hole: the indices up to the next held one are pinned from the source mm
      let hole_last = index;
      while (hole_last < last_index && pages.pinned.pfnAt(hole_last + 1) < 0) hole_last++;
      const rc = pfn_reader_user_pin(pfns, index, hole_last);
      if (rc < 0) {
        pfn_reader_destroy(pfns);
        return rc;
      }
      index += rc;
    }
    return pfns;
  });
}

/**
 * pfn_reader_user_pin: one pin_user_pages_fast (FOLL_LONGTERM) of as much of [start_index,
 * last_index] as upages holds. Returns how many pages it pinned, or an errno.
 */
function pfn_reader_user_pin(pfns: PfnReader, start_index: number, last_index: number): number {
  const pages = pfns.pages;
  const k = pages.k;
  return k.sim.call(FN.user_pin, () => {
    if (!pfns.upages) {
      // the struct page * array, allocated on the first pin (temp_kmalloc: at most 64 KiB)
      pfns.upages = kzalloc(k, 'pfn_reader_user upages');
      if (!pfns.upages) return -ENOMEM;
      pfns.upages_cap = Math.min(last_index - start_index + 1, TEMP_MEMORY_LIMIT / 8);
    }
    const npages = Math.min(last_index - start_index + 1, pfns.upages_cap);
    if (k.sim.injectHook('iommufd_should_fail(pfn_reader_user_pin)')) return -EFAULT;
    const rc = pin_user_pages_fast(k, pages.source_mm, pages.uptr + start_index * PAGE_SIZE, npages, pages.pinned, start_index);
    if (rc < 0) return rc;
    for (let i = 0; i < rc; i++) pfns.pfns[start_index + i - pfns.start_index] = pages.pinned.pfnAt(start_index + i);
    pages.npinned += rc;
    pfns.pinned_here.push(start_index, rc);
    return rc;
  });
}

/** do_update_pinned: accounts pin changes to the source mm's pinned_vm (and the user's locked_vm). */
function do_update_pinned(pages: IoptPages): void {
  pages.k.sim.call(FN.update_pinned, () => {
    // IOPT_PAGES_ACCOUNT_USER / _MM would check RLIMIT_MEMLOCK here; the model has no limit
    pages.source_mm.pinnedPages += pages.npinned - pages.last_npinned;
    pages.last_npinned = pages.npinned;
  });
}

/** pfn_reader_release_pins + pfn_reader_destroy: pins not handed to a domain are dropped. */
function pfn_reader_destroy(pfns: PfnReader): void {
  const pages = pfns.pages;
  pages.k.sim.call(FN.reader_destroy, () => {
    const runs = pfns.pinned_here;
    for (let r = 0; r < runs.length; r += 2) for (let i = 0; i < runs[r + 1]!; i++) unpin_page(pages, runs[r]! + i);
    pfns.pinned_here = [];
    kfree(pages.k, pfns.upages);
    kfree(pages.k, pfns.batch);
    if (pages.last_npinned !== pages.npinned) pages.k.sim.oops('pfn_reader_destroy: pins not accounted');
  });
}

/** pfn_reader_update_pinned: the pins the reader took now belong to whoever stores the PFNs. */
function pfn_reader_keep_pins(pfns: PfnReader): void {
  do_update_pinned(pfns.pages);
  pfns.pinned_here = [];
}

/** update_unpinned after unpinning */
function update_unpinned(pages: IoptPages): void {
  if (pages.npinned !== pages.last_npinned) do_update_pinned(pages);
}

// ---- domains ------------------------------------------------------------------------------------

function core(area: IoptArea) {
  if (!area.iopt) throw new Error('iopt_area: not inserted');
  return area.iopt.core;
}

function iommu_unmap_nofail(area: IoptArea, domain: IommuDomain, iova: bigint, size: bigint): void {
  const k = area.iopt!.k;
  k.sim.call(FN.unmap_nofail, () => {
    const ret = core(area).iommu_unmap(domain, Number(iova), Number(size));
    // a driver may not fail an unmap of what was mapped
    if (ret !== Number(size)) k.sim.oops(`iommu_unmap_nofail: ${ret} of ${size} bytes unmapped from ${domain.label}`);
  });
}

function iopt_area_unmap_domain_range(area: IoptArea, domain: IommuDomain, start_index: number, last_index: number): void {
  const start_iova = iopt_area_index_to_iova(area, start_index);
  iommu_unmap_nofail(area, domain, start_iova, iopt_area_index_to_iova_last(area, last_index) - start_iova + 1n);
}

/**
 * batch_to_domain: one iommu_map per physically contiguous run (per page with huge pages disabled,
 * batch_iommu_map_small). On failure what this call mapped is unmapped again.
 */
function batch_to_domain(pfns: PfnReader, domain: IommuDomain, area: IoptArea): number {
  const k = area.iopt!.k;
  return k.sim.call(FN.batch_to_domain, () => {
    const small = area.iopt!.disable_large_pages;
    const last_iova = iopt_area_last_iova(area);
    const start_iova = iopt_area_index_to_iova(area, pfns.start_index);
    let page_offset = pfns.start_index === iopt_area_index(area) ? area.page_offset : 0;
    let iova = start_iova;
    let next_iova = iova;
    let i = 0;
    while (i < pfns.pfns.length) {
      let n = 1;
      while (!small && i + n < pfns.pfns.length && pfns.pfns[i + n] === pfns.pfns[i]! + n) n++;
      next_iova = next_iova + BigInt(n * PAGE_SIZE - page_offset);
      if (next_iova > last_iova + 1n) next_iova = last_iova + 1n;
      const rc = core(area).iommu_map(domain, Number(iova), pfns.pfns[i]! * PAGE_SIZE + page_offset, Number(next_iova - iova), area.iommu_prot);
      if (rc) {
        if (iova !== start_iova) iommu_unmap_nofail(area, domain, start_iova, iova - start_iova);
        return rc;
      }
      iova = next_iova;
      page_offset = 0;
      i += n;
    }
    return 0;
  });
}

/**
 * __iopt_area_unfill_domain: unmaps [area start, last_index] from the domain, then unpins what no
 * stored area holds (a caller that means to unpin removed the area from domains_itree first). Unpin always follows unmap: no page is released while DMA can reach it.
 */
function __iopt_area_unfill_domain(area: IoptArea, pages: IoptPages, domain: IommuDomain, last_index: number): void {
  const start_index = iopt_area_index(area);
  iopt_area_unmap_domain_range(area, domain, start_index, last_index);
  for (let index = start_index; index <= last_index; index++) {
    if (!stored_in_domain(pages, index)) unpin_page(pages, index);
  }
  update_unpinned(pages);
}

/** iopt_area_unmap_domain: unmap only; another domain still holds the pins. */
export function iopt_area_unmap_domain(area: IoptArea, domain: IommuDomain): void {
  area.iopt!.k.sim.call(FN.unmap_domain, () => iommu_unmap_nofail(area, domain, iopt_area_iova(area), iopt_area_length(area)));
}

/** iopt_area_unfill_domain: unmap, and unpin unless the pages are stored elsewhere. */
export function iopt_area_unfill_domain(area: IoptArea, pages: IoptPages, domain: IommuDomain): void {
  area.iopt!.k.sim.call(FN.unfill_domain, () => __iopt_area_unfill_domain(area, pages, domain, iopt_area_last_index(area)));
}

/**
 * iopt_area_fill_domain: maps the area's PFNs into one more domain (iopt_table_add_domain).
 * Pages pin here only if no domain stores them yet. Caller holds pages->mutex.
 */
export function iopt_area_fill_domain(area: IoptArea, domain: IommuDomain): number {
  const pages = area.pages!;
  return pages.k.sim.call(FN.fill_domain, () => {
    const pfns = pfn_reader_first(pages, iopt_area_index(area), iopt_area_last_index(area));
    if (typeof pfns === 'number') return pfns;
    const rc = batch_to_domain(pfns, domain, area);
    if (!rc) pfn_reader_keep_pins(pfns);
    pfn_reader_destroy(pfns);
    return rc;
  });
}

/**
 * iopt_area_fill_domains: loads a new area into every domain of its io_pagetable, pinning once;
 * then the first domain becomes its storage_domain. On failure every domain is left unchanged
 * and nothing stays pinned. Nothing happens (and nothing is pinned) when there is no domain.
 */
export function iopt_area_fill_domains(area: IoptArea, pages: IoptPages): number {
  const iopt = area.iopt!;
  return iopt.k.sim.call(FN.fill_domains, () => {
    if (iopt.domains.length === 0) return 0;
    mutex_lock(pages.mutex);
    let rc = 0;
    const pfns = pfn_reader_first(pages, iopt_area_index(area), iopt_area_last_index(area));
    if (typeof pfns === 'number') {
      rc = pfns;
    } else {
      let done = 0;
      for (const domain of iopt.domains) {
        rc = batch_to_domain(pfns, domain, area);
        if (rc) break;
        done++;
      }
      if (rc) {
        // the failing domain unmapped its own part; unmap the full domains before it
        for (const domain of iopt.domains.slice(0, done)) iopt_area_unmap_domain(area, domain);
      } else {
        pfn_reader_keep_pins(pfns);
        area.storage_domain = iopt.domains[0]!;
        pages.domains_itree.add(area);
      }
      pfn_reader_destroy(pfns);
    }
    mutex_unlock(pages.mutex);
    return rc;
  });
}

/** iopt_area_unfill_domains: unmaps a dying area from every domain, unpinning through its storage. */
export function iopt_area_unfill_domains(area: IoptArea, pages: IoptPages): void {
  const iopt = area.iopt!;
  iopt.k.sim.call(FN.unfill_domains, () => {
    mutex_lock(pages.mutex);
    const storage = area.storage_domain;
    if (storage) {
      for (const domain of iopt.domains) {
        if (domain !== storage) iopt_area_unmap_domain_range(area, domain, iopt_area_index(area), iopt_area_last_index(area));
      }
      pages.domains_itree.delete(area);
      iopt_area_unfill_domain(area, pages, storage);
      area.storage_domain = null;
    }
    mutex_unlock(pages.mutex);
  });
}
