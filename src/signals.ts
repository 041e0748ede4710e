// Signal handlers, installed before anything else: main.ts imports this module
// first, so it runs before the rest of raced is even loaded. Until raced is
// up, SIGHUP/SIGTERM/SIGINT are held (their default action would kill raced
// mid-start) and handed over in order once `onSignal` is set.

export type Sig = 'SIGHUP' | 'SIGTERM' | 'SIGINT';

const held: Sig[] = [];
let handler: ((sig: Sig) => void) | null = null;

function receive(sig: Sig): void {
  if (handler) handler(sig);
  else if (sig !== 'SIGHUP' || !held.includes(sig)) held.push(sig);
}

/** `raced status`, `raced cache …`, `raced reload` and `--help` keep the default actions: Ctrl-C must still stop them. */
const serving = !['status', 'cache', 'reload'].includes(process.argv[2] ?? '');
if (serving) for (const s of ['SIGHUP', 'SIGTERM', 'SIGINT'] as const) process.on(s, receive);

/** Where signals go from now on; the ones that came before are delivered at once. */
export function onSignal(h: (sig: Sig) => void): void {
  handler = h;
  for (const s of held.splice(0)) h(s);
}

/** A stop signal came before raced was up: exit rather than start (start-up failed or is not wanted). */
export function stopRequested(): Sig | null {
  return held.find((s) => s !== 'SIGHUP') ?? null;
}
