/**
 * A PCIe device's ATS translation cache (the "device-TLB", vtd-model §B.1): (PASID, 4 KiB page) →
 * host frame and permission, filled from ATS translation completions and used without asking the
 * IOMMU. Honestly stale: only invalidation requests (VT-d descriptor types 3 and 8) remove entries.
 *
 * [R] ATS semantics modelled: an invalidation without PASID (type 3) covers entries of requests
 * without PASID; one with PASID (type 8) covers that PASID, or every PASID with its G bit.
 * Entries are per 4 KiB page even when the IOMMU translated a larger page (allowed: a smaller ATC
 * entry is a subset of the translation).
 */
import { KeyedTable } from '../vtd/keyed-table.ts';

const TWO_POW_32 = 4294967296;
/** PASID tag of entries for requests without PASID. */
export const DEVTLB_UNTAGGED = 0x100000;
export const DEVTLB_PERM_R = 1;
export const DEVTLB_PERM_W = 2;

export class DeviceTlb {
  readonly table: KeyedTable;
  readonly pasidTag: Int32Array;
  readonly vpn: Float64Array;
  readonly outPfn: Float64Array;
  readonly perm: Uint8Array;
  hits = 0;
  misses = 0;
  /** Entries removed by invalidation requests. */
  invalidated = 0;

  constructor(readonly capacity: number) {
    this.table = new KeyedTable(capacity);
    this.pasidTag = new Int32Array(capacity);
    this.vpn = new Float64Array(capacity);
    this.outPfn = new Float64Array(capacity);
    this.perm = new Uint8Array(capacity);
  }

  get size(): number {
    return this.table.count;
  }

  lookup(tag: number, vpn: number): number {
    const id = this.table.find(vpn % TWO_POW_32 | 0, Math.floor(vpn / TWO_POW_32), tag, 0);
    if (id >= 0) this.hits++;
    else this.misses++;
    return id;
  }

  fill(tag: number, vpn: number, outPfn: number, perm: number): void {
    const id = this.table.insert(vpn % TWO_POW_32 | 0, Math.floor(vpn / TWO_POW_32), tag, 0);
    if (id < 0) return;
    this.pasidTag[id] = tag;
    this.vpn[id] = vpn;
    this.outPfn[id] = outPfn;
    this.perm[id] = perm;
  }

  /**
   * Remove entries of `tag` (every tag when `anyTag`) whose page lies in [startVpn, startVpn+pages).
   * Returns the number removed.
   */
  invalidate(tag: number, anyTag: boolean, startVpn: number, pages: number): number {
    const t = this.table;
    const end = startVpn + pages;
    let n = 0;
    for (let id = 0; id < this.capacity; id++) {
      if (t.live[id] !== 1) continue;
      if (!anyTag && this.pasidTag[id] !== tag) continue;
      const v = this.vpn[id]!;
      if (v < startVpn || v >= end) continue;
      t.remove(id);
      n++;
    }
    this.invalidated += n;
    return n;
  }

  clear(): void {
    this.table.clear();
  }
}
