// What an answered query leaves behind while its race is still open: with
// --all-servers the slower upstream's leg stays open after the client has its
// answer (its reply is still checked and counted). Nothing of the client's
// query may be kept for that time: under load those objects lived long enough
// for V8 to promote them, and the old generation grew with every scavenge.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Stub } from './helpers/stub.js';
import { makeQuery, sleep, startRaced } from './helpers/client.js';
import type { Client } from '../src/client.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const stubs: Stub[] = [];
after(async () => {
  for (const s of stubs) await s.close();
});

test('an answered client query is not held while the losing leg is still open', async () => {
  const fast = await Stub.start({ address: '192.0.2.10' });
  const slow = await Stub.start({ address: '192.0.2.20', delayMs: 2500 });
  stubs.push(fast, slow);
  const r = await startRaced([fast.label, slow.label], { timeoutMs: 4000 });
  try {
    let answered: (reply: Buffer) => void = () => {};
    const replied = new Promise<Buffer>((resolve) => (answered = resolve));
    // Made in a function of its own so that no frame of this test keeps it.
    const ask = (): WeakRef<Client> => {
      const client: Client = { transport: 'udp', address: '127.0.0.1', port: 1, respond: (reply) => answered(reply) };
      r.raced.pipeline.handle(makeQuery('held.example'), client);
      return new WeakRef(client);
    };
    const ref = ask();
    const reply = await replied;
    assert.equal(reply[3]! & 0x0f, 0, 'NOERROR from the fast upstream');
    assert.equal(slow.count('udp'), 1, 'the slow upstream was asked too');
    assert.equal(r.raced.upstreams[1]!.stats.inflight, 1, "the slow upstream's leg is still open");
    // A WeakRef's target lives to the end of the job that made it: collect on a later turn.
    await sleep(10);
    gc();
    assert.equal(ref.deref(), undefined, 'the answered client was collected while the race waited for its last leg');
    assert.equal(r.raced.upstreams[1]!.stats.inflight, 1, 'and the leg was still open when it was');
  } finally {
    await r.close();
  }
});
