import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.ts';

const STACK_TRACE = /\bat .*\.(ts|js):\d+/;

describe('ioasid-sim list', () => {
  it('--json lists the built-in scenarios with their file, devices and expanded step count', () => {
    const r = cli('list', '--json');
    expect(r.code).toBe(0);
    const { scenarios } = JSON.parse(r.stdout) as { scenarios: { name: string; file: string; description: string; devices: string[]; steps: number }[] };
    expect(scenarios.length).toBeGreaterThanOrEqual(14);
    const row = (name: string) => {
      const s = scenarios.find((x) => x.name === name)!;
      return [s.name, s.file, s.devices, s.steps];
    };
    expect(['iopf-round-trip', 'two-devices-one-process', 'vdpa-data-vq-pasid', 'vsva-bind-dma', 'vsva-unmap-invalidate'].map(row)).toEqual([
      ['iopf-round-trip', 'scenarios/suite/iopf-round-trip.yaml', ['acc0'], 8],
      ['two-devices-one-process', 'scenarios/suite/two-devices-one-process.yaml', ['dsa0', 'dsa1'], 29],
      ['vdpa-data-vq-pasid', 'scenarios/suite/vdpa-data-vq-pasid.yaml', ['nic0', 'vnet0'], 15],
      ['vsva-bind-dma', 'scenarios/suite/vsva-bind-dma.yaml', ['dsa0'], 12],
      ['vsva-unmap-invalidate', 'scenarios/suite/vsva-unmap-invalidate.yaml', ['dsa0'], 14],
    ]);
    expect(row('scale-devices-pasids')[2]).toHaveLength(100);
    for (const s of scenarios) expect(s.description).toMatch(/§\(b\) flow/);
  });

  it('prints a table: name, devices, steps, the description’s first line', () => {
    const r = cli('list');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^name\s+devices\s+steps\s+description$/);
    const rows = lines.slice(1);
    expect(rows.length).toBeGreaterThanOrEqual(14);
    expect(rows.map((l) => l.split(/\s+/)[0])).toEqual([...rows.map((l) => l.split(/\s+/)[0]!)].sort());
    expect(rows.find((l) => l.startsWith('vsva-bind-dma '))).toMatch(/^vsva-bind-dma\s+dsa0\s+12\s+/);
  });

  it('prints every row within 80 columns (a long device list is summarised)', () => {
    const r = cli('list');
    for (const l of r.stdout.trimEnd().split('\n')) expect(l.length).toBeLessThanOrEqual(80);
  });
});

describe('ioasid-sim validate', () => {
  it('exits 2 on a bad file, one line per issue on stderr, no stack trace', () => {
    const r = cli('validate', 'test/scenarios/bad/several-issues.yaml');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      "test/scenarios/bad/several-issues.yaml:5 devices.1.rid – unknown key 'rid' (expected one of: name, type, pasid, ats, pri, group, vq-groups)",
      'test/scenarios/bad/several-issues.yaml:8 steps.2.pages – must be ≥ 1, got 0',
      "test/scenarios/bad/several-issues.yaml:9 steps.3.len – bad size '64Q': expected bytes, or a number with a K, M or G suffix (e.g. 512M)",
    ]);
    expect(r.stderr).not.toMatch(STACK_TRACE);
  });

  it('reports a sequence error and a missing file the same way', () => {
    const r = cli('validate', 'test/scenarios/bad/bind-twice.yaml', 'test/scenarios/bad/nope.yaml');
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'test/scenarios/bad/bind-twice.yaml:10 step 4 – PASID 5 on dsa0 is already bound (step 3, line 9); rebind or unbind it first',
      'test/scenarios/bad/nope.yaml – cannot read the file (ENOENT)',
    ]);
  });

  it('accepts good files and built-in names, exit 0', () => {
    const r = cli('validate', 'vsva-bind-dma', 'scenarios/suite/iopf-round-trip.yaml');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'ok scenarios/suite/vsva-bind-dma.yaml: vsva-bind-dma, 12 steps\nok scenarios/suite/iopf-round-trip.yaml: iopf-round-trip, 8 steps\n',
    );
    expect(r.stderr).toBe('');
  });
});
