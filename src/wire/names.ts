// The one text form of a domain name raced compares and keys on: no trailing
// dot, ASCII letters lower-cased. Only A-Z fold (RFC 4343): toLowerCase would
// also fold other letters (the Kelvin sign to 'k'), making different names equal.

/** `example.com.` → `example.com`; the root `.` → ''. Case kept. */
export function withoutDot(name: string): string {
  return name.charCodeAt(name.length - 1) === 0x2e ? name.slice(0, -1) : name;
}

const UPPER = /[A-Z]/;

/** The normal form: no trailing dot, A-Z lower-cased, nothing else changed. */
export function normalName(name: string): string {
  const n = withoutDot(name);
  return UPPER.test(n) ? n.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : n;
}
