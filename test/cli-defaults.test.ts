// One defaults table: commander's flag defaults and defaultOptions() read the
// same DEFAULTS, so raced with no flags runs on exactly defaultOptions().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgram } from '../src/cli/flags.js';
import { toOptions } from '../src/cli/to-options.js';
import { DEFAULTS, defaultOptions } from '../src/config/options.js';

test('no flags, no environment: the options commander yields are defaultOptions(), and --help shows the table\'s defaults', () => {
  for (const k of Object.keys(process.env)) if (k.startsWith('RACED_')) delete process.env[k];
  const program = buildProgram('0.0.0');
  program.exitOverride();
  program.parse(['node', 'raced']);
  assert.deepEqual(toOptions(program.opts(), (attr) => program.getOptionValueSource(attr) as 'default'), defaultOptions());
  const help = program.helpInformation({ error: false });
  for (const shown of [`default: ${DEFAULTS.timeoutMs},`, `default: ${DEFAULTS.listen})`, 'default: 32m,', 'default: 2%,', `default ${DEFAULTS.serveStaleSeconds})`, `default: ${DEFAULTS.raceWidth},`]) {
    assert.ok(help.replace(/\s+/g, ' ').includes(shown), `--help shows ${shown}`);
  }
});
