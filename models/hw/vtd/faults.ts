/**
 * Scalable-mode fault reasons. A translation returns one of these as a plain number (0 = success):
 * faults are values, never exceptions (DESIGN principle 10).
 *
 * Values and names: torvalds/linux drivers/iommu/intel/dmar.c `dma_remap_sm_fault_reasons` (the
 * VT-d 3.x scalable-mode table, index = reason − 0x30) and qemu hw/i386/intel_iommu_internal.h
 * `VTDFaultReason`. Where the two differ, the comment says so.
 */
export const FR = Object.freeze({
  OK: 0,
  /** Invalid TTM in RTADDR (qemu VTD_FR_RTADDR_INV_TTM; dmar.c "SM: Invalid Root Table Address"). */
  RTADDR_INV_TTM: 0x31,
  /** Root entry present bit clear (dmar.c 0x39). QEMU reports legacy 0x1 here. */
  ROOT_ENTRY_P: 0x39,
  /** Context entry present bit clear (dmar.c 0x41). QEMU reports legacy 0x2 here. */
  CONTEXT_ENTRY_P: 0x41,
  /** Reserved bit set in a present context entry (dmar.c 0x42). */
  CONTEXT_ENTRY_RSVD: 0x42,
  /** Invalid context entry (dmar.c 0x43). */
  CONTEXT_ENTRY_INV: 0x43,
  /** ATS translation request while the context entry's DTE is clear (dmar.c 0x44). */
  CONTEXT_DTE_CLEAR: 0x44,
  /** Request with PASID while context PASIDE is clear (dmar.c 0x45). */
  CONTEXT_PASIDE_CLEAR: 0x45,
  /** PASID larger than the context entry's PDTS allows (dmar.c 0x46). */
  PASID_TOO_LARGE: 0x46,
  /** Page request while the context entry's PRE is clear (dmar.c 0x47, qemu VTD_FR_SM_PRE_ABS). */
  CONTEXT_PRE_CLEAR: 0x47,
  /** PASID-directory entry access error (qemu VTD_FR_PASID_DIR_ACCESS_ERR). */
  PASID_DIR_ACCESS: 0x50,
  /** PASID-directory entry P = 0 (qemu VTD_FR_PASID_DIR_ENTRY_P). */
  PASID_DIR_ENTRY_P: 0x51,
  /** PASID-table entry access error. */
  PASID_TABLE_ACCESS: 0x58,
  /** PASID entry P = 0 (qemu VTD_FR_PASID_ENTRY_P). */
  PASID_ENTRY_P: 0x59,
  /**
   * Invalid PASID entry: bad PGTT, a PGTT or AW or FLPM the capabilities do not allow, reserved
   * bits (qemu VTD_FR_PASID_TABLE_ENTRY_INV; QEMU uses it for reserved bits too, dmar.c has 0x5A).
   */
  PASID_ENTRY_INV: 0x5b,
  /** Execute request while the PASID entry's ERE is clear (dmar.c 0x5C). */
  PASID_ERE_CLEAR: 0x5c,
  /** Supervisor request while the PASID entry's SRE is clear (dmar.c 0x5D). */
  PASID_SRE_CLEAR: 0x5d,
  /** First-stage paging entry access error (address beyond HAW). */
  FS_ENTRY_ACCESS: 0x70,
  /** First-stage paging entry P = 0 (qemu VTD_FR_FS_PAGING_ENTRY_P). */
  FS_ENTRY_P: 0x71,
  /** Reserved bit set in a present first-stage entry, incl. PS where the level forbids it. */
  FS_ENTRY_RSVD: 0x72,
  /** Invalid FSPTPTR (qemu VTD_FR_PASID_ENTRY_FSPTPTR_INV; dmar.c "access FL-PML4 entry"). */
  FS_PTPTR_INV: 0x73,
  /** Nested: a first-stage table address (GPA) beyond the second stage's AW (dmar.c 0x74). */
  NESTED_FS_ENTRY_BEYOND_AW: 0x74,
  /** Nested: the second stage denies reading the first-stage root table (dmar.c 0x75). */
  NESTED_FS_ROOT_READ: 0x75,
  /** Nested: the second stage denies reading a first-stage table (dmar.c 0x76). */
  NESTED_FS_ENTRY_READ: 0x76,
  /** Nested: the second stage denies the A/D write-back to a first-stage entry (dmar.c 0x77). */
  NESTED_FS_ENTRY_WRITE: 0x77,
  /** Second-stage paging entry access error. */
  SS_ENTRY_ACCESS: 0x78,
  /** Second-stage non-leaf entry not present (R = W = 0) (dmar.c 0x79). [R: our reading] */
  SS_ENTRY_NOT_PRESENT: 0x79,
  /** Reserved bit set in a second-stage entry, incl. unsupported PS (dmar.c 0x7A). */
  SS_ENTRY_RSVD: 0x7a,
  /** Invalid SSPTPTR (dmar.c 0x7B). */
  SS_PTPTR_INV: 0x7b,
  /** First-stage input address not canonical (SNG.1, qemu VTD_FR_FS_NON_CANONICAL). */
  FS_NON_CANONICAL: 0x80,
  /** User request to a supervisor page (qemu VTD_FR_FS_PAGING_ENTRY_US). */
  FS_US: 0x81,
  /** Execute request to an XD page (dmar.c 0x82). */
  FS_XD: 0x82,
  /** Input address beyond the second stage's AW / the hardware maximum (dmar.c 0x83). */
  ADDR_BEYOND_MAX: 0x83,
  /** Write request without write permission (qemu VTD_FR_SM_WRITE). */
  SM_WRITE: 0x85,
  /** Read request without read permission (dmar.c 0x86). */
  SM_READ: 0x86,
  /** Output address in the interrupt window 0xFEE0_0000–0xFEEF_FFFF (qemu VTD_FR_SM_INTERRUPT_ADDR). */
  SM_INTERRUPT_ADDR: 0x87,
});

export type FaultReason = (typeof FR)[keyof typeof FR];

const NAMES = new Map<number, string>(Object.entries(FR).map(([k, v]) => [v, k]));

export function faultName(reason: number): string {
  return NAMES.get(reason) ?? `0x${reason.toString(16)}`;
}

/** A recorded fault: what the digest covers. The fault-recording issue fills `Vtd.faultRecords`. */
export interface FaultRecord {
  readonly reason: number;
  readonly sid: number;
  /** -1 for a request without PASID. */
  readonly pasid: number;
  /** Faulting input address, hex (page-aligned as FRCD reports it). */
  readonly addr: string;
  readonly write: boolean;
}
