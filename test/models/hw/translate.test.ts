import { describe, expect, it } from 'vitest';
import { ACCESS, FR, NO_PASID, PAGE_1G, PAGE_2M, PAGE_4K, PGTT, FS } from '../../../models/hw/vtd/index.ts';
import { GUEST_RAM_HPA, Rig, awFor, gpaToHpa } from './rig.ts';

const R = ACCESS.READ;
const W = ACCESS.WRITE;
const SUP = ACCESS.SUPERVISOR;
const SID = 0x0310; // 03:02.0
const DATA_GPA = 0x80_0000;

/** Nested: guest first stage (fsLevels) on a host second stage (ssLevels) mapping 16 MiB of guest RAM. */
function nestedRig(fsLevels = 4, ssLevels = 4, opts: ConstructorParameters<typeof Rig>[0] = {}) {
  const rig = new Rig(opts);
  const dir = rig.attach(SID);
  const ss = rig.secondStage(ssLevels, 0x100_0000, PAGE_4K);
  const fs = rig.guestFirstStage(fsLevels);
  rig.setPasid(dir, 5, { pgtt: PGTT.NESTED, did: 7, aw: awFor(ssLevels), slptptr: ss.root, flptr: fs.root, flpm: fsLevels - 4, sre: true });
  return { rig, dir, ss, fs };
}

describe('translation by PGTT', () => {
  it('first-stage only (host tables), 4- and 5-level, 4K/2M/1G pages', () => {
    for (const levels of [4, 5]) {
      const rig = new Rig();
      const dir = rig.attach(SID);
      const fs = rig.hostFirstStage(levels);
      fs.map(0x40_0000, GUEST_RAM_HPA + 0x5000, PAGE_4K, PAGE_4K, { write: true });
      fs.map(0x4000_0000, GUEST_RAM_HPA + 0x20_0000, PAGE_2M, PAGE_2M, { write: true });
      fs.map(0x80_0000_0000, GUEST_RAM_HPA, PAGE_1G, PAGE_1G, {});
      rig.setPasid(dir, 1, { pgtt: PGTT.FS, did: 3, flptr: fs.root, flpm: levels - 4 });
      const v = rig.vtd;
      expect(v.translate(SID, 1, 0x40_0123, W)).toBe(0);
      expect(v.result.hpa).toBe(GUEST_RAM_HPA + 0x5123);
      expect(v.result.pageShift).toBe(12);
      expect(v.translate(SID, 1, 0x4012_3456, R)).toBe(0);
      expect(v.result.hpa).toBe(GUEST_RAM_HPA + 0x20_0000 + 0x12_3456);
      expect(v.result.pageShift).toBe(21);
      expect(v.translate(SID, 1, 0x80_3456_7890, R)).toBe(0);
      expect(v.result.hpa).toBe(GUEST_RAM_HPA + 0x3456_7890);
      expect(v.result.pageShift).toBe(30);
      expect(v.result.perm).toBe(1 | 4);
      expect(v.translate(SID, 1, 0x80_0000_0000, W)).toBe(FR.SM_WRITE);
    }
  });

  it('second-stage only, 3/4/5 levels from AW, via RID_PASID for requests without PASID', () => {
    for (const levels of [3, 4, 5]) {
      const caps = { sagaw: 0b01110 };
      const rig = new Rig({ caps });
      const dir = rig.attach(SID, { paside: false });
      const ss = rig.secondStage(levels, 0x40_0000, PAGE_4K);
      ss.map(0x4000_0000, GUEST_RAM_HPA + 0x20_0000, PAGE_2M, PAGE_2M, { read: true });
      ss.map(0x8000_0000, GUEST_RAM_HPA, PAGE_1G, PAGE_1G, { read: true, write: true });
      rig.setPasid(dir, 0, { pgtt: PGTT.SS, did: 9, aw: awFor(levels), slptptr: ss.root });
      const v = rig.vtd;
      expect(v.translate(SID, NO_PASID, 0x12_3456, W)).toBe(0);
      expect(v.result.hpa).toBe(GUEST_RAM_HPA + 0x12_3456);
      expect(v.result.pasid).toBe(0);
      expect(v.translate(SID, NO_PASID, 0x4000_1008, R)).toBe(0);
      expect(v.result.hpa).toBe(GUEST_RAM_HPA + 0x20_1008);
      expect(v.translate(SID, NO_PASID, 0x4000_1008, W)).toBe(FR.SM_WRITE);
      expect(v.translate(SID, NO_PASID, 0xa000_0000, W)).toBe(0);
      expect(v.result.hpa).toBe(GUEST_RAM_HPA + 0x2000_0000);
      expect(v.result.pageShift).toBe(30);
      expect(v.translate(SID, NO_PASID, 0x100_0000, R)).toBe(FR.SM_READ); // unmapped
      expect(v.translate(SID, 1, 0x1000, R)).toBe(FR.CONTEXT_PASIDE_CLEAR);
    }
  });

  it('nested: the guest first stage through the host second stage', () => {
    for (const [n, m] of [[4, 4], [4, 5], [5, 4], [5, 5]] as const) {
      const { rig, fs } = nestedRig(n, m);
      fs.map(0x7fff_0000_0000 / (n === 4 ? 1 : 1), DATA_GPA, PAGE_4K, PAGE_4K, { write: true });
      const v = rig.vtd;
      expect(v.translate(SID, 5, 0x7fff_0000_0abc, W)).toBe(0);
      expect(v.result.hpa).toBe(gpaToHpa(DATA_GPA) + 0xabc);
      expect(v.result.pgtt).toBe(PGTT.NESTED);
      expect(v.result.did).toBe(7);
      // the output is named by owner label, not raw address
      expect(rig.mem.owner(v.result.hpa)).toEqual({ region: 'guest0.ram', offset: DATA_GPA + 0xabc });
    }
  });

  it('nested with large pages on both stages takes the smaller page size', () => {
    const rig = new Rig();
    const dir = rig.attach(SID);
    const ss = rig.secondStage(4, 0x4000_0000, PAGE_2M);
    const fs = rig.guestFirstStage(4);
    fs.map(0x4000_0000, 0, PAGE_1G, PAGE_1G, { write: true });
    rig.setPasid(dir, 2, { pgtt: PGTT.NESTED, did: 1, aw: 2, slptptr: ss.root, flptr: fs.root });
    expect(rig.vtd.translate(SID, 2, 0x4123_4567, R)).toBe(0);
    expect(rig.vtd.result.hpa).toBe(GUEST_RAM_HPA + 0x123_4567);
    expect(rig.vtd.result.pageShift).toBe(21);
  });

  it('pass-through is the identity, still blocking the interrupt window', () => {
    const rig = new Rig();
    const dir = rig.attach(SID);
    rig.setPasid(dir, 0, { pgtt: PGTT.PT, did: 2, aw: 2 });
    const v = rig.vtd;
    const before = rig.mem.walkReads;
    expect(v.translate(SID, NO_PASID, 0x1234_5678, W)).toBe(0);
    expect(v.result.hpa).toBe(0x1234_5678);
    expect(rig.mem.walkReads - before).toBe(4); // root, context, PASID dir, PASID entry
    expect(v.translate(SID, NO_PASID, 0xfee0_0000, W)).toBe(FR.SM_INTERRUPT_ADDR);
  });

  it('translation disabled: DMA is untranslated', () => {
    const rig = new Rig();
    rig.vtd.enableTranslation(false);
    expect(rig.vtd.translate(SID, 3, 0x5000, W)).toBe(0);
    expect(rig.vtd.result.hpa).toBe(0x5000);
  });
});

describe('fault reasons', () => {
  it('structure faults: root 0x39, context 0x41, PASID range 0x46, directory 0x51, entry 0x59', () => {
    const rig = new Rig();
    const v = rig.vtd;
    expect(v.translate(SID, 1, 0, R)).toBe(FR.ROOT_ENTRY_P);
    const dir = rig.attach(SID, { pdts: 0 }); // 128 directory entries → PASIDs < 8192
    expect(v.translate(SID + 1, 1, 0, R)).toBe(FR.CONTEXT_ENTRY_P);
    expect(v.translate(SID, 8192, 0, R)).toBe(FR.PASID_TOO_LARGE);
    expect(v.translate(SID, 64, 0, R)).toBe(FR.PASID_DIR_ENTRY_P);
    rig.setPasid(dir, 1, { pgtt: PGTT.PT, aw: 2 });
    expect(v.translate(SID, 2, 0, R)).toBe(FR.PASID_ENTRY_P);
    expect(v.translate(SID, 1, 0, R)).toBe(0);
  });

  it('0x5B invalid PASID entry: reserved PGTT, PGTT/AW/FLPM the caps forbid, reserved bits', () => {
    const rig = new Rig({ caps: { nest: false, fl5lp: false } });
    const dir = rig.attach(SID);
    const v = rig.vtd;
    rig.setPasid(dir, 1, { pgtt: 5 });
    rig.setPasid(dir, 2, { pgtt: PGTT.NESTED, aw: 2 });
    rig.setPasid(dir, 3, { pgtt: PGTT.SS, aw: 1 }); // 39-bit not in SAGAW 0b01100
    rig.setPasid(dir, 4, { pgtt: PGTT.FS, flpm: 1 });
    const pe5 = rig.setPasid(dir, 6, { pgtt: PGTT.PT, aw: 2 });
    rig.mem.writeU32(pe5 + 40, 1); // bit 320: reserved
    for (const p of [1, 2, 3, 4, 6]) expect(v.translate(SID, p, 0, R), `pasid ${p}`).toBe(FR.PASID_ENTRY_INV);
  });

  it('first-stage faults: 0x71, 0x72, 0x73, 0x80, 0x81, 0x85, 0x5D, 0x5C, 0x82, 0x87', () => {
    const rig = new Rig({ haw: 46, caps: { fl1gp: false } });
    const dir = rig.attach(SID);
    const fs = rig.hostFirstStage(4);
    fs.map(0x1000, GUEST_RAM_HPA, PAGE_4K, PAGE_4K, { write: false });
    fs.map(0x2000, GUEST_RAM_HPA + 0x1000, PAGE_4K, PAGE_4K, { write: true, user: false });
    fs.map(0x3000, GUEST_RAM_HPA + 0x2000, PAGE_4K, PAGE_4K, { write: true, xd: true });
    fs.map(0x4000, 0xfee0_0000, PAGE_4K, PAGE_4K, { write: true });
    fs.map(0x5000, 2 ** 47, PAGE_4K, PAGE_4K, {}); // address bit 47 ≥ HAW 46: reserved
    // a PS bit at level 3 without FL1GP
    const l3 = fs.leafSlot(0x8000_0000, 3, true);
    rig.mem.writeQword(l3, FS.P | FS.PS | FS.US, 0);
    rig.setPasid(dir, 1, { pgtt: PGTT.FS, did: 1, flptr: fs.root, sre: true, wpe: false, ere: true });
    rig.setPasid(dir, 2, { pgtt: PGTT.FS, did: 2, flptr: fs.root, sre: false });
    rig.setPasid(dir, 3, { pgtt: PGTT.FS, did: 3, flptr: fs.root, sre: true, wpe: true });
    rig.setPasid(dir, 4, { pgtt: PGTT.FS, did: 4, flptr: 2 ** 47 }); // beyond HAW
    const v = rig.vtd;
    expect(v.translate(SID, 1, 0x9000, R)).toBe(FR.FS_ENTRY_P);
    expect(v.translate(SID, 1, 0x5000, R)).toBe(FR.FS_ENTRY_RSVD);
    expect(v.translate(SID, 1, 0x8000_0000, R)).toBe(FR.FS_ENTRY_RSVD);
    expect(v.translate(SID, 4, 0x1000, R)).toBe(FR.FS_PTPTR_INV);
    expect(v.translate(SID, 1, 2 ** 47, R)).toBe(FR.FS_NON_CANONICAL);
    // the upper canonical half is accepted (and not present here)
    expect(v.translateHiLo(SID, 1, 0xffff_8000 | 0, 0x1000, R | SUP)).toBe(FR.FS_ENTRY_P);
    expect(v.translate(SID, 1, 0x2000, R)).toBe(FR.FS_US);
    expect(v.translate(SID, 1, 0x2000, R | SUP)).toBe(0);
    expect(v.translate(SID, 1, 0x1000, W)).toBe(FR.SM_WRITE);
    expect(v.translate(SID, 1, 0x1000, W | SUP)).toBe(0); // supervisor, WPE = 0: writes allowed
    expect(v.translate(SID, 3, 0x1000, W | SUP)).toBe(FR.SM_WRITE); // WPE = 1
    expect(v.translate(SID, 2, 0x1000, R | SUP)).toBe(FR.PASID_SRE_CLEAR);
    expect(v.translate(SID, 2, 0x1000, R | ACCESS.EXEC)).toBe(FR.PASID_ERE_CLEAR);
    expect(v.translate(SID, 1, 0x3000, R | ACCESS.EXEC)).toBe(FR.FS_XD);
    expect(v.translate(SID, 1, 0x1000, R | ACCESS.EXEC)).toBe(0);
    expect(v.translate(SID, 1, 0x4000, W)).toBe(FR.SM_INTERRUPT_ADDR);
  });

  it('second-stage faults inside a nested walk: 0x73, 0x74, 0x75, 0x76, 0x77, 0x7A, and 0x85/0x86 on the output', () => {
    const { rig, ss, fs, dir } = nestedRig(4, 4);
    const v = rig.vtd;
    fs.map(0x1000, DATA_GPA, PAGE_4K, PAGE_4K, { write: true });
    fs.map(0x2000, 0x200_0000, PAGE_4K, PAGE_4K, { write: true }); // GPA not mapped at stage 2
    expect(v.translate(SID, 5, 0x2000, R)).toBe(FR.SM_READ);
    expect(v.translate(SID, 5, 0x2000, W)).toBe(FR.SM_WRITE);
    ss.map(DATA_GPA + 0x1000, GUEST_RAM_HPA + DATA_GPA + 0x1000, PAGE_4K, PAGE_4K, { read: true, write: false });
    fs.map(0x3000, DATA_GPA + 0x1000, PAGE_4K, PAGE_4K, { write: true });
    expect(v.translate(SID, 5, 0x3000, W)).toBe(FR.SM_WRITE); // stage 2 read-only
    expect(v.translate(SID, 5, 0x3000, R)).toBe(0);

    // first-stage root GPA not mapped at stage 2 → 0x75; a deeper table → 0x76
    rig.setPasid(dir, 6, { pgtt: PGTT.NESTED, did: 8, aw: 2, slptptr: ss.root, flptr: 0x300_0000 });
    expect(v.translate(SID, 6, 0x1000, R)).toBe(FR.NESTED_FS_ROOT_READ);
    const fs2 = rig.guestFirstStage(4);
    rig.setPasid(dir, 7, { pgtt: PGTT.NESTED, did: 9, aw: 2, slptptr: ss.root, flptr: fs2.root });
    const l4 = fs2.leafSlot(0x1000, 4, false);
    rig.mem.writeQword(l4, 0x300_0000 | FS.P | FS.RW | FS.US, 0);
    expect(v.translate(SID, 7, 0x1000, R)).toBe(FR.NESTED_FS_ENTRY_READ);
    rig.mem.writeQword(l4, FS.P | FS.RW | FS.US, 0x1_0000); // a table at GPA 2^48: beyond AW 48
    expect(v.translate(SID, 7, 0x1000, R)).toBe(FR.NESTED_FS_ENTRY_BEYOND_AW);
    rig.setPasid(dir, 8, { pgtt: PGTT.NESTED, did: 10, aw: 2, slptptr: ss.root, flptr: 2 ** 48 });
    expect(v.translate(SID, 8, 0x1000, R)).toBe(FR.FS_PTPTR_INV);

    // a first-stage table page read-only at stage 2: the A-bit write-back is denied → 0x77
    const fs3 = rig.guestFirstStage(4);
    fs3.map(0x1000, DATA_GPA, PAGE_4K, PAGE_4K, { write: true });
    ss.remap(fs3.root, gpaToHpa(fs3.root), PAGE_4K, { read: true, write: false });
    rig.setPasid(dir, 9, { pgtt: PGTT.NESTED, did: 11, aw: 2, slptptr: ss.root, flptr: fs3.root });
    expect(v.translate(SID, 9, 0x1000, R)).toBe(FR.NESTED_FS_ENTRY_WRITE);

    // a PS bit at second-stage level 4 is reserved → 0x7A
    const ss2 = rig.secondStage(4, 0x1000, PAGE_4K);
    rig.mem.writeQword(ss2.root, 0x80 | 3, 0);
    rig.setPasid(dir, 10, { pgtt: PGTT.SS, did: 12, aw: 2, slptptr: ss2.root });
    expect(v.translate(SID, 10, 0x1000, R)).toBe(FR.SS_ENTRY_RSVD);
    // input beyond the second stage's AW → 0x83
    expect(v.translate(SID, 10, 2 ** 48, R)).toBe(FR.ADDR_BEYOND_MAX);
  });

  it('sets first-stage A on every level and D on the leaf for writes; second-stage A/D with SSADE', () => {
    const { rig, fs, ss, dir } = nestedRig(4, 4);
    fs.map(0x1000, DATA_GPA, PAGE_4K, PAGE_4K, { write: true });
    rig.setPasid(dir, 5, { pgtt: PGTT.NESTED, did: 7, aw: 2, slptptr: ss.root, flptr: fs.root, ssade: true });
    const v = rig.vtd;
    const leaf = fs.leafSlot(0x1000, 1, false); // the writer returns the entry's host address
    const ssLeaf = ss.leafSlot(DATA_GPA, 1, false);
    expect(v.translate(SID, 5, 0x1000, R)).toBe(0);
    expect(rig.mem.readU32(leaf) & (FS.A | FS.D)).toBe(FS.A);
    expect(rig.mem.readU32(gpaToHpa(fs.root)) & FS.A).toBe(FS.A);
    expect(rig.mem.readU32(ssLeaf) & 0x300).toBe(0x100);
    const writesBefore = rig.mem.walkWrites;
    expect(v.translate(SID, 5, 0x1000, W)).toBe(0); // the IOTLB entry is clean: walk again to set D
    expect(v.result.iotlbHit).toBe(false);
    expect(rig.mem.readU32(leaf) & FS.D).toBe(FS.D);
    expect(rig.mem.readU32(ssLeaf) & 0x300).toBe(0x300);
    expect(rig.mem.walkWrites - writesBefore).toBe(2);
    expect(v.translate(SID, 5, 0x1000, W)).toBe(0);
    expect(v.result.iotlbHit).toBe(true);
  });
});
