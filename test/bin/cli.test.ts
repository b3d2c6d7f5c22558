import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.ts';

describe('ioasid-sim CLI', () => {
  it('prints help and exits 0', () => {
    const r = cli('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: ioasid-sim/);
  });

  it.each([['frobnicate'], ['--frobnicate']])('treats %s as a usage error: exit 2, one line, no stack', (arg) => {
    const r = cli(arg);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: /);
    expect(r.stderr).not.toMatch(/\bat .*\.(ts|js):\d+/);
  });
});
