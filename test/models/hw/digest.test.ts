import { describe, expect, it } from 'vitest';
import { PAGE_2M, PAGE_4K, PGTT, computeDigest, type PasidEntry } from '../../../models/hw/vtd/index.ts';
import { Rig, type RigOptions } from './rig.ts';

const DEV_A = 0x0300;
const DEV_B = 0x0481;

interface Build {
  opts: RigOptions;
  dids: [number, number, number];
  reverse: boolean;
  tweak?: (e: Partial<PasidEntry>, which: string) => Partial<PasidEntry>;
  ssWriteTop?: boolean;
  fault?: boolean;
}

/** Two devices; device A: nested PASID 5 + SS-only RID_PASID; device B: nested PASID 7 sharing stage 2. */
function build(b: Build): string {
  const rig = new Rig(b.opts);
  // the host's second stage for the VM: same meaning, pages from this build's allocator
  const ss = rig.secondStage(4, 0x200_0000, PAGE_4K);
  ss.map(0x200_0000, 0x1_0000_0000 + 0x200_0000, 0x40_0000, PAGE_2M, { read: true, write: b.ssWriteTop ?? true });
  // the guest's first-stage tables: guest allocation is the guest's choice and part of the meaning
  const fsA = rig.guestFirstStage(4);
  fsA.map(0x1000, 0x80_0000, 4 * PAGE_4K, PAGE_4K, { write: true });
  const fsB = rig.guestFirstStage(5);
  fsB.map(0x2000, 0x90_0000, PAGE_4K, PAGE_4K, { write: true });
  const tw = b.tweak ?? ((e) => e);
  const steps = [
    () => {
      const dir = rig.attach(DEV_A);
      rig.setPasid(dir, 5, tw({ pgtt: PGTT.NESTED, did: b.dids[0], aw: 2, slptptr: ss.root, flptr: fsA.root, sre: true }, 'A5'));
      rig.setPasid(dir, 0, tw({ pgtt: PGTT.SS, did: b.dids[1], aw: 2, slptptr: ss.root }, 'A0'));
    },
    () => {
      const dir = rig.attach(DEV_B, { pdts: 3 });
      rig.setPasid(dir, 7, tw({ pgtt: PGTT.NESTED, did: b.dids[2], aw: 2, slptptr: ss.root, flptr: fsB.root, flpm: 1 }, 'B7'));
    },
  ];
  for (const s of b.reverse ? [...steps].reverse() : steps) s();
  // the same DMA on both builds
  expect(rig.vtd.dmaWrite(DEV_A, 5, 0x1ff0, new Uint8Array(0x20).fill(0x5a))).toBe(0);
  expect(rig.vtd.dmaWrite(DEV_B, 7, 0x2008, Uint8Array.of(1, 2, 3))).toBe(0);
  if (b.fault) expect(rig.vtd.dmaWrite(DEV_B, 7, 0x9000, Uint8Array.of(1))).not.toBe(0);
  return computeDigest(rig.vtd).sha256;
}

const base: Build = { opts: {}, dids: [3, 4, 5], reverse: false };
const other: Build = {
  opts: { hostTableBase: 0x2800_0000, hostTableStep: 0x3000 },
  dids: [40, 41, 42],
  reverse: true,
};

describe('canonical digest', () => {
  it('is equal for two builds of the same meaning with different DIDs, table pages and order', () => {
    const a = build(base);
    expect(build(other)).toBe(a);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
  });

  it('differs when one PASID entry means something else', () => {
    const a = build(base);
    expect(build({ ...other, tweak: (e, w) => (w === 'B7' ? { ...e, wpe: true } : e) })).not.toBe(a);
    expect(build({ ...other, tweak: (e, w) => (w === 'A5' ? { ...e, eafe: true } : e) })).not.toBe(a);
    expect(build({ ...other, tweak: (e, w) => (w === 'A0' ? { ...e, pgtt: PGTT.PT } : e) })).not.toBe(a);
  });

  it('ignores fields the PGTT does not consume (e.g. an SS-only entry with a stray FLPTR)', () => {
    const a = build(base);
    expect(build({ ...other, tweak: (e, w) => (w === 'A0' ? { ...e, flptr: 0x5000, sre: true } : e) })).toBe(a);
  });

  it('differs when the designated second-stage mapping differs, or a fault was recorded', () => {
    const a = build(base);
    expect(build({ ...other, ssWriteTop: false })).not.toBe(a);
    expect(build({ ...other, fault: true })).not.toBe(a);
  });

  it('names memory by (region, offset), never host addresses or DIDs', () => {
    const rig = new Rig();
    const ss = rig.secondStage(4, 0x4000, PAGE_4K);
    const dir = rig.attach(DEV_A);
    rig.setPasid(dir, 0, { pgtt: PGTT.SS, did: 0x1234, aw: 2, slptptr: ss.root });
    expect(rig.vtd.dmaWrite(DEV_A, -1, 0x10, Uint8Array.of(9))).toBe(0);
    const d = computeDigest(rig.vtd);
    expect(d.json).toContain('"guest0.ram"');
    expect(d.json).not.toContain('0x100000000');
    expect(d.json).not.toContain('1234');
    expect(d.doc).toMatchObject({
      devices: [{ sid: '03:00.0', pasids: [{ pasid: 0, pgtt: 'second-stage', aw: 2 }] }],
      dmaEffects: [{ sid: '03:00.0', pasid: -1, iova: '0x10', target: { region: 'guest0.ram', offset: '0x10' } }],
    });
    const listing = Object.values((d.doc as { secondStageMappings: Record<string, unknown> }).secondStageMappings);
    expect(listing).toEqual([[['0x0', '0x4000', 'guest0.ram', '0x0', 'rw-']]]);
  });
});
