import type { Device } from '../kernel/device.ts';
import type { ErrPtr } from '../kernel/errno.ts';
import type { Mutex } from '../kernel/locks.ts';
import type { UserPtr } from '../kernel/mm.ts';
import type { KAlloc } from '../kernel/slab.ts';

/**
 * The IOMMU core's types (include/linux/iommu.h, as of v6.15): domains and their ops, the driver's
 * ops, groups, attach handles and IO page fault records.
 */

/** IOMMU_DOMAIN_* reduced to the kinds both stacks use. */
export type DomainType = 'blocked' | 'identity' | 'paging' | 'nested';

/** IOMMU_READ / IOMMU_WRITE / … (include/linux/iommu.h) */
export const IOMMU_READ = 1 << 0;
export const IOMMU_WRITE = 1 << 1;
export const IOMMU_CACHE = 1 << 2;
export const IOMMU_NOEXEC = 1 << 3;

export const IOMMU_NO_PASID = 0;

/** struct iommu_user_data: a driver-specific user struct whose type is set at the ioctl */
export interface IommuUserData {
  type: number;
  uptr: UserPtr;
  len: number;
}

/** struct iommu_user_data_array: an array of driver-specific entries, for invalidation */
export interface IommuUserDataArray {
  type: number;
  uptr: UserPtr;
  entry_len: number;
  entry_num: number;
}

export interface DomainOps {
  attach_dev?(domain: IommuDomain, dev: Device): number;
  set_dev_pasid?(domain: IommuDomain, dev: Device, pasid: number, old: IommuDomain | null): number;
  /** maps pgcount pages of pgsize; returns 0 or −errno and reports how much was mapped */
  map_pages?(domain: IommuDomain, iova: number, paddr: number, pgsize: number, pgcount: number, prot: number, mapped: { bytes: number }): number;
  /** returns the number of bytes unmapped */
  unmap_pages?(domain: IommuDomain, iova: number, pgsize: number, pgcount: number, gather: IotlbGather): number;
  iotlb_sync?(domain: IommuDomain, gather: IotlbGather): void;
  /** after a map: drivers whose hardware caches not-present entries flush here */
  iotlb_sync_map?(domain: IommuDomain, iova: number, size: number): void;
  iova_to_phys?(domain: IommuDomain, iova: number): number;
  cache_invalidate_user?(domain: IommuDomain, array: IommuUserDataArray): number;
  set_dirty_tracking?(domain: IommuDomain, enabled: boolean): number;
  free?(domain: IommuDomain): void;
}

/** struct iommu_iotlb_gather: the range an unmap must flush before its pages are freed */
export interface IotlbGather {
  start: number;
  end: number;
  pgsize: number;
}

export interface IommuDomain {
  readonly type: DomainType;
  readonly ops: DomainOps;
  /** the driver that allocated it (domain->owner) */
  readonly owner: IommuOps;
  readonly pgsize_bitmap: number;
  /** the IOVA window the domain can translate, inclusive */
  readonly geometry: { aperture_start: number; aperture_end: number };
  /** the consumer's IO page fault handler (iommufd's, or SVA's) */
  iopf_handler: ((group: IopfGroup) => number) | null;
  /** the slab allocation behind it; null for the driver's static domains */
  readonly alloc: KAlloc | null;
  /** a human label for traces and leaks */
  readonly label: string;
}

/** struct iommu_ops, reduced: what the core and the two stacks call on the driver. */
export interface IommuOps {
  readonly name: string;
  readonly blocked_domain: IommuDomain;
  readonly identity_domain: IommuDomain;
  domain_alloc_paging_flags(dev: Device, flags: number, user_data: IommuUserData | null): IommuDomain | ErrPtr;
  domain_alloc_nested?(dev: Device, parent: IommuDomain, flags: number, user_data: IommuUserData): IommuDomain | ErrPtr;
  /** IOMMU_GET_HW_INFO: the driver's info struct bytes and its type */
  hw_info?(dev: Device): { type: number; data: Uint8Array } | ErrPtr;
  page_response?(dev: Device, evt: IopfFault, msg: PageResponse): void;
  /** IOMMU_DEV_FEAT_IOPF: PRI on, and the device's io-pgfault queue */
  enable_iopf?(dev: Device): number;
  disable_iopf?(dev: Device): void;
  /** ops->capable: IOMMU_CAP_* for a device */
  capable?(dev: Device, cap: IommuCap): boolean;
  /** ops->get_resv_regions: ranges the device may not use as IOVA */
  get_resv_regions?(dev: Device): IommuResvRegion[];
  /** max PASIDs the device may use through this IOMMU (dev->iommu->max_pasids) */
  max_pasids(dev: Device): number;
  enforce_cache_coherency: boolean;
}

/** enum iommu_cap (IOMMU_CAP_*), reduced to what the stacks ask */
export type IommuCap = 'CACHE_COHERENCY' | 'ENFORCE_CACHE_COHERENCY' | 'DIRTY_TRACKING' | 'NOEXEC';

/** enum iommu_resv_type (IOMMU_RESV_*) */
export type IommuResvType = 'DIRECT' | 'DIRECT_RELAXABLE' | 'RESERVED' | 'MSI' | 'SW_MSI';

/** struct iommu_resv_region */
export interface IommuResvRegion {
  readonly start: number;
  readonly length: number;
  readonly type: IommuResvType;
}

/** struct iommu_attach_handle: what a PASID (or RID) attachment carries for its consumer */
export interface IommuAttachHandle {
  domain: IommuDomain | null;
  /** the consumer's data (iommufd's idev) */
  readonly owner: unknown;
}

export interface IommuGroup {
  readonly id: number;
  readonly devices: Device[];
  readonly mutex: Mutex;
  domain: IommuDomain | null;
  default_domain: IommuDomain | null;
  /** who claimed DMA ownership (VFIO container, iommufd ctx), and how many claims */
  owner: unknown;
  owner_cnt: number;
  /** pasid → handle; RID attachments with a handle are at IOMMU_NO_PASID */
  readonly pasid_array: Map<number, IommuAttachHandle>;
  /** RID attach handle (iommu_attach_group_handle) */
  rid_handle: IommuAttachHandle | null;
}

/** enum iommu_page_response_code */
export const IOMMU_PAGE_RESP_SUCCESS = 0;
export const IOMMU_PAGE_RESP_INVALID = 1;
export const IOMMU_PAGE_RESP_FAILURE = 2;

/** IOMMU_FAULT_PAGE_REQUEST_* flags of struct iommu_fault_page_request */
export const IOMMU_FAULT_PAGE_REQUEST_PASID_VALID = 1 << 0;
export const IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE = 1 << 1;
export const IOMMU_FAULT_PAGE_REQUEST_PRIV_DATA = 1 << 2;
export const IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID = 1 << 3;

/** IOMMU_FAULT_PERM_* */
export const IOMMU_FAULT_PERM_READ = 1 << 0;
export const IOMMU_FAULT_PERM_WRITE = 1 << 1;
export const IOMMU_FAULT_PERM_EXEC = 1 << 2;
export const IOMMU_FAULT_PERM_PRIV = 1 << 3;

/** struct iopf_fault: one page request as the driver reports it */
export interface IopfFault {
  flags: number;
  pasid: number;
  grpid: number;
  perm: number;
  addr: number;
}

/** struct iommu_page_response */
export interface PageResponse {
  pasid: number;
  grpid: number;
  code: number;
}

/** struct iopf_group: a page request group, its last fault first */
export interface IopfGroup {
  readonly last: IopfFault;
  readonly faults: IopfFault[];
  readonly dev: Device;
  readonly domain: IommuDomain;
  readonly attach_handle: IommuAttachHandle;
  /** the consumer's cookie (iommufd's fault queue id) */
  cookie: number;
  responded: boolean;
  readonly alloc: KAlloc | null;
}
