/**
 * One model, one generation at a time: a FIFO of bounded length in front of it.
 *
 *   enter() ─ free ──────────────────────────────→ runs now
 *           ─ busy, fewer than maxWaiting waiting → waits its turn (leaves the line if its signal aborts)
 *           ─ busy, line full ────────────────────→ QueueFullError (the server answers 429)
 *
 * The caller calls the release function it gets exactly once when its generation has ended, however
 * it ended; the next waiter then starts.
 */

export class QueueFullError extends Error {
  constructor(readonly waiting: number) {
    super(`the queue is full (${waiting} requests waiting)`);
  }
}

interface Waiter {
  start: () => void;
}

export class FifoQueue {
  private running = false;
  private readonly waiters: Waiter[] = [];

  constructor(readonly maxWaiting: number) {
    if (!Number.isInteger(maxWaiting) || maxWaiting < 0) throw new Error(`queue length must be an integer ≥ 0, got ${maxWaiting}`);
  }

  /** Requests waiting (the running one excluded). */
  get waiting(): number {
    return this.waiters.length;
  }

  get busy(): boolean {
    return this.running;
  }

  /** Resolves with a release function when it is this caller's turn. */
  enter(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.running) {
      this.running = true;
      return Promise.resolve(this.releaser());
    }
    if (this.waiters.length >= this.maxWaiting) return Promise.reject(new QueueFullError(this.waiters.length));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        start: () => {
          signal?.removeEventListener('abort', leave);
          resolve(this.releaser());
        },
      };
      const leave = () => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', leave, { once: true });
      this.waiters.push(waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next.start(); // stays running: the turn passes straight to the next waiter
      else this.running = false;
    };
  }
}
