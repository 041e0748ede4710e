#!/usr/bin/env -S node --max-semi-space-size=4
// raced's entry point. Signal handlers first (a SIGHUP during start-up must
// not kill raced), then the rest: a static import would load every module of
// raced before any of them runs, handlers included.
import './signals.js';

await import('./cli.js');
