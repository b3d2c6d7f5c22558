/**
 * What a run produces: the JSON of `ioasid-sim run --json`, and what the reports read. Types only
 * (and the list of numeric keys totals sum): the runner fills these from the engine's recordings;
 * the renderers compute nothing the runner did not record.
 */
import { flatTraceJson, type FlatTrace, type PrimitiveKind, type ProvenanceKind, type SpanJson } from '../sim/index.ts';

export type StackName = 'tunnel' | 'iommufd';
export const STACKS: readonly StackName[] = ['tunnel', 'iommufd'];

export type InvalidateOption = 'qemu' | 'batched';

/** One ioctl userspace issued, and what it moved across the user boundary. */
export interface IoctlStat {
  name: string;
  /** the file type the number was resolved against */
  file: string;
  ret: number;
  copiesFromUser: number;
  bytesFromUser: number;
  copiesToUser: number;
  bytesToUser: number;
}

/** `{layer: {kind: {count, bytes}}}`: what re-pricing needs */
export type PrimitiveCounts = Record<string, Partial<Record<PrimitiveKind, { count: number; bytes: number }>>>;

/** The numeric metrics of a step (and of a stack's totals). */
export interface StepNumbers {
  syscalls: number;
  ioctls: number;
  copiesFromUser: number;
  bytesFromUser: number;
  copiesToUser: number;
  bytesToUser: number;
  /** priced at the run's profile (default unless --costs), plus recorded contention */
  latencyNs: number;
  /** contention recorded by the scheduler, at the clock prices (re-simulated, not re-priced) */
  contentionNs: number;
  frames: number;
  maxDepth: number;
  layerCrossings: number;
  /** −1 when the step made no uaccess */
  userPtrDepth: number;
  typeErasureHops: number;
  /** VM exits to userspace (the VMM trapping the vIOMMU) */
  vmExits: number;
}

export const NUMERIC_KEYS: readonly (keyof StepNumbers)[] = [
  'syscalls',
  'ioctls',
  'copiesFromUser',
  'bytesFromUser',
  'copiesToUser',
  'bytesToUser',
  'latencyNs',
  'contentionNs',
  'frames',
  'maxDepth',
  'layerCrossings',
  'userPtrDepth',
  'typeErasureHops',
  'vmExits',
];

export interface StepResult extends StepNumbers {
  /** `5.3.1` for repeat/parallel expansions */
  path: string;
  op: string;
  /** the scenario file's line of the step */
  line: number;
  /** the simulated thread it ran on (a vCPU, the VMM, a kernel worker) */
  thread: string;
  ok: boolean;
  /** what the scenario expected on this stack, and what happened */
  expected?: string;
  outcome?: string;
  error?: string;
  ioctlList: IoctlStat[];
  layers: string[];
  /** per layer, priced latency at the run's profile */
  latencyByLayer: Record<string, number>;
  primitives: PrimitiveCounts;
  provenance: ProvenanceKind;
  /** per IOMMU operation, the subsystems (layers) whose ioctl handlers implement it */
  handlers: Record<string, string[]>;
  /** per struct, the places that validated it */
  validations: Record<string, string[]>;
  locks: Record<string, { taken: number; heldNs: number; waitNs: number }>;
  /** hardware and other counters: qiDescriptors, qiWaits, iotlbHits, walkRefs, faults, prqEntries … */
  counters: Record<string, number>;
  /** the call tree as trees (hand-built results); read either form through `stepTrace` */
  trace?: SpanJson[];
  /** the call tree as the runner keeps it when asked (keepTrace): flat, built into trees on reading */
  flatTrace?: FlatTrace;
}

const builtTraces = new WeakMap<FlatTrace, SpanJson[]>();

/** Whether a step kept a call tree with at least one span (without building the tree). */
export function hasTrace(step: StepResult): boolean {
  return step.trace ? step.trace.length > 0 : (step.flatTrace?.fn.length ?? 0) > 0;
}

/** A step's call tree, when one was kept (built from the flat form once, then cached). */
export function stepTrace(step: StepResult): SpanJson[] | undefined {
  if (step.trace) return step.trace;
  if (!step.flatTrace) return undefined;
  let t = builtTraces.get(step.flatTrace);
  if (!t) builtTraces.set(step.flatTrace, (t = flatTraceJson(step.flatTrace)));
  return t;
}

export interface StackResult {
  ok: boolean;
  error?: string;
  steps: StepResult[];
  totals: StepNumbers;
  hwDigest: string;
  /** a fingerprint of where the host placed its tables and guest RAM: moves with the seed, means nothing */
  hostLayout: string;
  /** live objects, pins, fds and hardware entries at the end, by kind (expected empty) */
  leaks: Record<string, number>;
}

export interface RunResult {
  scenario: string;
  description: string;
  seed: number;
  invalidate: InvalidateOption;
  /** the cost profile latencies are priced at */
  profile: string;
  stacks: Partial<Record<StackName, StackResult>>;
  /** present when both stacks ran: the hardware oracle */
  digestsEqual?: boolean;
  /**
   * present when both stacks ran: the scenario states a per-stack difference (with its reason), so
   * the final hardware state may differ; an unstated difference fails the run
   */
  digestDifferenceStated?: boolean;
}
