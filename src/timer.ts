// Strategy timers (a hedge, ordered's next try, the trade-off engine's lag
// probe) that never act before their time. Node runs timers on libuv's loop
// clock: whole milliseconds, read once per turn of the loop. A timer armed
// late in a turn can come due up to a millisecond early, and more often the
// busier the loop: a hedge would go to an upstream about to be answered, at
// a rate that depends on the load, so no window could predict it. Here the
// rest is waited out instead.
import { performance } from 'node:perf_hooks';

/**
 * Runs `fn` once performance.now() reaches `due` (by default `ms` from now),
 * never before, with how late it runs (ms). `armed` gets every Node timer set
 * on the way, so its owner can clear the one pending. The first timer is set
 * for `ms` itself: Node keeps one list per distinct duration, and hedges share
 * theirs. A race's first timer is due `ms` after the client's query came in,
 * not after the work of sending the first leg, so that a probe armed at
 * another point of the same callback (tradeoff/lag.ts) comes due with it.
 */
export function notBefore(ms: number, fn: (lateMs: number) => void, armed: (t: NodeJS.Timeout) => void, due = performance.now() + ms): void {
  const fire = (): void => {
    const now = performance.now();
    if (now < due) armed(setTimeout(fire, due - now));
    else fn(now - due);
  };
  armed(setTimeout(fire, ms));
}
