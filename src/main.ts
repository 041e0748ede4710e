#!/usr/bin/env -S node --max-semi-space-size=4
// raced's entry point (the package's bin). --max-semi-space-size=4 (MiB;
// V8's default is 16): a small young generation lets V8's memory reducer hand
// memory back after a burst. With 100,000 cached entries RSS settles at
// ~150 MB instead of ~220 MB (bench/cache.ts --memory-only). `npm start` and
// the benchmarks pass the same flag.
// Signal handlers first (a SIGHUP during start-up must not kill raced), then
// the rest: a static import would load every module of raced before any of
// them runs, handlers included.
import './signals.js';

const { main } = await import('./cli.js');
await main(process.argv);
