/**
 * A small pool of worker threads that each run one job at a time: a job goes to the first idle
 * worker, in the order the jobs were queued. A worker that dies fails its job and every later one
 * (no silent retry: a crash in a model is a finding).
 */
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/** Set by the bundler (bin/build.mjs) to the built worker's path; absent when running the sources. */
declare const IOASID_SIM_SUITE_WORKER: string | undefined;

/** The suite worker's entry and how to start it: the built file as is, the source through tsx. */
export function suiteWorkerEntry(): { url: URL; execArgv: string[] } {
  if (typeof IOASID_SIM_SUITE_WORKER === 'string') return { url: pathToFileURL(IOASID_SIM_SUITE_WORKER), execArgv: [] };
  return { url: new URL('./suite-worker-tsx.mjs', import.meta.url), execArgv: [] };
}

/**
 * The default number of workers: none (this thread) on a machine of two cores or fewer, one per
 * core above that. On the 2-vCPU machines this project is measured on, two workers finish the
 * suite no sooner than one thread: the runs are memory-bound, the two vCPUs share their caches,
 * and each worker warms its own JIT (README, performance).
 */
export function defaultJobs(): number {
  const cores = availableParallelism();
  return cores <= 2 ? 1 : cores;
}

interface Pending<Res> {
  readonly msg: unknown;
  readonly resolve: (r: Res) => void;
  readonly reject: (e: Error) => void;
}

interface Slot<Res> {
  readonly worker: Worker;
  job: Pending<Res> | null;
}

export class WorkerPool<Req, Res> {
  private readonly slots: Slot<Res>[] = [];
  private readonly queue: Pending<Res>[] = [];
  private failed: Error | null = null;

  constructor(entry: { url: URL; execArgv: string[] }, size: number) {
    for (let i = 0; i < Math.max(1, size); i++) {
      const worker = new Worker(entry.url, { execArgv: entry.execArgv });
      const slot: Slot<Res> = { worker, job: null };
      worker.on('message', (m: { ok: true; result: Res } | { ok: false; error: string }) => {
        const job = slot.job!;
        slot.job = null;
        if (m.ok) job.resolve(m.result);
        else job.reject(new Error(m.error));
        this.pump();
      });
      worker.on('error', (e) => this.fail(slot, e));
      worker.on('exit', (code) => {
        if (slot.job || (this.queue.length && !this.failed)) this.fail(slot, new Error(`suite worker exited with code ${code}`));
      });
      this.slots.push(slot);
    }
  }

  run(req: Req): Promise<Res> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ msg: req, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.job || !this.queue.length) continue;
      slot.job = this.queue.shift()!;
      slot.worker.postMessage(slot.job.msg);
    }
  }

  private fail(slot: Slot<Res>, e: Error): void {
    this.failed ??= e;
    slot.job?.reject(e);
    slot.job = null;
    for (const p of this.queue.splice(0)) p.reject(e);
  }
}
