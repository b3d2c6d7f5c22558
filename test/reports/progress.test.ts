import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgress } from '../../reports/progress.ts';

function stream(isTTY: boolean): { s: NodeJS.WriteStream; out: () => string } {
  let text = '';
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(w, { isTTY, columns: 80, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  return { s: w, out: () => text };
}

describe('progress bar', () => {
  it('draws nothing when the output is not a terminal', () => {
    const { s, out } = stream(false);
    const p = createProgress(s);
    p.update(1, 4, 'vsva-bind-dma');
    p.stop();
    expect(out()).toBe('');
  });

  it('draws on a terminal', () => {
    const { s, out } = stream(true);
    const p = createProgress(s);
    p.update(1, 4, 'vsva-bind-dma');
    p.update(4, 4, 'done');
    p.stop();
    expect(out()).toMatch(/vsva-bind-dma|done/);
  });
});
