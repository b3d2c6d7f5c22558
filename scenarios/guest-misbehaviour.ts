/**
 * What a misbehaving guest does that the guest kernel model (a well-behaved Linux) would not: a
 * `bind … root:` step. The guest's intel-iommu driver writes a first-stage PASID entry whose root
 * is a raw guest physical address, with no process (no mm, no SVA domain) behind it, and flushes
 * the PASID cache as Linux does after making an entry present (pasid_flush_caches). The VMM traps
 * that flush like any other (vtd_pasid_cache_sync) and forwards the bind with the raw root.
 *
 * Such an entry is known only to the guest's PASID table, not to its SVA bookkeeping: a later
 * `unbind` of it goes through the guest's tear-down directly (intel_pasid_tear_down_entry).
 */
import { GUEST_ERRNO } from '../models/guest/fn.ts';
import type { GuestKernel } from '../models/guest/kernel.ts';
import { FLPT_DEFAULT_DID, intel_pasid_setup_first_level, intel_pasid_tear_down_entry } from '../models/guest/intel/pasid.ts';

/** The guest driver writes (device, pasid) → first-stage root `root` (GPA); 0 or −errno. */
export function bindRawRoot(guest: GuestKernel, device: string, pasid: number, root: number): number {
  const info = guest.iommu.deviceByName(device);
  if (!info) return -GUEST_ERRNO.ENODEV;
  return intel_pasid_setup_first_level(guest.iommu, info, root, pasid, FLPT_DEFAULT_DID, 0);
}

/**
 * unbind for an entry the SVA layer does not know (one `bindRawRoot` wrote): clear it with the
 * guest's tear-down. Returns undefined when the SVA layer owns (device, pasid), so the caller
 * takes the ordinary path.
 */
export function unbindRawRoot(guest: GuestKernel, device: string, pasid: number): number | undefined {
  const info = guest.iommu.deviceByName(device);
  if (!info || guest.sva.domainAt(info, pasid)) return undefined;
  if (!guest.pasidEntry(device, pasid)?.present) return undefined;
  intel_pasid_tear_down_entry(guest.iommu, info, pasid, false);
  return 0;
}
