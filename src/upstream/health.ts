// Up/down state of one upstream. Strategies skip an upstream that is down;
// a down upstream is probed in the background (`. NS`) with exponential
// backoff, so a dead server costs clients nothing while it stays dead.

/** Consecutive failures (timeouts, network errors) that mark an upstream down. */
export const FAILS_TO_DOWN = 3;
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

export class Health {
  up = true;
  private fails = 0;
  private backoff = FIRST_BACKOFF_MS;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  /**
   * `probe` asks the upstream something cheap and calls back with whether a
   * valid reply came back in time.
   */
  constructor(
    private readonly probe: (done: (alive: boolean) => void) => void,
    private readonly onChange: (up: boolean) => void,
  ) {}

  success(): void {
    this.fails = 0;
    if (!this.up) this.setUp();
  }

  failure(): void {
    if (++this.fails >= FAILS_TO_DOWN) this.markDown();
  }

  /** Down at once (ordered mode: one per-try timeout is enough). */
  markDown(): void {
    if (!this.up || this.stopped) return;
    this.up = false;
    this.backoff = FIRST_BACKOFF_MS;
    this.onChange(false);
    this.schedule();
  }

  private setUp(): void {
    this.up = true;
    this.fails = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.onChange(true);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.probe((alive) => {
        if (this.stopped || this.up) return;
        if (alive) return this.setUp();
        this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
        this.schedule();
      });
    }, this.backoff);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
