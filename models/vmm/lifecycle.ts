/**
 * The per-device lifecycle both design backends keep (DESIGN "Each backend keeps its per-device
 * lifecycle in an xstate machine and refuses an intent that is illegal in the current state").
 *
 *   unassigned ──ASSIGN──▶ assigned ──UNASSIGN──▶ unassigned
 *        │                  │  BIND / REPLACE / UNBIND (bound PASIDs in context)
 *        └──CLOSE──▶ closed ◀──CLOSE──┘            (closed is final)
 *
 * A backend calls `check(intent)` before issuing any syscall and `commit(intent)` after the
 * syscalls succeeded, so a failed ioctl leaves the state as it was. Control plane only: the
 * data-plane checks (`checkInvalidate`, `checkPageResponse`) read the snapshot and send nothing
 * (ts-ecosystem §4: an actor handles ~0.3 M events/s, and invalidations run to millions).
 */
import { assign, createActor, setup, type Actor } from 'xstate';
import { illegal, type DeviceKind, type IntentFailure } from './backend.ts';

export type LifecycleState = 'unassigned' | 'assigned' | 'closed';

export type LifecycleIntent =
  | { readonly op: 'assign' }
  | { readonly op: 'bind'; readonly pasid: number; readonly root: number }
  | { readonly op: 'replace'; readonly pasid: number; readonly root: number }
  | { readonly op: 'unbind'; readonly pasid: number }
  | { readonly op: 'unassign' }
  | { readonly op: 'close' };

type LifecycleEvent =
  | { type: 'ASSIGN' }
  | { type: 'BIND'; pasid: number; root: number }
  | { type: 'REPLACE'; pasid: number; root: number }
  | { type: 'UNBIND'; pasid: number }
  | { type: 'UNASSIGN' }
  | { type: 'CLOSE' };

interface LifecycleContext {
  readonly device: string;
  readonly kind: DeviceKind;
  /** bound PASID → first-stage root GPA */
  readonly bound: ReadonlyMap<number, number>;
}

const withPasid = (m: ReadonlyMap<number, number>, pasid: number, root: number): Map<number, number> => new Map(m).set(pasid, root);
const withoutPasid = (m: ReadonlyMap<number, number>, pasid: number): Map<number, number> => {
  const n = new Map(m);
  n.delete(pasid);
  return n;
};

export const deviceLifecycleMachine = setup({
  types: {
    context: {} as LifecycleContext,
    events: {} as LifecycleEvent,
    input: {} as { device: string; kind: DeviceKind },
  },
  guards: {
    pasidFree: ({ context, event }) => 'pasid' in event && !context.bound.has(event.pasid),
    pasidBound: ({ context, event }) => 'pasid' in event && context.bound.has(event.pasid),
  },
  actions: {
    setBinding: assign({
      bound: ({ context, event }) => ('root' in event ? withPasid(context.bound, event.pasid, event.root) : context.bound),
    }),
    dropBinding: assign({
      bound: ({ context, event }) => ('pasid' in event ? withoutPasid(context.bound, event.pasid) : context.bound),
    }),
    dropAll: assign({ bound: () => new Map<number, number>() }),
  },
}).createMachine({
  id: 'vmm-device',
  initial: 'unassigned',
  context: ({ input }) => ({ device: input.device, kind: input.kind, bound: new Map() }),
  states: {
    unassigned: {
      on: { ASSIGN: 'assigned', CLOSE: 'closed' },
    },
    assigned: {
      on: {
        BIND: { guard: 'pasidFree', actions: 'setBinding' },
        REPLACE: { guard: 'pasidBound', actions: 'setBinding' },
        UNBIND: { guard: 'pasidBound', actions: 'dropBinding' },
        // unassign with live bindings is legal: the backend unwinds them (DESIGN "unassign")
        UNASSIGN: { target: 'unassigned', actions: 'dropAll' },
        CLOSE: { target: 'closed', actions: 'dropAll' },
      },
    },
    closed: { type: 'final' },
  },
});

const EVENT_OF: Record<LifecycleIntent['op'], LifecycleEvent['type']> = {
  assign: 'ASSIGN',
  bind: 'BIND',
  replace: 'REPLACE',
  unbind: 'UNBIND',
  unassign: 'UNASSIGN',
  close: 'CLOSE',
};

function toEvent(i: LifecycleIntent): LifecycleEvent {
  switch (i.op) {
    case 'bind':
    case 'replace':
      return { type: EVENT_OF[i.op] as 'BIND' | 'REPLACE', pasid: i.pasid, root: i.root };
    case 'unbind':
      return { type: 'UNBIND', pasid: i.pasid };
    default:
      return { type: EVENT_OF[i.op] } as LifecycleEvent;
  }
}

/** One device's lifecycle actor, with the refusals worded for reports. */
export class DeviceLifecycle {
  private readonly actor: Actor<typeof deviceLifecycleMachine>;
  /** an error inside the machine (a model bug): surfaced by the next commit */
  private fault: unknown = null;

  constructor(
    readonly device: string,
    readonly kind: DeviceKind,
  ) {
    this.actor = createActor(deviceLifecycleMachine, { input: { device, kind } });
    // ts-ecosystem §4: errors inside actions never reach send(); observe them or xstate rethrows later
    this.actor.subscribe({ error: (e) => (this.fault = e) });
    this.actor.start();
  }

  get state(): LifecycleState {
    return this.actor.getSnapshot().value as LifecycleState;
  }

  /** bound PASID → first-stage root GPA */
  get bound(): ReadonlyMap<number, number> {
    return this.actor.getSnapshot().context.bound;
  }

  /** null when the intent is legal now, else the refusal. */
  check(intent: LifecycleIntent): IntentFailure | null {
    const snap = this.actor.getSnapshot();
    if (snap.can(toEvent(intent))) return null;
    const state = this.state;
    const what = 'pasid' in intent ? `${intent.op} PASID ${intent.pasid}` : intent.op;
    let why = `cannot ${what} in state ${state}`;
    if (state === 'assigned' && 'pasid' in intent) {
      why += intent.op === 'bind' ? `: PASID ${intent.pasid} is already bound` : `: PASID ${intent.pasid} is not bound`;
    }
    return illegal(this.device, state, `device ${this.device}: ${why}`);
  }

  /** Records an intent that succeeded. Throws on an intent `check` would refuse (a backend bug). */
  commit(intent: LifecycleIntent): void {
    const before = this.actor.getSnapshot();
    this.actor.send(toEvent(intent));
    if (this.fault !== null) throw this.fault instanceof Error ? this.fault : new Error(String(this.fault));
    // xstate keeps the very snapshot when no transition takes the event: the backend already
    // asked `check`, so a second `can` per intent would only look for its own bugs
    if (this.actor.getSnapshot() === before) throw new Error(`lifecycle commit of a refused intent: ${this.check(intent)?.message ?? intent.op}`);
  }

  /** Data plane: an invalidation needs the device assigned and the PASID bound (no event sent). */
  checkInvalidate(pasid: number): IntentFailure | null {
    const state = this.state;
    if (state !== 'assigned') return illegal(this.device, state, `device ${this.device}: cannot invalidate PASID ${pasid} in state ${state}`);
    if (!this.bound.has(pasid)) {
      return illegal(this.device, state, `device ${this.device}: cannot invalidate PASID ${pasid} in state assigned: PASID ${pasid} is not bound`);
    }
    return null;
  }

  /** A page response needs the device assigned (its PASID may have been unbound since the request). */
  checkPageResponse(pasid: number): IntentFailure | null {
    const state = this.state;
    return state === 'assigned' ? null : illegal(this.device, state, `device ${this.device}: cannot answer a page request on PASID ${pasid} in state ${state}`);
  }

  stop(): void {
    this.actor.stop();
  }
}

/** The lifecycles of a backend's devices, by name. */
export class DeviceLifecycles {
  private readonly byName = new Map<string, DeviceLifecycle>();

  constructor(devices: readonly { readonly name: string; readonly kind: DeviceKind }[]) {
    for (const d of devices) {
      if (this.byName.has(d.name)) throw new Error(`device ${d.name} listed twice`);
      this.byName.set(d.name, new DeviceLifecycle(d.name, d.kind));
    }
  }

  get(device: string): DeviceLifecycle | undefined {
    return this.byName.get(device);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** The lifecycle, or the refusal for a device the VMM was not given. */
  lookup(device: string): DeviceLifecycle | IntentFailure {
    return this.byName.get(device) ?? illegal(device, 'unknown', `device ${device}: no such device`);
  }

  /** check() with the unknown-device case folded in. */
  check(device: string, intent: LifecycleIntent): IntentFailure | null {
    const l = this.lookup(device);
    return l instanceof DeviceLifecycle ? l.check(intent) : l;
  }
}
