// The domain router: longest suffix wins; names compare case-insensitively in ASCII only (RFC 4343).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LOCAL, Router, normaliseDomain, type Route } from '../src/router.js';
import type { Upstream } from '../src/upstream/upstream.js';

const A = [{ label: 'a' }] as unknown as readonly Upstream[];
const B = [{ label: 'b' }] as unknown as readonly Upstream[];
const DEFAULT = [{ label: 'default' }] as unknown as readonly Upstream[];

/** A query whose question name has these labels, each given as raw bytes. */
function query(labels: number[][]): Buffer {
  const parts = [Buffer.alloc(12)];
  for (const l of labels) parts.push(Buffer.from([l.length, ...l]));
  parts.push(Buffer.from([0, 0, 1, 0, 1]));
  return Buffer.concat(parts);
}
const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];
const name = (text: string): Buffer => query(text.split('.').map(ascii));

function router(rules: [string, Route][]): Router {
  const r = new Router();
  r.setUpstreams(DEFAULT, new Map(rules.map(([d, route]) => [normaliseDomain(d), route])));
  return r;
}

test('longest suffix wins; ASCII case is folded; other names take the default set', () => {
  const r = router([['Example.COM.', A], ['lab.example.com', B], ['corp', LOCAL]]);
  assert.equal(r.select(name('www.example.com')), A);
  assert.equal(r.select(name('WWW.EXAMPLE.COM')), A);
  assert.equal(r.select(name('x.Lab.Example.com')), B);
  assert.equal(r.select(name('host.corp')), LOCAL);
  assert.equal(r.select(name('example.org')), DEFAULT);
  assert.equal(r.select(name('notexample.com')), DEFAULT);
});

test('bytes outside ASCII are not case-folded: 0xC0 is not 0xE0', () => {
  const r = router([['\u00e0.test', A]]);
  assert.equal(r.select(query([[0xe0], ascii('test')])), A);
  assert.equal(r.select(query([[0xc0], ascii('test')])), DEFAULT);
  assert.equal(normaliseDomain('\u00c0.TEST'), '\u00c0.test');
});

test('a dot inside a label is not a label boundary', () => {
  const r = router([['example.com', A]]);
  assert.equal(r.select(query([ascii('example.com')])), DEFAULT);
  assert.equal(r.select(query([ascii('x'), ascii('example.com')])), DEFAULT);
});
