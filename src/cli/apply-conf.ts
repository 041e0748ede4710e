// --conf-file onto the parsed flags: every option still at its default takes
// the file's value, parsed by the same parser as its flag (flags and the
// environment win). Commander's own value sources say which are set.
import type { Command } from 'commander';
import { ConfFileError, addressRules, listenFrom, readConfFile } from '../config/conf-file.js';
import { printable } from '../guard.js';

/**
 * Fills every option still at its default from the file (flags and
 * environment win), through the same parsers as the flags.
 */
export function applyConfFile(program: Command, path: string): { hostsLines: string[]; localDomains: string[] } {
  const values = readConfFile(path);
  const fromUser = (attr: string): boolean => ['cli', 'env'].includes(program.getOptionValueSource(attr) ?? '');
  /** `where(i)`: the file and line of the i-th value, for messages. */
  const set = (attr: string, raw: string | boolean | string[], where: (i: number) => string = (i) => values.where(attr, i)): void => {
    if (fromUser(attr)) return;
    const option = program.options.find((o) => o.attributeName() === attr)!;
    if (typeof raw === 'boolean') return void program.setOptionValueWithSource(attr, raw, 'config');
    let value: unknown = undefined;
    for (const [i, v] of (Array.isArray(raw) ? raw : [raw]).entries()) {
      try {
        value = option.parseArg ? option.parseArg(v, value) : v;
      } catch (err) {
        throw new ConfFileError(`${where(i)}: ${option.long?.replace(/^--/, '')}=${printable(v)}: ${(err as Error).message}`);
      }
    }
    program.setOptionValueWithSource(attr, value, 'config');
  };
  for (const [attr, v] of values) {
    if (attr === 'listenAddress' || attr === 'port' || attr === 'address') continue;
    set(attr, v);
  }
  const listen = listenFrom(values, '127.0.0.1');
  if (listen) {
    set(
      'listen',
      listen.map((l) => l.value),
      (i) => (listen[i]!.line === undefined ? values.where('port') : `${path}:${listen[i]!.line}`),
    );
  }
  return addressRules(values);
}
