import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bundle = fileURLToPath(new URL('../../bin/bundle.mjs', import.meta.url));

function ensure(): string {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const { ensureBundle } = await import(${JSON.stringify(bundle)}); console.log(await ensureBundle());`], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim();
}

describe('the npm start bundle (bin/bundle.mjs)', () => {
  it('lives in a folder named for its inputs, complete, and is reused while they are unchanged', () => {
    const dir = ensure();
    expect(dir).toMatch(/\/dist\/[0-9a-f]{16}$/);
    for (const f of ['ioasid-sim.mjs', 'suite-worker.mjs', 'complete']) expect(existsSync(`${dir}/${f}`)).toBe(true);
    const stamp = readFileSync(`${dir}/complete`, 'utf8');
    expect(ensure()).toBe(dir);
    // not rebuilt: the completion stamp is the first build's
    expect(readFileSync(`${dir}/complete`, 'utf8')).toBe(stamp);
    // the pool's worker entry is the one beside it
    const code = readdirSync(dir).filter((f) => f.endsWith('.mjs')).map((f) => readFileSync(`${dir}/${f}`, 'utf8')).join('');
    expect(code).toContain(JSON.stringify(`${dir}/suite-worker.mjs`));
  });
});
