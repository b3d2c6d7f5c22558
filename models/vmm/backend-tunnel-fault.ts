/**
 * Backend A's side of the era's fault path (Eric Auger's v13 regions and IRQ on the vfio-pci
 * device fd), as QEMU's companion series used it: find the NESTED regions by their type
 * capability and the DMA_FAULT IRQ by its type capability, wire an eventfd with SET_IRQS, read
 * records between tail and head and write tail back, and push page responses at head.
 *
 * QEMU mmapped the rings; the model has no device-memory mmap, so the backend reads records with
 * pread and writes responses with pwrite into the ring (the kernel side accepts that as the
 * stand-in for the store through the mapping): one extra copy per record or response.
 */
import type { UserPtr } from '../kernel/mm.ts';
import {
  IOMMU_FAULT_PAGE_REQ,
  IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE,
  IOMMU_FAULT_PERM_EXEC,
  IOMMU_FAULT_PERM_PRIV,
  IOMMU_FAULT_PERM_READ,
  IOMMU_FAULT_PERM_WRITE,
  IOMMU_PAGE_RESP_FAILURE,
  IOMMU_PAGE_RESP_INVALID,
  IOMMU_PAGE_RESP_PASID_VALID,
  IOMMU_PAGE_RESP_SUCCESS,
  IOMMU_PAGE_RESP_VERSION_1,
  VFIO_IRQ_INFO_CAP_TYPE,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SUBTYPE_DMA_FAULT,
  VFIO_IRQ_TYPE_NESTED,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT,
  VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT_RESPONSE,
  VFIO_REGION_TYPE_NESTED,
  decode,
  iommu_fault,
  iommu_page_response,
  sizeOf,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_dma_fault,
  vfio_region_info,
} from '../kernel/uapi/index.ts';
import { VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_SET_IRQS } from '../kernel/uapi/ioctls/vfio.ts';
import type { HostFault, PageResponseCode } from './backend.ts';
import { capChain, type UserMem } from './backend-tunnel-user.ts';
import { setU32 } from '../kernel/uapi/le.ts';

/** what the backend keeps of a device's two rings */
export interface FaultRings {
  /** fd offset of the fault region and of the response region */
  readonly fault: number;
  readonly response: number;
  /** the response ring's geometry (read once) and the head the VMM produces at */
  readonly respOffset: number;
  readonly respEntry: number;
  readonly respEntries: number;
  respHead: number;
  /** the eventfd wired to the DMA_FAULT IRQ */
  readonly efd: number;
}

const MAX_PROBE = 16;

/** GET_REGION_INFO with the argsz dance; null past the last region (EINVAL) */
function regionInfo(u: UserMem, devfd: number, index: number): { offset: number; type: number; subtype: number } | null {
  const at = u.put(vfio_region_info, { argsz: 32, index });
  if (u.sys.ioctl(u.task, devfd, VFIO_DEVICE_GET_REGION_INFO, at) < 0) return null;
  const argsz = u.get(vfio_region_info, at, 32).argsz as number;
  const big = u.put(vfio_region_info, { argsz, index }, argsz);
  u.ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, big, 'VFIO_DEVICE_GET_REGION_INFO');
  const bytes = u.read(big, argsz);
  const info = decode(vfio_region_info, bytes.subarray(0, 32));
  const type = capChain(bytes, info.cap_offset as number).find(([id]) => id === VFIO_REGION_INFO_CAP_TYPE);
  const v = new DataView(bytes.buffer);
  return { offset: Number(info.offset as bigint), type: type ? v.getUint32(type[1] + 8, true) : -1, subtype: type ? v.getUint32(type[1] + 12, true) : -1 };
}

function irqIsDmaFault(u: UserMem, devfd: number, index: number): boolean | null {
  const at = u.put(vfio_irq_info, { argsz: 64, index }, 64);
  if (u.sys.ioctl(u.task, devfd, VFIO_DEVICE_GET_IRQ_INFO, at) < 0) return null;
  const bytes = u.read(at, 64);
  const info = decode(vfio_irq_info, bytes.subarray(0, 20));
  const cap = capChain(bytes, info.cap_offset as number).find(([id]) => id === VFIO_IRQ_INFO_CAP_TYPE);
  if (!cap) return false;
  const v = new DataView(bytes.buffer);
  return v.getUint32(cap[1] + 8, true) === VFIO_IRQ_TYPE_NESTED && v.getUint32(cap[1] + 12, true) === VFIO_IRQ_SUBTYPE_DMA_FAULT;
}

/**
 * Finds the regions (indices from VFIO_PCI_NUM_REGIONS until EINVAL: GET_INFO is not answered)
 * and the IRQ, and wires an eventfd. null when the device has no nested fault regions.
 */
export function setupFaultRings(u: UserMem, devfd: number, onEventfd: (fd: number) => void): FaultRings | null {
  let fault = -1;
  let response = -1;
  for (let i = VFIO_PCI_NUM_REGIONS; i < VFIO_PCI_NUM_REGIONS + MAX_PROBE; i++) {
    const r = regionInfo(u, devfd, i);
    if (!r) break;
    if (r.type !== VFIO_REGION_TYPE_NESTED) continue;
    if (r.subtype === VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT) fault = r.offset;
    if (r.subtype === VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT_RESPONSE) response = r.offset;
  }
  if (fault < 0 || response < 0) return null;
  let irq = -1;
  for (let i = VFIO_PCI_NUM_IRQS; i < VFIO_PCI_NUM_IRQS + MAX_PROBE; i++) {
    const r = irqIsDmaFault(u, devfd, i);
    if (r === null) break;
    if (r) irq = i;
  }
  if (irq < 0) return null;
  const efd = u.eventfd();
  onEventfd(efd);
  const data = new Uint8Array(4);
  setU32(data, 0, efd);
  const set = u.put(vfio_irq_set, { argsz: 24, flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index: irq, start: 0, count: 1, data });
  u.ioctl(devfd, VFIO_DEVICE_SET_IRQS, set, 'VFIO_DEVICE_SET_IRQS');
  const hdr = u.alloc(20);
  u.pread(devfd, hdr, 20, response, 'response region header');
  const h = u.read(hdr, 20);
  const v = new DataView(h.buffer);
  return { fault, response, respHead: v.getUint32(0, true), respEntry: v.getUint32(4, true), respEntries: v.getUint32(8, true), respOffset: v.getUint32(12, true), efd };
}

/** Consumes every record between tail and head; writes the new tail once. */
export function readFaultRing(u: UserMem, devfd: number, rings: FaultRings, device: string): HostFault[] {
  // the eventfd's counter: QEMU's handler reads it before looking at the ring
  if (u.sys.poll(u.task, rings.efd) & 1) u.sys.read(u.task, rings.efd, u.alloc(8), 8);
  const hdr = u.alloc(20);
  u.pread(devfd, hdr, 20, rings.fault, 'fault region header');
  const h = u.get(vfio_region_dma_fault, hdr, 20);
  const size = h.nb_entries as number;
  const head = h.head as number;
  let tail = h.tail as number;
  const out: HostFault[] = [];
  const entry = sizeOf(iommu_fault);
  while (tail !== head) {
    const at = u.alloc(entry);
    u.pread(devfd, at, entry, rings.fault + (h.offset as number) + tail * (h.entry_size as number), 'fault record');
    const f = u.get(iommu_fault, at, entry);
    if (f.type === IOMMU_FAULT_PAGE_REQ) {
      const prm = f.prm as Record<string, unknown>;
      const perm = prm.perm as number;
      out.push({
        device,
        pasid: prm.pasid as number,
        addr: Number(prm.addr as bigint),
        read: (perm & IOMMU_FAULT_PERM_READ) !== 0,
        write: (perm & IOMMU_FAULT_PERM_WRITE) !== 0,
        exec: (perm & IOMMU_FAULT_PERM_EXEC) !== 0,
        privileged: (perm & IOMMU_FAULT_PERM_PRIV) !== 0,
        prgi: prm.grpid as number,
        lpig: ((prm.flags as number) & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE) !== 0,
      });
    }
    tail = (tail + 1) % size;
  }
  if (out.length || tail !== (h.tail as number)) u.pwrite(devfd, u.u32(tail), 4, rings.fault, 'fault region tail');
  return out;
}

const RESP_CODE: Record<PageResponseCode, number> = { 0: IOMMU_PAGE_RESP_SUCCESS, 1: IOMMU_PAGE_RESP_INVALID, 15: IOMMU_PAGE_RESP_FAILURE };

/** One struct iommu_page_response into the ring at head, then the new head (which queues the work). */
export function pushPageResponse(u: UserMem, devfd: number, rings: FaultRings, pasid: number, grpid: number, code: PageResponseCode): void {
  const resp: UserPtr = u.put(iommu_page_response, {
    argsz: sizeOf(iommu_page_response),
    version: IOMMU_PAGE_RESP_VERSION_1,
    flags: IOMMU_PAGE_RESP_PASID_VALID,
    pasid,
    grpid,
    code: RESP_CODE[code],
  });
  u.pwrite(devfd, resp, rings.respEntry, rings.response + rings.respOffset + rings.respHead * rings.respEntry, 'response record');
  rings.respHead = (rings.respHead + 1) % rings.respEntries;
  u.pwrite(devfd, u.u32(rings.respHead), 4, rings.response, 'response region head');
}
