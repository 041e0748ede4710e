// --workers with --metrics-listen: the primary's /metrics is the sum of every
// worker's series (it timed out on every scrape before).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stub } from './helpers/stub.js';
import { udpQuery, firstData, sleep } from './helpers/client.js';
import { exited, freePort, freeTcpPort, spawnRaced } from './helpers/process.js';

function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  assert.ok(line, `${series} in /metrics`);
  return Number(line.slice(series.length + 1));
}

test('--workers 2 --metrics-listen: /metrics sums both workers, with queries answered by each', async () => {
  const up = await Stub.start({ address: '192.0.2.7' });
  const port = await freePort();
  const mport = await freeTcpPort();
  try {
    const { child, log } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--no-resolv', '--workers', '2', '--metrics-listen', `127.0.0.1:${mport}`]);
    const t0 = Date.now();
    while (!log().includes('2 workers ready') && Date.now() - t0 < 5000) await sleep(20);
    // One name asked from many source ports: each worker has its own cache, so the
    // upstream sees the name once per worker that got a query for it.
    let sent = 0;
    while (sent < 400 && up.count() < 2) {
      assert.equal(firstData((await udpQuery(port, 'same.example')).packet), '192.0.2.7');
      sent++;
    }
    assert.equal(up.count(), 2, `both workers answered within ${sent} queries`);
    const res = await fetch(`http://127.0.0.1:${mport}/metrics`, { signal: AbortSignal.timeout(4000) });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.equal(sample(text, 'raced_queries_total{transport="udp",rcode="NOERROR"}'), sent);
    assert.equal(sample(text, 'raced_cache_misses_total'), 2);
    assert.equal(sample(text, 'raced_cache_hits_total'), sent - 2);
    assert.equal(sample(text, `raced_upstream_queries_total{upstream="${up.label}"}`), 2);
    // Not summed: one build; an upstream is up while some worker finds it up.
    assert.match(text, /^raced_build_info\{[^}]*\} 1$/m);
    assert.equal(sample(text, `raced_upstream_up{upstream="${up.label}"}`), 1);
    child.kill('SIGTERM');
    assert.equal(await exited(child), 0);
  } finally {
    await up.close();
  }
});
