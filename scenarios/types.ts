/**
 * A loaded scenario: what the loader hands to the runner and to displays. Everything here is
 * resolved (sizes in bytes, defaults filled in, per-stack expectations spelled out for both stacks),
 * so a runner never looks at the YAML again.
 */

/** The two uAPI designs a scenario runs on (DESIGN.md: A = `tunnel`, B = `iommufd`). */
export { STACKS, type StackName } from './results.ts';

export type DeviceType = 'vfio-pci' | 'vdpa';

/** A vDPA virtqueue group: the unit vhost-vdpa binds to an address space (ASID). */
export interface VqGroup {
  readonly name: string;
  /** virtqueue indexes in this group */
  readonly vqs: readonly number[];
}

export interface DeviceSpec {
  readonly name: string;
  readonly type: DeviceType;
  /** PASID width in bits; 0 = no PASID capability; `pasid: true` in the file means 20 */
  readonly pasidBits: number;
  readonly ats: boolean;
  readonly pri: boolean;
  /** IOMMU group id; devices with the same id share one group; absent = a group of its own */
  readonly group?: number;
  /** vdpa only; empty for vfio-pci */
  readonly vqGroups: readonly VqGroup[];
  readonly line: number;
}

export interface VmSpec {
  readonly memoryBytes: number;
  readonly vcpus: number;
  /**
   * present (false) only for a VM without a vIOMMU (`viommu: false`): flow 1's shadow-free
   * assignment, where the devices DMA to guest physical addresses and nothing is bound
   */
  readonly viommu?: false;
  /** present only when the file sets it: the PASID width the vIOMMU advertises (ECAP.PSS + 1) */
  readonly pasidBits?: number;
}

/** `rebind … probe`: a DMA the device issues while the VMM propagates the change (see the runner). */
export interface Probe {
  readonly va: number;
  readonly len: number;
  readonly write: boolean;
}

/** The closing task of a `close` step: whose `current` the kernel sees when the fds are released. */
export type CloseFrom = 'vmm' | 'exit' | 'other' | 'kworker';

/** One stack-neutral action. Addresses are guest virtual addresses of `process`, in bytes. */
export type LeafStep =
  | { readonly op: 'assign'; readonly device: string }
  | {
      readonly op: 'guest-map';
      readonly process: string;
      readonly va: number;
      readonly pages: number;
      readonly write: boolean;
      /** a VMA without present PTEs: the guest populates a page on a CPU touch or a page request */
      readonly onDemand: boolean;
    }
  | { readonly op: 'guest-unmap'; readonly process: string; readonly va: number; readonly pages: number }
  | {
      readonly op: 'bind';
      readonly device: string;
      readonly pasid: number;
      /** the process whose page table the guest binds; absent when `root` is given */
      readonly process?: string;
      /**
       * a misbehaving guest: the PASID entry's first-stage root is this guest physical address,
       * with no process behind it (the guest driver writes the entry itself)
       */
      readonly root?: number;
      readonly vqGroup?: string;
    }
  | {
      readonly op: 'rebind';
      readonly device: string;
      readonly pasid: number;
      readonly process: string;
      /** a DMA issued after each syscall the VMM makes to propagate the change; the step's outcome is the worst one */
      readonly probe?: Probe;
    }
  | { readonly op: 'unbind'; readonly device: string; readonly pasid: number }
  | {
      readonly op: 'dma';
      readonly device: string;
      /** null: a request without PASID (`gpa` in the file); `va` is then a guest physical address */
      readonly pasid: number | null;
      readonly va: number;
      readonly len: number;
      readonly write: boolean;
    }
  | { readonly op: 'unassign'; readonly device: string }
  | {
      readonly op: 'close';
      /** fds in closing order: device names and `iommu`; absent = devices in declaration order, then iommu */
      readonly order?: readonly string[];
      readonly from: CloseFrom;
    };

export type LeafOp = LeafStep['op'];

/** What a step is expected to do on one stack. */
export type Outcome =
  | { readonly kind: 'ok' }
  /** a DMA that ends in a fault record */
  | { readonly kind: 'fault' }
  /** a DMA that raised a page request the guest answered, then completed */
  | { readonly kind: 'iopf' }
  /** the uAPI call fails with this errno (a name such as EINVAL) */
  | { readonly kind: 'errno'; readonly errno: string }
  /** teardown leaves these live resources, by leak-tracker kind (sim/leaks.ts snapshot()) */
  | { readonly kind: 'leak'; readonly leaks: Readonly<Record<string, number>> };

export interface Expectation {
  readonly tunnel: Outcome;
  readonly iommufd: Outcome;
  /** mandatory when the file states per-stack expectations */
  readonly reason?: string;
}

/** Where a flat step runs inside a `parallel` block. */
export interface ParallelPlace {
  /** path of the parallel step, e.g. "4" or "5.2.1" */
  readonly block: string;
  /** 1-based branch number */
  readonly branch: number;
}

/** One step to execute, after `repeat` and `parallel` are expanded. */
export interface FlatStep {
  /** 1-based execution path: "3", or "5.3.1" for step 5, iteration or branch 3, inner step 1 */
  readonly path: string;
  /** source line of the step in the file */
  readonly line: number;
  /** 0 outside parallel blocks; branch k of a block runs on vCPU k − 1 */
  readonly vcpu: number;
  readonly parallel?: ParallelPlace;
  readonly step: LeafStep;
  readonly expect: Expectation;
}

/** The source structure, for display: `repeat` bodies appear once, with `*` for the iteration. */
export type StepNode =
  | { readonly kind: 'leaf'; readonly path: string; readonly line: number; readonly step: LeafStep; readonly expect: Expectation }
  | { readonly kind: 'repeat'; readonly path: string; readonly line: number; readonly times: number; readonly body: readonly StepNode[] }
  | { readonly kind: 'parallel'; readonly path: string; readonly line: number; readonly branches: readonly (readonly StepNode[])[] };

export interface LoadedScenario {
  readonly name: string;
  readonly description: string;
  /** the file it came from, as given to the loader */
  readonly file: string;
  readonly vm: VmSpec;
  readonly devices: readonly DeviceSpec[];
  readonly tree: readonly StepNode[];
  readonly flat: readonly FlatStep[];
}

/** A problem in a scenario file, as data: printed as `file:line path – message`. */
export interface ScenarioIssue {
  readonly file: string;
  /** 1-based; 0 when no line applies (e.g. an unreadable file) */
  readonly line: number;
  /** key path in the file with 1-based list indexes ("steps.3.len"), or a step path ("step 5.3.1"); may be empty */
  readonly path: string;
  readonly message: string;
}

export type LoadResult =
  | { readonly ok: true; readonly scenario: LoadedScenario; readonly warnings: readonly ScenarioIssue[] }
  | { readonly ok: false; readonly errors: readonly ScenarioIssue[]; readonly warnings: readonly ScenarioIssue[] };
