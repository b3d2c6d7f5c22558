/**
 * One emulated Intel VT-d unit in scalable mode: registers, caches, walks and the translation entry
 * point. The host IOMMU is one instance over host memory; the guest-visible vIOMMU is another
 * (CM = 1) over guest memory. No module-level state: everything hangs off the instance.
 *
 * Translation order (qemu vtd_do_iommu_translate, vtd-model §C):
 *   context-cache → (miss: root entry + context entry) → RID_PASID substitution →
 *   PASID-cache → (miss: PASID directory entry + PASID entry) → pass-through short cut →
 *   IOTLB → (miss: walk by PGTT, then fill) → interrupt-window check.
 * The software interface sits on top: `mmio` (register accesses, observable by a VMM), `qi` (the
 * invalidation queue, which calls the invalidation methods below), `frcd` (fault recording), `prq`
 * (page requests), interrupts (`onInterrupt`), and the endpoints (PCIe devices) the queue reaches
 * for device-TLB invalidations and page group responses. `sim` binds the unit to an engine.
 */
import type { PhysicalMemory } from '../memory.ts';
import { DmaEffectsLog } from '../dma-effects.ts';
import { DEFAULT_CAPS, decodeCaps, domainCount, encodeCap, encodeEcap, type VtdCaps } from './caps.ts';
import { REG, GCMD, GSTS, RTADDR_SMT, RegisterFile } from './regs.ts';
import { ContextCache, FsPwc, Iotlb, PASID_FLAG, PasidCache, SsPwc, TLB_KIND, TLB_PERM, UNTAGGED } from './caches.ts';
import { FR, type FaultRecord } from './faults.ts';
import { Walker, ACCESS } from './walk.ts';
import { PGTT, contextEntryReservedSet, pasidEntryReservedSet } from './tables.ts';
import type { Sim } from '../../../sim/sim.ts';
import type { SimThread } from '../../../sim/scheduler.ts';
import { HwEvents, type InterruptHandler, type InterruptKind } from './events.ts';
import { InvalidationQueue, type AtsEndpoint } from './qi.ts';
import { FaultRecording } from './fault-recording.ts';
import { PageRequestQueue } from './prq.ts';
import { VtdMmio } from './mmio.ts';

/** `pasid` argument for a request without PASID (the context entry's RID_PASID is used). */
export const NO_PASID = -1;

const TWO_POW_32 = 4294967296;
const INTR_FIRST = 0xfee00000;
const INTR_LAST = 0xfeefffff;
const UNTAGGED_TAG = UNTAGGED;

// Hot-path constants as module-local bindings (an imported object's property is a getter under CJS transforms).
const ACCESS_EXEC = ACCESS.EXEC;
const ACCESS_READ = ACCESS.READ;
const ACCESS_SUPERVISOR = ACCESS.SUPERVISOR;
const ACCESS_WRITE = ACCESS.WRITE;
const FR_ADDR_BEYOND_MAX = FR.ADDR_BEYOND_MAX;
const FR_CONTEXT_ENTRY_P = FR.CONTEXT_ENTRY_P;
const FR_CONTEXT_ENTRY_RSVD = FR.CONTEXT_ENTRY_RSVD;
const FR_CONTEXT_PASIDE_CLEAR = FR.CONTEXT_PASIDE_CLEAR;
const FR_FS_PTPTR_INV = FR.FS_PTPTR_INV;
const FR_FS_US = FR.FS_US;
const FR_FS_XD = FR.FS_XD;
const FR_PASID_DIR_ENTRY_P = FR.PASID_DIR_ENTRY_P;
const FR_PASID_ENTRY_INV = FR.PASID_ENTRY_INV;
const FR_PASID_ENTRY_P = FR.PASID_ENTRY_P;
const FR_PASID_ERE_CLEAR = FR.PASID_ERE_CLEAR;
const FR_PASID_SRE_CLEAR = FR.PASID_SRE_CLEAR;
const FR_PASID_TOO_LARGE = FR.PASID_TOO_LARGE;
const FR_ROOT_ENTRY_P = FR.ROOT_ENTRY_P;
const FR_RTADDR_INV_TTM = FR.RTADDR_INV_TTM;
const FR_SM_INTERRUPT_ADDR = FR.SM_INTERRUPT_ADDR;
const FR_SM_READ = FR.SM_READ;
const FR_SM_WRITE = FR.SM_WRITE;
const FR_SS_PTPTR_INV = FR.SS_PTPTR_INV;
const PASID_FLAG_EAFE = PASID_FLAG.EAFE;
const PASID_FLAG_ERE = PASID_FLAG.ERE;
const PASID_FLAG_FPD = PASID_FLAG.FPD;
const PASID_FLAG_PGSNP = PASID_FLAG.PGSNP;
const PASID_FLAG_PWSNP = PASID_FLAG.PWSNP;
const PASID_FLAG_SLEE = PASID_FLAG.SLEE;
const PASID_FLAG_SRE = PASID_FLAG.SRE;
const PASID_FLAG_SSADE = PASID_FLAG.SSADE;
const PASID_FLAG_WPE = PASID_FLAG.WPE;
const PGTT_FS = PGTT.FS;
const PGTT_NESTED = PGTT.NESTED;
const PGTT_PT = PGTT.PT;
const PGTT_SS = PGTT.SS;
const TLB_KIND_FS = TLB_KIND.FS;
const TLB_KIND_NESTED = TLB_KIND.NESTED;
const TLB_KIND_SS = TLB_KIND.SS;
const TLB_PERM_DIRTY = TLB_PERM.DIRTY;
const TLB_PERM_FS_RW = TLB_PERM.FS_RW;
const TLB_PERM_R = TLB_PERM.R;
const TLB_PERM_SS_W = TLB_PERM.SS_W;
const TLB_PERM_US = TLB_PERM.US;
const TLB_PERM_X = TLB_PERM.X;

export interface CacheSizes {
  context: number;
  pasid: number;
  iotlb: number;
  /** First-stage / nested-combined paging-structure cache. */
  fsPwc: number;
  /** Second-stage paging-structure cache. */
  ssPwc: number;
}

/** [E] sizes: QEMU's IOTLB holds 1024 entries (VTD_IOTLB_MAX_SIZE); the rest are modelling defaults. */
export const DEFAULT_CACHE_SIZES: Readonly<CacheSizes> = Object.freeze({
  context: 256,
  pasid: 1024,
  iotlb: 1024,
  fsPwc: 256,
  ssPwc: 256,
});

export interface VtdOptions {
  /** A label for reports and digests ("host-dmar0", "viommu"). */
  name?: string;
  caps?: Partial<VtdCaps>;
  /** Host address width in bits (entry address bits at or above it are reserved). [E] default 46. */
  haw?: number;
  cacheSizes?: Partial<CacheSizes>;
}

/** The reusable result of a translation. Status 0 = success, otherwise the fault reason. */
export class TranslateResult {
  status = 0;
  /** Host-physical output address. */
  hpa = 0;
  /** log2 of the page size the translation came from (12, 21, 30). */
  pageShift = 12;
  /** Effective permission for this request: bit 0 read, 1 write, 2 execute. */
  perm = 0;
  did = 0;
  /** The PASID used (RID_PASID for a request without PASID), -1 before the context was read. */
  pasid = -1;
  pgtt = 0;
  /** Fault processing disabled by the context, PASID directory or PASID entry. */
  fpd = false;
  iotlbHit = false;
}

export type FaultHook = (r: TranslateResult, sid: number, pasid: number, hi: number, lo: number, access: number) => void;

export class Vtd {
  readonly name: string;
  readonly caps: Readonly<VtdCaps>;
  readonly regs = new RegisterFile();
  readonly contextCache: ContextCache;
  readonly pasidCache: PasidCache;
  readonly iotlb: Iotlb;
  readonly fsPwc: FsPwc;
  readonly ssPwc: SsPwc;
  readonly walker: Walker;
  readonly haw: number;
  /** The default result object `translate` fills. */
  readonly result = new TranslateResult();
  /** Fault records the digest covers. The fault-recording issue fills these (see `reportFault`). */
  readonly faultRecords: FaultRecord[] = [];
  /** Called on every translation fault, before return. Null by default (no cost). */
  faultHook: FaultHook | null = null;
  readonly effects = new DmaEffectsLog();
  /** Interrupt delivery and deferred hardware work; holds the engine binding. */
  readonly events = new HwEvents();
  /** Software's way in: every register access, with observers (a VMM traps IQT here). */
  readonly mmio: VtdMmio;
  readonly qi: InvalidationQueue;
  readonly frcd: FaultRecording;
  readonly prq: PageRequestQueue;
  private readonly endpoints = new Map<number, AtsEndpoint>();

  private rootTable = 0;
  private rootScalable = false;
  private enabled = false;
  private readonly words = new Int32Array(16);
  private memoSid = -1;
  private memoPasid = -2;
  private memoC = 0;
  private memoP = 0;
  private memoCcVersion = -1;
  private memoPcVersion = -1;

  constructor(
    readonly mem: PhysicalMemory,
    opts: VtdOptions = {},
  ) {
    this.name = opts.name ?? 'dmar0';
    this.caps = Object.freeze({ ...DEFAULT_CAPS, ...opts.caps });
    this.haw = opts.haw ?? 46;
    const sizes = { ...DEFAULT_CACHE_SIZES, ...opts.cacheSizes };
    this.contextCache = new ContextCache(sizes.context);
    this.pasidCache = new PasidCache(sizes.pasid);
    this.iotlb = new Iotlb(sizes.iotlb);
    this.fsPwc = new FsPwc(sizes.fsPwc);
    this.ssPwc = new SsPwc(sizes.ssPwc);
    this.walker = new Walker(mem, { haw: this.haw, mgaw: this.caps.mgaw, fl1gp: this.caps.fl1gp, sllps: this.caps.sllps }, this.fsPwc, this.ssPwc);
    this.initRegisters();
    this.mmio = new VtdMmio(this);
    this.qi = new InvalidationQueue(this);
    this.frcd = new FaultRecording(this);
    this.prq = new PageRequestQueue(this);
  }

  // ==== engine binding, interrupts, endpoints ====================================================

  /**
   * The engine this unit charges (set by whoever builds the machine). Null: the unit works without
   * charging (unit tests, benchmarks).
   */
  get sim(): Sim | null {
    return this.events.sim;
  }
  set sim(s: Sim | null) {
    this.events.sim = s;
  }

  /**
   * Connect an interrupt: the fault event (FECTL), the invalidation completion event (IECTL) or the
   * page request event (PECTL). With `thread` and a bound sim, the handler runs as a unit posted on
   * that thread at the hardware's completion time. Returns a disconnect function.
   */
  onInterrupt(kind: InterruptKind, handler: InterruptHandler, thread?: SimThread): () => void {
    return this.events.onInterrupt(kind, handler, thread);
  }

  /** A PCIe endpoint behind this unit (by requester id): device-TLB invalidations and PRG responses. */
  attachEndpoint(ep: AtsEndpoint): void {
    if (this.endpoints.has(ep.rid)) throw new Error(`${this.name}: requester id 0x${ep.rid.toString(16)} already attached`);
    this.endpoints.set(ep.rid, ep);
  }

  detachEndpoint(ep: AtsEndpoint): void {
    if (this.endpoints.get(ep.rid) === ep) this.endpoints.delete(ep.rid);
  }

  endpoint(rid: number): AtsEndpoint | undefined {
    return this.endpoints.get(rid);
  }

  /**
   * The context entry's flags for `sid` as the hardware holds them (context-cache, else a fetch):
   * bit 0 FPD, 1 PASIDE, 2 PRE, 3 DTE; -1 when the context is not present or invalid. Used for
   * ATS (DTE) and PRI (PRE) decisions; does not move the context-cache hit counters.
   */
  contextFlagsFor(sid: number): number {
    if (!this.enabled) return -1;
    const cc = this.contextCache;
    const id = cc.table.find(sid, 0, 0, 0);
    const c = id >= 0 ? id : this.fetchContext(sid);
    return cc.status[c] !== 0 ? -1 : cc.flags[c]!;
  }

  // ==== registers ================================================================================

  private initRegisters(): void {
    const r = this.regs;
    r.set32(REG.VER, 0x60); // version 6.0 [E]
    r.set64(REG.CAP, encodeCap(this.caps));
    r.set64(REG.ECAP, encodeEcap(this.caps));
    r.setReadOnly(REG.VER, 4);
    r.setReadOnly(REG.CAP, 8);
    r.setReadOnly(REG.ECAP, 8);
    r.setReadOnly(REG.GSTS, 4);
    r.onWrite(REG.GCMD, (_o, v) => this.handleGcmd(v));
  }

  /** Capabilities as software reads them from CAP/ECAP. */
  readCaps(): VtdCaps {
    return decodeCaps(this.regs.get64(REG.CAP), this.regs.get64(REG.ECAP));
  }

  /** GCMD write (qemu vtd_handle_gcmd_write): TE toggles translation, SRTP latches RTADDR. */
  private handleGcmd(v: number): void {
    const r = this.regs;
    let sts = r.get32(REG.GSTS);
    if ((v & GCMD.SRTP) !== 0) {
      const rt = r.get64(REG.RTADDR);
      this.rootTable = (rt.hi >>> 0) * TWO_POW_32 + ((rt.lo & ~0xfff) >>> 0);
      this.rootScalable = (rt.lo & RTADDR_SMT) !== 0;
      sts |= GSTS.RTPS;
      this.invalidateEverything(); // qemu vtd_handle_gcmd_srtp resets the caches
    }
    const te = (v & GCMD.TE) !== 0;
    if (te !== this.enabled) {
      this.enabled = te;
      sts = te ? sts | GSTS.TES : sts & ~GSTS.TES;
      this.invalidateEverything();
    }
    const qie = (v & GCMD.QIE) !== 0;
    if (qie !== ((sts & GSTS.QIES) !== 0)) this.qi.setEnabled(qie);
    // QIE / IRE: status mirrors the command (QIE's behaviour is in qi.ts).
    for (const [cmd, st] of [
      [GCMD.QIE, GSTS.QIES],
      [GCMD.IRE, GSTS.IRES],
    ] as const) {
      sts = (v & cmd) !== 0 ? sts | st : sts & ~st;
    }
    r.set32(REG.GSTS, sts);
  }

  get translationEnabled(): boolean {
    return this.enabled;
  }
  get rootTableAddress(): number {
    return this.rootTable;
  }
  get scalableMode(): boolean {
    return this.rootScalable;
  }

  /** Software sequence: RTADDR = table | SMT, then GCMD.SRTP (linux iommu_set_root_entry). */
  setRootTable(pa: number, scalable = true): void {
    this.regs.write64(REG.RTADDR, BigInt(pa) | (scalable ? BigInt(RTADDR_SMT) : 0n));
    this.regs.write32(REG.GCMD, (this.regs.get32(REG.GSTS) & GCMD.TE) | GCMD.SRTP);
  }

  /** Software sequence: GCMD.TE (linux iommu_enable_translation). */
  enableTranslation(on = true): void {
    const sts = this.regs.get32(REG.GSTS) & (GCMD.TE | GCMD.QIE | GCMD.IRE);
    this.regs.write32(REG.GCMD, on ? sts | GCMD.TE : sts & ~GCMD.TE);
  }

  // ==== translation ==============================================================================

  /** Translate `addr` (a number below 2^53) for a request from `sid` with `pasid` (or NO_PASID). */
  translate(sid: number, pasid: number, addr: number, access: number, out: TranslateResult = this.result): number {
    return this.translateHiLo(sid, pasid, Math.floor(addr / TWO_POW_32), addr >>> 0, access, out);
  }

  /** Translate a 64-bit input address given as halves (for addresses at or above 2^53). */
  translateHiLo(sid: number, pasid: number, hi: number, lo: number, access: number, r: TranslateResult = this.result): number {
    r.iotlbHit = false;
    r.pasid = -1;
    r.fpd = false;
    if (!this.enabled) {
      r.hpa = (hi >>> 0) * TWO_POW_32 + (lo >>> 0);
      r.pageShift = 12;
      r.perm = 7;
      r.pgtt = 0;
      r.status = 0;
      return 0;
    }
    // ---- context (a one-entry memo of the last (sid, pasid) skips both cache probes while
    // neither cache changed; hit counters still count the architectural hits)
    const cc = this.contextCache;
    const pc = this.pasidCache;
    let c: number;
    let p = -1;
    if (sid === this.memoSid && pasid === this.memoPasid && cc.table.version === this.memoCcVersion && pc.table.version === this.memoPcVersion) {
      c = this.memoC;
      p = this.memoP;
      cc.hits++;
    } else {
      c = cc.lookup(sid);
      if (c < 0) c = this.fetchContext(sid);
    }
    const cflags = cc.flags[c]!;
    r.fpd = (cflags & 1) !== 0;
    if (cc.status[c] !== 0) return this.fault(r, cc.status[c]!, sid, pasid, hi, lo, access);
    let effPasid = pasid;
    if (pasid < 0) effPasid = cc.ridPasid[c]!;
    else if ((cflags & 2) === 0) return this.fault(r, FR_CONTEXT_PASIDE_CLEAR, sid, pasid, hi, lo, access);
    if (effPasid >>> 6 >= 1 << (cc.pdts[c]! + 7)) return this.fault(r, FR_PASID_TOO_LARGE, sid, pasid, hi, lo, access);
    r.pasid = effPasid;

    // ---- PASID entry
    if (p >= 0) pc.hits++;
    else {
      p = pc.lookup(sid, effPasid);
      if (p < 0) p = this.fetchPasid(sid, effPasid, c);
      if (c < cc.capacity && p < pc.capacity) {
        this.memoSid = sid;
        this.memoPasid = pasid;
        this.memoC = c;
        this.memoP = p;
        this.memoCcVersion = cc.table.version;
        this.memoPcVersion = pc.table.version;
      }
    }
    const flags = pc.flags[p]!;
    if ((flags & PASID_FLAG_FPD) !== 0) r.fpd = true;
    if (pc.status[p] !== 0) return this.fault(r, pc.status[p]!, sid, pasid, hi, lo, access);
    const pgtt = pc.pgtt[p]!;
    const did = pc.did[p]!;
    r.pgtt = pgtt;
    r.did = did;

    if (pgtt === PGTT_PT) return this.passThrough(r, sid, pasid, hi, lo, access);
    if (pgtt !== PGTT_SS) {
      // supervisor and execute requests need SRE / ERE in the PASID entry (dmar.c 0x5D / 0x5C)
      if ((access & ACCESS_SUPERVISOR) !== 0 && (flags & PASID_FLAG_SRE) === 0) {
        return this.fault(r, FR_PASID_SRE_CLEAR, sid, pasid, hi, lo, access);
      }
      if ((access & ACCESS_EXEC) !== 0 && (flags & PASID_FLAG_ERE) === 0) {
        return this.fault(r, FR_PASID_ERE_CLEAR, sid, pasid, hi, lo, access);
      }
    }

    // ---- IOTLB
    const tlb = this.iotlb;
    const tag = pgtt === PGTT_SS ? UNTAGGED_TAG : effPasid;
    const write = (access & ACCESS_WRITE) !== 0;
    const t = tlb.lookup(did, tag, hi, lo);
    if (t >= 0) {
      const perm = tlb.perm[t]!;
      // a write through an entry whose D bit is clear must walk to set D
      if (!write || (perm & TLB_PERM_DIRTY) !== 0) {
        const st = checkTlbPerm(perm, access, (flags & PASID_FLAG_WPE) !== 0);
        if (st !== 0) return this.fault(r, st, sid, pasid, hi, lo, access);
        const vpn4k = (hi >>> 0) * 1048576 + (lo >>> 12);
        const hpa = (tlb.outPfn[t]! + (vpn4k - tlb.vpn[t]!)) * 4096 + (lo & 4095);
        if (hpa >= INTR_FIRST && hpa <= INTR_LAST) return this.fault(r, FR_SM_INTERRUPT_ADDR, sid, pasid, hi, lo, access);
        r.hpa = hpa;
        r.pageShift = tlb.shift[t]!;
        r.perm = effectivePerm(perm, access, (flags & PASID_FLAG_WPE) !== 0);
        r.iotlbHit = true;
        r.status = 0;
        return 0;
      }
    }

    // ---- walk
    const w = this.walker;
    const ssade = (flags & PASID_FLAG_SSADE) !== 0;
    const wpe = (flags & PASID_FLAG_WPE) !== 0;
    let st: number;
    let hpa: number;
    let shift: number;
    let perm: number;
    let kind: number;
    if (pgtt === PGTT_SS) {
      st = w.translateSecondStage(did, pc.ssRootPfn[p]!, pc.ssLevels[p]!, ssade, hi, lo, access);
      if (st !== 0) return this.fault(r, st, sid, pasid, hi, lo, access);
      hpa = w.ssPfn * 4096 + (lo & 4095);
      shift = w.ssShift;
      perm = ssPermBits(w.ssPerm) | TLB_PERM_FS_RW | TLB_PERM_US | TLB_PERM_X | (write || !ssade ? TLB_PERM_DIRTY : 0);
      kind = TLB_KIND_SS;
    } else {
      const nested = pgtt === PGTT_NESTED;
      st = w.walkFirstStage(
        did, effPasid, pc.fsRootHi[p]!, pc.fsRootLo[p]!, pc.fsLevels[p]!, nested,
        pc.ssRootPfn[p]!, pc.ssLevels[p]!, ssade, wpe, hi, lo, access,
      );
      if (st !== 0) return this.fault(r, st, sid, pasid, hi, lo, access);
      const acc = w.fsAcc;
      const fsBits = (acc & 1 ? TLB_PERM_FS_RW : 0) | (acc & 2 ? TLB_PERM_US : 0) | (acc & 4 ? TLB_PERM_X : 0);
      if (nested) {
        st = w.nestedOutput(did, pc.ssRootPfn[p]!, pc.ssLevels[p]!, ssade, access);
        if (st !== 0) return this.fault(r, st, sid, pasid, hi, lo, access);
        hpa = w.ssPfn * 4096 + (w.outLo & 4095);
        shift = w.fsShift < w.ssShift ? w.fsShift : w.ssShift;
        perm = fsBits | (w.ssPerm & 1 ? TLB_PERM_R : 0) | (w.ssPerm & 2 ? TLB_PERM_SS_W : 0);
        if (w.fsLeafDirty && (write || !ssade)) perm |= TLB_PERM_DIRTY;
        kind = TLB_KIND_NESTED;
      } else {
        hpa = (w.outHi >>> 0) * TWO_POW_32 + (w.outLo >>> 0);
        shift = w.fsShift;
        perm = fsBits | TLB_PERM_R | TLB_PERM_SS_W | (w.fsLeafDirty ? TLB_PERM_DIRTY : 0);
        kind = TLB_KIND_FS;
      }
      // second-stage permission for the data access (first-stage rules were checked by the walk)
      if (write ? (perm & TLB_PERM_SS_W) === 0 : (perm & TLB_PERM_R) === 0) {
        return this.fault(r, write ? FR_SM_WRITE : FR_SM_READ, sid, pasid, hi, lo, access);
      }
    }
    if (hpa >= INTR_FIRST && hpa <= INTR_LAST) return this.fault(r, FR_SM_INTERRUPT_ADDR, sid, pasid, hi, lo, access);
    tlb.fill(did, tag, hi, lo, shift, kind, perm, Math.floor(hpa / 4096));
    r.hpa = hpa;
    r.pageShift = shift;
    r.perm = effectivePerm(perm, access, wpe);
    r.status = 0;
    return 0;
  }

  private passThrough(r: TranslateResult, sid: number, pasid: number, hi: number, lo: number, access: number): number {
    if (this.walker.beyondHaw(hi)) return this.fault(r, FR_ADDR_BEYOND_MAX, sid, pasid, hi, lo, access);
    const hpa = (hi >>> 0) * TWO_POW_32 + (lo >>> 0);
    if (hpa >= INTR_FIRST && hpa <= INTR_LAST) return this.fault(r, FR_SM_INTERRUPT_ADDR, sid, pasid, hi, lo, access);
    r.hpa = hpa;
    r.pageShift = 12;
    r.perm = 7;
    r.status = 0;
    return 0;
  }

  private fault(r: TranslateResult, reason: number, sid: number, pasid: number, hi: number, lo: number, access: number): number {
    r.status = reason;
    r.hpa = 0;
    r.perm = 0;
    if (this.faultHook !== null) this.faultHook(r, sid, pasid, hi, lo, access);
    return reason;
  }

  // ==== structure fetches (context-cache / PASID-cache misses; §A.6: 2 + 2 references) ==========

  private fetchContext(sid: number): number {
    const cc = this.contextCache;
    const w = this.words;
    const mem = this.mem;
    let status = 0;
    if (!this.rootScalable) {
      status = FR_RTADDR_INV_TTM; // only scalable mode is modelled
    } else {
      const devfn = sid & 0xff;
      mem.fetchEntry(this.rootTable + ((sid >>> 8) & 0xff) * 16, 4, w);
      const upper = devfn >= 0x80;
      const rlo = upper ? w[2]! : w[0]!;
      const rhi = upper ? w[3]! : w[1]!;
      if ((rlo & 1) === 0) status = FR_ROOT_ENTRY_P;
      else {
        const ctp = (rhi >>> 0) * TWO_POW_32 + ((rlo & ~0xfff) >>> 0);
        mem.fetchEntry(ctp + (devfn & 0x7f) * 32, 8, w);
        if ((w[0]! & 1) === 0) status = FR_CONTEXT_ENTRY_P;
        else if (contextEntryReservedSet(w)) status = FR_CONTEXT_ENTRY_RSVD;
      }
    }
    // with CM = 1 hardware may cache not-present entries too (vtd-model §B.1)
    const slot = cc.slotFor(sid, status === 0 || this.caps.cachingMode);
    cc.status[slot] = status;
    cc.sid[slot] = sid;
    if (status === 0) {
      const lo = w[0]!;
      cc.flags[slot] = ((lo >>> 1) & 1) | (((lo >>> 3) & 1) << 1) | (((lo >>> 4) & 1) << 2) | (((lo >>> 2) & 1) << 3);
      cc.pdts[slot] = (lo >>> 9) & 7;
      cc.dirPfn[slot] = (w[1]! >>> 0) * 1048576 + (lo >>> 12);
      cc.ridPasid[slot] = w[2]! & 0xfffff;
    } else {
      cc.flags[slot] = 0;
    }
    return slot;
  }

  private fetchPasid(sid: number, pasid: number, ctx: number): number {
    const pc = this.pasidCache;
    const w = this.words;
    const mem = this.mem;
    let status = 0;
    let fpd = false;
    const dir = this.contextCache.dirPfn[ctx]! * 4096;
    mem.fetchEntry(dir + (pasid >>> 6) * 8, 2, w);
    if ((w[0]! & 1) === 0) status = FR_PASID_DIR_ENTRY_P;
    else {
      fpd = (w[0]! & 2) !== 0;
      const table = (w[1]! >>> 0) * TWO_POW_32 + ((w[0]! & ~0xfff) >>> 0);
      mem.fetchEntry(table + (pasid & 0x3f) * 64, 16, w);
      if ((w[0]! & 1) === 0) status = FR_PASID_ENTRY_P;
      else status = this.validatePasidEntry(w);
    }
    const slot = pc.slotFor(sid, pasid, status === 0 || this.caps.cachingMode);
    pc.status[slot] = status;
    pc.sid[slot] = sid;
    pc.pasid[slot] = pasid;
    pc.flags[slot] = fpd ? PASID_FLAG_FPD : 0;
    pc.did[slot] = status === 0 ? w[2]! & 0xffff : -1;
    if (status !== 0) return slot;
    const q0 = w[0]!;
    const q2 = w[4]!;
    pc.pgtt[slot] = (q0 >>> 6) & 7;
    pc.flags[slot] |=
      (q0 & 2 ? PASID_FLAG_FPD : 0) |
      (q0 & 0x20 ? PASID_FLAG_SLEE : 0) |
      (q0 & 0x200 ? PASID_FLAG_SSADE : 0) |
      (w[2]! & (1 << 23) ? PASID_FLAG_PWSNP : 0) |
      (w[2]! & (1 << 24) ? PASID_FLAG_PGSNP : 0) |
      (q2 & 1 ? PASID_FLAG_SRE : 0) |
      (q2 & 2 ? PASID_FLAG_ERE : 0) |
      (q2 & 0x10 ? PASID_FLAG_WPE : 0) |
      (q2 & 0x80 ? PASID_FLAG_EAFE : 0);
    pc.ssLevels[slot] = ((q0 >>> 2) & 7) + 2;
    pc.ssRootPfn[slot] = (w[1]! >>> 0) * 1048576 + (q0 >>> 12);
    pc.fsLevels[slot] = 4 + ((q2 >>> 2) & 3);
    pc.fsRootHi[slot] = w[5]!;
    pc.fsRootLo[slot] = q2 & (0xfffff000 | 0);
    return slot;
  }

  /** PASID-entry validity against the capabilities (qemu vtd_pe_type_check and friends). */
  private validatePasidEntry(w: Int32Array): number {
    const c = this.caps;
    const q0 = w[0]!;
    const q2 = w[4]!;
    const pgtt = (q0 >>> 6) & 7;
    const aw = (q0 >>> 2) & 7;
    const flpm = (q2 >>> 2) & 3;
    if (pasidEntryReservedSet(w)) return FR_PASID_ENTRY_INV;
    if ((w[2]! & 0xffff) >= domainCount(c)) return FR_PASID_ENTRY_INV;
    const usesSs = pgtt === PGTT_SS || pgtt === PGTT_NESTED;
    const usesFs = pgtt === PGTT_FS || pgtt === PGTT_NESTED;
    switch (pgtt) {
      case PGTT_FS:
        if (!c.flts) return FR_PASID_ENTRY_INV;
        break;
      case PGTT_SS:
        if (!c.slts) return FR_PASID_ENTRY_INV;
        break;
      case PGTT_NESTED:
        if (!c.nest || !c.flts || !c.slts) return FR_PASID_ENTRY_INV;
        break;
      case PGTT_PT:
        if (!c.pt) return FR_PASID_ENTRY_INV;
        break;
      default:
        return FR_PASID_ENTRY_INV; // 0, 5, 6, 7 are reserved PGTT encodings
    }
    if (usesSs) {
      if (aw < 1 || aw > 3 || ((c.sagaw >>> aw) & 1) === 0) return FR_PASID_ENTRY_INV;
      if (this.walker.beyondHaw(w[1]!)) return FR_SS_PTPTR_INV;
    }
    if (usesFs) {
      if (flpm > 1 || (flpm === 1 && !c.fl5lp)) return FR_PASID_ENTRY_INV;
      if (pgtt === PGTT_FS && this.walker.beyondHaw(w[5]!)) return FR_FS_PTPTR_INV;
    }
    return 0;
  }

  // ==== DMA ========================================================================================

  /**
   * A device DMA write: translate each page, write the bytes, log the effect. On a fault nothing
   * more is written, the fault is reported, and the reason returned.
   */
  dmaWrite(sid: number, pasid: number, addr: number, data: Uint8Array, privileged = false): number {
    return this.dma(sid, pasid, addr, data, true, privileged);
  }

  /** A device DMA read into `into` (its length is the transfer size). */
  dmaRead(sid: number, pasid: number, addr: number, into: Uint8Array, privileged = false): number {
    return this.dma(sid, pasid, addr, into, false, privileged);
  }

  private dma(sid: number, pasid: number, addr: number, buf: Uint8Array, write: boolean, privileged: boolean): number {
    const access = (write ? ACCESS_WRITE : ACCESS_READ) | (privileged ? ACCESS_SUPERVISOR : 0);
    const r = new TranslateResult();
    let done = 0;
    while (done < buf.length) {
      const va = addr + done;
      const st = this.translate(sid, pasid, va, access, r);
      if (st !== 0) {
        this.reportFault(r, sid, pasid, va, write);
        return st;
      }
      const chunk = Math.min(buf.length - done, 4096 - (va % 4096));
      for (let i = 0; i < chunk; i++) {
        if (write) this.mem.writeU8(r.hpa + i, buf[done + i]!);
        else buf[done + i] = this.mem.readU8(r.hpa + i);
      }
      this.effects.record(sid, pasid, `0x${va.toString(16)}`, r.hpa, write, buf.subarray(done, done + chunk));
      done += chunk;
    }
    return 0;
  }

  /**
   * Record a DMA fault (primary fault recording, fault-recording.ts): an FRCD, FSTS.PPF/FRI, the
   * fault event; FPD suppresses qualified faults. `vtd.faultRecords` (the digest) keeps every
   * fault FPD did not suppress.
   */
  reportFault(r: TranslateResult, sid: number, pasid: number, addr: number, write: boolean, privileged = false): void {
    this.frcd.record({ reason: r.status, sid, pasid, addr, write, fpd: r.fpd, privileged });
  }

  // ==== invalidation operations (called by the invalidation-queue descriptor decoder) ==============

  /** Context-cache invalidation: G = 1 global, 2 domain, 3 device (with function mask). */
  invalidateContextCache(g: number, did: number, sid: number, fm: number): void {
    if (g === 1) this.contextCache.invalidateGlobal();
    else if (g === 2) this.contextCache.invalidateDomain(did);
    else if (g === 3) this.contextCache.invalidateDevice(sid, fm);
    else throw new RangeError(`context-cache invalidation granularity ${g}`);
  }

  /** PASID-cache invalidation: G = 0 all PASIDs of DID, 1 one PASID of DID, 3 global. */
  invalidatePasidCache(g: number, did: number, pasid: number): void {
    if (g === 0) this.pasidCache.invalidateDomain(did);
    else if (g === 1) this.pasidCache.invalidatePasid(did, pasid);
    else if (g === 3) this.pasidCache.invalidateGlobal();
    else throw new RangeError(`PASID-cache invalidation granularity ${g}`);
  }

  /**
   * IOTLB invalidation (descriptor type 2): G = 1 global, 2 domain, 3 page-selective
   * (2^am pages at addr; IH = 1 keeps the paging-structure caches).
   */
  invalidateIotlb(g: number, did: number, addr = 0, am = 0, ih = false): void {
    if (g === 1) {
      this.iotlb.invalidateGlobal();
      this.fsPwc.invalidateAll();
      this.ssPwc.invalidateAll();
    } else if (g === 2) {
      this.iotlb.invalidateDomain(did);
      this.ssPwc.invalidateDomain(did);
      this.fsPwc.invalidateDomainNested(did);
    } else if (g === 3) {
      if (am > this.caps.mamv) throw new RangeError(`address mask ${am} above MAMV`);
      this.iotlb.invalidatePages(did, addr, am);
      if (!ih) {
        this.ssPwc.invalidateDomain(did); // may invalidate more than asked: allowed
        this.fsPwc.invalidateDomainNested(did);
      }
    } else throw new RangeError(`IOTLB invalidation granularity ${g}`);
  }

  /**
   * PASID-based IOTLB invalidation (descriptor type 6): G = 2 all of (DID, PASID), 3 page-selective.
   * Touches first-stage and nested entries only: second-stage-only entries are not PASID-tagged.
   */
  invalidatePasidIotlb(g: number, did: number, pasid: number, addr = 0, am = 0, ih = false): void {
    if (g === 2) {
      this.iotlb.invalidatePasid(did, pasid);
      this.fsPwc.invalidatePasid(did, pasid);
    } else if (g === 3) {
      this.iotlb.invalidatePasidPages(did, pasid, addr, am);
      if (!ih) this.fsPwc.invalidatePasid(did, pasid);
    } else throw new RangeError(`PASID-IOTLB invalidation granularity ${g}`);
  }

  /** Drop every cached translation structure (SRTP, TE changes). */
  invalidateEverything(): void {
    this.contextCache.invalidateAll();
    this.pasidCache.invalidateAll();
    this.iotlb.invalidateAll();
    this.fsPwc.invalidateAll();
    this.ssPwc.invalidateAll();
  }
}

function ssPermBits(ssPerm: number): number {
  return (ssPerm & 1 ? TLB_PERM_R : 0) | (ssPerm & 2 ? TLB_PERM_SS_W : 0);
}

/** Re-check a request against the permissions an IOTLB entry kept. */
function checkTlbPerm(perm: number, access: number, wpe: boolean): number {
  const supervisor = (access & ACCESS_SUPERVISOR) !== 0;
  if (!supervisor && (perm & TLB_PERM_US) === 0) return FR_FS_US;
  if ((access & ACCESS_WRITE) !== 0) {
    if ((perm & TLB_PERM_FS_RW) === 0 && (!supervisor || wpe)) return FR_SM_WRITE;
    if ((perm & TLB_PERM_SS_W) === 0) return FR_SM_WRITE;
  } else if ((perm & TLB_PERM_R) === 0) return FR_SM_READ;
  if ((access & ACCESS_EXEC) !== 0 && (perm & TLB_PERM_X) === 0) return FR_FS_XD;
  return 0;
}

/** R/W/X bits the request may use, given the entry's permissions. */
function effectivePerm(perm: number, access: number, wpe: boolean): number {
  const supervisor = (access & ACCESS_SUPERVISOR) !== 0;
  const fsWrite = (perm & TLB_PERM_FS_RW) !== 0 || (supervisor && !wpe);
  return (perm & TLB_PERM_R ? 1 : 0) | (fsWrite && (perm & TLB_PERM_SS_W) !== 0 ? 2 : 0) | (perm & TLB_PERM_X ? 4 : 0);
}
