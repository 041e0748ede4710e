// Numeric command-line options of the single-purpose bench scripts.

/** The number after `name` in argv, or `def`. */
export function numArg(name: string, def: number, argv = process.argv): number {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : def;
}
