// Import rules held by `npm run lint` (see ../shared/STYLE.md "Layers"): no
// cycles; prom-client only in src/metrics/; dns-packet never on the query path.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'An import cycle means two modules each need the other: split them or invert one edge.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'prom-client-only-in-metrics',
      severity: 'error',
      comment: 'Counting is plain numbers on the hot path; only src/metrics/ turns them into Prometheus series.',
      from: { path: '^src/', pathNot: '^src/metrics/' },
      to: { path: 'node_modules/prom-client' },
    },
    {
      name: 'no-dns-packet-on-the-query-path',
      severity: 'error',
      comment: 'The query path reads and patches bytes itself (150k decodes/s vs millions of patches/s).',
      from: { path: '^src/(server|wire|upstream|cache|strategy|hosts)/|^src/(pipeline|race|search|router|deadlines|ratelimit)\\.ts$' },
      to: { path: 'node_modules/dns-packet' },
    },
    {
      name: 'query-path-loads-neither',
      severity: 'error',
      comment: 'Listeners, pipeline, race, upstreams and wire load neither prom-client nor dns-packet, not even through another module.',
      from: { path: '^src/(server|wire|upstream|cache|strategy)/|^src/(pipeline|race|search|router|deadlines|ratelimit|client)\\.ts$' },
      to: { path: 'node_modules/(prom-client|dns-packet)/', reachable: true },
    },
    {
      name: 'wire-imports-nothing-of-raced',
      severity: 'error',
      comment: 'src/wire/ is bytes only: it imports nothing from the rest of raced.',
      from: { path: '^src/wire/' },
      to: { path: '^src/', pathNot: '^src/wire/' },
    },
    {
      name: 'parsing-an-upstream-loads-no-tls',
      severity: 'error',
      comment: 'Reading an upstream flag or resolv.conf needs no TLS or HTTP/2: src/upstream/address.ts parses, the transports live elsewhere.',
      from: { path: '^src/upstream/address\\.ts$|^src/config/(resolv|conf-file)\\.ts$' },
      to: { path: '^(node:)?(tls|http2)$', reachable: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^dist/' },
  },
};
