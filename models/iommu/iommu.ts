import { kfn, type KFn } from '../../sim/index.ts';
import type { Device } from '../kernel/device.ts';
import { EBUSY, EINVAL, ENODEV, ENOMEM, EOPNOTSUPP, EPERM, ERR_PTR, type ErrPtr } from '../kernel/errno.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { Mutex, mutex_lock, mutex_unlock } from '../kernel/locks.ts';
import {
  IOMMU_NO_PASID,
  type IommuCap,
  type IommuResvRegion,
  type IommuAttachHandle,
  type IommuDomain,
  type IommuGroup,
  type IommuOps,
  type IotlbGather,
} from './types.ts';

/**
 * The IOMMU core (drivers/iommu/iommu.c, v6.15), shared by both stacks: groups, domain attach and
 * replace for a RID or a PASID, DMA ownership, and map/unmap. Driver behaviour comes through
 * IommuOps and DomainOps, as in the kernel.
 */
const SRC = 'drivers/iommu/iommu.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'iommu-core', sig, prov: { kind: 'merged', source: SRC } });

const FN = {
  attach_group: fn('iommu_attach_group', 'int iommu_attach_group(struct iommu_domain *domain, struct iommu_group *group)'),
  attach_device: fn('iommu_attach_device', 'int iommu_attach_device(struct iommu_domain *domain, struct device *dev)'),
  detach_device: fn('iommu_detach_device', 'void iommu_detach_device(struct iommu_domain *domain, struct device *dev)'),
  attach_group_handle: fn('iommu_attach_group_handle', 'int iommu_attach_group_handle(struct iommu_domain *domain, struct iommu_group *group, struct iommu_attach_handle *handle)'),
  detach_group_handle: fn('iommu_detach_group_handle', 'void iommu_detach_group_handle(struct iommu_domain *domain, struct iommu_group *group)'),
  replace_group_handle: fn('iommu_replace_group_handle', 'int iommu_replace_group_handle(struct iommu_group *group, struct iommu_domain *new_domain, struct iommu_attach_handle *handle)'),
  resv_regions: fn('iommu_get_resv_regions', 'void iommu_get_resv_regions(struct device *dev, struct list_head *list)'),
  detach_group: fn('iommu_detach_group', 'void iommu_detach_group(struct iommu_domain *domain, struct iommu_group *group)'),
  replace_domain: fn('iommu_group_replace_domain', 'int iommu_group_replace_domain(struct iommu_group *group, struct iommu_domain *new_domain)'),
  set_domain: fn('__iommu_group_set_domain_internal', 'static int __iommu_group_set_domain_internal(struct iommu_group *group, struct iommu_domain *new_domain, unsigned int flags)'),
  dev_set_domain: fn('__iommu_device_set_domain', 'static int __iommu_device_set_domain(struct iommu_group *group, struct device *dev, struct iommu_domain *new_domain, unsigned int flags)'),
  attach_pasid: fn('iommu_attach_device_pasid', 'int iommu_attach_device_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid, struct iommu_attach_handle *handle)'),
  replace_pasid: fn('iommu_replace_device_pasid', 'int iommu_replace_device_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid, struct iommu_attach_handle *handle)'),
  detach_pasid: fn('iommu_detach_device_pasid', 'void iommu_detach_device_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid)'),
  set_group_pasid: fn('__iommu_set_group_pasid', 'static int __iommu_set_group_pasid(struct iommu_domain *domain, struct iommu_group *group, ioasid_t pasid, struct iommu_domain *old)'),
  remove_group_pasid: fn('__iommu_remove_group_pasid', 'static void __iommu_remove_group_pasid(struct iommu_group *group, ioasid_t pasid, struct iommu_domain *domain)'),
  remove_dev_pasid: fn('iommu_remove_dev_pasid', 'static void iommu_remove_dev_pasid(struct device *dev, ioasid_t pasid, struct iommu_domain *domain)'),
  claim_dev: fn('iommu_device_claim_dma_owner', 'int iommu_device_claim_dma_owner(struct device *dev, void *owner)'),
  release_dev: fn('iommu_device_release_dma_owner', 'void iommu_device_release_dma_owner(struct device *dev)'),
  claim_group: fn('iommu_group_claim_dma_owner', 'int iommu_group_claim_dma_owner(struct iommu_group *group, void *owner)'),
  release_group: fn('iommu_group_release_dma_owner', 'void iommu_group_release_dma_owner(struct iommu_group *group)'),
  alloc_paging: fn('iommu_paging_domain_alloc_flags', 'struct iommu_domain *iommu_paging_domain_alloc_flags(struct device *dev, unsigned int flags)'),
  domain_free: fn('iommu_domain_free', 'void iommu_domain_free(struct iommu_domain *domain)'),
  map: fn('iommu_map', 'int iommu_map(struct iommu_domain *domain, unsigned long iova, phys_addr_t paddr, size_t size, int prot, gfp_t gfp)'),
  unmap: fn('iommu_unmap', 'size_t iommu_unmap(struct iommu_domain *domain, unsigned long iova, size_t size)'),
};

/** dev->iommu: the per-device IOMMU state the core keeps. */
export interface DevIommu {
  readonly ops: IommuOps;
  readonly group: IommuGroup;
  readonly max_pasids: number;
  /** the driver's per-device data (Intel: device_domain_info) */
  priv: unknown;
  /** io-pgfault's per-device queue state, set while IOPF is enabled */
  fault_param: unknown;
}

export class IommuCore {
  private readonly devs = new WeakMap<Device, DevIommu>();
  readonly groups: IommuGroup[] = [];

  constructor(readonly k: Kernel) {}

  /**
   * iommu_probe_device at boot: the driver accepts the device, the device joins its group (devices
   * behind one non-ACS bridge share `groupId`), and the group starts in the driver's identity
   * default domain. Boot-time objects are not slab-tracked.
   */
  probe(dev: Device, ops: IommuOps, groupId: number, priv: unknown): DevIommu {
    if (this.devs.has(dev)) throw new Error(`iommu: ${dev.name} probed twice`);
    let group = this.groups.find((g) => g.id === groupId);
    if (!group) {
      group = {
        id: groupId,
        devices: [],
        mutex: new Mutex(this.k, `group${groupId}->mutex`),
        domain: null,
        default_domain: ops.identity_domain,
        owner: null,
        owner_cnt: 0,
        pasid_array: new Map(),
        rid_handle: null,
      };
      this.groups.push(group);
    }
    group.devices.push(dev);
    const di: DevIommu = { ops, group, max_pasids: ops.max_pasids(dev), priv, fault_param: null };
    this.devs.set(dev, di);
    const ret = ops.identity_domain.ops.attach_dev?.(ops.identity_domain, dev) ?? 0;
    if (ret) throw new Error(`iommu: default domain attach of ${dev.name} failed (${ret})`);
    group.domain = ops.identity_domain;
    return di;
  }

  dev_iommu(dev: Device): DevIommu | undefined {
    return this.devs.get(dev);
  }

  iommu_group_get(dev: Device): IommuGroup | null {
    return this.devs.get(dev)?.group ?? null;
  }

  /** iommu_group_for_each_dev: stops at the first non-zero return, which it returns */
  iommu_group_for_each_dev(group: IommuGroup, fn: (dev: Device) => number): number {
    for (const d of group.devices) {
      const r = fn(d);
      if (r) return r;
    }
    return 0;
  }

  // ---- domains -------------------------------------------------------------------------

  iommu_paging_domain_alloc_flags(dev: Device, flags: number): IommuDomain | ErrPtr {
    return this.k.sim.call(FN.alloc_paging, () => {
      const di = this.devs.get(dev);
      if (!di) return ERR_PTR(-ENODEV);
      return di.ops.domain_alloc_paging_flags(dev, flags, null);
    });
  }

  iommu_domain_free(domain: IommuDomain): void {
    this.k.sim.call(FN.domain_free, () => domain.ops.free?.(domain));
  }

  // ---- RID attach ------------------------------------------------------------------------

  private setGroupDomain(group: IommuGroup, domain: IommuDomain): number {
    return this.k.sim.call(FN.set_domain, () => {
      if (group.domain === domain) return 0;
      const old = group.domain;
      const done: Device[] = [];
      for (const dev of group.devices) {
        const ret = this.k.sim.call(FN.dev_set_domain, () => domain.ops.attach_dev?.(domain, dev) ?? -EOPNOTSUPP);
        if (ret) {
          // roll the devices already moved back to the old domain, as the kernel does
          for (const d of done) if (old) old.ops.attach_dev?.(old, d);
          return ret;
        }
        done.push(dev);
      }
      group.domain = domain;
      return 0;
    });
  }

  /** The group may take a new domain only from its default or blocking one (__iommu_attach_group). */
  private attachable(group: IommuGroup): boolean {
    const dom = group.domain;
    return dom === null || dom === group.default_domain || dom === this.blockedOf(group);
  }

  private blockedOf(group: IommuGroup): IommuDomain | null {
    const d = group.devices[0];
    return d ? this.devs.get(d)!.ops.blocked_domain : null;
  }

  iommu_attach_group(domain: IommuDomain, group: IommuGroup): number {
    return this.k.sim.call(FN.attach_group, () => {
      mutex_lock(group.mutex);
      const ret = this.attachable(group) ? this.setGroupDomain(group, domain) : -EBUSY;
      mutex_unlock(group.mutex);
      return ret;
    });
  }

  /**
   * iommu_attach_device: for a device alone in its group (a vDPA parent, say), without a DMA
   * ownership claim; −EINVAL when the group has other devices.
   */
  iommu_attach_device(domain: IommuDomain, dev: Device): number {
    return this.k.sim.call(FN.attach_device, () => {
      const group = this.devs.get(dev)?.group;
      if (!group) return -ENODEV;
      if (group.devices.length !== 1) return -EINVAL;
      mutex_lock(group.mutex);
      const ret = this.attachable(group) ? this.setGroupDomain(group, domain) : -EBUSY;
      mutex_unlock(group.mutex);
      return ret;
    });
  }

  iommu_detach_device(domain: IommuDomain, dev: Device): void {
    this.k.sim.call(FN.detach_device, () => {
      const group = this.devs.get(dev)!.group;
      mutex_lock(group.mutex);
      if (group.domain !== domain) this.k.sim.oops(`iommu_detach_device: ${domain.label} is not attached to ${dev.name}`);
      if (this.setGroupDomain(group, group.default_domain!)) this.k.sim.oops('iommu_detach_device: default domain re-attach failed');
      mutex_unlock(group.mutex);
    });
  }

  /** The 6.x form iommufd uses: also records the handle io-pgfault looks up for the RID. */
  iommu_attach_group_handle(domain: IommuDomain, group: IommuGroup, handle: IommuAttachHandle): number {
    return this.k.sim.call(FN.attach_group_handle, () => {
      mutex_lock(group.mutex);
      let ret = this.attachable(group) ? 0 : -EBUSY;
      if (!ret) ret = this.setGroupDomain(group, domain);
      if (!ret) {
        handle.domain = domain;
        group.rid_handle = handle;
      }
      mutex_unlock(group.mutex);
      return ret;
    });
  }

  /** Back to the blocking domain while owned, or to the default domain. */
  iommu_detach_group(domain: IommuDomain, group: IommuGroup): void {
    this.k.sim.call(FN.detach_group, () => {
      mutex_lock(group.mutex);
      if (group.domain !== domain) this.k.sim.oops(`iommu_detach_group: ${domain.label} is not attached to group ${group.id}`);
      const back = group.owner_cnt ? this.blockedOf(group)! : group.default_domain!;
      if (this.setGroupDomain(group, back)) this.k.sim.oops('iommu_detach_group: the fallback domain failed to attach');
      group.rid_handle = null;
      mutex_unlock(group.mutex);
    });
  }

  /** iommu_detach_group_handle: detach and drop the RID's handle. */
  iommu_detach_group_handle(domain: IommuDomain, group: IommuGroup): void {
    this.k.sim.call(FN.detach_group_handle, () => this.iommu_detach_group(domain, group));
  }

  /** iommu_replace_group_handle: a hitless replace that also swaps the RID's handle. */
  iommu_replace_group_handle(group: IommuGroup, domain: IommuDomain, handle: IommuAttachHandle): number {
    return this.k.sim.call(FN.replace_group_handle, () => {
      if (!group.owner_cnt) return -EINVAL;
      mutex_lock(group.mutex);
      const ret = this.setGroupDomain(group, domain);
      if (!ret) {
        handle.domain = domain;
        group.rid_handle = handle;
      }
      mutex_unlock(group.mutex);
      return ret;
    });
  }

  /** iommu_get_resv_regions: the driver's reserved ranges for the device. */
  iommu_get_resv_regions(dev: Device): IommuResvRegion[] {
    return this.k.sim.call(FN.resv_regions, () => this.devs.get(dev)?.ops.get_resv_regions?.(dev) ?? []);
  }

  /** device_iommu_capable */
  device_iommu_capable(dev: Device, cap: IommuCap): boolean {
    return this.devs.get(dev)?.ops.capable?.(dev, cap) ?? false;
  }

  /** Hitless replace of the RID's domain while owned (iommufd's replace path). */
  iommu_group_replace_domain(group: IommuGroup, domain: IommuDomain): number {
    return this.k.sim.call(FN.replace_domain, () => {
      if (!group.owner_cnt) return -EINVAL;
      mutex_lock(group.mutex);
      const ret = this.setGroupDomain(group, domain);
      if (!ret && group.rid_handle) group.rid_handle.domain = domain;
      mutex_unlock(group.mutex);
      return ret;
    });
  }

  // ---- PASID attach -----------------------------------------------------------------------

  private checkPasidOps(domain: IommuDomain, dev: Device, pasid: number): number {
    const di = this.devs.get(dev);
    if (!di) return -ENODEV;
    if (!domain.ops.set_dev_pasid || !di.ops.blocked_domain.ops.set_dev_pasid) return -EOPNOTSUPP;
    if (domain.owner !== di.ops || pasid === IOMMU_NO_PASID) return -EINVAL;
    return 0;
  }

  iommu_attach_device_pasid(domain: IommuDomain, dev: Device, pasid: number, handle: IommuAttachHandle): number {
    return this.k.sim.call(FN.attach_pasid, () => {
      const bad = this.checkPasidOps(domain, dev, pasid);
      if (bad) return bad;
      const group = this.devs.get(dev)!.group;
      mutex_lock(group.mutex);
      let ret = 0;
      for (const d of group.devices) {
        const mp = this.devs.get(d)!.max_pasids;
        if (mp > 0 && pasid >= mp) ret = -EINVAL;
      }
      // xa_insert: reserves the slot (an allocation) and fails with EBUSY when taken
      if (!ret && this.k.sim.allocHook('xa_insert(group->pasid_array)')) ret = -ENOMEM;
      if (!ret && group.pasid_array.has(pasid)) ret = -EBUSY;
      if (!ret) ret = this.__iommu_set_group_pasid(domain, group, pasid, null);
      if (!ret) {
        handle.domain = domain;
        group.pasid_array.set(pasid, handle);
      }
      mutex_unlock(group.mutex);
      return ret;
    });
  }

  iommu_replace_device_pasid(domain: IommuDomain, dev: Device, pasid: number, handle: IommuAttachHandle): number {
    return this.k.sim.call(FN.replace_pasid, () => {
      const bad = this.checkPasidOps(domain, dev, pasid);
      if (bad) return bad;
      const group = this.devs.get(dev)!.group;
      mutex_lock(group.mutex);
      const curr = group.pasid_array.get(pasid);
      let ret = 0;
      if (!curr) ret = -EINVAL; // nothing attached: not a replace
      else if (curr.domain !== domain) ret = this.__iommu_set_group_pasid(domain, group, pasid, curr.domain);
      if (!ret) {
        handle.domain = domain;
        group.pasid_array.set(pasid, handle);
      }
      mutex_unlock(group.mutex);
      return ret;
    });
  }

  iommu_detach_device_pasid(domain: IommuDomain, dev: Device, pasid: number): void {
    this.k.sim.call(FN.detach_pasid, () => {
      const group = this.devs.get(dev)?.group;
      if (!group) return;
      mutex_lock(group.mutex);
      this.__iommu_remove_group_pasid(group, pasid, domain);
      group.pasid_array.delete(pasid);
      mutex_unlock(group.mutex);
    });
  }

  private __iommu_set_group_pasid(domain: IommuDomain, group: IommuGroup, pasid: number, old: IommuDomain | null): number {
    return this.k.sim.call(FN.set_group_pasid, () => {
      const done: Device[] = [];
      for (const dev of group.devices) {
        if (this.devs.get(dev)!.max_pasids <= 0) continue;
        const ret = domain.ops.set_dev_pasid!(domain, dev, pasid, old);
        if (ret) {
          // undo, or roll back to the old domain; failing with a previously good domain is a bug
          for (const d of done) {
            if (!old || old.ops.set_dev_pasid!(old, d, pasid, domain)) this.iommu_remove_dev_pasid(d, pasid, domain);
          }
          return ret;
        }
        done.push(dev);
      }
      return 0;
    });
  }

  private __iommu_remove_group_pasid(group: IommuGroup, pasid: number, domain: IommuDomain): void {
    this.k.sim.call(FN.remove_group_pasid, () => {
      for (const dev of group.devices) {
        if (this.devs.get(dev)!.max_pasids > 0) this.iommu_remove_dev_pasid(dev, pasid, domain);
      }
    });
  }

  private iommu_remove_dev_pasid(dev: Device, pasid: number, domain: IommuDomain): void {
    this.k.sim.call(FN.remove_dev_pasid, () => {
      const blocked = this.devs.get(dev)!.ops.blocked_domain;
      if (blocked.ops.set_dev_pasid!(blocked, dev, pasid, domain)) {
        this.k.sim.oops(`iommu_remove_dev_pasid: blocking ${dev.name} pasid ${pasid} failed`);
      }
    });
  }

  /** iommu_attach_handle_get: the handle attached at `pasid` (IOMMU_NO_PASID: the RID's). */
  iommu_attach_handle_get(group: IommuGroup, pasid: number): IommuAttachHandle | null {
    if (pasid === IOMMU_NO_PASID) return group.rid_handle;
    return group.pasid_array.get(pasid) ?? null;
  }

  // ---- DMA ownership -----------------------------------------------------------------------

  private takeOwnership(group: IommuGroup, owner: unknown): number {
    if (group.domain && group.domain !== group.default_domain) return -EBUSY;
    const ret = this.setGroupDomain(group, this.blockedOf(group)!);
    if (ret) return ret;
    group.owner = owner;
    group.owner_cnt++;
    return 0;
  }

  private releaseOwnership(group: IommuGroup): void {
    if (group.pasid_array.size) this.k.sim.oops(`group ${group.id}: DMA ownership released with PASIDs attached`);
    if (this.setGroupDomain(group, group.default_domain!)) this.k.sim.oops('default domain re-attach failed');
    group.owner = null;
    group.owner_cnt = 0;
  }

  /** Claims one device's group for a kernel-bypass user; same-owner claims stack (the cdev path). */
  iommu_device_claim_dma_owner(dev: Device, owner: unknown): number {
    return this.k.sim.call(FN.claim_dev, () => {
      const group = this.devs.get(dev)?.group;
      if (!group) return -ENODEV;
      if (owner === null || owner === undefined) return -EINVAL;
      mutex_lock(group.mutex);
      let ret = 0;
      if (group.owner_cnt) {
        if (group.owner !== owner) ret = -EPERM;
        else group.owner_cnt++;
      } else {
        ret = this.takeOwnership(group, owner);
      }
      mutex_unlock(group.mutex);
      return ret;
    });
  }

  iommu_device_release_dma_owner(dev: Device): void {
    this.k.sim.call(FN.release_dev, () => {
      const group = this.devs.get(dev)!.group;
      mutex_lock(group.mutex);
      if (group.owner_cnt > 1) group.owner_cnt--;
      else this.releaseOwnership(group);
      mutex_unlock(group.mutex);
    });
  }

  /** The VFIO group path: the whole group, exclusively. */
  iommu_group_claim_dma_owner(group: IommuGroup, owner: unknown): number {
    return this.k.sim.call(FN.claim_group, () => {
      mutex_lock(group.mutex);
      const ret = group.owner_cnt ? -EPERM : this.takeOwnership(group, owner);
      mutex_unlock(group.mutex);
      return ret;
    });
  }

  iommu_group_release_dma_owner(group: IommuGroup): void {
    this.k.sim.call(FN.release_group, () => {
      mutex_lock(group.mutex);
      this.releaseOwnership(group);
      mutex_unlock(group.mutex);
    });
  }

  // ---- map / unmap ---------------------------------------------------------------------------

  /** The largest page size in the bitmap that iova, paddr and size all allow. */
  private pgsizeFor(domain: IommuDomain, iova: number, paddr: number, size: number): number {
    // VT-d page sizes stop at 1 GiB (bit 30), so the bitmap fits a 32-bit test
    let best = 0;
    for (let s = 4096; s <= size && s <= 1 << 30; s *= 2) {
      if (domain.pgsize_bitmap & s && iova % s === 0 && paddr % s === 0) best = s;
    }
    return best;
  }

  /**
   * iommu_map: splits the range into the largest pages the domain supports and the alignment
   * allows; on failure unmaps what it mapped.
   */
  iommu_map(domain: IommuDomain, iova: number, paddr: number, size: number, prot: number): number {
    return this.k.sim.call(FN.map, () => {
      const map = domain.ops.map_pages;
      if (!map || domain.type !== 'paging') return -ENODEV;
      if (iova % 4096 || paddr % 4096 || size % 4096 || size === 0) return -EINVAL;
      if (iova < domain.geometry.aperture_start || iova + size - 1 > domain.geometry.aperture_end) return -EINVAL;
      let done = 0;
      while (done < size) {
        const pg = this.pgsizeFor(domain, iova + done, paddr + done, size - done);
        const count = Math.floor((size - done) / pg);
        const mapped = { bytes: 0 };
        const ret = map(domain, iova + done, paddr + done, pg, count, prot, mapped);
        done += mapped.bytes;
        if (ret) {
          if (done) this.iommu_unmap(domain, iova, done);
          return ret;
        }
      }
      domain.ops.iotlb_sync_map?.(domain, iova, size);
      return 0;
    });
  }

  /** iommu_unmap: returns the bytes unmapped; the IOTLB is flushed before it returns. */
  iommu_unmap(domain: IommuDomain, iova: number, size: number): number {
    return this.k.sim.call(FN.unmap, () => {
      const unmap = domain.ops.unmap_pages;
      if (!unmap) return 0;
      const gather: IotlbGather = { start: Infinity, end: 0, pgsize: 0 };
      let done = 0;
      while (done < size) {
        const pg = this.pgsizeFor(domain, iova + done, iova + done, size - done) || 4096;
        const n = unmap(domain, iova + done, pg, Math.floor((size - done) / pg), gather);
        if (!n) break;
        done += n;
      }
      domain.ops.iotlb_sync?.(domain, gather);
      return done;
    });
  }
}

