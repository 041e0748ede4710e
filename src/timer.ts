// Strategy timers (a hedge, ordered's next try, the trade-off engine's lag
// probe) that never act before their time. Node runs timers on libuv's loop
// clock: whole milliseconds, read once per turn of the loop. A timer armed
// late in a turn can come due up to a millisecond early, and more often the
// busier the loop: a hedge would go to an upstream about to be answered, at
// a rate that depends on the load, so no window could predict it. Here the
// rest is waited out instead.
import { performance } from 'node:perf_hooks';

/**
 * Runs `fn` once `ms` have passed on performance.now(), never before, with how
 * late it runs (ms). `armed` gets every Node timer set on the way, so its owner
 * can clear the one pending. The first timer is set for `ms` itself: Node keeps
 * one list per distinct duration, and hedges share theirs.
 */
export function notBefore(ms: number, fn: (lateMs: number) => void, armed: (t: NodeJS.Timeout) => void): void {
  const due = performance.now() + ms;
  const fire = (): void => {
    const now = performance.now();
    if (now < due) armed(setTimeout(fire, due - now));
    else fn(now - due);
  };
  armed(setTimeout(fire, ms));
}
