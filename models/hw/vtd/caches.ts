/**
 * The translation caches (vtd-model §B.1): context-cache, PASID-cache, IOTLB, and the paging-
 * structure caches (first-stage/combined and second-stage). Each is bounded, counts hits and misses,
 * and keeps its payload in typed arrays indexed by a KeyedTable entry id. Payload arrays have one
 * extra "scratch" slot at index `capacity`, used when an entry must not (or cannot) be cached.
 *
 * Caches are honestly stale: they hold what was fetched, and only the invalidation methods drop it.
 */
import { KeyedTable } from './keyed-table.ts';

abstract class CacheBase {
  readonly table: KeyedTable;
  hits = 0;
  misses = 0;
  constructor(readonly capacity: number) {
    this.table = new KeyedTable(capacity);
  }
  get size(): number {
    return this.table.count;
  }
  get scratch(): number {
    return this.capacity;
  }
  invalidateAll(): void {
    this.table.clear();
  }
  /** Remove every live entry for which `match(id)` holds. */
  protected removeWhere(match: (id: number) => boolean): number {
    let n = 0;
    const t = this.table;
    // ids are handed out lowest first: stop once every live entry has been seen
    const live = t.count;
    for (let id = 0, seen = 0; id < this.capacity && seen < live; id++) {
      if (t.live[id] !== 1) continue;
      seen++;
      if (match(id)) {
        t.remove(id);
        n++;
      }
    }
    return n;
  }
}

/** Context-cache: tag = source id. In scalable mode the entry holds no DID (§A.2). */
export class ContextCache extends CacheBase {
  /** 0, or the fault reason the fetch produced (negative entries are cached only with CM = 1). */
  readonly status: Int32Array;
  readonly sid: Int32Array;
  /** bit 0 FPD, bit 1 PASIDE, bit 2 PRE, bit 3 DTE. */
  readonly flags: Uint8Array;
  readonly pdts: Uint8Array;
  readonly dirPfn: Float64Array;
  readonly ridPasid: Int32Array;

  constructor(capacity: number) {
    super(capacity);
    const n = capacity + 1;
    this.status = new Int32Array(n);
    this.sid = new Int32Array(n);
    this.flags = new Uint8Array(n);
    this.pdts = new Uint8Array(n);
    this.dirPfn = new Float64Array(n);
    this.ridPasid = new Int32Array(n);
  }

  lookup(sid: number): number {
    const id = this.table.find(sid, 0, 0, 0);
    if (id >= 0) this.hits++;
    else this.misses++;
    return id;
  }

  /** Slot to fill for `sid`: a cache entry, or the scratch slot when `cache` is false or disabled. */
  slotFor(sid: number, cache: boolean): number {
    const id = cache ? this.table.insert(sid, 0, 0, 0) : -1;
    return id >= 0 ? id : this.capacity;
  }

  /** Context-cache invalidation, global granularity (CC descriptor G = 1). */
  invalidateGlobal(): void {
    this.invalidateAll();
  }

  /**
   * Domain-selective (G = 2). In scalable mode context entries carry no DID, so, as QEMU does
   * (vtd_process_context_cache_desc falls through to global), this invalidates everything.
   */
  invalidateDomain(_did: number): void {
    this.invalidateAll();
  }

  /**
   * Device-selective (G = 3) with function mask FM: FM = 1 masks SID bit 2, 2 masks bits 2:1,
   * 3 masks bits 2:0 (the function number), as in qemu vtd_context_device_invalidate.
   */
  invalidateDevice(sid: number, fm: number): number {
    const masked = fm === 0 ? 0 : ((1 << fm) - 1) << (3 - fm);
    const want = sid & ~masked & 0xffff;
    return this.removeWhere((id) => (this.sid[id]! & ~masked & 0xffff) === want);
  }
}

/** PASID-cache: tag = DID + PASID (+ SID); looked up by (SID, PASID). */
export class PasidCache extends CacheBase {
  readonly status: Int32Array;
  readonly sid: Int32Array;
  readonly pasid: Int32Array;
  readonly did: Int32Array;
  readonly pgtt: Uint8Array;
  /** PASID_FLAG_* bits. */
  readonly flags: Int32Array;
  readonly ssLevels: Uint8Array;
  readonly fsLevels: Uint8Array;
  readonly ssRootPfn: Float64Array;
  /** First-stage root as address halves (a GPA of up to 57 bits when nested). */
  readonly fsRootHi: Int32Array;
  readonly fsRootLo: Int32Array;

  constructor(capacity: number) {
    super(capacity);
    const n = capacity + 1;
    this.status = new Int32Array(n);
    this.sid = new Int32Array(n);
    this.pasid = new Int32Array(n);
    this.did = new Int32Array(n);
    this.pgtt = new Uint8Array(n);
    this.flags = new Int32Array(n);
    this.ssLevels = new Uint8Array(n);
    this.fsLevels = new Uint8Array(n);
    this.ssRootPfn = new Float64Array(n);
    this.fsRootHi = new Int32Array(n);
    this.fsRootLo = new Int32Array(n);
  }

  lookup(sid: number, pasid: number): number {
    const id = this.table.find(sid, pasid, 0, 0);
    if (id >= 0) this.hits++;
    else this.misses++;
    return id;
  }

  slotFor(sid: number, pasid: number, cache: boolean): number {
    const id = cache ? this.table.insert(sid, pasid, 0, 0) : -1;
    return id >= 0 ? id : this.capacity;
  }

  /*
   * Negative entries (cached only with CM = 1) have no DID (`did` = -1): a not-present PASID entry
   * names no domain. They are dropped by any PASID-cache invalidation that covers their PASID, so
   * the CM = 1 rule "invalidate after not-present → present" works whatever DID software names.
   */

  /** PC descriptor G = 0: all PASIDs of a domain. */
  invalidateDomain(did: number): number {
    return this.removeWhere((id) => this.did[id] === did || this.did[id] === -1);
  }
  /** PC descriptor G = 1: one PASID within a domain. */
  invalidatePasid(did: number, pasid: number): number {
    return this.removeWhere((id) => (this.did[id] === did || this.did[id] === -1) && this.pasid[id] === pasid);
  }
  /** PC descriptor G = 3: global. */
  invalidateGlobal(): void {
    this.invalidateAll();
  }
}

export const PASID_FLAG = Object.freeze({
  FPD: 1,
  SRE: 2,
  WPE: 4,
  EAFE: 8,
  SSADE: 16,
  ERE: 32,
  SLEE: 64,
  PGSNP: 128,
  PWSNP: 256,
});

/** IOTLB entry kinds. */
export const TLB_KIND = Object.freeze({ FS: 1, SS: 2, NESTED: 3 });
/** The PASID tag of second-stage-only entries, which are not PASID-tagged (§B.1). */
export const UNTAGGED = 0x100000;

/** Permission bits an IOTLB entry keeps, so a hit re-checks the request without a walk. */
export const TLB_PERM = Object.freeze({
  R: 1,
  FS_RW: 2,
  X: 4,
  US: 8,
  SS_W: 16,
  /** The leaf's D bit(s) are set: a write may hit without a walk. */
  DIRTY: 32,
});

/** IOTLB: tag = DID + PASID (first-stage and nested) or DID alone (second-stage only) + page + size. */
export class Iotlb extends CacheBase {
  readonly did: Int32Array;
  readonly pasidTag: Int32Array;
  readonly kind: Uint8Array;
  readonly perm: Uint8Array;
  readonly shift: Uint8Array;
  /** Input page number (4 KiB units) of the entry's first page, and its size in 4 KiB pages. */
  readonly vpn: Float64Array;
  readonly pages: Float64Array;
  /** Output 4 KiB frame of the entry's first page. */
  readonly outPfn: Float64Array;
  /** Which leaf levels (bit 1: 4 KiB, 2: 2 MiB, 3: 1 GiB) have been cached since the last clear. */
  levelsSeen = 0;

  constructor(capacity: number) {
    super(capacity);
    const n = capacity + 1;
    this.did = new Int32Array(n);
    this.pasidTag = new Int32Array(n);
    this.kind = new Uint8Array(n);
    this.perm = new Uint8Array(n);
    this.shift = new Uint8Array(n);
    this.vpn = new Float64Array(n);
    this.pages = new Float64Array(n);
    this.outPfn = new Float64Array(n);
  }

  /** Probe 4 KiB, then 2 MiB, then 1 GiB entries (as qemu vtd_lookup_iotlb does). */
  lookup(did: number, pasidTag: number, hi: number, lo: number): number {
    const seen = this.levelsSeen;
    if (this.table.count !== 0) {
      if ((seen & 2) !== 0) {
        const id = this.table.find((lo >>> 12) | (hi << 20), (hi >>> 12) | (1 << 16), pasidTag, did);
        if (id >= 0) return this.hit(id);
      }
      if ((seen & 4) !== 0) {
        const id = this.table.find((lo >>> 21) | (hi << 11), (hi >>> 21) | (2 << 16), pasidTag, did);
        if (id >= 0) return this.hit(id);
      }
      if ((seen & 8) !== 0) {
        const id = this.table.find((lo >>> 30) | (hi << 2), (hi >>> 30) | (3 << 16), pasidTag, did);
        if (id >= 0) return this.hit(id);
      }
    }
    this.misses++;
    return -1;
  }

  private hit(id: number): number {
    this.hits++;
    return id;
  }

  /** Cache a translation of page size 2^shift covering input (hi, lo). Returns the id or -1. */
  fill(did: number, pasidTag: number, hi: number, lo: number, shift: number, kind: number, perm: number, outPfn: number): number {
    if (this.capacity === 0) return -1;
    const level = (shift - 3) / 9; // 12 → 1, 21 → 2, 30 → 3
    const sh = shift - 12;
    const k0 = sh === 0 ? (lo >>> 12) | (hi << 20) : sh === 9 ? (lo >>> 21) | (hi << 11) : (lo >>> 30) | (hi << 2);
    const k1 = (hi >>> shift) | (level << 16);
    const id = this.table.insert(k0, k1, pasidTag, did);
    const pages = 2 ** sh;
    this.did[id] = did;
    this.pasidTag[id] = pasidTag;
    this.kind[id] = kind;
    this.perm[id] = perm;
    this.shift[id] = shift;
    const vpn4k = (hi >>> 0) * 1048576 + (lo >>> 12);
    this.vpn[id] = vpn4k - (vpn4k % pages);
    this.pages[id] = pages;
    this.outPfn[id] = outPfn - (outPfn % pages);
    this.levelsSeen |= 1 << level;
    return id;
  }

  override invalidateAll(): void {
    super.invalidateAll();
    this.levelsSeen = 0;
  }

  // ---- IOTLB invalidate descriptor (type 2): second-stage-only and nested entries ------------

  /** G = 1: global. Drops every entry, first-stage ones included. */
  invalidateGlobal(): void {
    this.invalidateAll();
  }

  /**
   * G = 2: domain-selective. Drops the domain's second-stage-only and nested entries; first-stage-
   * only entries are invalidated by P_IOTLB. [R: spec 6.5.2.4 as summarised in vtd-model §B.1/B.2;
   * Linux flushes SS and nested PASIDs with this descriptor.]
   */
  invalidateDomain(did: number): number {
    return this.removeWhere((id) => this.did[id] === did && this.kind[id] !== TLB_KIND.FS);
  }

  /** G = 3: page-selective within a domain: 2^am pages from `addr`. IH only affects the PWCs. */
  invalidatePages(did: number, addr: number, am: number): number {
    const [start, end] = pageRange(addr, am);
    return this.removeWhere(
      (id) => this.did[id] === did && this.kind[id] !== TLB_KIND.FS && overlaps(this.vpn[id]!, this.pages[id]!, start, end),
    );
  }

  // ---- PASID-based IOTLB invalidate (type 6): first-stage and nested entries -----------------

  /** G = 2: all of a PASID within a domain. Second-stage-only entries are untagged and survive. */
  invalidatePasid(did: number, pasid: number): number {
    return this.removeWhere((id) => this.did[id] === did && this.pasidTag[id] === pasid);
  }

  /** G = 3: page-selective within a PASID. */
  invalidatePasidPages(did: number, pasid: number, addr: number, am: number): number {
    const [start, end] = pageRange(addr, am);
    return this.removeWhere(
      (id) => this.did[id] === did && this.pasidTag[id] === pasid && overlaps(this.vpn[id]!, this.pages[id]!, start, end),
    );
  }
}

/**
 * First-stage paging-structure cache, also holding nested "combined" entries: a non-leaf first-stage
 * entry at `level` for (DID, PASID, input prefix) → the host-physical frame of the next table
 * (already translated through the second stage when nested) and the permissions accumulated so far.
 */
export class FsPwc extends CacheBase {
  readonly did: Int32Array;
  readonly pasid: Int32Array;
  readonly nested: Uint8Array;
  readonly nextPfn: Float64Array;
  /** Second-stage permission of the next table's page (nested A/D write-backs need W). */
  readonly nextSsPerm: Uint8Array;
  /** bit 0 R/W, bit 1 U/S, bit 2 XD accumulated down to this level. */
  readonly acc: Uint8Array;

  constructor(capacity: number) {
    super(capacity);
    const n = capacity + 1;
    this.did = new Int32Array(n);
    this.pasid = new Int32Array(n);
    this.nested = new Uint8Array(n);
    this.nextPfn = new Float64Array(n);
    this.nextSsPerm = new Uint8Array(n);
    this.acc = new Uint8Array(n);
  }

  find(did: number, pasid: number, level: number, hi: number, lo: number): number {
    const id = this.table.find(prefixLo(hi, lo, level), prefixHi(hi, level), pasid, did);
    if (id >= 0) this.hits++;
    else this.misses++;
    return id;
  }

  fill(did: number, pasid: number, level: number, hi: number, lo: number, nested: boolean, nextPfn: number, ssPerm: number, acc: number): void {
    const id = this.table.insert(prefixLo(hi, lo, level), prefixHi(hi, level), pasid, did);
    if (id < 0) return;
    this.did[id] = did;
    this.pasid[id] = pasid;
    this.nested[id] = nested ? 1 : 0;
    this.nextPfn[id] = nextPfn;
    this.nextSsPerm[id] = ssPerm;
    this.acc[id] = acc;
  }

  /** IOTLB DSI/PSI (type 2) with IH = 0: nested entries of the domain (over-invalidation is allowed). */
  invalidateDomainNested(did: number): number {
    return this.removeWhere((id) => this.did[id] === did && this.nested[id] === 1);
  }
  /** P_IOTLB with IH = 0: all entries of (DID, PASID). */
  invalidatePasid(did: number, pasid: number): number {
    return this.removeWhere((id) => this.did[id] === did && this.pasid[id] === pasid);
  }
}

/** Second-stage paging-structure cache: (DID, level, GPA prefix) → next table frame, accumulated R/W/X. */
export class SsPwc extends CacheBase {
  readonly did: Int32Array;
  readonly nextPfn: Float64Array;
  readonly acc: Uint8Array;

  constructor(capacity: number) {
    super(capacity);
    const n = capacity + 1;
    this.did = new Int32Array(n);
    this.nextPfn = new Float64Array(n);
    this.acc = new Uint8Array(n);
  }

  find(did: number, level: number, hi: number, lo: number): number {
    const id = this.table.find(prefixLo(hi, lo, level), prefixHi(hi, level), UNTAGGED, did);
    if (id >= 0) this.hits++;
    else this.misses++;
    return id;
  }

  fill(did: number, level: number, hi: number, lo: number, nextPfn: number, acc: number): void {
    const id = this.table.insert(prefixLo(hi, lo, level), prefixHi(hi, level), UNTAGGED, did);
    if (id < 0) return;
    this.did[id] = did;
    this.nextPfn[id] = nextPfn;
    this.acc[id] = acc;
  }

  /** IOTLB DSI/PSI (type 2) with IH = 0 drops the domain's second-stage PWC entries. */
  invalidateDomain(did: number): number {
    return this.removeWhere((id) => this.did[id] === did);
  }
}

/** Input bits from the level-`level` index upward: address >> (12 + 9·(level−1)), low 32 bits. */
function prefixLo(hi: number, lo: number, level: number): number {
  const s = 12 + 9 * (level - 1); // 21, 30, 39, 48 for levels 2..5
  return s < 32 ? (lo >>> s) | (hi << (32 - s)) : hi >>> (s - 32);
}
/** The prefix's bits above 32, tagged with the level. */
function prefixHi(hi: number, level: number): number {
  const s = 12 + 9 * (level - 1);
  return (s < 32 ? hi >>> s : 0) | (level << 24);
}

function pageRange(addr: number, am: number): [number, number] {
  const pages = 2 ** am;
  const first = Math.floor(addr / 4096);
  const start = first - (first % pages);
  return [start, start + pages];
}

function overlaps(vpn: number, pages: number, start: number, end: number): boolean {
  return vpn < end && start < vpn + pages;
}
