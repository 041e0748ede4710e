// Errors users and scripts can tell apart: each carries a stable `code`, and
// the command line exits with the status its kind gives (README "Exit status
// and error codes"). Messages may be reworded; codes and statuses do not change.

export const ERROR_CODES = {
  /** A flag, environment variable or value that does not parse, or flags that cannot go together. Exit 2. */
  OPTION: 'RACED_ERR_OPTION',
  /** A --conf-file that cannot be read or has a bad line (named as file:line). Exit 2. */
  CONF_FILE: 'RACED_ERR_CONF_FILE',
  /** A listen address that cannot be bound: in use, not local, or a low port without the right. Exit 1. */
  LISTEN: 'RACED_ERR_LISTEN',
  /** --systemd without usable sockets from systemd. Exit 1. */
  SYSTEMD: 'RACED_ERR_SYSTEMD',
  /** --metrics-listen cannot be bound. Exit 1. */
  METRICS: 'RACED_ERR_METRICS',
  /** No upstream to ask: none given, none readable, or every one is raced itself. Exit 1. */
  UPSTREAMS: 'RACED_ERR_UPSTREAMS',
  /** A hosts file or --tls-ca file that cannot be read or holds nothing usable. Exit 1. */
  FILE: 'RACED_ERR_FILE',
  /** --default-resolver could not take over /etc/resolv.conf (raced not answering, no nameserver). Exit 1. */
  TAKEOVER: 'RACED_ERR_TAKEOVER',
  /** --control-socket cannot be set up (a live raced answers there, or another file is in the way). Exit 1. */
  CONTROL: 'RACED_ERR_CONTROL',
  /** --user: no such user, not allowed, or the switch failed. Exit 1. */
  USER: 'RACED_ERR_USER',
} as const;

export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** Exit statuses: 2 for what the user typed, 1 for what the host refused. */
export function exitStatus(code: ErrorCode): 1 | 2 {
  return code === ERROR_CODES.OPTION || code === ERROR_CODES.CONF_FILE ? 2 : 1;
}

export class RacedError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A start-up failure with a message meant for the user as it is. */
export class StartupError extends RacedError {
  override name = 'StartupError';
}
