// `npm run prometheus -- [--target ADDR:PORT] [--listen ADDR:PORT]`: runs
// Prometheus (Debian package `prometheus`) with a generated configuration
// scraping a running raced every second, so the dashboards' queries can be
// tried in Prometheus's own UI without Grafana. Stops with Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function prometheusConfig(target: string, interval = '1s'): string {
  return [
    'global:',
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    'scrape_configs:',
    '  - job_name: raced',
    '    static_configs:',
    `      - targets: ['${target}']`,
    '',
  ].join('\n');
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

if (process.argv[1]?.endsWith('prometheus.js')) {
  const target = arg('--target', process.env.RACED_METRICS_LISTEN ?? '127.0.0.1:9153');
  const listen = arg('--listen', '127.0.0.1:9090');
  if (spawnSync('sh', ['-c', 'command -v prometheus']).status !== 0) {
    console.error('prometheus is not installed: apt-get install -y prometheus');
    process.exit(1);
  }
  const dir = mkdtempSync(join(tmpdir(), 'raced-prom-'));
  writeFileSync(join(dir, 'prometheus.yml'), prometheusConfig(target));
  console.error(`Prometheus on http://${listen}/ scraping raced at ${target} every second (data in ${dir})`);
  const child = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${listen}`], {
    stdio: 'inherit',
  });
  const stop = (): void => void child.kill('SIGTERM');
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  child.on('exit', (code) => process.exit(code ?? 0));
}
