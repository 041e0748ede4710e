// The dashboards: static checks, and every panel's query evaluated by a real
// Prometheus scraping a real raced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parser } from '@prometheus-io/lezer-promql';
import { DASHBOARDS } from '../grafana/dashboards.js';
import { prometheusConfig } from '../grafana/prometheus.js';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, sleep } from './helpers/client.js';
import { makePki } from './helpers/dot.js';
import { parseEndpoint } from '../src/net/address.js';
import { buildRegistry } from '../src/metrics/registry.js';
import { DohStub } from './helpers/doh.js';
import { freeTcpPort } from './helpers/process.js';

const dir = fileURLToPath(new URL('../../grafana/dashboards/', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

interface Panel {
  title: string;
  type: string;
  fieldConfig: { defaults: { unit?: string } };
  targets: { expr: string }[];
  datasource: { uid: string };
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string }[] };
}
const load = (f: string): Dashboard => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Dashboard;
const panels = (): { file: string; panel: Panel; expr: string }[] =>
  files.flatMap((file) => load(file).panels.flatMap((panel) => panel.targets.map((t) => ({ file, panel, expr: t.expr }))));

/** Grafana's variables as a concrete query for Prometheus's API. */
const concrete = (expr: string): string => expr.replaceAll('$__rate_interval', '5s').replaceAll('$instance', '.*').replaceAll('$upstream', '.*');

test('the dashboard JSON is what grafana/dashboards.ts generates', () => {
  assert.deepEqual(files.sort(), Object.keys(DASHBOARDS).map((n) => `${n}.json`).sort());
  for (const [name, d] of Object.entries(DASHBOARDS)) {
    assert.equal(readFileSync(join(dir, `${name}.json`), 'utf8'), JSON.stringify(d, null, 2) + '\n', `${name}.json is stale: npm run grafana:build`);
  }
});

test('dashboards: fixed uids, a datasource variable, units on every panel, no hard-coded datasource', () => {
  const uids = new Set<string>();
  for (const f of files) {
    const d = load(f);
    assert.ok(d.uid && !uids.has(d.uid), `${f}: unique fixed uid`);
    uids.add(d.uid);
    assert.ok(d.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'), `${f}: datasource variable`);
    assert.ok(!readFileSync(join(dir, f), 'utf8').includes('${DS_'), `${f}: no import placeholders`);
    for (const p of d.panels) {
      assert.ok(p.fieldConfig.defaults.unit, `${f} / ${p.title}: unit set`);
      assert.equal(p.datasource.uid, '${datasource}');
      for (const t of p.targets) if (t.expr.includes('rate(')) assert.match(t.expr, /\[\$__rate_interval\]/, `${p.title}: $__rate_interval`);
    }
  }
});

test('every PromQL expression parses (Grafana variables substituted as Grafana would)', () => {
  for (const { file, panel, expr } of panels()) {
    let error = '';
    parser.parse(concrete(expr)).iterate({
      enter: (n) => {
        if (n.type.isError) error ||= `at ${n.from}`;
      },
    });
    assert.equal(error, '', `${file} / ${panel.title}: ${expr}`);
  }
});

test('every raced_* metric the dashboards name exists in the registry of a running raced', async () => {
  const up = await Stub.start();
  const r = await startRaced([up.label], { cacheSize: 10 });
  try {
    const text = await buildRegistry(r.raced, 'test').metrics();
    const exposed = new Set([...text.matchAll(/^# TYPE (\w+) (\w+)/gm)].flatMap((m) => (m[2] === 'histogram' ? [`${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1]!])));
    const named = new Set(panels().flatMap(({ expr }) => [...expr.matchAll(/\braced_\w+/g)].map((m) => m[0])));
    assert.ok(named.size >= 15);
    for (const n of named) assert.ok(exposed.has(n), `${n} is exposed`);
  } finally {
    await r.close();
    await up.close();
  }
});

const hasProm = spawnSync('sh', ['-c', 'command -v prometheus']).status === 0;
test('live: every panel query returns data from Prometheus scraping raced', { skip: !hasProm && 'prometheus not installed', timeout: 90_000 }, async () => {
  const fast = await Stub.start({ delayMs: 1 });
  const dead = await Stub.start({ behaviour: 'drop' });
  const slow = await Stub.start({ delayMs: 15 });
  // A DoT stand-in, so the connection panels have series too.
  const pki = makePki();
  const dot = await Stub.start({ delayMs: 5, tls: { key: pki.key, cert: pki.cert } });
  // And a DoH one, for the https:// panel.
  const doh = await DohStub.start({ key: pki.key, cert: pki.cert, delayMs: 5 });
  const mport = await freeTcpPort();
  const pport = await freeTcpPort();
  const r = await startRaced([fast.label, dead.label, slow.label, `tls://dns.test@127.0.0.1:${dot.port}`, `https://dns.test@127.0.0.1:${doh.port}`], {
    tlsCa: [pki.caFile],
    cacheSize: 50,
    timeoutMs: 500,
    // auto, so that its choice panel has a series too (it runs all until its window is trusted).
    strategy: 'auto',
    latencyTargetMs: 50,
    metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153),
  });
  await r.raced.startMetrics('test');
  const work = mkdtempSync(join(tmpdir(), 'raced-prom-test-'));
  writeFileSync(join(work, 'prometheus.yml'), prometheusConfig(`127.0.0.1:${mport}`));
  const prom = spawn('prometheus', [`--config.file=${join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${join(work, 'data')}`, `--web.listen-address=127.0.0.1:${pport}`], {
    stdio: 'ignore',
  });
  let traffic = true;
  try {
    // Steady traffic: misses (new names) and hits (repeats), for ~12 s.
    const drive = (async () => {
      for (let i = 0; traffic && i < 3000; i++) {
        await udpQuery(r.port, `live${i % 200}.example`).catch(() => {});
        await sleep(4);
      }
    })();
    const api = `http://127.0.0.1:${pport}/api/v1`;
    const t0 = Date.now();
    for (;;) {
      const up = await fetch(`${api}/query?query=${encodeURIComponent('up{job="raced"}')}`)
        .then((x) => x.json() as Promise<{ data?: { result: { value: [number, string] }[] } }>)
        .catch(() => null);
      if (up?.data?.result[0]?.value[1] === '1' && Date.now() - t0 > 9000) break;
      assert.ok(Date.now() - t0 < 40_000, 'Prometheus scraped raced');
      await sleep(500);
    }
    const failures: string[] = [];
    for (const { file, panel, expr } of panels()) {
      const res = (await (await fetch(`${api}/query?query=${encodeURIComponent(concrete(expr))}`)).json()) as {
        status: string;
        error?: string;
        data: { result: { value: [number, string] }[] };
      };
      if (res.status !== 'success') {
        failures.push(`${file} / ${panel.title}: ${res.error}`);
        continue;
      }
      const values = res.data.result.map((x) => Number(x.value[1]));
      if (values.length === 0 || !values.some(Number.isFinite)) failures.push(`${file} / ${panel.title}: empty or no finite value for ${concrete(expr)}`);
    }
    assert.deepEqual(failures, []);
    traffic = false;
    await drive;
  } finally {
    traffic = false;
    prom.kill('SIGTERM');
    await new Promise((res) => prom.once('exit', res));
    rmSync(work, { recursive: true, force: true });
    await r.close();
    for (const s of [fast, dead, slow, dot]) await s.close();
    await doh.close();
  }
});
