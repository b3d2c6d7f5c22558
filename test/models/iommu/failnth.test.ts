import { describe, expect, it } from 'vitest';
import { sweepFailNth } from '../../../sim/index.ts';
import { IS_ERR } from '../../../models/kernel/errno.ts';
import { IOMMU_HWPT_DATA_VTD_S1, iommu_hwpt_vtd_s1 } from '../../../models/kernel/uapi/index.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import type { IommuDomain } from '../../../models/iommu/types.ts';
import { GUEST_VA, handle, nestedRig } from '../../helpers/nested.ts';

const PASID = 7;

describe('fail-nth over the shared layer', () => {
  it('every failure in nested alloc, PASID attach, replace and tear-down unwinds: no leak, no present entry', () => {
    const steps = sweepFailNth((n) => {
      const r = nestedRig({ ats: true, ramBytes: 4 << 20 }); // the rig maps GUEST_VA to GPA 1 MiB+
      const pt2 = r.ram.firstStage(4);
      pt2.map(GUEST_VA, 0x8_0000, 0x1000);
      const u1 = r.put(iommu_hwpt_vtd_s1, { pgtbl_addr: r.pt.root, addr_width: 48 });
      const u2 = r.put(iommu_hwpt_vtd_s1, { pgtbl_addr: pt2.root, addr_width: 48 });
      const before = r.m.sim.leaks.snapshot();
      const { core, iommu } = r.m;
      r.m.sim.failnth.arm(n);
      const made: IommuDomain[] = [];
      const alloc = (uptr: typeof u1): IommuDomain | null => {
        const d = r.asTask(() => iommu.ops.domain_alloc_nested!(r.d.dev, r.s2, 0, { type: IOMMU_HWPT_DATA_VTD_S1, uptr, len: 24 }));
        if (IS_ERR(d)) return null;
        made.push(d);
        return d;
      };
      let outcome = 'ok';
      const a = alloc(u1);
      const b = alloc(u2);
      if (!a || !b) outcome = 'alloc';
      else if (core.iommu_attach_device_pasid(a, r.d.dev, PASID, handle())) outcome = 'attach';
      else {
        const rep = core.iommu_replace_device_pasid(b, r.d.dev, PASID, handle());
        // a failed replace leaves the old domain attached and translating
        const live = rep ? a : b;
        if (rep) outcome = 'replace';
        expect(r.d.pci.dmaWrite(PASID, GUEST_VA, Uint8Array.of(1)).status).toBe('ok');
        core.iommu_detach_device_pasid(live, r.d.dev, PASID);
      }
      r.m.sim.failnth.disarm();
      for (const d of made) core.iommu_domain_free(d);
      expect(pasidEntryOf(iommu, r.d.info, PASID)?.present ?? false).toBe(false);
      expect(r.m.sim.leaks.snapshot()).toEqual(before);
      return { failnth: r.m.sim.failnth, result: outcome };
    });
    const outcomes = steps.map((s) => s.result);
    expect(outcomes.at(-1)).toBe('ok');
    // every stage had a failure injected somewhere
    for (const o of ['alloc', 'attach', 'replace']) expect(outcomes).toContain(o);
  });
});
