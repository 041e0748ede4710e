// The one timer a pooled connection keeps (DNS-over-TCP/TLS and DoH alike):
// a connect or handshake deadline, then read deadlines, keepalive and idle
// close. Re-arming replaces it; it never keeps the process alive.

export class ConnTimer<K extends string> {
  private t: NodeJS.Timeout | null = null;

  /** What the timer is armed for (the last `arm`), read by the owner and handed to `fire`. */
  for: K;

  constructor(
    initial: K,
    private readonly fire: (what: K) => void,
  ) {
    this.for = initial;
  }

  arm(ms: number, what: K): void {
    this.clear();
    this.for = what;
    this.t = setTimeout(this.onTimeout, ms);
    this.t.unref();
  }

  clear(): void {
    if (this.t !== null) clearTimeout(this.t);
    this.t = null;
  }

  private readonly onTimeout = (): void => {
    this.t = null;
    this.fire(this.for);
  };
}
