import { kfn, type KFn } from '../../sim/index.ts';
import type { Device } from '../kernel/device.ts';
import { ENODEV, ENOMEM } from '../kernel/errno.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { Mutex, mutex_lock, mutex_unlock } from '../kernel/locks.ts';
import { kfree, kzalloc, type KAlloc } from '../kernel/slab.ts';
import type { IommuCore } from './iommu.ts';
import {
  IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE,
  IOMMU_FAULT_PAGE_REQUEST_PASID_VALID,
  IOMMU_NO_PASID,
  IOMMU_PAGE_RESP_FAILURE,
  IOMMU_PAGE_RESP_INVALID,
  type IopfFault,
  type IopfGroup,
} from './types.ts';

/**
 * IO page faults (drivers/iommu/io-pgfault.c, v6.15): the driver reports page requests; partial
 * requests wait for the last one of their group; a complete group goes to the handler of the
 * domain attached at the request's PASID (or RID); the consumer answers with iopf_group_response.
 */
const SRC = 'drivers/iommu/io-pgfault.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'iommu-core', sig, prov: { kind: 'merged', source: SRC } });
const FN = {
  report: fn('iommu_report_device_fault', 'void iommu_report_device_fault(struct device *dev, struct iopf_fault *evt)'),
  partial: fn('report_partial_fault', 'static int report_partial_fault(struct iommu_fault_param *fault_param, struct iommu_fault *fault)'),
  group_alloc: fn('iopf_group_alloc', 'static struct iopf_group *iopf_group_alloc(struct iommu_fault_param *iopf_param, struct iopf_fault *evt, struct iopf_group *abort_group)'),
  response: fn('iopf_group_response', 'void iopf_group_response(struct iopf_group *group, enum iommu_page_response_code status)'),
  free_group: fn('iopf_free_group', 'void iopf_free_group(struct iopf_group *group)'),
  error_response: fn('iopf_error_response', 'static void iopf_error_response(struct device *dev, struct iopf_fault *evt)'),
  add_device: fn('iopf_queue_add_device', 'int iopf_queue_add_device(struct iopf_queue *queue, struct device *dev)'),
  remove_device: fn('iopf_queue_remove_device', 'void iopf_queue_remove_device(struct iopf_queue *queue, struct device *dev)'),
};

/** struct iommu_fault_param: per device, while IOPF is enabled */
export interface FaultParam {
  readonly lock: Mutex;
  /** partial requests waiting for their group's last one, each a slab allocation */
  readonly partial: { fault: IopfFault; alloc: KAlloc }[];
  /** groups handed to a handler and not yet answered */
  readonly pending: Set<IopfGroup>;
  readonly alloc: KAlloc;
}

export class IoPgfault {
  constructor(
    readonly k: Kernel,
    readonly core: IommuCore,
  ) {}

  private param(dev: Device): FaultParam | null {
    return (this.core.dev_iommu(dev)?.fault_param as FaultParam | null) ?? null;
  }

  iopf_queue_add_device(dev: Device): number {
    return this.k.sim.call(FN.add_device, () => {
      const di = this.core.dev_iommu(dev);
      if (!di) return -ENODEV;
      if (di.fault_param) return 0;
      const alloc = kzalloc(this.k, 'iommu_fault_param');
      if (!alloc) return -ENOMEM;
      di.fault_param = { lock: new Mutex(this.k, `${dev.name}:fault_param->lock`), partial: [], pending: new Set(), alloc } satisfies FaultParam;
      return 0;
    });
  }

  /** Discards partial requests and answers pending groups INVALID, then frees the queue state. */
  iopf_queue_remove_device(dev: Device): void {
    this.k.sim.call(FN.remove_device, () => {
      const di = this.core.dev_iommu(dev);
      const p = this.param(dev);
      if (!di || !p) return;
      mutex_lock(p.lock);
      for (const { alloc } of p.partial.splice(0)) kfree(this.k, alloc);
      for (const g of p.pending) {
        di.ops.page_response?.(dev, g.last, { pasid: g.last.pasid, grpid: g.last.grpid, code: IOMMU_PAGE_RESP_INVALID });
        g.responded = true;
      }
      p.pending.clear();
      mutex_unlock(p.lock);
      kfree(this.k, p.alloc);
      di.fault_param = null;
    });
  }

  iommu_report_device_fault(dev: Device, evt: IopfFault): void {
    this.k.sim.call(FN.report, () => {
      const handle = this.findFaultHandler(dev, evt);
      const p = this.param(dev);
      if (!handle || !p) {
        this.iopf_error_response(dev, evt);
        return;
      }
      if (!(evt.flags & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE)) {
        // a request that is not the last is not answered on its own
        if (this.reportPartial(p, evt)) this.iopf_error_response(dev, evt);
        return;
      }
      const group = this.k.sim.call(FN.group_alloc, () => {
        const alloc = kzalloc(this.k, 'iopf_group');
        const faults: IopfFault[] = [];
        mutex_lock(p.lock);
        // the group takes its partial requests even when it is the abort group, so none is stuck
        for (let i = p.partial.length - 1; i >= 0; i--) {
          const pf = p.partial[i]!;
          if (pf.fault.grpid === evt.grpid && pf.fault.pasid === evt.pasid) {
            faults.unshift(pf.fault);
            kfree(this.k, pf.alloc);
            p.partial.splice(i, 1);
          }
        }
        const g: IopfGroup = { last: evt, faults: [...faults, evt], dev, domain: handle.domain!, attach_handle: handle, cookie: 0, responded: false, alloc };
        if (alloc) p.pending.add(g);
        mutex_unlock(p.lock);
        return g;
      });
      if (!group.alloc) {
        // the on-stack abort group: answer FAILURE at once
        this.k.sim.call(FN.response, () => this.respond(p, group, IOMMU_PAGE_RESP_FAILURE, true));
        return;
      }
      if (group.domain.iopf_handler!(group)) {
        this.iopf_group_response(group, IOMMU_PAGE_RESP_FAILURE);
        this.iopf_free_group(group);
      }
    });
  }

  private findFaultHandler(dev: Device, evt: IopfFault) {
    const group = this.core.iommu_group_get(dev);
    if (!group) return null;
    const pasid = evt.flags & IOMMU_FAULT_PAGE_REQUEST_PASID_VALID ? evt.pasid : IOMMU_NO_PASID;
    const h = this.core.iommu_attach_handle_get(group, pasid);
    return h?.domain?.iopf_handler ? h : null;
  }

  private reportPartial(p: FaultParam, evt: IopfFault): number {
    return this.k.sim.call(FN.partial, () => {
      const alloc = kzalloc(this.k, 'iopf_fault');
      if (!alloc) return -ENOMEM;
      mutex_lock(p.lock);
      p.partial.push({ fault: evt, alloc });
      mutex_unlock(p.lock);
      return 0;
    });
  }

  private respond(p: FaultParam, group: IopfGroup, code: number, abort = false): void {
    const di = this.core.dev_iommu(group.dev)!;
    mutex_lock(p.lock);
    if (abort || p.pending.has(group)) {
      di.ops.page_response?.(group.dev, group.last, { pasid: group.last.pasid, grpid: group.last.grpid, code });
      p.pending.delete(group);
      group.responded = true;
    }
    mutex_unlock(p.lock);
  }

  /** Answers a group once; a second answer (or one after the queue went away) is ignored. */
  iopf_group_response(group: IopfGroup, code: number): void {
    this.k.sim.call(FN.response, () => {
      const p = this.param(group.dev);
      if (p) this.respond(p, group, code);
    });
  }

  iopf_free_group(group: IopfGroup): void {
    this.k.sim.call(FN.free_group, () => kfree(this.k, group.alloc));
  }

  private iopf_error_response(dev: Device, evt: IopfFault): void {
    this.k.sim.call(FN.error_response, () => {
      this.core.dev_iommu(dev)?.ops.page_response?.(dev, evt, { pasid: evt.pasid, grpid: evt.grpid, code: IOMMU_PAGE_RESP_INVALID });
    });
  }

  /** Pending (unanswered) groups of a device, for tear-down paths and tests. */
  pendingGroups(dev: Device): IopfGroup[] {
    return [...(this.param(dev)?.pending ?? [])];
  }
}
