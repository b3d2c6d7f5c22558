import { describe, expect, it } from 'vitest';
import { PhysicalMemory } from '../../../models/hw/memory.ts';
import {
  ACCESS,
  CTL_IM,
  CTL_IP,
  FSTS,
  ICS_IWC,
  IQEI,
  PAGE_4K,
  PGTT,
  REG,
  Vtd,
  encodeCcInv,
  encodeIecInv,
  encodeIotlbInv,
  encodePcInv,
  encodePiotlbInv,
  encodeWait,
  vIommuCaps,
  type AtsEndpoint,
  type DescWords,
} from '../../../models/hw/vtd/index.ts';
import { P } from '../../../sim/primitives.ts';
import { Sim } from '../../../sim/sim.ts';
import { primitiveCount } from '../../../sim/recorder.ts';
import { GUEST_RAM_HPA, Rig, gpaToHpa } from './rig.ts';
import { QI_DONE, QiDriver } from './qi-rig.ts';

const QUEUE = 0x3000_0000;
const SID_A = 0x0100; // 01:00.0
const SID_B = 0x0108; // 01:01.0
const SID_C = 0x0109; // 01:01.1
const VA = 0x40_0000;

/**
 * Cached state across kinds and tags: SID_A PASIDs 1 and 2 first-stage (DID 3), PASID 3
 * second-stage only (DID 4), PASID 4 nested (DID 5); SID_B PASID 1 first-stage (DID 6); SID_C
 * PASID 1 first-stage (DID 6). Three pages per PASID at VA, VA+4K, VA+8K.
 */
function scopeRig() {
  const rig = new Rig();
  const v = rig.vtd;
  const fs = rig.hostFirstStage(4);
  fs.map(VA, GUEST_RAM_HPA + 0x10_0000, 0x3000, PAGE_4K, { write: true });
  const ss = rig.secondStage(4, 0x100_0000, PAGE_4K);
  const gfs = rig.guestFirstStage(4);
  gfs.map(VA, 0x20_0000, 0x3000, PAGE_4K, { write: true });
  const dirA = rig.attach(SID_A);
  rig.setPasid(dirA, 1, { pgtt: PGTT.FS, did: 3, flptr: fs.root });
  rig.setPasid(dirA, 2, { pgtt: PGTT.FS, did: 3, flptr: fs.root });
  rig.setPasid(dirA, 3, { pgtt: PGTT.SS, did: 4, aw: 2, slptptr: ss.root });
  rig.setPasid(dirA, 4, { pgtt: PGTT.NESTED, did: 5, aw: 2, slptptr: ss.root, flptr: gfs.root });
  for (const sid of [SID_B, SID_C]) rig.setPasid(rig.attach(sid), 1, { pgtt: PGTT.FS, did: 6, flptr: fs.root });
  const all: [number, number][] = [[SID_A, 1], [SID_A, 2], [SID_A, 3], [SID_A, 4], [SID_B, 1], [SID_C, 1]];
  const fill = (): void => {
    for (const [sid, pasid] of all) for (let p = 0; p < 3; p++) expect(v.translate(sid, pasid, VA + p * 0x1000, ACCESS.READ)).toBe(0);
  };
  /** IOTLB state for every PASID, before the probe refills it. */
  const snapshot = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [sid, pasid] of all) out[`${sid.toString(16)}/${pasid}`] = '';
    for (const [sid, pasid] of all) {
      let s = '';
      for (let p = 0; p < 3; p++) s += peekIotlb(v, sid, pasid, VA + p * 0x1000) ? 'h' : '-';
      out[`${sid.toString(16)}/${pasid}`] = s;
    }
    return out;
  };
  const qi = new QiDriver(v, rig.mem, QUEUE);
  return { rig, v, qi, fill, snapshot };
}

/** An IOTLB probe that neither fills nor counts: the tags translate() would use. */
function peekIotlb(v: Vtd, sid: number, pasid: number, va: number): boolean {
  const p = v.pasidCache.table.find(sid, pasid, 0, 0);
  if (p < 0) return false;
  const pgtt = v.pasidCache.pgtt[p]!;
  const did = v.pasidCache.did[p]!;
  const tag = pgtt === PGTT.SS ? 0x100000 : pasid;
  const key0 = (va >>> 12) | 0;
  return v.iotlb.table.find(key0, 1 << 16, tag, did) >= 0;
}

const ALL = 'hhh';
const NONE = '---';
const base = { '100/1': ALL, '100/2': ALL, '100/3': ALL, '100/4': ALL, '108/1': ALL, '109/1': ALL };

describe('invalidation queue: ordering, wait status, registers', () => {
  it('processes descriptors in order on the IQT write; each wait writes its status when reached', () => {
    const { v, qi, rig } = scopeRig();
    const seen: string[] = [];
    const s1 = qi.statusAddr(100);
    const s2 = qi.statusAddr(101);
    const probe: AtsEndpoint = {
      rid: 0x0200,
      invalidateDevTlb: (_p, _a, addr) => {
        seen.push(`inv@${addr.toString(16)} s1=${rig.mem.readU32(s1)} s2=${rig.mem.readU32(s2)}`);
        return true;
      },
      pageGroupResponse: () => undefined,
    };
    v.attachEndpoint(probe);
    const dev = (addr: number): DescWords => Int32Array.of(3, 0x0200, addr, 0, 0, 0, 0, 0);
    qi.place([dev(0x1000), encodeWait({ statusAddr: s1, statusData: 11 }), dev(0x2000), encodeWait({ statusAddr: s2, statusData: 22 })]);
    expect(rig.mem.readU32(s1)).toBe(0);
    qi.ring();
    expect(seen).toEqual(['inv@1000 s1=0 s2=0', 'inv@2000 s1=11 s2=0']);
    expect(rig.mem.readU32(s1)).toBe(11);
    expect(rig.mem.readU32(s2)).toBe(22);
    expect(v.mmio.read32(REG.IQH)).toBe(v.mmio.read32(REG.IQT));
    expect(v.mmio.read32(REG.IQH)).toBe(4 << 5);
    expect(v.qi.waits).toBe(2);
    expect(v.qi.descriptors).toBe(2);
  });

  it('qi_submit_sync shape: a batch and its wait; the status is written before the doorbell write returns', () => {
    const { qi } = scopeRig();
    for (let i = 0; i < 300; i++) {
      // wraps the 256-entry ring
      const r = qi.submit([encodeIotlbInv({ g: 1 })]);
      expect(r.status).toBe(QI_DONE);
    }
  });

  it('ignores IQT writes while QIE is clear, and IQH resets when QI is disabled', () => {
    const rig = new Rig();
    const v = rig.vtd;
    v.mmio.write64(REG.IQA, QUEUE + 0x801);
    rig.mem.zeroPage(QUEUE / 4096);
    v.mmio.write32(REG.IQT, 1 << 5);
    expect(v.mmio.read32(REG.IQH)).toBe(0);
    const qi = new QiDriver(v, rig.mem, QUEUE);
    expect(qi.submit([encodeIecInv()]).status).toBe(QI_DONE);
    expect(v.mmio.read32(REG.IQH)).not.toBe(0);
    v.mmio.write32(REG.GCMD, v.mmio.read32(REG.GSTS) & ~(1 << 26));
    expect(v.mmio.read32(REG.IQH)).toBe(0);
  });

  it('software cannot write IQH or IQER', () => {
    const { v } = scopeRig();
    v.mmio.write32(REG.IQH, 0x40);
    v.mmio.write64(REG.IQER, 0x5n);
    expect(v.mmio.read32(REG.IQH)).toBe(0);
    expect(v.mmio.read64(REG.IQER)).toBe(0n);
  });
});

describe('IQE: a bad descriptor stops the queue at it', () => {
  const bad: [string, DescWords, number][] = [
    ['unknown type 0', Int32Array.of(0, 0, 0, 0, 0, 0, 0, 0), IQEI.INVALID_TYPE],
    ['page-stream response (type 0xA, not modelled)', Int32Array.of(0xa, 0, 0, 0, 0, 0, 0, 0), IQEI.INVALID_TYPE],
    ['type[6:4] set (type 0x12)', Int32Array.of(0x2 | (1 << 9), 0, 0, 0, 0, 0, 0, 0), IQEI.INVALID_TYPE],
    ['IOTLB with reserved bit 8', Int32Array.of(0x2 | 0x10 | 0x100, 0, 0, 0, 0, 0, 0, 0), IQEI.RESERVED_FIELD],
    ['IOTLB with granularity 0', encodeIotlbInv({ g: 0 }), IQEI.RESERVED_FIELD],
    ['IOTLB PSI with AM above MAMV', encodeIotlbInv({ g: 3, did: 1, am: 19 }), IQEI.RESERVED_FIELD],
    ['P_IOTLB with granularity 1', encodePiotlbInv({ g: 1, did: 1, pasid: 1 }), IQEI.RESERVED_FIELD],
    ['PASID-cache with granularity 2', encodePcInv({ g: 2 }), IQEI.RESERVED_FIELD],
    ['context-cache with granularity 0', encodeCcInv({ g: 0 }), IQEI.RESERVED_FIELD],
    ['qw2 non-zero in a 256-bit descriptor', Int32Array.of(0x2 | 0x10, 0, 0, 0, 1, 0, 0, 0), IQEI.RESERVED_FIELD],
    ['wait with a misaligned status address', Int32Array.of(0x25, 0, 0x1002, 0, 0, 0, 0, 0), IQEI.RESERVED_FIELD],
  ];
  for (const [name, desc, iqei] of bad) {
    it(`${name}: earlier descriptors done, IQH at the bad slot, IQE + IQER, nothing after it`, () => {
      const { v, qi, fill, snapshot } = scopeRig();
      fill();
      const faults: string[] = [];
      v.onInterrupt('fault', (k) => faults.push(k));
      v.mmio.write32(REG.FECTL, 0); // unmask the fault event
      const first = qi.place([encodeIotlbInv({ g: 2, did: 4 }), desc]);
      const r = qi.submit([encodePcInv({ g: 3 })]);
      expect(r.status).toBe(1); // still QI_IN_USE: the wait after the bad descriptor never ran
      expect(v.mmio.read32(REG.FSTS) & FSTS.IQE).toBe(FSTS.IQE);
      expect(Number(v.mmio.read64(REG.IQER) & 0xfn)).toBe(iqei);
      expect(v.mmio.read32(REG.IQH) >>> 5).toBe(first + 1);
      expect(faults).toEqual(['fault']);
      // the DSI before it was processed, the PASID-cache flush after it was not
      expect(snapshot()['100/3']).toBe(NONE);
      expect(v.pasidCache.size).toBe(6);
      // a further doorbell does nothing while IQE is set
      expect(qi.submit([encodeIotlbInv({ g: 1 })]).status).toBe(1);
      expect(v.iotlb.size).toBeGreaterThan(0);
      // linux qi_check_fault: copy the wait over the bad slot, clear IQE (W1C): the queue resumes
      const waitCopy = qi.base + r.waitIndex * 32;
      for (let i = 0; i < 32; i += 8) {
        const lo = v.mem.readQword(waitCopy + i);
        v.mem.writeQword(qi.base + (first + 1) * 32 + i, lo, v.mem.hi);
      }
      v.mmio.write32(REG.FSTS, FSTS.IQE);
      expect(v.mmio.read32(REG.FSTS) & FSTS.IQE).toBe(0);
      expect(v.mmio.read32(REG.IQH)).toBe(v.mmio.read32(REG.IQT));
      expect(v.pasidCache.size).toBe(0);
      expect(v.iotlb.size).toBe(0);
      expect(faults).toEqual(['fault']);
    });
  }

  it('a tail beyond the queue, and a tail with bit 4 set under DW = 1, are queue errors', () => {
    const { v } = scopeRig();
    v.mmio.write32(REG.IQT, 256 << 5);
    expect(Number(v.mmio.read64(REG.IQER) & 0xfn)).toBe(IQEI.INVALID_TAIL);
    v.mmio.write32(REG.IQT, 0x10); // ignored while IQE is set
    expect(v.mmio.read32(REG.IQH)).toBe(0);
    v.mmio.write32(REG.FSTS, FSTS.IQE); // clearing IQE fetches again: the new tail is misaligned
    expect(v.mmio.read32(REG.FSTS) & FSTS.IQE).toBe(FSTS.IQE);
    expect(Number(v.mmio.read64(REG.IQER) & 0xfn)).toBe(IQEI.TAIL_MISALIGNED);
  });
});

describe('what each invalidation type and granularity removes', () => {
  const cases: [string, DescWords, Partial<typeof base>][] = [
    ['IOTLB global (G=1): everything, first-stage included', encodeIotlbInv({ g: 1 }), Object.fromEntries(Object.keys(base).map((k) => [k, NONE]))],
    ['IOTLB DSI (G=2) of the second-stage domain', encodeIotlbInv({ g: 2, did: 4 }), { '100/3': NONE }],
    ['IOTLB DSI (G=2) of the nested domain', encodeIotlbInv({ g: 2, did: 5 }), { '100/4': NONE }],
    ['IOTLB DSI (G=2) of a first-stage-only domain: not its business', encodeIotlbInv({ g: 2, did: 3 }), {}],
    ['IOTLB PSI (G=3) one page', encodeIotlbInv({ g: 3, did: 4, addr: VA + 0x1000, am: 0 }), { '100/3': 'h-h' }],
    ['IOTLB PSI (G=3) AM=1: two pages', encodeIotlbInv({ g: 3, did: 5, addr: VA, am: 1 }), { '100/4': '--h' }],
    ['P_IOTLB all of a PASID (G=2)', encodePiotlbInv({ g: 2, did: 3, pasid: 1 }), { '100/1': NONE }],
    ['P_IOTLB of a second-stage PASID: untagged entries survive', encodePiotlbInv({ g: 2, did: 4, pasid: 3 }), {}],
    ['P_IOTLB PSI (G=3) one page of a PASID', encodePiotlbInv({ g: 3, did: 6, pasid: 1, addr: VA + 0x2000, am: 0 }), { '108/1': 'hh-', '109/1': 'hh-' }],
    ['P_IOTLB PSI (G=3) of a nested PASID', encodePiotlbInv({ g: 3, did: 5, pasid: 4, addr: VA, am: 0 }), { '100/4': '-hh' }],
    ['P_IOTLB with the right PASID but another DID', encodePiotlbInv({ g: 2, did: 9, pasid: 1 }), {}],
  ];
  for (const [name, desc, changed] of cases) {
    it(name, () => {
      const { qi, fill, snapshot } = scopeRig();
      fill();
      expect(snapshot()).toEqual(base);
      expect(qi.submit([desc]).status).toBe(QI_DONE);
      expect(snapshot()).toEqual({ ...base, ...changed });
    });
  }

  const pcCases: [string, DescWords, string[]][] = [
    ['PASID-cache PASID-selective (G=1)', encodePcInv({ g: 1, did: 3, pasid: 1 }), ['100/2', '100/3', '100/4', '108/1', '109/1']],
    ['PASID-cache domain-selective (G=0)', encodePcInv({ g: 0, did: 6 }), ['100/1', '100/2', '100/3', '100/4']],
    ['PASID-cache PASID-selective with another DID', encodePcInv({ g: 1, did: 4, pasid: 1 }), ['100/1', '100/2', '100/3', '100/4', '108/1', '109/1']],
    ['PASID-cache global (G=3)', encodePcInv({ g: 3 }), []],
  ];
  for (const [name, desc, kept] of pcCases) {
    it(name, () => {
      const { v, qi, fill } = scopeRig();
      fill();
      expect(qi.submit([desc]).status).toBe(QI_DONE);
      const present = [
        [SID_A, 1], [SID_A, 2], [SID_A, 3], [SID_A, 4], [SID_B, 1], [SID_C, 1],
      ].filter(([s, p]) => v.pasidCache.table.find(s!, p!, 0, 0) >= 0).map(([s, p]) => `${s!.toString(16)}/${p}`);
      expect(present).toEqual(kept);
    });
  }

  const ccCases: [string, DescWords, number[]][] = [
    ['context-cache device-selective (G=3, FM=0)', encodeCcInv({ g: 3, sid: SID_B, fm: 0 }), [SID_A, SID_C]],
    ['context-cache device-selective with FM=3 (all functions of the device)', encodeCcInv({ g: 3, sid: SID_B, fm: 3 }), [SID_A]],
    ['context-cache domain-selective (G=2): no DIDs in scalable-mode context entries, so all', encodeCcInv({ g: 2, did: 3 }), []],
    ['context-cache global (G=1)', encodeCcInv({ g: 1 }), []],
  ];
  for (const [name, desc, kept] of ccCases) {
    it(name, () => {
      const { v, qi, fill } = scopeRig();
      fill();
      expect(qi.submit([desc]).status).toBe(QI_DONE);
      expect([SID_A, SID_B, SID_C].filter((s) => v.contextCache.table.find(s, 0, 0, 0) >= 0)).toEqual(kept);
    });
  }

  it('a stale translation stays until the flush that covers it (the batch a driver sends)', () => {
    const { rig, v, qi } = scopeRig();
    const fs = rig.hostFirstStage(4);
    fs.map(0x7000_0000, gpaToHpa(0x1000), PAGE_4K, PAGE_4K, { write: true });
    rig.setPasid(rig.attach(0x0300), 7, { pgtt: PGTT.FS, did: 8, flptr: fs.root });
    expect(v.translate(0x0300, 7, 0x7000_0000, ACCESS.READ)).toBe(0);
    fs.remap(0x7000_0000, gpaToHpa(0x2000), PAGE_4K, { write: true });
    expect(v.translate(0x0300, 7, 0x7000_0000, ACCESS.READ)).toBe(0);
    expect(v.result.hpa).toBe(gpaToHpa(0x1000));
    expect(qi.submit([encodePiotlbInv({ g: 3, did: 8, pasid: 7, addr: 0x7000_0000, am: 0 })]).status).toBe(QI_DONE);
    expect(v.translate(0x0300, 7, 0x7000_0000, ACCESS.READ)).toBe(0);
    expect(v.result.hpa).toBe(gpaToHpa(0x2000));
  });
});

describe('invalidation completion interrupt (wait IF)', () => {
  it('sets ICS.IWC; masked → IP, unmasking delivers; no new event until IWC is cleared', () => {
    const { v, qi } = scopeRig();
    const got: string[] = [];
    v.onInterrupt('inv-completion', (k) => got.push(k));
    expect(v.mmio.read32(REG.IECTL)).toBe(CTL_IM >>> 0); // reset: masked
    qi.submit([encodeIotlbInv({ g: 1 })], { intr: true });
    expect(v.mmio.read32(REG.ICS) & ICS_IWC).toBe(1);
    expect(v.mmio.read32(REG.IECTL) & CTL_IP).toBe(CTL_IP);
    expect(got).toEqual([]);
    v.mmio.write32(REG.IECTL, 0);
    expect(got).toEqual(['inv-completion']);
    expect(v.mmio.read32(REG.IECTL) & CTL_IP).toBe(0);
    qi.submit([], { intr: true });
    expect(got).toHaveLength(1); // IWC still set
    v.mmio.write32(REG.ICS, ICS_IWC);
    expect(v.mmio.read32(REG.ICS)).toBe(0);
    qi.submit([], { intr: true });
    expect(got).toHaveLength(2);
  });
});

describe('the guest-visible vIOMMU instance (CM = 1, over guest RAM)', () => {
  function guestViommu() {
    const ram = new PhysicalMemory({ addressBits: 39 });
    const v = new Vtd(ram, { name: 'viommu', caps: vIommuCaps() });
    expect(v.readCaps().cachingMode).toBe(true);
    const qi = new QiDriver(v, ram, 0x10_0000);
    return { ram, v, qi };
  }

  it('an IQT observer sees the descriptors in guest memory before processing, defers, then lets the model process', () => {
    const { ram, v, qi } = guestViommu();
    const trapped: { type: number; qw0: bigint }[][] = [];
    v.mmio.observe(REG.IQT, (_o, value, phase) => {
      if (phase !== 'before') return undefined;
      // the VMM reads the guest's queue from IQH to the new tail
      const head = v.mmio.read32(REG.IQH) >>> 5;
      const tail = value >>> 5;
      const batch: { type: number; qw0: bigint }[] = [];
      for (let i = head; i !== tail; i = (i + 1) % qi.length) {
        const qw0 = ram.readU64Big(qi.base + i * 32);
        batch.push({ type: Number(qw0 & 0xfn), qw0 });
      }
      trapped.push(batch);
      return 'defer';
    });
    const r = qi.submit([encodePiotlbInv({ g: 2, did: 1, pasid: 5 }), encodePcInv({ g: 1, did: 1, pasid: 5 })]);
    expect(trapped).toHaveLength(1);
    expect(trapped[0]!.map((d) => d.type)).toEqual([6, 7, 5]);
    expect(trapped[0]![0]!.qw0).toBe((5n << 32n) | (1n << 16n) | (2n << 4n) | 6n);
    // deferred: IQT latched, nothing processed yet
    expect(r.status).toBe(1);
    expect(v.mmio.read32(REG.IQT)).toBe(3 << 5);
    expect(v.mmio.read32(REG.IQH)).toBe(0);
    // the VMM lets the model process the guest's queue
    expect(v.qi.process()).toBe(3);
    expect(ram.readU32(qi.statusAddr(r.waitIndex))).toBe(QI_DONE);
    expect(v.mmio.read32(REG.IQH)).toBe(3 << 5);
  });

  it('without a defer, the hardware processes before the write returns; the after-phase sees the status written', () => {
    const { ram, v, qi } = guestViommu();
    const phases: string[] = [];
    let wait = -1;
    v.mmio.observe(REG.IQT, (_o, _v, phase) => {
      phases.push(`${phase}:${wait >= 0 ? ram.readU32(qi.statusAddr(wait)) : '?'}`);
    });
    wait = (qi.freeHead + 1) % qi.length;
    qi.submit([encodeIotlbInv({ g: 1 })]);
    expect(phases).toEqual(['before:1', `after:${QI_DONE}`]);
  });
});

describe('costs on the virtual clock', () => {
  it('two submitters contend for the queue: the second waits for the first batch', () => {
    const { v, qi } = scopeRig();
    const sim = new Sim({ trace: false });
    v.sim = sim;
    const a = sim.sched.spawn('cpu0');
    const b = sim.sched.spawn('cpu1');
    const batch = [encodeIotlbInv({ g: 1 }), encodePcInv({ g: 3 }), encodeCcInv({ g: 1 }), encodePiotlbInv({ g: 2, did: 3, pasid: 1 })];
    let statusA = 0;
    let statusB = 0;
    sim.sched.post(a, () => (statusA = qi.submit(batch).status));
    sim.sched.post(b, () => (statusB = qi.submit(batch).status));
    sim.sched.run();
    expect([statusA, statusB]).toEqual([QI_DONE, QI_DONE]);
    const ns = sim.prices.ns;
    const hw = 4 * ns[P.qiHwDescriptor]! + ns[P.qiHwCompletion]!;
    const doorbell = ns[P.mmioWrite]!;
    expect(a.contentionNs).toBe(0);
    expect(a.clock).toBe(doorbell + hw);
    expect(b.contentionNs).toBe(hw);
    expect(b.clock).toBe(doorbell + 2 * hw);
    expect(v.qi.resource.contended).toBe(1);
    const rec = sim.recorder.unattributed;
    expect(rec.counters.get('qiDescriptors')).toBe(8);
    expect(rec.counters.get('qiWaits')).toBe(2);
    expect(rec.contentionNs).toBe(hw);
    const hwPrims = rec.prims.get('hw')!;
    expect(hwPrims[P.qiHwDescriptor * 2]).toBe(8);
    expect(hwPrims[P.qiHwCompletion * 2]).toBe(2);
  });

  it('MMIO accesses charge mmioRead / mmioWrite to the caller; processing runs in a hw span', () => {
    const { v, qi } = scopeRig();
    const sim = new Sim();
    v.sim = sim;
    const t = sim.sched.spawn('cpu0');
    const rec = sim.step(t, '1', 'flush', () => {
      qi.submit([encodeIotlbInv({ g: 1 })]);
      v.mmio.read32(REG.FSTS);
    });
    expect(primitiveCount(rec, P.mmioWrite)).toBe(1);
    expect(primitiveCount(rec, P.mmioRead)).toBe(1);
    expect(rec.trace.map((s) => s.fn.name)).toContain('vtd_process_inv_queue');
    expect(rec.prims.get('hw')![P.qiHwCompletion * 2]).toBe(1);
  });
});
