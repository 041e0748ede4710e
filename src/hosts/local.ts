// The pipeline's local-answer link: names from hosts files are answered
// here and never raced upstream. Files are re-read on change when polled;
// a file that becomes unreadable keeps its old contents in force.
import { CLASS_IN } from '../wire/constants.js';
import { nameToText, type ParsedQuery } from '../wire/message.js';
import { localAnswer, replyLimit, shapeReply, textToWire } from '../wire/build.js';
import { loadHostsFiles, lookupHosts, type HostsTable } from './hosts.js';
import type { Logger } from '../log.js';
import { printable } from '../guard.js';
import { normalName } from '../wire/names.js';
import { watchPath } from '../watch.js';

/** Skipped lines logged one by one per load; the rest are counted in one line. */
const MAX_PROBLEM_LINES = 20;

export interface HostsOptions {
  files: readonly string[];
  ttl: number;
  /** Seconds between checks for changes; 0: never re-read. */
  pollSeconds: number;
  /** Extra entries in hosts format (dnsmasq address=/domain/ip). */
  inline?: string;
}

export class LocalHosts {
  private table: HostsTable;
  private readonly unwatchers: (() => void)[] = [];
  /** Answers given from the hosts files. */
  answered = 0;

  /** Throws when a file cannot be read (a start-up error). */
  constructor(
    private readonly opts: HostsOptions,
    private readonly log: Logger,
  ) {
    this.table = this.load();
    if (opts.pollSeconds > 0) {
      for (const f of opts.files) this.unwatchers.push(watchPath(f, opts.pollSeconds * 1000, () => this.reload()));
    }
  }

  private load(): HostsTable {
    const { table, problems } = loadHostsFiles(this.opts.files, this.opts.inline);
    // Values in the messages are escaped and cut (hosts.ts); a file of a million bad lines is still one screen.
    for (const p of problems.slice(0, MAX_PROBLEM_LINES)) this.log.warn(`${printable(p.file)}:${p.line}: ${p.message}; line skipped`);
    if (problems.length > MAX_PROBLEM_LINES) this.log.warn(`${problems.length - MAX_PROBLEM_LINES} more hosts lines skipped`);
    return table;
  }

  reload(): void {
    try {
      this.table = this.load();
      this.log.info(`hosts files reloaded: ${this.table.names.size} names, ${this.table.wildcards.size} wildcards`);
    } catch (err) {
      this.log.warn(`${(err as Error).message}; keeping the hosts entries loaded before`);
    }
  }

  /** The local reply for this query, or null when the hosts files do not know the name. */
  answer(msg: Buffer, pq: ParsedQuery, udp: boolean, ednsPacketMax: number): Buffer | null {
    if (pq.question.qclass !== CLASS_IN || this.table.names.size + this.table.wildcards.size + this.table.ptr.size === 0) return null;
    const name = normalName(nameToText(msg));
    const hit = lookupHosts(this.table, name, pq.question.qtype);
    if (hit === null) return null;
    this.answered++;
    const rdatas = hit.kind === 'addresses' ? hit.addrs : hit.kind === 'ptr' ? [textToWire(hit.name)] : [];
    const out = localAnswer(msg, pq, rdatas, this.opts.ttl, ednsPacketMax);
    // Many addresses for one name can overflow a UDP client: the same TC rule as forwarded replies.
    const limit = replyLimit(pq, udp, ednsPacketMax);
    if (out.length <= limit) return out;
    return shapeReply(out, { start: 0, end: out.length, opt: -1, optEnd: -1, ttls: null }, msg, pq, limit, 0);
  }

  stop(): void {
    for (const u of this.unwatchers) u();
  }
}
