import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { segments } from '../../scenarios/expand.ts';
import { scenarioOrThrow } from '../../scenarios/loader.ts';
import { findScenario, loadScenario, suiteFiles, suiteNames } from '../../scenarios/suite.ts';

/** the scenarios the suite grew by (the list) */
const GROWN = [
  'invalidation-storm',
  'concurrent-invalidations',
  'rebind-window',
  'pasids-per-device',
  'devices-per-process-groups',
  'vdpa-cvq-pasid',
  'hot-unplug-live-bindings',
  'exit-close-devices-first',
  'exit-close-iommu-first',
  'close-from-other-process',
  'bad-first-stage-root',
  'pasid-beyond-width',
  'no-viommu-baseline',
  'scale-devices-pasids',
];

const load = (name: string) => {
  const r = loadScenario(name);
  expect(r.warnings).toEqual([]);
  return scenarioOrThrow(r);
};

describe('the built-in suite', () => {
  it('holds at least 14 scenarios, the first five among them, each file named after its scenario', () => {
    expect(suiteNames().length).toBeGreaterThanOrEqual(14);
    expect(suiteNames()).toEqual(expect.arrayContaining(['iopf-round-trip', 'two-devices-one-process', 'vdpa-data-vq-pasid', 'vsva-bind-dma', 'vsva-unmap-invalidate']));
    expect(suiteNames()).toEqual(expect.arrayContaining(GROWN));
    for (const f of suiteFiles()) expect(load(f).name).toBe(basename(f, '.yaml'));
  });

  it.each(suiteNames())('%s: a per-stack difference is stated with a reason that cites the reference', (name) => {
    const stated = load(name).flat.filter((f) => f.expect.reason !== undefined);
    const differs = stated.filter((f) => JSON.stringify(f.expect.tunnel) !== JSON.stringify(f.expect.iommufd));
    if (!stated.length) return;
    expect(stated.some((f) => /\.md|§\(b\)|V8-|IOASID V4|JG-|FD-DOC/.test(f.expect.reason!))).toBe(true);
    for (const f of differs) expect(f.expect.reason!.length, `step ${f.path}`).toBeGreaterThan(20);
  });

  it.each(suiteNames())('%s says what it shows and which flow of §(b) it comes from', (name) => {
    const s = load(name);
    const [summary, ...rest] = s.description.split('\n');
    expect(summary!.length).toBeLessThanOrEqual(36);
    expect(rest.join(' ')).toMatch(/requirements-and-peers\.md §\(b\) flow \d+/);
  });

  it('vsva-bind-dma: one ATS device, a repeat of 4 expanded in place', () => {
    const s = load('vsva-bind-dma');
    expect(s.vm).toEqual({ memoryBytes: 128 * 2 ** 20, vcpus: 2 });
    expect(s.devices).toEqual([{ name: 'dsa0', type: 'vfio-pci', pasidBits: 20, ats: true, pri: false, vqGroups: [], line: 16 }]);
    expect(s.flat.map((f) => f.path)).toEqual(['1', '2', '3', '4', '5', '6.1.1', '6.2.1', '6.3.1', '6.4.1', '7', '8', '9']);
    expect(s.flat[1]!.step).toEqual({ op: 'guest-map', process: 'p1', va: 0x7f0000000000, pages: 16, write: true, onDemand: false });
    expect(s.flat[3]!.step).toEqual({ op: 'dma', device: 'dsa0', pasid: 5, va: 0x7f0000001000, len: 4096, write: true });
    expect(new Set(s.flat.slice(5, 9).map((f) => f.line))).toEqual(new Set([26]));
    expect(s.flat[9]!.expect).toEqual({ tunnel: { kind: 'fault' }, iommufd: { kind: 'fault' } });
  });

  it('vsva-unmap-invalidate: the DMAs to the unmapped pages fault, their neighbours do not', () => {
    const s = load('vsva-unmap-invalidate');
    expect(s.flat).toHaveLength(14);
    const outcomes = s.flat.filter((f) => f.step.op === 'dma').map((f) => f.expect.tunnel.kind);
    expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ok', 'fault', 'fault', 'ok', 'ok']);
    expect(s.flat[7]!.step).toEqual({ op: 'guest-unmap', process: 'p1', va: 0x7f0000002000, pages: 2 });
  });

  it('iopf-round-trip: a PRI device, an on-demand mapping, a page request each era forwards to the guest', () => {
    const s = load('iopf-round-trip');
    expect(s.devices[0]).toMatchObject({ name: 'acc0', ats: true, pri: true });
    expect(s.flat[1]!.step).toMatchObject({ op: 'guest-map', onDemand: true });
    expect(s.flat[3]!.expect).toEqual({ tunnel: { kind: 'iopf' }, iommufd: { kind: 'iopf' } });
    expect(s.flat[4]!.expect).toEqual({ tunnel: { kind: 'ok' }, iommufd: { kind: 'ok' } });
    expect(s.flat).toHaveLength(8);
  });

  it('two-devices-one-process: two branches of 8 DMAs, one per vCPU', () => {
    const s = load('two-devices-one-process');
    expect(s.devices.map((d) => d.name)).toEqual(['dsa0', 'dsa1']);
    expect(s.flat).toHaveLength(29);
    const segs = segments(s.flat);
    expect(segs.map((g) => g.kind)).toEqual(['serial', 'parallel', 'serial']);
    const par = segs[1]!;
    if (par.kind !== 'parallel') throw new Error('expected a parallel block');
    expect(par.block).toBe('6');
    expect(par.branches.map((b) => b.map((f) => f.path))).toEqual([
      ['6.1.1.1.1', '6.1.1.2.1', '6.1.1.3.1', '6.1.1.4.1', '6.1.1.5.1', '6.1.1.6.1', '6.1.1.7.1', '6.1.1.8.1'],
      ['6.2.1.1.1', '6.2.1.2.1', '6.2.1.3.1', '6.2.1.4.1', '6.2.1.5.1', '6.2.1.6.1', '6.2.1.7.1', '6.2.1.8.1'],
    ]);
    expect(par.branches.map((b) => [...new Set(b.map((f) => f.vcpu))])).toEqual([[0], [1]]);
    expect(par.branches.map((b) => [...new Set(b.map((f) => (f.step.op === 'dma' ? f.step.device : '')))])).toEqual([['dsa0'], ['dsa1']]);
  });

  it('vdpa-data-vq-pasid: a vdpa device with vq groups, its data group bound to a PASID', () => {
    const s = load('vdpa-data-vq-pasid');
    expect(s.devices[1]).toEqual({
      name: 'vnet0',
      type: 'vdpa',
      pasidBits: 20,
      ats: true,
      pri: false,
      vqGroups: [
        { name: 'data', vqs: [0, 1] },
        { name: 'cvq', vqs: [2] },
      ],
      line: 17,
    });
    expect(s.flat[3]!.step).toEqual({ op: 'bind', device: 'vnet0', pasid: 3, process: 'dpdk', vqGroup: 'data' });
    expect(s.flat.map((f) => f.path).slice(4, 12)).toEqual(['5.1.1', '5.1.2', '5.2.1', '5.2.2', '5.3.1', '5.3.2', '5.4.1', '5.4.2']);
    expect(s.flat).toHaveLength(15);
  });

  it('invalidation-storm: at least 50 small guest unmaps, each a flush of its own, and a last DMA that faults', () => {
    const s = load('invalidation-storm');
    const unmaps = s.flat.filter((f) => f.step.op === 'guest-unmap');
    expect(unmaps.length).toBeGreaterThanOrEqual(50);
    for (const u of unmaps) expect(u.step).toMatchObject({ pages: 1 });
    // a DMA warms the translation before every unmap of the storm
    const ops = s.flat.map((f) => f.step.op);
    for (const [i, op] of ops.entries()) if (op === 'guest-unmap') expect(ops[i - 1]).toBe('dma');
    const dmas = s.flat.filter((f) => f.step.op === 'dma');
    expect(dmas.filter((f) => f.expect.tunnel.kind === 'fault')).toHaveLength(1);
    expect(s.devices[0]).toMatchObject({ ats: true });
  });

  it('concurrent-invalidations: a 4-branch parallel block on 4 vCPUs, each branch flushing its own PASID', () => {
    const s = load('concurrent-invalidations');
    expect(s.vm.vcpus).toBe(4);
    const par = segments(s.flat).filter((g) => g.kind === 'parallel');
    expect(par).toHaveLength(1);
    const block = par[0]!;
    if (block.kind !== 'parallel') throw new Error('expected a parallel block');
    expect(block.branches).toHaveLength(4);
    expect(block.branches.map((b) => [...new Set(b.map((f) => f.vcpu))])).toEqual([[0], [1], [2], [3]]);
    // each branch unmaps its own process's pages, page by page: each unmap is a flush
    const procs = block.branches.map((b) => [...new Set(b.map((f) => (f.step.op === 'guest-unmap' ? f.step.process : f.step.op)))]);
    expect(procs).toEqual([['p0'], ['p1'], ['p2'], ['p3']]);
    for (const b of block.branches) expect(b.length).toBeGreaterThanOrEqual(8);
    // the TLBs were filled before the block, for every PASID
    const before = s.flat.slice(0, s.flat.indexOf(block.branches[0]![0]!));
    expect(new Set(before.flatMap((f) => (f.step.op === 'dma' ? [f.step.pasid] : [])))).toEqual(new Set([1, 2, 3, 4]));
    // one device: on tunnel one container, so one iommu->lock
    expect(s.devices).toHaveLength(1);
    expect(s.description).toMatch(/iommu->lock/);
    expect(s.description).toMatch(/re-simulated/);
  });

  it('rebind-window: a probed rebind that faults on tunnel only, with its reason', () => {
    const s = load('rebind-window');
    const probed = s.flat.filter((f) => f.step.op === 'rebind' && f.step.probe);
    expect(probed).toHaveLength(1);
    expect(probed[0]!.expect).toMatchObject({ tunnel: { kind: 'fault' }, iommufd: { kind: 'ok' } });
    expect(probed[0]!.expect.reason).toMatch(/flow 18/);
    expect(s.description).toMatch(/§\(b\) flow 18/);
  });

  it('pasids-per-device: one device, three PASIDs of three processes', () => {
    const s = load('pasids-per-device');
    const binds = s.flat.filter((f) => f.step.op === 'bind');
    expect(new Set(binds.map((f) => (f.step.op === 'bind' ? f.step.device : '')))).toEqual(new Set(['dsa0']));
    expect(binds.map((f) => (f.step.op === 'bind' ? [f.step.pasid, f.step.process] : []))).toEqual([
      [1, 'p1'],
      [2, 'p2'],
      [3, 'p3'],
    ]);
  });

  it('devices-per-process-groups: one process on three devices, two in one IOMMU group and one alone', () => {
    const s = load('devices-per-process-groups');
    expect(s.devices.map((d) => [d.name, d.group])).toEqual([
      ['dsa0', 1],
      ['dsa1', 1],
      ['dsa2', undefined],
    ]);
    const binds = s.flat.filter((f) => f.step.op === 'bind');
    expect(binds.map((f) => (f.step.op === 'bind' ? [f.step.device, f.step.process] : []))).toEqual([
      ['dsa2', 'p1'],
      ['dsa0', 'p1'],
      ['dsa1', 'p1'],
    ]);
    // the second bind in group 1 is refused on both stacks, with each design's errno and a reason
    expect(binds[2]!.expect).toMatchObject({ tunnel: { kind: 'errno', errno: 'EBUSY' }, iommufd: { kind: 'errno', errno: 'EINVAL' } });
    expect(binds[2]!.expect.reason).toMatch(/per IOMMU group/);
    // v8's rollback over the group: group 1's DMAs fault on tunnel until the unmap, dsa2's do not
    const dmas = s.flat.filter((f) => f.step.op === 'dma');
    for (const f of dmas.slice(0, 5)) {
      const dev = f.step.op === 'dma' ? f.step.device : '';
      expect([f.expect.tunnel.kind, f.expect.iommufd.kind], `${f.path} ${dev}`).toEqual(dev === 'dsa2' ? ['ok', 'ok'] : ['fault', 'ok']);
    }
  });

  it('vdpa-cvq-pasid: the cvq group on its own PASID, beside a VFIO device on the same guest', () => {
    const s = load('vdpa-cvq-pasid');
    expect(s.devices.map((d) => d.type).sort()).toEqual(['vdpa', 'vfio-pci']);
    const groups = s.flat.flatMap((f) => (f.step.op === 'bind' && f.step.vqGroup ? [[f.step.vqGroup, f.step.pasid]] : []));
    expect(groups).toEqual([
      ['data', 3],
      ['cvq', 4],
    ]);
    expect(s.flat.some((f) => f.step.op === 'bind' && f.step.device === 'nic0')).toBe(true);
  });

  it('hot-unplug-live-bindings: a device is unassigned with two PASIDs still bound, the other goes on', () => {
    const s = load('hot-unplug-live-bindings');
    const at = s.flat.findIndex((f) => f.step.op === 'unassign');
    const before = s.flat.slice(0, at);
    const live = before.filter((f) => f.step.op === 'bind' && f.step.device === 'dsa0').length - before.filter((f) => f.step.op === 'unbind' && f.step.device === 'dsa0').length;
    expect(live).toBe(2);
    expect(s.flat.slice(at + 1).some((f) => f.step.op === 'dma' && f.step.device === 'dsa1' && f.expect.tunnel.kind === 'ok')).toBe(true);
  });

  it.each([
    ['exit-close-devices-first', ['dsa0', 'dsa1', 'iommu'], 'exit'],
    ['exit-close-iommu-first', ['iommu', 'dsa0', 'dsa1'], 'exit'],
    ['close-from-other-process', ['dsa0', 'dsa1', 'iommu'], 'other'],
  ])('%s: closes %j from %s with bindings live, and states v8’s current->mm behaviour per stack', (name, order, from) => {
    const s = load(name);
    const close = s.flat.at(-1)!;
    expect(close.step).toEqual({ op: 'close', order, from });
    expect(s.flat.filter((f) => f.step.op === 'unbind')).toHaveLength(0);
    expect(close.expect.reason).toMatch(/current->mm/);
    expect(close.expect.reason).toMatch(/tunnel-uapi\.md/);
  });

  it('bad-first-stage-root: v8 refuses the root above max_addr at bind, the nested walk faults the rest, and the leak is stated', () => {
    const s = load('bad-first-stage-root');
    const roots = s.flat.filter((f) => f.step.op === 'bind' && f.step.root !== undefined);
    expect(roots.map((f) => (f.step.op === 'bind' ? f.step.root : 0))).toEqual([s.vm.memoryBytes, 0x100000000]);
    expect(roots[0]!.expect).toMatchObject({ tunnel: { kind: 'ok' }, iommufd: { kind: 'ok' } });
    expect(roots[1]!.expect).toMatchObject({ tunnel: { kind: 'errno', errno: 'EINVAL' }, iommufd: { kind: 'ok' } });
    const rogue = s.flat.filter((f) => f.step.op === 'dma' && (f.step.pasid === 10 || f.step.pasid === 11));
    expect(rogue.map((f) => [f.expect.tunnel.kind, f.expect.iommufd.kind])).toEqual([
      ['fault', 'fault'],
      ['fault', 'fault'],
    ]);
    expect(s.flat.at(-1)!.expect).toMatchObject({ tunnel: { kind: 'leak', leaks: { object: 1 } }, iommufd: { kind: 'ok' } });
  });

  it('pasid-beyond-width: a bind past the device’s width is refused on both; v8 refuses the narrow device outright', () => {
    const s = load('pasid-beyond-width');
    const nic8 = s.devices.find((d) => d.name === 'nic8')!;
    const beyond = s.flat.filter((f) => f.step.op === 'bind' && f.step.device === 'nic8' && f.step.pasid >= 2 ** nic8.pasidBits);
    expect(beyond).toHaveLength(1);
    expect(beyond[0]!.expect).toEqual({ tunnel: { kind: 'errno', errno: 'EINVAL' }, iommufd: { kind: 'errno', errno: 'EINVAL' } });
    const within = s.flat.find((f) => f.step.op === 'bind' && f.step.device === 'nic8' && f.step.pasid < 2 ** nic8.pasidBits)!;
    expect(within.expect).toMatchObject({ tunnel: { kind: 'errno', errno: 'EINVAL' }, iommufd: { kind: 'ok' } });
    expect(within.expect.reason).toMatch(/20-bit/);
  });

  it('no-viommu-baseline: a VM without vIOMMU, DMAs without PASID, nothing bound', () => {
    const s = load('no-viommu-baseline');
    expect(s.vm.viommu).toBe(false);
    expect(s.flat.filter((f) => ['bind', 'rebind', 'unbind'].includes(f.step.op))).toHaveLength(0);
    const dmas = s.flat.filter((f) => f.step.op === 'dma');
    expect(dmas.length).toBeGreaterThan(0);
    for (const f of dmas) expect(f.step).toMatchObject({ pasid: null });
    expect(s.description).toMatch(/§\(b\) flow 1 /);
  });

  it('scale-devices-pasids: over a hundred devices in groups of their own, hundreds of bindings, little RAM, few DMAs', () => {
    const s = load('scale-devices-pasids');
    expect(s.devices.length).toBeGreaterThanOrEqual(100);
    for (const d of s.devices) expect(d.group).toBeUndefined();
    const binds = s.flat.filter((f) => f.step.op === 'bind');
    expect(binds.length).toBeGreaterThanOrEqual(300);
    expect(new Set(binds.map((f) => (f.step.op === 'bind' ? `${f.step.device}/${f.step.pasid}` : ''))).size).toBe(binds.length);
    expect(s.vm.memoryBytes).toBeLessThanOrEqual(8 * 2 ** 20);
    expect(s.vm.pasidBits).toBe(8);
    expect(s.flat.filter((f) => f.step.op === 'dma').length).toBeLessThanOrEqual(10);
  });

  it('finds a scenario by bare name or by path, and names the known ones otherwise', () => {
    expect(findScenario('vsva-bind-dma')).toMatch(/scenarios\/suite\/vsva-bind-dma\.yaml$/);
    expect(findScenario('no-such')).toBeUndefined();
    const r = loadScenario('no-such');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]!.message).toBe(`no such scenario in the suite (known: ${suiteNames().join(', ')})`);
    expect(loadScenario('vsva-bind-dma').ok && loadScenario('scenarios/suite/vsva-bind-dma.yaml').ok).toBe(true);
  });
});
