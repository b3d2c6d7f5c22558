import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { segments } from '../../scenarios/expand.ts';
import { scenarioOrThrow } from '../../scenarios/loader.ts';
import { findScenario, loadScenario, suiteFiles, suiteNames } from '../../scenarios/suite.ts';

const load = (name: string) => {
  const r = loadScenario(name);
  expect(r.warnings).toEqual([]);
  return scenarioOrThrow(r);
};

describe('the built-in suite', () => {
  it('holds the first five scenarios, each file named after its scenario', () => {
    expect(suiteNames()).toEqual(['iopf-round-trip', 'two-devices-one-process', 'vdpa-data-vq-pasid', 'vsva-bind-dma', 'vsva-unmap-invalidate']);
    for (const f of suiteFiles()) expect(load(f).name).toBe(basename(f, '.yaml'));
  });

  it.each(suiteNames())('%s says what it shows and which flow of §(b) it comes from', (name) => {
    const s = load(name);
    const [summary, ...rest] = s.description.split('\n');
    expect(summary!.length).toBeLessThanOrEqual(36);
    expect(rest.join(' ')).toMatch(/requirements-and-peers\.md §\(b\) flow \d+/);
  });

  it('vsva-bind-dma: one ATS device, a repeat of 4 expanded in place', () => {
    const s = load('vsva-bind-dma');
    expect(s.vm).toEqual({ memoryBytes: 512 * 2 ** 20, vcpus: 2 });
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

  it('iopf-round-trip: a PRI device, an on-demand mapping and per-stack expectations with reasons', () => {
    const s = load('iopf-round-trip');
    expect(s.devices[0]).toMatchObject({ name: 'acc0', ats: true, pri: true });
    expect(s.flat[1]!.step).toMatchObject({ op: 'guest-map', onDemand: true });
    expect(s.flat[3]!.expect).toMatchObject({ tunnel: { kind: 'fault' }, iommufd: { kind: 'iopf' } });
    expect(s.flat[3]!.expect.reason).toMatch(/phase 3/);
    expect(s.flat[4]!.expect).toMatchObject({ tunnel: { kind: 'fault' }, iommufd: { kind: 'ok' } });
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
      pasidBits: 8,
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

  it('finds a scenario by bare name or by path, and names the known ones otherwise', () => {
    expect(findScenario('vsva-bind-dma')).toMatch(/scenarios\/suite\/vsva-bind-dma\.yaml$/);
    expect(findScenario('no-such')).toBeUndefined();
    const r = loadScenario('no-such');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]!.message).toBe(`no such scenario in the suite (known: ${suiteNames().join(', ')})`);
    expect(loadScenario('vsva-bind-dma').ok && loadScenario('scenarios/suite/vsva-bind-dma.yaml').ok).toBe(true);
  });
});
