// raced's command line: flags, the environment and --conf-file into one
// options object, then raced runs on it; or a subcommand runs. Importing this
// module only defines `main`: src/main.ts, the bin entry, runs it.
// A bad value exits with status 2 and one line naming it.
import { CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { OptionValueError, type Options, type ValueSource } from './config/options.js';
import { ConfFileError } from './config/conf-file.js';
import { normaliseDomain } from './router.js';
import { exitStatus } from './errors.js';
import { printable } from './guard.js';
import { normaliseBooleanEnv } from './cli/env.js';
import { buildProgram } from './cli/flags.js';
import { SUBCOMMANDS, addCommands } from './cli/commands.js';
import { applyConfFile } from './cli/apply-conf.js';
import { toOptions } from './cli/to-options.js';
import { run } from './cli/run.js';

// Run directly (an old unit's `node dist/src/cli.js`), this module would
// define main and exit 0 having done nothing: say where raced starts instead.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stderr.write('raced: dist/src/cli.js only defines the command line; run dist/src/main.js (the `raced` bin) instead\n');
  process.exit(2);
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export async function main(argv: string[]): Promise<void> {
  const envError = normaliseBooleanEnv(process.env);
  if (envError) {
    process.stderr.write(envError + '\n');
    process.exit(2);
  }
  const program = buildProgram(VERSION);
  program.exitOverride();
  addCommands(program);
  let opts: Options;
  try {
    if (SUBCOMMANDS.includes(argv[2] ?? '')) {
      await program.parseAsync(argv);
      return;
    }
    // Without a subcommand the program itself runs raced; an action keeps
    // commander from showing help because subcommands exist.
    let serve = false;
    program.action(() => {
      serve = true;
    });
    program.parse(argv);
    // A subcommand after the program's options (`raced --control-socket P cache dump`) ran its own action: no raced to start.
    if (!serve) return;
    const confFile = program.opts().confFile as string | undefined;
    const conf = confFile ? applyConfFile(program, confFile) : null;
    opts = toOptions(program.opts(), (attr) => program.getOptionValueSource(attr) as ValueSource);
    if (conf) {
      opts.hostsText = conf.hostsLines.join('\n');
      opts.routes.push(...conf.localDomains.map((domain) => ({ domain: normaliseDomain(domain), spec: null })));
    }
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(0);
      process.exit(2); // commander already printed the one-line reason
    }
    if (err instanceof OptionValueError || err instanceof ConfFileError) {
      // A conf-file line can be anything (megabytes, control bytes): escaped and cut.
      process.stderr.write(`error: ${printable(err.message, 500)} (${err.code})\n`);
      process.exit(exitStatus(err.code));
    }
    throw err;
  }
  await run(opts, VERSION);
}
