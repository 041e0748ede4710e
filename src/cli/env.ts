// RACED_<FLAG> environment variables: each flag's name, and the words a
// boolean (or optional-value) flag's variable may hold.

export function envName(flag: string): string {
  return 'RACED_' + flag.replace(/^--/, '').replace(/-/g, '_').toUpperCase();
}

const BOOLEAN_FLAGS = [
  '--all-servers',
  '--strict-order',
  '--no-resolv',
  '--log-queries',
  '--no-negcache',
  '--prefetch',
  '--round-robin',
  '--default-resolver',
  '--systemd',
  '--enable-search',
  '--no-rec',
  '--stop-dns-rebind',
  '--rebind-localhost-ok',
];
const FALSE_WORDS = new Set(['', '0', 'false', 'no', 'off']);
const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
/** Flags with an optional value: RACED_X=on|yes|true is the flag alone (its default value), off|no|false|empty is not given. */
const OPTIONAL_VALUE_FLAGS = ['--serve-stale'];
export const ON_WORDS = new Set(['true', 'yes', 'on']);
const OFF_WORDS = new Set(['', 'false', 'no', 'off']);

/**
 * Commander treats a boolean flag's variable as set whatever its value;
 * RACED_LOG_QUERIES=0 must mean off, and RACED_LOG_QUERIES=maybe an error.
 * Deletes the variables that mean "not given"; returns the error line for a bad one.
 */
export function normaliseBooleanEnv(env: NodeJS.ProcessEnv): string | null {
  for (const flag of BOOLEAN_FLAGS) {
    const name = envName(flag);
    const v = env[name];
    if (v === undefined) continue;
    const w = v.trim().toLowerCase();
    if (FALSE_WORDS.has(w)) delete env[name];
    else if (!TRUE_WORDS.has(w)) return `error: environment variable ${name}='${v}' is invalid: expected 1/0, true/false, yes/no or on/off`;
  }
  for (const flag of OPTIONAL_VALUE_FLAGS) {
    const name = envName(flag);
    const v = env[name];
    if (v !== undefined && OFF_WORDS.has(v.trim().toLowerCase())) delete env[name];
  }
  return null;
}
