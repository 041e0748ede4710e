// The subcommands: `raced status` reads a running raced's /metrics;
// `raced cache …` and `raced reload` go to its --control-socket. Each
// prints its answer and exits: 0, 1 when raced cannot be asked, 2 for usage.
import type { Command, Option } from 'commander';
import { DEFAULTS } from '../config/options.js';
import { parseEndpoint } from '../net/address.js';
import { status, statusTradeoffs } from '../status.js';
import { ControlError, sendCommand } from '../control.js';
import { opt } from './flags.js';

/** Names of the subcommands: with one of these first, raced does not serve. */
export const SUBCOMMANDS = ['status', 'cache', 'reload'];

function defaultMetricsUrl(): string {
  const env = process.env.RACED_METRICS_LISTEN;
  let label = DEFAULTS.metricsListen;
  try {
    if (env) label = parseEndpoint(env, 9153).label;
  } catch {
    // a bad RACED_METRICS_LISTEN: fall back to the default address
  }
  return `http://${label}/metrics`;
}

/** Adds the subcommands to `program` (whose --control-socket they also read). */
export function addCommands(program: Command): void {
  program
    .command('status')
    .description("one line per upstream from a running raced's metrics: state, queries, win share, p50/p95, errors")
    .option('--metrics-url <url>', 'where raced serves /metrics', defaultMetricsUrl())
    .option('--tradeoffs', "each fan-out option's predicted latency and upstream cost (GET /tradeoffs), the one in use marked")
    .action(async (o: { metricsUrl: string; tradeoffs?: boolean }) => {
      try {
        process.stdout.write((await (o.tradeoffs ? statusTradeoffs(o.metricsUrl) : status(o.metricsUrl))) + '\n');
        process.exit(0);
      } catch (err) {
        process.stderr.write(`raced status: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
  const socketOption = (): Option => opt('--control-socket <path>', 'the --control-socket of the running raced');
  const command = (line: string) => async (sub: { controlSocket?: string }) => {
    const name = `raced ${line.split(' ').slice(0, 2).join(' ')}`;
    // Given before or after the subcommand's name, --control-socket may land on the program or on the subcommand.
    const o = { controlSocket: sub.controlSocket || (program.opts().controlSocket as string | undefined) };
    if (!o.controlSocket) {
      process.stderr.write(`${name}: give --control-socket PATH (or RACED_CONTROL_SOCKET), the socket raced runs with\n`);
      process.exit(2);
    }
    try {
      process.stdout.write(await sendCommand(o.controlSocket, line));
      process.exit(0);
    } catch (err) {
      if (!(err instanceof ControlError)) throw err;
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(1);
    }
  };
  const cache = program.command('cache').description('commands to the running raced\'s cache, over its --control-socket');
  cache
    .command('flush [name]')
    .description('empty the cache, or drop every entry for NAME')
    .addOption(socketOption())
    .action((name: string | undefined, o: { controlSocket?: string }) => command(name === undefined ? 'cache flush' : `cache flush ${name}`)(o));
  cache.command('dump').description('one line per entry: name, type, rcode, TTL left').addOption(socketOption()).action(command('cache dump'));
  cache.command('save').description('write the --cache-file now').addOption(socketOption()).action(command('cache save'));
  program.command('reload').description('the same as SIGHUP: re-read the resolv-file and hosts files').addOption(socketOption()).action(command('reload'));
}
