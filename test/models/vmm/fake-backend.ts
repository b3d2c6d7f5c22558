import { Sim } from '../../../sim/index.ts';
import type { Task } from '../../../models/kernel/process.ts';
import {
  DEFAULT_BACKEND_OPTIONS,
  failErrno,
  groupInvalidations,
  ok,
  type BackendInit,
  type BackendOptions,
  type BindFlags,
  type HostFault,
  type IntentResult,
  type InvRange,
  type PageResponseCode,
  type VmmBackend,
} from '../../../models/vmm/backend.ts';
import { DeviceLifecycle, DeviceLifecycles } from '../../../models/vmm/lifecycle.ts';

export type Intent =
  | { op: 'assign'; device: string }
  | { op: 'bind'; device: string; pasid: number; root: number; flags: BindFlags }
  | { op: 'replace'; device: string; pasid: number; root: number; flags: BindFlags }
  | { op: 'unbind'; device: string; pasid: number }
  | { op: 'invalidate'; device: string; pasid: number; ranges: readonly InvRange[]; ioctls: InvRange[][] }
  | { op: 'pageResponse'; device: string; pasid: number; group: number; code: PageResponseCode }
  | { op: 'unassign'; device: string }
  | { op: 'close'; order: readonly string[] };

/**
 * A backend that issues no syscall: it records each intent (and, for invalidations, how the
 * option groups the entries into ioctls) and refuses illegal ones through the shared lifecycle.
 */
export class FakeBackend implements VmmBackend {
  readonly design = 'iommufd' as const;
  readonly options: BackendOptions;
  readonly intents: Intent[] = [];
  /** host page requests readFaults will return (then empties) */
  readonly faults: HostFault[] = [];
  readonly lifecycles: DeviceLifecycles;
  /** called as each intent arrives, before it is recorded: tests look at VMM/guest state then */
  onIntent: ((i: Intent) => void) | null = null;
  /** the next intent with this op fails with this errno */
  failNext: { op: Intent['op']; errno: number } | null = null;

  /** a sim of its own: the fake records intents, not primitives */
  private readonly sim = new Sim();

  constructor(readonly init: Pick<BackendInit, 'devices'> & { options?: BackendOptions }) {
    this.options = init.options ?? DEFAULT_BACKEND_OPTIONS;
    this.lifecycles = new DeviceLifecycles(init.devices);
  }

  private life(device: string): DeviceLifecycle {
    return this.lifecycles.get(device)!;
  }

  private record(i: Intent): IntentResult | null {
    this.onIntent?.(i);
    if (this.failNext && this.failNext.op === i.op) {
      const e = this.failNext.errno;
      this.failNext = null;
      return failErrno(e, `FAKE_${i.op.toUpperCase()}`);
    }
    this.intents.push(i);
    return null;
  }

  assign(device: string): IntentResult {
    const bad = this.lifecycles.check(device, { op: 'assign' });
    if (bad) return bad;
    const f = this.record({ op: 'assign', device });
    if (f) return f;
    this.life(device).commit({ op: 'assign' });
    return ok();
  }

  bindPasid(device: string, pasid: number, root: number, flags: BindFlags): IntentResult {
    const bad = this.lifecycles.check(device, { op: 'bind', pasid, root });
    if (bad) return bad;
    const f = this.record({ op: 'bind', device, pasid, root, flags });
    if (f) return f;
    this.life(device).commit({ op: 'bind', pasid, root });
    return ok();
  }

  replacePasid(device: string, pasid: number, root: number, flags: BindFlags): IntentResult {
    const bad = this.lifecycles.check(device, { op: 'replace', pasid, root });
    if (bad) return bad;
    const f = this.record({ op: 'replace', device, pasid, root, flags });
    if (f) return f;
    this.life(device).commit({ op: 'replace', pasid, root });
    return ok();
  }

  unbindPasid(device: string, pasid: number): IntentResult {
    const bad = this.lifecycles.check(device, { op: 'unbind', pasid });
    if (bad) return bad;
    const f = this.record({ op: 'unbind', device, pasid });
    if (f) return f;
    this.life(device).commit({ op: 'unbind', pasid });
    return ok();
  }

  invalidate(device: string, pasid: number, ranges: readonly InvRange[]): IntentResult {
    const l = this.lifecycles.lookup(device);
    const bad = l instanceof DeviceLifecycle ? l.checkInvalidate(pasid) : l;
    if (bad) return bad;
    return this.record({ op: 'invalidate', device, pasid, ranges, ioctls: groupInvalidations(ranges, this.options.invalidation, this.sim) }) ?? ok();
  }

  readFaults(): IntentResult<readonly HostFault[]> {
    return ok(this.faults.splice(0));
  }

  pageResponse(device: string, pasid: number, group: number, code: PageResponseCode): IntentResult {
    const l = this.lifecycles.lookup(device);
    const bad = l instanceof DeviceLifecycle ? l.checkPageResponse(pasid) : l;
    if (bad) return bad;
    return this.record({ op: 'pageResponse', device, pasid, group, code }) ?? ok();
  }

  unassign(device: string): IntentResult {
    const bad = this.lifecycles.check(device, { op: 'unassign' });
    if (bad) return bad;
    const f = this.record({ op: 'unassign', device });
    if (f) return f;
    this.life(device).commit({ op: 'unassign' });
    return ok();
  }

  close(fdOrder: readonly string[], _fromTask: Task): IntentResult {
    this.record({ op: 'close', order: fdOrder });
    for (const n of this.lifecycles.names()) this.life(n).commit({ op: 'close' });
    return ok();
  }

  openFds(): readonly string[] {
    return [];
  }

  fdDevices(): readonly string[] {
    return [];
  }

  /** the recorded intents of one kind */
  of<K extends Intent['op']>(op: K): Extract<Intent, { op: K }>[] {
    return this.intents.filter((i): i is Extract<Intent, { op: K }> => i.op === op);
  }
}
